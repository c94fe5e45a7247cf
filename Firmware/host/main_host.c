/* The bench bridge simulator.
     bench-bridge-sim                  open a pseudo-terminal, print its path as the first line, serve
     bench-bridge-sim --connect PATH   serve a Unix socket someone else listens on (QEMU's FTDI chardev)
   Options: --serial SN (default SIM-0001), --speed N (physics N× real time); faults for the task
   generator: --slow MS (delay every reply), --drop PERCENT (lose a byte of replies at random),
   --seed N (of the drops), --stuck-relay N (relay N ignores every set), --cut-heater S (the heater's
   element breaks after S simulated seconds: its power reads as set, and it no longer heats).
   Serves until killed; SIGTERM and SIGINT end it cleanly. */
#define _GNU_SOURCE
#include "../src/bridge.h"
#include "hal_host.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;
static void stop(int signal) { (void)signal; stopping = 1; }

static void usage(void) {
    fprintf(stderr, "usage: bench-bridge-sim [--connect SOCKET] [--serial SN] [--speed N] [--slow MS] [--drop PERCENT] [--seed N] [--stuck-relay N] [--cut-heater S]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *connect_path = NULL, *serial = "SIM-0001";
    double speed = 1.0;
    struct hal_host_faults faults = {.stuck_relay = -1, .cut_heater_s = -1};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--connect") == 0 && i + 1 < argc) connect_path = argv[++i];
        else if (strcmp(argv[i], "--serial") == 0 && i + 1 < argc) serial = argv[++i];
        else if (strcmp(argv[i], "--speed") == 0 && i + 1 < argc) { speed = atof(argv[++i]); if (speed <= 0) usage(); }
        else if (strcmp(argv[i], "--slow") == 0 && i + 1 < argc) faults.slow_ms = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--drop") == 0 && i + 1 < argc) { int p = atoi(argv[++i]); if (p < 0 || p > 100) usage(); faults.drop_percent = (unsigned)p; }
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) faults.seed = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--stuck-relay") == 0 && i + 1 < argc) faults.stuck_relay = atoi(argv[++i]);
        else if (strcmp(argv[i], "--cut-heater") == 0 && i + 1 < argc) { faults.cut_heater_s = atof(argv[++i]); if (faults.cut_heater_s < 0) usage(); }
        else usage();
    }
    int fd, keep_slave = -1;
    if (connect_path) {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un address = {.sun_family = AF_UNIX};
        if (fd < 0 || strlen(connect_path) >= sizeof address.sun_path) { perror("socket"); return 1; }
        strcpy(address.sun_path, connect_path);
        if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0) { perror(connect_path); return 1; }
        printf("%s\n", connect_path);
    } else {
        fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (fd < 0 || grantpt(fd) < 0 || unlockpt(fd) < 0) { perror("pseudo-terminal"); return 1; }
        const char *slave = ptsname(fd);
        /* Hold the slave open ourselves so the master never reads EIO between clients, and start
           it raw: no echo, no line editing, no CR/LF translation. */
        keep_slave = open(slave, O_RDWR | O_NOCTTY | O_CLOEXEC);
        struct termios t;
        if (keep_slave < 0 || tcgetattr(keep_slave, &t) < 0) { perror(slave); return 1; }
        cfmakeraw(&t);
        tcsetattr(keep_slave, TCSANOW, &t);
        printf("%s\n", slave);
    }
    fflush(stdout);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    signal(SIGTERM, stop);
    signal(SIGINT, stop);
    signal(SIGPIPE, SIG_IGN);
    hal_host_init(fd, speed);
    hal_host_faults(faults);
    bridge_init(serial);
    while (!stopping) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, 1);
        if (n > 0 && (p.revents & (POLLHUP | POLLERR)) && connect_path) break;
        bridge_poll();
    }
    bridge_safe_state();
    if (keep_slave >= 0) close(keep_slave);
    close(fd);
    return 0;
}
