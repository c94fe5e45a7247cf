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

/* An epoll set (close-on-exec) that is readable when any descriptor added to it is. */
int worldos_epoll_create(void);
int worldos_epoll_add(int epoll, int fd);    /* EPOLL_CTL_ADD for EPOLLIN */
int worldos_epoll_remove(int epoll, int fd); /* EPOLL_CTL_DEL */

/* pidfd_getfd(pidfd, fd, 0): a copy of another process's descriptor (close-on-exec). */
int worldos_pidfd_getfd(int pidfd, int fd);

/* Route `signal` to `fd`: a C handler writes the signal number (one byte) to fd, which is
   async-signal-safe. fd < 0 restores the default action. */
int worldos_signal_route(int signal, int fd);

/* ---- Supervised programs (the seccomp sandbox) ---- */

/* One seccomp user notification, as the supervisor needs it. */
struct worldos_notification {
    uint64_t id;
    int pid;        /* the calling thread, in the supervisor's pid namespace */
    int nr;         /* the system call number */
    uint64_t args[6];
};

/* Receive the next notification (the kernel's buffer is zeroed first, as it requires).
   0, or -1 with errno (ENOENT: the caller went away before it could be read). */
int worldos_notif_receive(int notify_fd, struct worldos_notification *out);

/* Is the notification still pending (the caller alive and still waiting in that call)? 1/0. */
int worldos_notif_id_valid(int notify_fd, uint64_t id);

/* Answer a notification: the call returns `value` when error is 0, else fails with errno
   `error` (positive). continue_call != 0 lets the kernel run the call itself: only for calls
   whose arguments are registers, never for one whose memory the decision read. */
int worldos_notif_respond(int notify_fd, uint64_t id, int64_t value, int error, int continue_call);

/* Install `fd` (opened by the supervisor) in the caller's descriptor table and answer the
   notification with its number, atomically (SECCOMP_ADDFD_FLAG_SEND). cloexec sets O_CLOEXEC
   on the new descriptor. The number in the caller, or -1 with errno. */
int worldos_notif_addfd_send(int notify_fd, uint64_t id, int fd, int cloexec);

/* openat2(dirfd, path, {flags, mode, resolve}). The descriptor, or -1 with errno. */
int worldos_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);

/* RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS: open exactly the path decided on, nothing a
   symlink swapped in since. */
uint64_t worldos_resolve_no_links(void);

/* Send / receive one descriptor over a unix socket (SCM_RIGHTS). 0 / the descriptor, or -1. */
int worldos_send_fd(int socket, int fd);
int worldos_receive_fd(int socket);

/* The process at the other end of a connected unix socket, as the kernel recorded it when it
   connected (SO_PEERCRED). 0, or -1 with errno. */
int worldos_peer_credentials(int socket, int *pid, unsigned *uid, unsigned *gid);

/* This thread only (raw system calls, not glibc's process-wide ones): take on a user's
   filesystem identity (groups = {gid}, fsgid, fsuid), so the kernel checks what the supervisor
   opens for a program against that program's user. 0, or -1 with errno. */
int worldos_thread_fs_identity(unsigned uid, unsigned gid);

/* prctl(PR_SET_PDEATHSIG, signal): the signal this process gets when its parent thread exits. */
int worldos_parent_death_signal(int signal);


/* What glibc declares only under _GNU_SOURCE, which Swift's Glibc module is not built with. */
long worldos_read_remote(int pid, uint64_t address, void *buffer, size_t length); /* process_vm_readv */
int worldos_renameat2(int olddir, const char *oldname, int newdir, const char *newname, unsigned flags);
unsigned worldos_device_major(uint64_t device);
int worldos_o_path(void);
int worldos_at_empty_path(void);
int worldos_gettid(void);
unsigned worldos_device_minor(uint64_t device);
short worldos_posix_spawn_setsid(void);
int worldos_spawn_close_from(void *file_actions, int first); /* posix_spawn_file_actions_addclosefrom_np */
int worldos_close_from(unsigned first); /* close_range(first, ~0U, 0) */
long worldos_getdents64(int fd, void *buffer, size_t length); /* raw directory entries (struct linux_dirent64) */
long worldos_filesystem_magic(const char *path); /* statfs(path).f_type, or -1 */
/* The calling thread's CPU affinity as a mask of the first 64 CPUs (0 on failure), and setting
   it (0, or -1 with errno). Threads and processes it starts inherit it. */
unsigned long long worldos_affinity_get(void);
int worldos_affinity_set(unsigned long long mask);

/* evdev (linux/input.h's EVIOC* macros): the device's name (NUL-terminated into name), the
   bitmap of the codes it reports for an event type (0: the types), the range of an absolute
   axis. Each returns ioctl's result (-1 with errno on failure). */
int worldos_evdev_name(int fd, char *name, size_t length);
int worldos_evdev_bits(int fd, unsigned type, uint8_t *bits, size_t length);
int worldos_evdev_abs_range(int fd, unsigned axis, int *minimum, int *maximum);


#endif
