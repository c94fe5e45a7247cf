import CSeccomp
import Glibc

/// The seccomp filter a supervised program runs under. Everything not named here stays in the
/// kernel (read, write, mmap, futex, close, ... — the hot calls: the kernel's filter cache lets
/// them through without running the filter at all). The calls named here go to the supervisor
/// by user notification, where the guard decides them (``Mediator``).
public enum SandboxFilter {
    /// Calls that name a path the guard must check, or act on another process or the system.
    public static let mediated: [String] = [
        // Opening: the decision depends on the path, so the supervisor opens and hands the fd over.
        "open", "openat", "creat", "openat2", "open_by_handle_at", "name_to_handle_at",
        // Changing names under a path: the supervisor does them itself, on the path it checked.
        "unlink", "unlinkat", "rmdir", "rename", "renameat", "renameat2", "truncate", "link", "linkat",
        "mknod", "mknodat",
        // Making names and changing rights: a planted symlink or a file made world-writable is a
        // route for someone else; the supervisor does them on the path it checked.
        "symlink", "symlinkat", "mkdir", "mkdirat", "chmod", "fchmod", "fchmodat", "chown", "fchown", "lchown", "fchownat",
        "setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr",
        // Running something else, signalling or inspecting other processes.
        "execve", "execveat", "kill", "tkill", "tgkill", "pidfd_send_signal", "pidfd_getfd",
        "ptrace", "process_vm_writev", "process_vm_readv",
        // The system itself, and routes around the filter (io_uring runs calls the filter never sees).
        "mount", "umount2", "pivot_root", "chroot", "setns", "unshare", "bpf", "userfaultfd",
        "io_uring_setup", "io_uring_enter", "io_uring_register", "kexec_load", "kexec_file_load",
        "init_module", "finit_module", "delete_module", "fanotify_init", "perf_event_open",
    ]

    /// ioctl request types (the `_IOC` type byte) sent to the supervisor: terminals ('T'),
    /// GPIO character devices (0xB4), USB device files ('U'), DRM ('d'). Other ioctls stay in
    /// the kernel.
    public static let mediatedIoctlTypes: [UInt8] = [0x54, 0xB4, 0x55, 0x64]

    static let actionAllow: UInt32 = 0x7fff_0000
    static let actionNotify: UInt32 = 0x7fc0_0000

    public struct Failure: Error, CustomStringConvertible {
        public var step: String
        public var errno: Int32
        public var description: String { "seccomp: \(step) failed: \(String(cString: strerror(errno)))" }
    }

    /// Load the filter into this process (which must not have started threads) and return the
    /// notification descriptor the supervisor answers on. Sets no_new_privs first.
    public static func load() throws(Failure) -> Int32 {
        guard let filter = seccomp_init(actionAllow) else { throw Failure(step: "seccomp_init", errno: ENOMEM) }
        defer { seccomp_release(filter) }
        func check(_ rc: Int32, _ step: String) throws(Failure) {
            if rc < 0 { throw Failure(step: step, errno: -rc) }
        }
        // The speculative-store-bypass mitigation seccomp would otherwise turn on costs every
        // syscall; the programs we supervise are our own machine's, not hostile JavaScript.
        try check(seccomp_attr_set(filter, SCMP_FLTATR_CTL_SSB, 1), "allow speculative store bypass")
        try check(seccomp_attr_set(filter, SCMP_FLTATR_CTL_NNP, 1), "no_new_privs")
        for name in mediated {
            let number = seccomp_syscall_resolve_name(name)
            guard number >= 0 else { continue }  // not a call on this architecture (open on arm64)
            try check(seccomp_rule_add_array(filter, actionNotify, number, 0, nil), "rule for \(name)")
        }
        let ioctl = seccomp_syscall_resolve_name("ioctl")
        for type in mediatedIoctlTypes {
            var compare = scmp_arg_cmp(arg: 1, op: SCMP_CMP_MASKED_EQ, datum_a: 0xff00, datum_b: UInt64(type) << 8)
            try check(seccomp_rule_add_array(filter, actionNotify, ioctl, 1, &compare), "ioctl rule")
        }
        try check(seccomp_load(filter), "seccomp_load")
        let fd = seccomp_notify_fd(filter)
        try check(fd, "seccomp_notify_fd")
        return fd
    }
}
