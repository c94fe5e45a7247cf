import CSeccomp
import CShim
import Foundation
import Glibc
import Guard
import LoopCore
import SystemCalls

/// Answers the calls a supervised program's seccomp filter sends to the supervisor, on a thread
/// of its own, each by a guard decision (``ProgramGuard``), audited.
///
/// - Opens: the path is read once from the program's memory, resolved as the kernel would
///   (``PathResolver``), decided, then opened *by the supervisor* with symlinks refused and the
///   descriptor installed in the program (SECCOMP_IOCTL_NOTIF_ADDFD): the kernel never reads
///   the program's memory again, so a second thread rewriting the path after the check, or a
///   symlink swapped in, changes nothing.
/// - unlink, rmdir, rename, truncate, link: likewise done by the supervisor on the checked path.
/// - ioctl (terminals, GPIO, USB, DRM), kill and its kin: decided on registers (descriptor,
///   request, pid), then let through (CONTINUE). A program holds no device descriptor it did
///   not open through the guard, so swapping descriptors under the check gains nothing.
/// - execve: decided on the resolved path and let through only while the program is one
///   thread (nothing else in it can change the path the kernel reads again).
/// - Everything else notified (mount, ptrace, io_uring, bpf, ...) is refused.
///
/// Before acting, the notification id is checked to be still valid: the pid read through
/// /proc is then known to be the caller's and not a recycled one.
public final class Mediator: @unchecked Sendable {
    public let context: String
    let notify: Int32
    let judge: ProgramGuard
    let identity: (uid: UInt32, gid: UInt32)?
    /// The program's first process: signals within its process tree need no rule.
    let root: Int32
    let clock: any WorldClock
    private var names: [Int32: String] = [:]

    init(notify: Int32, context: String, judge: ProgramGuard, identity: (uid: UInt32, gid: UInt32)?, root: Int32,
         clock: any WorldClock) {
        self.notify = notify
        self.context = context
        self.judge = judge
        self.identity = identity
        self.root = root
        self.clock = clock
        for name in SandboxFilter.mediated + ["ioctl"] {
            let number = seccomp_syscall_resolve_name(name)
            if number >= 0 { names[number] = name }
        }
    }

    /// Answer notifications until every process under the filter has gone.
    func run() {
        // Opens and the rest are done with the program's filesystem identity, so the kernel's
        // own permission checks still apply to what the program asked for.
        let identityTaken = identity.map { worldos_thread_fs_identity($0.uid, $0.gid) == 0 } ?? true
        var pollers = [pollfd(fd: notify, events: Int16(POLLIN), revents: 0)]
        while true {
            pollers[0].revents = 0
            guard case .success = Syscall.poll(&pollers, milliseconds: -1) else { return }
            let poller = pollers[0]
            if poller.revents & Int16(POLLIN) != 0 {
                var call = worldos_notification()
                switch Syscall.retrying({ worldos_notif_receive(notify, &call) }) {
                case .success: break
                // The program's call was gone (its thread killed) before it was read.
                case .failure(let e) where e.code == ENOENT: continue
                case .failure: return
                }
                if identityTaken { handle(call) } else {
                    refuse(call, name(call), errno: EPERM, reason: "the mediator could not take the program's user identity")
                }
            } else if poller.revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 {
                return
            }
        }
    }

    private func name(_ call: worldos_notification) -> String { names[call.nr] ?? "syscall \(call.nr)" }

    private enum Answer {
        case value(Int64)
        case failure(errno: Int32)
        case proceed
        case descriptor(Int32, cloexec: Bool)
    }

    private func answer(_ call: worldos_notification, _ result: Answer) {
        switch result {
        case .value(let v): _ = worldos_notif_respond(notify, call.id, v, 0, 0)
        case .failure(let e): _ = worldos_notif_respond(notify, call.id, 0, e, 0)
        case .proceed: _ = worldos_notif_respond(notify, call.id, 0, 0, 1)
        case .descriptor(let fd, let cloexec):
            // Fails with ENOENT when the caller is gone meanwhile; the descriptor is closed either way.
            _ = worldos_notif_addfd_send(notify, call.id, fd, cloexec ? 1 : 0)
            close(fd)
        }
    }

    private func handle(_ call: worldos_notification) {
        let a = call.args
        let cwd = AT_FDCWD
        let i32 = { (v: UInt64) in Int32(truncatingIfNeeded: v) }
        switch name(call) {
        case "open": open(call, dirfd: cwd, path: a.0, flags: i32(a.1), mode: mode_t(truncatingIfNeeded: a.2))
        case "openat": open(call, dirfd: i32(a.0), path: a.1, flags: i32(a.2), mode: mode_t(truncatingIfNeeded: a.3))
        case "creat": open(call, dirfd: cwd, path: a.0, flags: O_CREAT | O_WRONLY | O_TRUNC, mode: mode_t(truncatingIfNeeded: a.1))
        case "unlink": change(call, "unlink", [(cwd, a.0)]) { d in unlinkat(d[0].dir, d[0].name, 0) }
        case "rmdir": change(call, "rmdir", [(cwd, a.0)]) { d in unlinkat(d[0].dir, d[0].name, AT_REMOVEDIR) }
        case "unlinkat":
            let flags = i32(a.2)
            change(call, "unlinkat", [(i32(a.0), a.1)]) { d in unlinkat(d[0].dir, d[0].name, flags & AT_REMOVEDIR) }
        case "rename": change(call, "rename", [(cwd, a.0), (cwd, a.1)]) { d in renameat(d[0].dir, d[0].name, d[1].dir, d[1].name) }
        case "renameat": change(call, "renameat", [(i32(a.0), a.1), (i32(a.2), a.3)]) { d in renameat(d[0].dir, d[0].name, d[1].dir, d[1].name) }
        case "renameat2":
            let flags = UInt32(truncatingIfNeeded: a.4)
            change(call, "renameat2", [(i32(a.0), a.1), (i32(a.2), a.3)]) { d in worldos_renameat2(d[0].dir, d[0].name, d[1].dir, d[1].name, flags) }
        case "link": link(call, from: (cwd, a.0), to: (cwd, a.1), flags: 0)
        case "linkat": link(call, from: (i32(a.0), a.1), to: (i32(a.2), a.3), flags: i32(a.4))
        case "truncate": truncate(call, path: a.0, length: off_t(truncatingIfNeeded: a.1))
        case "symlink": symlink(call, target: a.0, at: (cwd, a.1))
        case "symlinkat": symlink(call, target: a.0, at: (i32(a.1), a.2))
        case "mkdir": makeDirectory(call, at: (cwd, a.0), mode: mode_t(truncatingIfNeeded: a.1))
        case "mkdirat": makeDirectory(call, at: (i32(a.0), a.1), mode: mode_t(truncatingIfNeeded: a.2))
        case "chmod": rights(call, "chmod", at: (cwd, a.0), follow: true) { fd in chmod("/proc/self/fd/\(fd)", mode_t(truncatingIfNeeded: a.1)) }
        case "fchmodat": rights(call, "fchmodat", at: (i32(a.0), a.1), follow: true) { fd in chmod("/proc/self/fd/\(fd)", mode_t(truncatingIfNeeded: a.2)) }
        case "chown", "lchown":
            rights(call, name(call), at: (cwd, a.0), follow: name(call) == "chown") { fd in fchownat(fd, "", uid_t(truncatingIfNeeded: a.1), gid_t(truncatingIfNeeded: a.2), worldos_at_empty_path()) }
        case "fchownat":
            rights(call, "fchownat", at: (i32(a.0), a.1), follow: i32(a.4) & AT_SYMLINK_NOFOLLOW == 0) { fd in
                fchownat(fd, "", uid_t(truncatingIfNeeded: a.2), gid_t(truncatingIfNeeded: a.3), worldos_at_empty_path())
            }
        case "fchmod": descriptorRights(call, "fchmod", fd: i32(a.0)) { fd in fchmod(fd, mode_t(truncatingIfNeeded: a.1)) }
        case "fchown": descriptorRights(call, "fchown", fd: i32(a.0)) { fd in fchown(fd, uid_t(truncatingIfNeeded: a.1), gid_t(truncatingIfNeeded: a.2)) }
        case "setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr":
            refuse(call, name(call), errno: EPERM, reason: "extended attributes (security labels, capabilities, ACLs) are never changed by a supervised program")
        case "execve": exec(call, dirfd: cwd, path: a.0, flags: 0)
        case "execveat": exec(call, dirfd: i32(a.0), path: a.1, flags: i32(a.4))
        case "kill": signal(call, pid: i32(a.0), group: i32(a.0) <= 0, signal: i32(a.1))
        case "tkill": signal(call, pid: tgid(ofThread: i32(a.0)) ?? 0, group: false, signal: i32(a.1))
        case "tgkill": signal(call, pid: i32(a.0), group: false, signal: i32(a.2))
        case "pidfd_send_signal": signal(call, pid: pidOfDescriptor(call.pid, i32(a.0)) ?? 0, group: false, signal: i32(a.1))
        case "ioctl": ioctl(call, fd: i32(a.0), request: UInt(truncatingIfNeeded: a.1))
        case "openat2":
            // Its resolve flags would need their own checks; libc never needs it and falls back
            // to openat on ENOSYS, which is what a kernel without it answers.
            refuse(call, "openat2", errno: ENOSYS, reason: "openat2 is not offered to supervised programs; use openat")
        case let other:
            refuse(call, other, errno: EPERM, reason: "\(other) is never allowed to a supervised program")
        }
    }

    private func refuse(_ call: worldos_notification, _ what: String, errno: Int32, reason: String) {
        _ = judge.decide(context: context, call: what, checks: [], fixed: .deny(rule: "sandbox", reason: reason), physical: false, at: clock.now().nanoseconds)
        answer(call, .failure(errno: errno))
    }

    /// The program's string at `address`, read once.
    private func string(_ call: worldos_notification, at address: UInt64) throws(Errno) -> String {
        var bytes: [UInt8] = []
        var cursor = address
        while bytes.count <= Int(PATH_MAX) {
            // Never past the end of a page, so a string that ends just before unmapped memory
            // reads; most paths fit the first 256 bytes.
            let chunk = min(bytes.isEmpty ? 256 : 4096, Int(4096 - cursor % 4096))
            var buffer = [UInt8](repeating: 0, count: chunk)
            let n = buffer.withUnsafeMutableBytes { worldos_read_remote(call.pid, cursor, $0.baseAddress, chunk) }
            guard n > 0 else { throw Errno(EFAULT) }
            if let end = buffer[0..<n].firstIndex(of: 0) {
                bytes += buffer[0..<end]
                return String(decoding: bytes, as: UTF8.self)
            }
            bytes += buffer[0..<n]
            cursor += UInt64(n)
        }
        throw Errno(ENAMETOOLONG)
    }

    private func resolver(_ call: worldos_notification) -> PathResolver {
        let tid = call.pid
        return PathResolver(tid: tid, tgid: { [self] in tgid(ofThread: tid) ?? tid })
    }

    private func stillWaiting(_ call: worldos_notification) -> Bool { worldos_notif_id_valid(notify, call.id) == 1 }

    /// What `body` reads of the program (its memory, its /proc); on an errno, that errno is the
    /// call's answer (if the call still waits) and nil is returned.
    private func gather<T>(_ call: worldos_notification, _ body: () throws(Errno) -> T) -> T? {
        do throws(Errno) { return try body() } catch {
            if stillWaiting(call) { answer(call, .failure(errno: error.code)) }
            return nil
        }
    }

    /// The path at `address` in the program, resolved.
    private func path(_ call: worldos_notification, _ address: UInt64, dirfd: Int32, followLast: Bool) throws(Errno) -> PathResolver.Resolved {
        try resolver(call).resolve(try string(call, at: address), dirfd: dirfd, followLast: followLast)
    }

    // MARK: opens

    static func mode(ofFlags flags: Int32) -> String {
        if flags & O_CREAT != 0 { return "create" }
        if flags & O_APPEND != 0 { return "append" }
        switch flags & O_ACCMODE {
        case O_RDWR: return "readwrite"
        case O_WRONLY: return "write"
        default: return flags & O_TRUNC != 0 ? "write" : "read"
        }
    }

    private func open(_ call: worldos_notification, dirfd: Int32, path address: UInt64, flags: Int32, mode: mode_t) {
        guard let (given, resolved) = gather(call, { () throws(Errno) in
            let given = try string(call, at: address)
            return (given, try resolver(call).resolve(given, dirfd: dirfd, followLast: flags & O_NOFOLLOW == 0))
        }) else { return }
        // A missing file is not a decision (the loader probes a dozen library paths that do not
        // exist); stat() would tell the program as much anyway.
        if !resolved.exists && flags & O_CREAT == 0 { return answer(call, .failure(errno: ENOENT)) }
        guard stillWaiting(call) else { return }
        let how = Self.mode(ofFlags: flags)
        let decision = judge.decide(context: context, call: "\(name(call))(\(quoted(given)) → \(resolved.path), \(how))",
                                    checks: [Self.check(.open, resolved, ["mode": .string(how)])],
                                    physical: Self.isPhysical(path: resolved.path), at: clock.now().nanoseconds)
        guard decision.isAllowed else { return answer(call, .failure(errno: EACCES)) }
        let umask = resolved.exists ? 0 : programUmask(call.pid)
        switch ObjectOpener.open(resolved.path, flags: flags, mode: mode & ~umask, expect: resolved.object.map { ($0.device, $0.inode) }) {
        case .success(let opened): answer(call, .descriptor(opened, cloexec: flags & O_CLOEXEC != 0))
        case .failure(let e): answer(call, .failure(errno: e.code))
        }
    }

    // MARK: names in directories

    /// unlink, rmdir, rename: each path resolved without following its last component, each
    /// decided as a write to it, then done by the supervisor in the parent directories it
    /// opened with symlinks refused.
    private func change(_ call: worldos_notification, _ what: String, _ operands: [(dirfd: Int32, path: UInt64)],
                        _ body: ([(dir: Int32, name: String)]) -> Int32) {
        guard let paths = gather(call, { () throws(Errno) in
            var paths: [PathResolver.Resolved] = []
            for operand in operands { paths.append(try path(call, operand.path, dirfd: operand.dirfd, followLast: false)) }
            return paths
        }) else { return }
        guard stillWaiting(call) else { return }
        let decision = judge.decide(context: context, call: "\(what)(\(paths.map(\.path).joined(separator: ", ")))",
                                    checks: paths.map { Self.check(.open, $0, ["mode": .string("write")]) },
                                    physical: false, at: clock.now().nanoseconds)
        guard decision.isAllowed else { return answer(call, .failure(errno: EACCES)) }
        perform(call, paths.map(\.path), body)
    }

    private func perform(_ call: worldos_notification, _ paths: [String], _ body: ([(dir: Int32, name: String)]) -> Int32) {
        var targets: [(dir: Int32, name: String)] = []
        defer { for t in targets { close(t.dir) } }
        for path in paths {
            let (parent, name) = PathResolver.split(path)
            let dir = worldos_openat2(AT_FDCWD, parent, UInt64(worldos_o_path() | O_DIRECTORY | O_CLOEXEC), 0, worldos_resolve_no_links())
            guard dir >= 0 else { return answer(call, .failure(errno: errno)) }
            targets.append((dir, name))
        }
        answer(call, body(targets) == 0 ? .value(0) : .failure(errno: errno))
    }

    /// A hard link gives a second name to the same file: the program must be allowed to read
    /// and write the file at its first name, and to create the second.
    private func link(_ call: worldos_notification, from: (dirfd: Int32, path: UInt64), to: (dirfd: Int32, path: UInt64), flags: Int32) {
        guard flags & worldos_at_empty_path() == 0 else {
            return refuse(call, "linkat", errno: EPERM, reason: "linking a descriptor (worldos_at_empty_path()) has no path to check")
        }
        guard let (old, new) = gather(call, { () throws(Errno) in
            (try path(call, from.path, dirfd: from.dirfd, followLast: flags & AT_SYMLINK_FOLLOW != 0),
             try path(call, to.path, dirfd: to.dirfd, followLast: false))
        }) else { return }
        guard stillWaiting(call) else { return }
        let decision = judge.decide(context: context, call: "link(\(old.path), \(new.path))",
                                    checks: [Self.check(.open, old, ["mode": .string("read")]), Self.check(.open, old, ["mode": .string("write")]),
                                             Self.check(.open, new, ["mode": .string("create")])],
                                    physical: false, at: clock.now().nanoseconds)
        guard decision.isAllowed else { return answer(call, .failure(errno: EACCES)) }
        perform(call, [old.path, new.path]) { d in linkat(d[0].dir, d[0].name, d[1].dir, d[1].name, 0) }
    }

    private func truncate(_ call: worldos_notification, path address: UInt64, length: off_t) {
        guard let path = gather(call, { () throws(Errno) in try path(call, address, dirfd: AT_FDCWD, followLast: true) }) else { return }
        guard stillWaiting(call) else { return }
        let decision = judge.decide(context: context, call: "truncate(\(path.path), \(length))",
                                    checks: [Self.check(.open, path, ["mode": .string("write")])], physical: false, at: clock.now().nanoseconds)
        guard decision.isAllowed else { return answer(call, .failure(errno: EACCES)) }
        let fd: Int32
        switch ObjectOpener.open(path.path, flags: O_WRONLY | O_NONBLOCK, expect: path.object.map { ($0.device, $0.inode) }) {
        case .success(let opened): fd = opened
        case .failure(let e): return answer(call, .failure(errno: e.code))
        }
        defer { close(fd) }
        answer(call, ftruncate(fd, length) == 0 ? .value(0) : .failure(errno: errno))
    }

    /// A new symlink is a new name: decided as a create of the link's path (its target is
    /// recorded; what it points to is decided when something opens through it, by object).
    private func symlink(_ call: worldos_notification, target address: UInt64, at link: (dirfd: Int32, path: UInt64)) {
        guard let (target, where_) = gather(call, { () throws(Errno) in
            (try string(call, at: address), try path(call, link.path, dirfd: link.dirfd, followLast: false))
        }) else { return }
        guard stillWaiting(call) else { return }
        let decision = judge.decide(context: context, call: "symlink(\(quoted(target)), \(where_.path))",
                                    checks: [Self.check(.open, where_, ["mode": .string("create")])], physical: false, at: clock.now().nanoseconds)
        guard decision.isAllowed else { return answer(call, .failure(errno: EACCES)) }
        perform(call, [where_.path]) { d in symlinkat(target, d[0].dir, d[0].name) }
    }

    private func makeDirectory(_ call: worldos_notification, at target: (dirfd: Int32, path: UInt64), mode: mode_t) {
        guard let made = gather(call, { () throws(Errno) in try path(call, target.path, dirfd: target.dirfd, followLast: false) }) else { return }
        guard stillWaiting(call) else { return }
        let decision = judge.decide(context: context, call: "mkdir(\(made.path))",
                                    checks: [Self.check(.open, made, ["mode": .string("create")])], physical: false, at: clock.now().nanoseconds)
        guard decision.isAllowed else { return answer(call, .failure(errno: EACCES)) }
        let umask = programUmask(call.pid)
        perform(call, [made.path]) { d in mkdirat(d[0].dir, d[0].name, mode & 0o7777 & ~umask) }
    }

    /// chmod, chown and their kin on a path: decided as a write of the object, done by the
    /// supervisor on a descriptor of exactly that object (the kernel checks ownership against
    /// the program's user, whose filesystem identity this thread has).
    private func rights(_ call: worldos_notification, _ what: String, at target: (dirfd: Int32, path: UInt64), follow: Bool,
                        _ body: (Int32) -> Int32) {
        guard let object = gather(call, { () throws(Errno) in try path(call, target.path, dirfd: target.dirfd, followLast: follow) }) else { return }
        guard stillWaiting(call) else { return }
        let decision = judge.decide(context: context, call: "\(what)(\(object.path))",
                                    checks: [Self.check(.open, object, ["mode": .string("write")])], physical: false, at: clock.now().nanoseconds)
        guard decision.isAllowed else { return answer(call, .failure(errno: EACCES)) }
        switch ObjectOpener.open(object.path, flags: worldos_o_path() | (follow ? 0 : O_NOFOLLOW), expect: object.object.map { ($0.device, $0.inode) }) {
        case .success(let fd):
            defer { close(fd) }
            answer(call, body(fd) == 0 ? .value(0) : .failure(errno: errno))
        case .failure(let e): answer(call, .failure(errno: e.code))
        }
    }

    /// fchmod, fchown on a descriptor the program holds: the supervisor takes a copy of that
    /// very descriptor (pidfd_getfd), decides on the object it is, and acts on the copy, so a
    /// descriptor swapped onto the number after the check is not the one changed.
    private func descriptorRights(_ call: worldos_notification, _ what: String, fd: Int32, _ body: (Int32) -> Int32) {
        let process = worldos_pidfd_open(tgid(ofThread: call.pid) ?? call.pid)
        guard process >= 0 else { return answer(call, .failure(errno: ESRCH)) }
        let copy = worldos_pidfd_getfd(process, fd)
        close(process)
        guard copy >= 0 else { return answer(call, .failure(errno: errno == ENOENT ? EBADF : errno)) }
        defer { close(copy) }
        let name = (try? PathResolver.readLink("/proc/self/fd/\(copy)", missing: EBADF)) ?? "?"
        let object = FileObject.of(descriptor: copy)
        let resolved = PathResolver.Resolved(path: name, exists: object != nil, object: object)
        guard stillWaiting(call) else { return }
        let decision = judge.decide(context: context, call: "\(what)(\(fd) → \(name))",
                                    checks: [Self.check(.open, resolved, ["mode": .string("write")])], physical: false, at: clock.now().nanoseconds)
        guard decision.isAllowed else { return answer(call, .failure(errno: EACCES)) }
        answer(call, body(copy) == 0 ? .value(0) : .failure(errno: errno))
    }

    // MARK: calls decided on registers

    private func exec(_ call: worldos_notification, dirfd: Int32, path address: UInt64, flags: Int32) {
        guard flags & worldos_at_empty_path() == 0 else {
            return refuse(call, "execveat", errno: EPERM, reason: "running a descriptor (worldos_at_empty_path()) has no path to check")
        }
        guard let resolved = gather(call, { () throws(Errno) in try path(call, address, dirfd: dirfd, followLast: true) }) else { return }
        let program = resolved.path
        let threads = Self.statusField("Threads", of: call.pid) ?? 0
        guard stillWaiting(call) else { return }
        guard threads == 1 else {
            return refuse(call, "execve(\(program))", errno: EPERM,
                          reason: "execve from a program with \(threads) threads: another could change the path after the check")
        }
        let decision = judge.decide(context: context, call: "execve(\(program))", checks: [Self.check(.spawn, resolved)],
                                    physical: false, at: clock.now().nanoseconds)
        answer(call, decision.isAllowed ? .proceed : .failure(errno: EACCES))
    }

    private func signal(_ call: worldos_notification, pid: Int32, group: Bool, signal: Int32) {
        let what = "kill(\(pid), \(signal))"
        let inTree: Bool
        if group {
            // 0: the caller's own group; -pgid: a group; -1: every process (never).
            let pgid = pid == 0 ? getpgid(call.pid) : -pid
            inTree = pid != -1 && pgid > 0 && isInProgram(pgid)
        } else {
            inTree = pid > 0 && isInProgram(pid)
        }
        guard stillWaiting(call) else { return }
        if inTree {
            let decision = judge.decide(context: context, call: what, checks: [],
                                        fixed: .allow(rule: "sandbox: a signal within the program's own processes"), physical: false, at: clock.now().nanoseconds)
            return answer(call, decision.isAllowed ? .proceed : .failure(errno: EPERM))
        }
        // Outside its own processes: only what the context's policy allows and it holds (nothing, here).
        let decision = judge.decide(context: context, call: what, checks: [ResolvedCall(.kill, ["pid": .int(Int64(pid)), "signal": .int(Int64(signal))])],
                                    physical: false, at: clock.now().nanoseconds)
        answer(call, decision.isAllowed ? .proceed : .failure(errno: EPERM))
    }

    private func ioctl(_ call: worldos_notification, fd: Int32, request: UInt) {
        let link = "/proc/\(call.pid)/fd/\(fd)"
        var info = stat()
        // FIONREAD on a pipe, isatty() on a socket: not a device, nothing for the guard. (A
        // descriptor swapped onto this number meanwhile can only be one the program opened
        // through the guard: it was started with none but stdio, and stdio is not a terminal.)
        guard stat(link, &info) == 0, info.st_mode & S_IFMT == S_IFCHR else { return answer(call, .proceed) }
        let target = (try? PathResolver.readLink(link, missing: EBADF)) ?? "?"
        guard stillWaiting(call) else { return }
        let hex = "0x" + String(request, radix: 16)
        let decision = judge.decide(context: context, call: "ioctl(\(fd) → \(target), \(hex))",
                                    checks: [ResolvedCall(.ioctl, ["fd": .int(Int64(fd)), "request": .string(hex)])],
                                    held: Holdings(descriptors: [Int64(fd)]), physical: Self.isPhysical(path: target), at: clock.now().nanoseconds)
        answer(call, decision.isAllowed ? .proceed : .failure(errno: EPERM))
    }

    // MARK: /proc

    /// Whether `pid` is the program or one of its descendants.
    private func isInProgram(_ pid: Int32) -> Bool {
        var current = pid
        for _ in 0..<64 {
            if current == root { return true }
            guard current > 1, let parent = Self.statusField("PPid", of: current) else { return false }
            current = Int32(parent)
        }
        return false
    }

    private func tgid(ofThread tid: Int32) -> Int32? { Self.statusField("Tgid", of: tid).map { Int32($0) } }

    private func pidOfDescriptor(_ pid: Int32, _ fd: Int32) -> Int32? {
        Self.field("Pid", in: "/proc/\(pid)/fdinfo/\(fd)").flatMap { Int32($0) }
    }

    private func programUmask(_ pid: Int32) -> mode_t {
        Self.field("Umask", in: "/proc/\(pid)/status").flatMap { mode_t($0, radix: 8) } ?? 0o022
    }

    static func statusField(_ name: String, of pid: Int32) -> Int? {
        field(name, in: "/proc/\(pid)/status").flatMap { Int($0) }
    }

    /// `Name:\tvalue` from a /proc file.
    static func field(_ name: String, in path: String) -> String? {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = read(fd, &buffer, buffer.count)
        guard n > 0 else { return nil }
        let prefix = Array((name + ":").utf8)
        for line in buffer[0..<n].split(separator: UInt8(ascii: "\n")) where line.starts(with: prefix) {
            return String(decoding: line.dropFirst(prefix.count), as: UTF8.self).trimmingCharacters(in: .whitespaces)
        }
        return nil
    }

    /// A device node that moves or reads something in the world: not the memory devices
    /// (null, zero, random: major 1) nor terminals (5, 136–143).
    static func isPhysical(path: String) -> Bool {
        var info = stat()
        guard path.hasPrefix("/dev/"), stat(path, &info) == 0 else { return false }
        let kind = info.st_mode & S_IFMT
        guard kind == S_IFCHR || kind == S_IFBLK else { return false }
        let major = worldos_device_major(UInt64(info.st_rdev))
        return major != 1 && major != 5 && !(136...143).contains(major)
    }

    private func quoted(_ s: String) -> String { "\"" + s + "\"" }

    /// A check in the policy's terms on a resolved name: the canonical path with the object
    /// found there, so object rules (a denied file's other names, a device a profile owns) apply.
    static func check(_ op: MicroOp, _ resolved: PathResolver.Resolved, _ more: [String: Value] = [:]) -> ResolvedCall {
        ResolvedCall(op, more.merging(["path": .string(resolved.path)]) { a, _ in a })
            .named(resolved.path, object: resolved.object?.description, deviceNumber: resolved.object?.deviceNumber)
    }
}
