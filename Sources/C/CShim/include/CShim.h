#ifndef WORLDOS_CSHIM_H
#define WORLDOS_CSHIM_H
/* What Swift cannot import directly: variadic C functions and ioctl request macros.
   One static inline wrapper per call; the Swift side wraps each of these exactly once. */
#include <malloc.h>
#include <sys/ioctl.h>

/* ioctl(fd, FIONREAD, &n): bytes ready to read. Returns ioctl's result; errno is left set. */
static inline int worldos_ioctl_fionread(int fd, int *count) {
    return ioctl(fd, FIONREAD, count);
}

/* mallinfo2().uordblks: bytes the heap has handed out and not had back (for memory reports). */
static inline size_t worldos_heap_in_use(void) {
    return mallinfo2().uordblks;
}

#endif
