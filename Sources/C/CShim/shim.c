#define _GNU_SOURCE
#include "CShim.h"

#include <errno.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

int worldos_netlink_open(int protocol, unsigned groups) {
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    if (fd < 0) return -1;
    struct sockaddr_nl address;
    memset(&address, 0, sizeof address);
    address.nl_family = AF_NETLINK;
    address.nl_groups = groups;
    if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int worldos_proc_connector_listen(int fd) {
    struct {
        struct nlmsghdr header;
        struct cn_msg message;
        enum proc_cn_mcast_op op;
    } __attribute__((packed)) request;
    memset(&request, 0, sizeof request);
    request.header.nlmsg_len = sizeof request;
    request.header.nlmsg_type = NLMSG_DONE;
    request.header.nlmsg_pid = 0;
    request.message.id.idx = CN_IDX_PROC;
    request.message.id.val = CN_VAL_PROC;
    request.message.len = sizeof(enum proc_cn_mcast_op);
    request.op = PROC_CN_MCAST_LISTEN;
    return send(fd, &request, sizeof request, 0) == (ssize_t)sizeof request ? 0 : -1;
}

int worldos_proc_event_parse(const uint8_t *buffer, size_t length, struct worldos_proc_event *out) {
    if (length < sizeof(struct nlmsghdr)) return -1;
    const struct nlmsghdr *header = (const struct nlmsghdr *)buffer;
    if (header->nlmsg_len > length || header->nlmsg_len < NLMSG_LENGTH(sizeof(struct cn_msg))) return -1;
    const struct cn_msg *message = (const struct cn_msg *)NLMSG_DATA(header);
    if (message->id.idx != CN_IDX_PROC || message->id.val != CN_VAL_PROC) return 0;
    if (message->len < offsetof(struct proc_event, event_data) ||
        NLMSG_LENGTH(sizeof(struct cn_msg) + message->len) > header->nlmsg_len) return -1;
    const struct proc_event *event = (const struct proc_event *)message->data;
    memset(out, 0, sizeof *out);
    out->what = event->what;
    switch (event->what) {
    case PROC_EVENT_FORK:
        out->pid = event->event_data.fork.child_pid;
        out->tgid = event->event_data.fork.child_tgid;
        out->parent_tgid = event->event_data.fork.parent_tgid;
        return 1;
    case PROC_EVENT_EXEC:
        out->pid = event->event_data.exec.process_pid;
        out->tgid = event->event_data.exec.process_tgid;
        return 1;
    case PROC_EVENT_COMM:
        out->pid = event->event_data.comm.process_pid;
        out->tgid = event->event_data.comm.process_tgid;
        return 1;
    case PROC_EVENT_EXIT:
        out->pid = event->event_data.exit.process_pid;
        out->tgid = event->event_data.exit.process_tgid;
        out->exit_code = (int)event->event_data.exit.exit_code;
        return 1;
    default:
        return 0;
    }
}

int worldos_accept_cloexec(int fd) {
    return accept4(fd, NULL, NULL, SOCK_CLOEXEC);
}

int worldos_timerfd(long long after_ms, long long interval_ms) {
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    if (fd < 0) return -1;
    struct itimerspec spec;
    spec.it_value.tv_sec = after_ms / 1000;
    spec.it_value.tv_nsec = (after_ms % 1000) * 1000000;
    spec.it_interval.tv_sec = interval_ms / 1000;
    spec.it_interval.tv_nsec = (interval_ms % 1000) * 1000000;
    if (timerfd_settime(fd, 0, &spec, NULL) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int worldos_pidfd_open(int pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Signal number → write end of the pipe its handler writes to. */
static volatile int routes[65] = {[0 ... 64] = -1};

static void route_handler(int signal) {
    int saved = errno;
    if (signal > 0 && signal < 65 && routes[signal] >= 0) {
        unsigned char byte = (unsigned char)signal;
        (void)write(routes[signal], &byte, 1);
    }
    errno = saved;
}

int worldos_signal_route(int signal, int fd) {
    if (signal <= 0 || signal >= 65) { errno = EINVAL; return -1; }
    struct sigaction action;
    memset(&action, 0, sizeof action);
    sigemptyset(&action.sa_mask);
    if (fd < 0) {
        action.sa_handler = SIG_DFL;
        routes[signal] = -1;
    } else {
        routes[signal] = fd;
        action.sa_handler = route_handler;
        action.sa_flags = SA_RESTART;
    }
    return sigaction(signal, &action, NULL);
}
