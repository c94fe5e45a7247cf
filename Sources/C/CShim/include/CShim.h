#ifndef WORLDOS_CSHIM_H
#define WORLDOS_CSHIM_H
/* What Swift cannot import directly: variadic C functions, ioctl request macros, netlink and
   connector structures. One wrapper per call; the Swift side wraps each of these exactly once. */
#include <malloc.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>

/* ioctl(fd, FIONREAD, &n): bytes ready to read. Returns ioctl's result; errno is left set. */
static inline int worldos_ioctl_fionread(int fd, int *count) {
    return ioctl(fd, FIONREAD, count);
}

/* ioctl(fd, FIONBIO, &on): non-blocking on (1) or off (0). */
static inline int worldos_ioctl_fionbio(int fd, int *on) {
    return ioctl(fd, FIONBIO, on);
}

/* mallinfo2().uordblks: bytes the heap has handed out and not had back (for memory reports). */
static inline size_t worldos_heap_in_use(void) {
    return mallinfo2().uordblks;
}

/* A non-blocking netlink socket of `protocol` bound to multicast `groups`. -1 with errno on failure. */
int worldos_netlink_open(int protocol, unsigned groups);

/* Ask the process-events connector (NETLINK_CONNECTOR, CN_IDX_PROC) to start sending. */
int worldos_proc_connector_listen(int fd);

/* One process event, decoded from a connector message against the kernel's own layout. */
struct worldos_proc_event {
    unsigned what;      /* PROC_EVENT_FORK, _EXEC, _EXIT, _COMM, ... */
    int pid;            /* the thread (for fork: the child) */
    int tgid;           /* its process */
    int parent_tgid;    /* fork: the parent process */
    int exit_code;      /* exit: the wait status */
};
enum { WORLDOS_PROC_EVENT_FORK = 0x1, WORLDOS_PROC_EVENT_EXEC = 0x2, WORLDOS_PROC_EVENT_COMM = 0x200,
       WORLDOS_PROC_EVENT_EXIT = 0x80000000 };

/* Decode one netlink datagram from the connector. 1 if it held a process event, 0 if not
   (an acknowledgement, another connector), -1 if it is malformed. */
int worldos_proc_event_parse(const uint8_t *buffer, size_t length, struct worldos_proc_event *out);

/* accept4(fd, NULL, NULL, SOCK_CLOEXEC). */
int worldos_accept_cloexec(int fd);

/* timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC) armed to fire after `after_ms`, then every
   `interval_ms` (0: once). The descriptor, or -1 with errno. */
int worldos_timerfd(long long after_ms, long long interval_ms);

/* pidfd_open(pid, 0): a descriptor that becomes readable when the process exits. */
int worldos_pidfd_open(int pid);

/* Route `signal` to `fd`: a C handler writes the signal number (one byte) to fd, which is
   async-signal-safe. fd < 0 restores the default action. */
int worldos_signal_route(int signal, int fd);

#endif
