#ifndef WORLDOS_CDRM_SHIM_H
#define WORLDOS_CDRM_SHIM_H
#include <stdint.h>
#include <string.h>
#include <xf86drm.h>
#include <xf86drmMode.h>

/* The dumb-buffer ioctls are request macros Swift cannot import: one static inline wrapper
   each. Each returns drmIoctl's result (0, or -1 with errno set). */

/* DRM_IOCTL_MODE_CREATE_DUMB: a CPU-mappable buffer; the kernel fills handle, pitch and size. */
static inline int worldos_drm_create_dumb(int fd, uint32_t width, uint32_t height, uint32_t bpp,
                                          uint32_t *handle, uint32_t *pitch, uint64_t *size) {
    struct drm_mode_create_dumb req;
    memset(&req, 0, sizeof req);
    req.width = width;
    req.height = height;
    req.bpp = bpp;
    int r = drmIoctl(fd, DRM_IOCTL_MODE_CREATE_DUMB, &req);
    if (r == 0) { *handle = req.handle; *pitch = req.pitch; *size = req.size; }
    return r;
}

/* DRM_IOCTL_MODE_MAP_DUMB: the offset to pass to mmap on the DRM fd. */
static inline int worldos_drm_map_dumb(int fd, uint32_t handle, uint64_t *offset) {
    struct drm_mode_map_dumb req;
    memset(&req, 0, sizeof req);
    req.handle = handle;
    int r = drmIoctl(fd, DRM_IOCTL_MODE_MAP_DUMB, &req);
    if (r == 0) { *offset = req.offset; }
    return r;
}

/* DRM_IOCTL_MODE_DESTROY_DUMB. */
static inline int worldos_drm_destroy_dumb(int fd, uint32_t handle) {
    struct drm_mode_destroy_dumb req;
    memset(&req, 0, sizeof req);
    req.handle = handle;
    return drmIoctl(fd, DRM_IOCTL_MODE_DESTROY_DUMB, &req);
}

#endif
