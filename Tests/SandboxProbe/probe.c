/* sandbox-probe: a program the sandbox tests run under the supervisor's seccomp filter. Each
   command tries one thing — often a way around the filter — and prints one line: "ok VALUE" or
   "err ERRNO". Written in C because the escapes need raw system calls and threads that a test
   controls exactly. */
#define _GNU_SOURCE
#include <sys/xattr.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static int report(long rc) {
    if (rc < 0) printf("err %d\n", errno); else printf("ok %ld\n", rc);
    return 0;
}

static int flags_of(const char *mode) {
    if (!mode || !strcmp(mode, "r")) return O_RDONLY;
    if (!strcmp(mode, "w")) return O_WRONLY;
    if (!strcmp(mode, "rw")) return O_RDWR;
    if (!strcmp(mode, "c")) return O_WRONLY | O_CREAT;
    return O_RDONLY;
}

/* ---- a second thread racing the check ---- */
static char race_path[4096];
static const char *race_a, *race_b;
static atomic_int race_stop;

static void *flip_path(void *unused) {
    (void)unused;
    while (!atomic_load(&race_stop)) {
        strcpy(race_path, race_a);
        strcpy(race_path, race_b);
    }
    return NULL;
}

static const char *swap_dir, *swap_allowed, *swap_denied;
static void *flip_link(void *unused) {
    (void)unused;
    char link[4096], staged[4096];
    snprintf(link, sizeof link, "%s/link", swap_dir);
    snprintf(staged, sizeof staged, "%s/staged", swap_dir);
    for (int i = 0; !atomic_load(&race_stop); i++) {
        unlink(staged);
        if (symlink(i % 2 ? swap_denied : swap_allowed, staged) == 0) rename(staged, link);
    }
    return NULL;
}

/* Opens `path` n times while another thread races; counts opens that reached `denied`'s inode. */
static int count_leaks(const char *path_or_null, const char *denied, int n) {
    struct stat secret, got;
    if (stat(denied, &secret) != 0) return report(-1);
    int leaks = 0, opened = 0;
    for (int i = 0; i < n; i++) {
        int fd = open(path_or_null ? path_or_null : race_path, O_RDONLY);
        if (fd < 0) continue;
        opened++;
        if (fstat(fd, &got) == 0 && got.st_ino == secret.st_ino && got.st_dev == secret.st_dev) leaks++;
        close(fd);
    }
    atomic_store(&race_stop, 1);
    printf("leaks %d opened %d\n", leaks, opened);
    return 0;
}

static void *sleeper(void *unused) { (void)unused; pause(); return NULL; }

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 2) { fprintf(stderr, "usage: sandbox-probe COMMAND ...\n"); return 2; }
    const char *c = argv[1];
    const char *a = argc > 2 ? argv[2] : "", *b = argc > 3 ? argv[3] : "", *d = argc > 4 ? argv[4] : "";
    if (!strcmp(c, "open")) return report(open(a, flags_of(argc > 3 ? b : NULL), 0644));
    if (!strcmp(c, "read")) {
        int fd = open(a, O_RDONLY);
        if (fd < 0) return report(fd);
        char buffer[256] = {0};
        ssize_t n = read(fd, buffer, sizeof buffer - 1);
        if (n < 0) return report(n);
        buffer[strcspn(buffer, "\n")] = 0;
        printf("ok %s\n", buffer);
        return 0;
    }
    if (!strcmp(c, "openat2")) {
        struct open_how how = {.flags = O_RDONLY};
        return report(syscall(SYS_openat2, AT_FDCWD, a, &how, sizeof how));
    }
    if (!strcmp(c, "io_uring")) {
        char params[120] = {0};
        return report(syscall(425 /* io_uring_setup */, 8, params));
    }
    if (!strcmp(c, "chdir")) { if (chdir(a) != 0) return report(-1); return report(open(b, O_RDONLY)); }
    if (!strcmp(c, "dirfd")) {
        int dir = open(a, O_RDONLY | O_DIRECTORY);
        if (dir < 0) return report(dir);
        return report(openat(dir, b, O_RDONLY));
    }
    if (!strcmp(c, "opath")) {
        /* An O_PATH descriptor of a directory the program may look at, then a name under it. */
        int dir = open(a, O_PATH | O_DIRECTORY);
        if (dir < 0) return report(dir);
        return report(openat(dir, b, O_RDONLY));
    }
    if (!strcmp(c, "procfd")) {
        /* Reopen a read-only descriptor for writing through /proc/self/fd. */
        int fd = open(a, O_RDONLY);
        if (fd < 0) return report(fd);
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        return report(open(path, O_RDWR));
    }
    if (!strcmp(c, "race")) {
        race_a = a; race_b = b;
        strcpy(race_path, a);
        pthread_t t;
        pthread_create(&t, NULL, flip_path, NULL);
        return count_leaks(NULL, b, atoi(d));
    }
    if (!strcmp(c, "swap")) {
        swap_dir = a; swap_allowed = b; swap_denied = d;
        char link[4096];
        snprintf(link, sizeof link, "%s/link", a);
        pthread_t t;
        pthread_create(&t, NULL, flip_link, NULL);
        return count_leaks(link, d, argc > 5 ? atoi(argv[5]) : 1000);
    }
    if (!strcmp(c, "unix-request")) {
        /* connect to the unix socket at a, send the line b, print the answer's line */
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un address = { .sun_family = AF_UNIX };
        strncpy(address.sun_path, a, sizeof address.sun_path - 1);
        if (s < 0 || connect(s, (struct sockaddr *)&address, sizeof address) != 0) return report(-1);
        char line[4096];
        snprintf(line, sizeof line, "%s\n", b);
        if (write(s, line, strlen(line)) < 0) return report(-1);
        ssize_t n = read(s, line, sizeof line - 1);
        if (n <= 0) return report(n < 0 ? -1 : 0);
        line[n] = 0;
        printf("answer %s", line);
        return 0;
    }
    if (!strcmp(c, "symlink")) return report(symlink(a, b));
    if (!strcmp(c, "mkdir")) return report(mkdir(a, 0755));
    if (!strcmp(c, "chmod")) return report(chmod(a, (mode_t)strtol(b, NULL, 8)));
    if (!strcmp(c, "chown")) return report(chown(a, (uid_t)atoi(b), (gid_t)-1));
    if (!strcmp(c, "fchmod")) {
        int fd = open(a, O_RDONLY);
        if (fd < 0) return report(fd);
        return report(fchmod(fd, (mode_t)strtol(b, NULL, 8)));
    }
    if (!strcmp(c, "setxattr")) return report(setxattr(a, "user.worldos", "x", 1, 0));
#if defined(__x86_64__)
    if (!strcmp(c, "int80-open")) {
        /* open(2) through the i386 entry: the filter sees another architecture. */
        long r;
        __asm__ volatile ("int $0x80" : "=a"(r) : "a"(5), "b"(a), "c"(0), "d"(0) : "memory");
        return report((int)r);
    }
#endif
    if (!strcmp(c, "link")) return report(link(a, b));
    if (!strcmp(c, "unlink")) return report(unlink(a));
    if (!strcmp(c, "rename")) return report(rename(a, b));
    if (!strcmp(c, "truncate")) return report(truncate(a, 0));
    if (!strcmp(c, "exec")) { execv(a, argv + 2); return report(-1); }
    if (!strcmp(c, "exec-threaded")) {
        pthread_t t;
        pthread_create(&t, NULL, sleeper, NULL);
        execv(a, argv + 2);
        return report(-1);
    }
    if (!strcmp(c, "kill")) return report(kill(atoi(a), atoi(b)));
    if (!strcmp(c, "kill-child")) {
        pid_t child = fork();
        if (child == 0) { pause(); _exit(0); }
        long rc = kill(child, SIGTERM);
        waitpid(child, NULL, 0);
        return report(rc);
    }
    if (!strcmp(c, "ptrace")) return report(ptrace(PTRACE_ATTACH, atoi(a), 0, 0));
    if (!strcmp(c, "mount")) return report(mount("none", a, "tmpfs", 0, NULL));
    if (!strcmp(c, "ioctl-tty")) {
        int fd = open(a, O_RDWR | O_NOCTTY);
        if (fd < 0) return report(fd);
        struct termios t;
        return report(ioctl(fd, TCGETS, &t));
    }
    if (!strcmp(c, "allow-all-filter")) {
        /* The floor: the cheapest seccomp filter there is (allow everything), loaded by the
           program itself, then the command that follows. What any filter costs on this kernel. */
        scmp_filter_ctx filter = seccomp_init(SCMP_ACT_ALLOW);
        if (!filter || seccomp_attr_set(filter, SCMP_FLTATR_CTL_SSB, 1) < 0 || seccomp_load(filter) < 0) return report(-1);
        seccomp_release(filter);
        argv++; argc--;
        c = argv[1];
        a = argc > 2 ? argv[2] : ""; b = argc > 3 ? argv[3] : "";
    }
    if (!strcmp(c, "loop-rw")) {
        /* The allow path: read and write of SIZE bytes (default 64), never mediated. */
        int in = open("/dev/zero", O_RDONLY), out = open("/dev/null", O_WRONLY);
        if (in < 0 || out < 0) return report(-1);
        long n = atol(a), size = argc > 3 ? atol(b) : 64;
        static char buffer[65536];
        if (size < 1 || size > (long)sizeof buffer) return report(-1);
        double start = seconds();
        for (long i = 0; i < n; i++) {
            if (read(in, buffer, size) != size || write(out, buffer, size) != size) return report(-1);
        }
        printf("ok %.6f\n", seconds() - start);
        return 0;
    }
    if (!strcmp(c, "loop-copy")) {
        /* A copy loop, as cat or cp runs it: pread 64 KiB blocks of a (cached) file, write them
           to /dev/null, never mediated. */
        int in = open(a, O_RDONLY), out = open("/dev/null", O_WRONLY);
        if (in < 0 || out < 0) return report(-1);
        long n = atol(b);
        static char block[65536];
        off_t size = lseek(in, 0, SEEK_END);
        if (size < (off_t)sizeof block) return report(-1);
        double start = seconds();
        for (long i = 0; i < n; i++) {
            off_t at = (off_t)(i % (size / (off_t)sizeof block)) * (off_t)sizeof block;
            if (pread(in, block, sizeof block, at) != (ssize_t)sizeof block || write(out, block, sizeof block) != (ssize_t)sizeof block) return report(-1);
        }
        printf("ok %.6f\n", seconds() - start);
        return 0;
    }
    if (!strcmp(c, "loop-open")) {
        /* A mediated workload: open, read, close a file n times. */
        long n = atol(b);
        char buffer[256];
        double start = seconds();
        for (long i = 0; i < n; i++) {
            int fd = open(a, O_RDONLY);
            if (fd < 0 || read(fd, buffer, sizeof buffer) < 0) return report(-1);
            close(fd);
        }
        printf("ok %.6f\n", seconds() - start);
        return 0;
    }
    fprintf(stderr, "sandbox-probe: unknown command %s\n", c);
    return 2;
}
