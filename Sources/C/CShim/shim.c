#define _GNU_SOURCE
#include <linux/input.h>
#include "CShim.h"

#include <sys/epoll.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* Close a descriptor a failed setup opened; the caller sees the setup's errno, not close's. */
static int close_keeping_errno(int fd) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

int worldos_netlink_open(int protocol, unsigned groups) {
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    if (fd < 0) return -1;
    struct sockaddr_nl address;
    memset(&address, 0, sizeof address);
    address.nl_family = AF_NETLINK;
    address.nl_groups = groups;
    if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0) {
        return close_keeping_errno(fd);
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
        return close_keeping_errno(fd);
    }
    return fd;
}

int worldos_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }
int worldos_epoll_add(int epoll, int fd) {
    struct epoll_event event = { .events = EPOLLIN, .data.fd = fd };
    return epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event);
}
int worldos_epoll_remove(int epoll, int fd) { return epoll_ctl(epoll, EPOLL_CTL_DEL, fd, NULL); }

int worldos_pidfd_getfd(int pidfd, int fd) {
    return (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
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

int worldos_notif_receive(int notify_fd, struct worldos_notification *out) {
    struct seccomp_notif request;
    memset(&request, 0, sizeof request);
    if (ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_RECV, &request) < 0) return -1;
    out->id = request.id;
    out->pid = (int)request.pid;
    out->nr = request.data.nr;
    for (int i = 0; i < 6; i++) out->args[i] = request.data.args[i];
    return 0;
}

int worldos_notif_id_valid(int notify_fd, uint64_t id) {
    return ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

int worldos_notif_respond(int notify_fd, uint64_t id, int64_t value, int error, int continue_call) {
    struct seccomp_notif_resp response;
    memset(&response, 0, sizeof response);
    response.id = id;
    if (continue_call) {
        response.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    } else {
        response.val = value;
        response.error = error ? -error : 0;
    }
    return ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &response);
}

int worldos_notif_addfd_send(int notify_fd, uint64_t id, int fd, int cloexec) {
    struct seccomp_notif_addfd add;
    memset(&add, 0, sizeof add);
    add.id = id;
    add.flags = SECCOMP_ADDFD_FLAG_SEND;
    add.srcfd = (uint32_t)fd;
    add.newfd_flags = cloexec ? O_CLOEXEC : 0;
    return ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_ADDFD, &add);
}

int worldos_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = flags;
    how.mode = mode;
    how.resolve = resolve;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

uint64_t worldos_resolve_no_links(void) { return RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS; }

int worldos_send_fd(int socket, int fd) {
    char byte = 0;
    struct iovec io = {.iov_base = &byte, .iov_len = 1};
    union { char buffer[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    memset(&control, 0, sizeof control);
    struct msghdr message = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = control.buffer,
                             .msg_controllen = sizeof control.buffer};
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(header), &fd, sizeof fd);
    return sendmsg(socket, &message, 0) == 1 ? 0 : -1;
}

int worldos_peer_credentials(int socket, int *pid, unsigned *uid, unsigned *gid) {
    struct ucred credentials;
    socklen_t length = sizeof credentials;
    if (getsockopt(socket, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return -1;
    *pid = credentials.pid;
    *uid = credentials.uid;
    *gid = credentials.gid;
    return 0;
}

int worldos_receive_fd(int socket) {
    char byte;
    struct iovec io = {.iov_base = &byte, .iov_len = 1};
    union { char buffer[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    struct msghdr message = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = control.buffer,
                             .msg_controllen = sizeof control.buffer};
    ssize_t n = recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
    if (n != 1) { if (n == 0) errno = EPIPE; return -1; }
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    if (!header || header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS
        || header->cmsg_len != CMSG_LEN(sizeof(int))) { errno = EPROTO; return -1; }
    int fd;
    memcpy(&fd, CMSG_DATA(header), sizeof fd);
    return fd;
}

int worldos_thread_fs_identity(unsigned uid, unsigned gid) {
    gid_t groups[1] = {gid};
    if (syscall(SYS_setgroups, 1, groups) < 0) return -1;
    syscall(SYS_setfsgid, gid);
    syscall(SYS_setfsuid, uid);
    /* setfs[ug]id report the previous value, never an error: check it took. */
    if ((unsigned)syscall(SYS_setfsuid, -1) != uid || (unsigned)syscall(SYS_setfsgid, -1) != gid) { errno = EPERM; return -1; }
    return 0;
}

int worldos_parent_death_signal(int signal) { return prctl(PR_SET_PDEATHSIG, signal, 0, 0, 0); }



long worldos_read_remote(int pid, uint64_t address, void *buffer, size_t length) {
    struct iovec local = {.iov_base = buffer, .iov_len = length};
    struct iovec remote = {.iov_base = (void *)(uintptr_t)address, .iov_len = length};
    return (long)process_vm_readv(pid, &local, 1, &remote, 1, 0);
}

int worldos_renameat2(int olddir, const char *oldname, int newdir, const char *newname, unsigned flags) {
    return renameat2(olddir, oldname, newdir, newname, flags);
}

unsigned worldos_device_major(uint64_t device) { return major(device); }
int worldos_o_path(void) { return O_PATH; }
int worldos_at_empty_path(void) { return AT_EMPTY_PATH; }
int worldos_gettid(void) { return (int)syscall(SYS_gettid); }
unsigned worldos_device_minor(uint64_t device) { return minor(device); }
short worldos_posix_spawn_setsid(void) { return POSIX_SPAWN_SETSID; }
int worldos_spawn_close_from(void *file_actions, int first) {
    return posix_spawn_file_actions_addclosefrom_np((posix_spawn_file_actions_t *)file_actions, first);
}
int worldos_close_from(unsigned first) { return close_range(first, ~0U, 0); }
long worldos_getdents64(int fd, void *buffer, size_t length) { return getdents64(fd, buffer, length); }
unsigned long long worldos_affinity_get(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
    unsigned long long mask = 0;
    for (int cpu = 0; cpu < 64; cpu++) if (CPU_ISSET(cpu, &set)) mask |= 1ULL << cpu;
    return mask;
}
int worldos_affinity_set(unsigned long long mask) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int cpu = 0; cpu < 64; cpu++) if (mask & (1ULL << cpu)) CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set);
}
long worldos_filesystem_magic(const char *path) {
    struct statfs fs;
    return statfs(path, &fs) == 0 ? (long)fs.f_type : -1;
}

int worldos_evdev_name(int fd, char *name, size_t length) {
    if (length == 0) return -1;
    int n = ioctl(fd, EVIOCGNAME(length - 1), name);
    name[n >= 0 && (size_t)n < length ? n : length - 1] = 0;
    return n;
}
int worldos_evdev_bits(int fd, unsigned type, uint8_t *bits, size_t length) {
    return ioctl(fd, EVIOCGBIT(type, length), bits);
}
int worldos_evdev_abs_range(int fd, unsigned axis, int *minimum, int *maximum) {
    struct input_absinfo info;
    int r = ioctl(fd, EVIOCGABS(axis), &info);
    if (r >= 0) { *minimum = info.minimum; *maximum = info.maximum; }
    return r;
}
