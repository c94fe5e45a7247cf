/* The bench bridge firmware's serial side as a libFuzzer target: the input is what arrives on its
   line, read by the firmware's own bridge_poll (line assembly, overflow, every command parser)
   from one end of a socket pair; its replies are drained from the other. */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>
#include "bridge.h"
#include "hal_host.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int host = -1;
    if (host < 0) {
        int pair[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0) return 0;
        fcntl(pair[0], F_SETFL, O_NONBLOCK);
        fcntl(pair[1], F_SETFL, O_NONBLOCK);
        hal_host_init(pair[0], 1.0);
        bridge_init("FUZZ-0001");
        host = pair[1];
    }
    /* The line is fed in pieces and the replies drained after each, as a host reads a serial
       line: fed whole, the replies to thousands of one-byte commands (each a write, each
       charged a kilobyte or so by the socket) would fill the socket, and the firmware waits,
       as it does on a real line, for a reader that never comes. */
    char replies[4096];
    for (size_t at = 0; at < size; at += 32) {
        size_t piece = size - at < 32 ? size - at : 32;
        if (write(host, data + at, piece) != (ssize_t)piece) return 0;
        bridge_poll();
        while (read(host, replies, sizeof replies) > 0) {}
    }
    bridge_poll();
    while (read(host, replies, sizeof replies) > 0) {}
    bridge_safe_state();
    return 0;
}
