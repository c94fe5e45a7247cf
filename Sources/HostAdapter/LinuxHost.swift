import CShim
import DevicePorts
import Glibc
import LoopCore
import SystemCalls

/// The host adapter for Linux syscalls: each micro-step becomes one real syscall (posix_spawn
/// and a few composite steps — bind reports the bound port — use two) and returns its value,
/// side data and side fields, or its errno. Descriptors, mappings and children it creates
/// belong to the supervisor's process; ``closeAll()`` releases what is still open when the
/// supervisor stops.
public struct LinuxHost: Effecting {
    /// Descriptors opened through this adapter and not yet closed.
    public private(set) var open: Set<Int32> = []
    /// Mappings by id (the value mmap returns): base address and length.
    private var mappings: [Int64: (base: UnsafeMutableRawPointer, length: Int)] = [:]
    private var nextMapping: Int64 = 1

    public init() {}

    public mutating func perform(_ call: ResolvedCall) -> CallResult {
        func fd(_ parameter: Parameter = .fd) -> Int32? { call.int(parameter).flatMap(Int32.init(exactly:)) }
        func int(_ parameter: Parameter) -> Int64? { call.int(parameter) }
        func string(_ parameter: Parameter) -> String? { call.string(parameter) }
        switch call.op {
        case .open, .openat:
            // The name is the one the guard decided on (canonical, see LinuxNames): opened with
            // every link refused, and checked to be the object it named.
            guard let path = string(.path), let flags = LinuxHost.openFlags(string(.mode) ?? "read") else { return .failure(errno: EINVAL) }
            let dir: Int32 = call.op == .openat ? (fd(.dir) ?? -1) : AT_FDCWD
            return opened(LinuxHost.openExactly(call, path: path, relativeTo: dir, flags: flags | O_NOCTTY))
        case .read, .recvfrom:
            guard let f = fd(), let count = int(.count), count >= 0, count <= MicroOp.maximumReadCount else { return .failure(errno: EINVAL) }
            var buffer = [UInt8](repeating: 0, count: Int(count))
            let n = buffer.withUnsafeMutableBytes { p in
                traced { call.op == .read ? Glibc.read(f, p.baseAddress, p.count) : recv(f, p.baseAddress, p.count, Int32(MSG_DONTWAIT)) }
            }
            guard let got = n.value else { return n }
            return .value(got, data: Array(buffer.prefix(Int(got))))
        case .pread:
            guard let f = fd(), let count = int(.count), let offset = int(.offset), count >= 0, count <= MicroOp.maximumReadCount else {
                return .failure(errno: EINVAL)
            }
            var buffer = [UInt8](repeating: 0, count: Int(count))
            let n = buffer.withUnsafeMutableBytes { p in traced { Glibc.pread(f, p.baseAddress, p.count, off_t(offset)) } }
            guard let got = n.value else { return n }
            return .value(got, data: Array(buffer.prefix(Int(got))))
        case .write, .pwrite, .sendto:
            guard let f = fd(), let data = string(.data) else { return .failure(errno: EINVAL) }
            let bytes = Array(data.utf8)
            switch call.op {
            case .write: return bytes.withUnsafeBytes { p in traced { Glibc.write(f, p.baseAddress, p.count) } }
            case .pwrite:
                guard let offset = int(.offset) else { return .failure(errno: EINVAL) }
                return bytes.withUnsafeBytes { p in traced { Glibc.pwrite(f, p.baseAddress, p.count, off_t(offset)) } }
            default:
                guard let address = string(.address) else {
                    return bytes.withUnsafeBytes { p in traced { send(f, p.baseAddress, p.count, Int32(MSG_NOSIGNAL)) } }
                }
                guard let target = SocketAddress(address) else { return .failure(errno: EINVAL) }
                return bytes.withUnsafeBytes { p in
                    target.withSockaddr { sa, len in traced { Glibc.sendto(f, p.baseAddress, p.count, Int32(MSG_NOSIGNAL), sa, len) } }
                }
            }
        case .close:
            guard let f = fd() else { return .failure(errno: EINVAL) }
            // close is not retried on EINTR: on Linux the descriptor is gone either way.
            let result = Glibc.close(f)
            open.remove(f)
            return result == 0 ? .value(0) : .failure(errno: errno)
        case .lseek:
            let whences: [String: Int32] = ["set": SEEK_SET, "cur": SEEK_CUR, "end": SEEK_END]
            guard let f = fd(), let offset = int(.offset), let whence = whences[string(.whence) ?? "set"] else { return .failure(errno: EINVAL) }
            return traced { Glibc.lseek(f, off_t(offset), whence) }
        case .fstat:
            guard let f = fd() else { return .failure(errno: EINVAL) }
            var st = stat()
            guard Glibc.fstat(f, &st) == 0 else { return .failure(errno: errno) }
            return .value(0, fields: ["size": Int64(st.st_size), "mode": Int64(st.st_mode), "ino": Int64(bitPattern: UInt64(st.st_ino)),
                                      "dev": Int64(bitPattern: UInt64(st.st_dev)), "uid": Int64(st.st_uid), "gid": Int64(st.st_gid),
                                      "nlink": Int64(st.st_nlink)])
        case .ioctl:
            guard let f = fd() else { return .failure(errno: EINVAL) }
            switch string(.request) {
            case "FIONREAD":
                var count: Int32 = 0
                let r = traced { Int(worldos_ioctl_fionread(f, &count)) }
                return r.value == nil ? r : .value(Int64(count))
            case "FIONBIO":
                var on = Int32(int(.value) ?? 1)
                return traced { Int(worldos_ioctl_fionbio(f, &on)) }
            default: return .failure(errno: EINVAL)
            }
        case .poll:
            guard let f = fd() else { return .failure(errno: EINVAL) }
            let events: Int16 = switch string(.events) ?? "in" {
            case "in": Int16(POLLIN)
            case "out": Int16(POLLOUT)
            default: Int16(POLLIN | POLLOUT)
            }
            var p = pollfd(fd: f, events: events, revents: 0)
            let timeout = Int32(clamping: int(.timeoutMs) ?? 0)
            let r = traced { Glibc.poll(&p, 1, timeout) }
            guard let n = r.value else { return r }
            return .value(n, fields: ["in": p.revents & Int16(POLLIN) != 0 ? 1 : 0, "out": p.revents & Int16(POLLOUT) != 0 ? 1 : 0,
                                      "hup": p.revents & Int16(POLLHUP) != 0 ? 1 : 0])
        case .mmap:
            guard let f = fd(), let length = int(.length), length > 0, length <= MicroOp.maximumReadCount else { return .failure(errno: EINVAL) }
            guard let base = Glibc.mmap(nil, Int(length), PROT_READ, MAP_SHARED, f, off_t(int(.offset) ?? 0)), base != MAP_FAILED else {
                return .failure(errno: errno)
            }
            let id = nextMapping
            nextMapping += 1
            mappings[id] = (base, Int(length))
            let shown = min(Int(length), 64)
            return .value(id, data: Array(UnsafeRawBufferPointer(start: base, count: shown)), fields: ["length": length])
        case .munmap:
            guard let id = int(.map), let m = mappings.removeValue(forKey: id) else { return .failure(errno: EINVAL) }
            return Glibc.munmap(m.base, m.length) == 0 ? .value(0) : .failure(errno: errno)
        case .pipe:
            var ends: [Int32] = [0, 0]
            guard Glibc.pipe(&ends) == 0 else { return .failure(errno: errno) }
            for e in ends { _ = fcntl(e, F_SETFD, FD_CLOEXEC) }
            open.formUnion(ends)
            return .value(Int64(ends[0]), fields: ["write-fd": Int64(ends[1])])
        case .socket:
            let domains: [String: Int32] = ["inet": AF_INET, "inet6": AF_INET6, "unix": AF_UNIX]
            let types: [String: Int32] = ["stream": Int32(SOCK_STREAM.rawValue), "dgram": Int32(SOCK_DGRAM.rawValue)]
            guard let d = domains[string(.domain) ?? ""], let t = types[string(.`type`) ?? ""] else { return .failure(errno: EINVAL) }
            return opened(traced { Glibc.socket(d, t | Int32(SOCK_CLOEXEC.rawValue), 0) })
        case .bind, .connect:
            guard let f = fd(), let address = string(.address).flatMap(SocketAddress.init) else { return .failure(errno: EINVAL) }
            let r = address.withSockaddr { sa, len in
                traced { call.op == .bind ? Glibc.bind(f, sa, len) : Glibc.connect(f, sa, len) }
            }
            guard r.value != nil else { return r }
            return .value(0, fields: SocketAddress.localPort(of: f).map { ["port": Int64($0)] } ?? [:])
        case .listen:
            guard let f = fd() else { return .failure(errno: EINVAL) }
            return traced { Glibc.listen(f, Int32(clamping: int(.backlog) ?? 16)) }
        case .accept:
            guard let f = fd() else { return .failure(errno: EINVAL) }
            return opened(traced { worldos_accept_cloexec(f) })
        case .spawn:
            guard let path = string(.path) else { return .failure(errno: EINVAL) }
            let arguments = [path] + (string(.args) ?? "").split(separator: " ").map(String.init)
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            for std in Int32(0)...2 { posix_spawn_file_actions_addopen(&actions, std, "/dev/null", std == 0 ? O_RDONLY : O_WRONLY, 0) }
            // Nothing else of the supervisor's: descriptors it inherited without close-on-exec stay with it.
            worldos_spawn_close_from(&actions, 3)
            let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
            defer { argv.forEach { free($0) } }
            var pid: pid_t = 0
            let r = posix_spawn(&pid, path, &actions, nil, argv, environ)
            guard r == 0 else { return .failure(errno: r) }
            // The start time is the other half of the child's identity in the graph.
            let start = readStartTime(pid)
            return .value(Int64(pid), fields: start.map { ["start": Int64($0)] } ?? [:])
        case .waitpid:
            guard let pid = int(.pid).flatMap(Int32.init(exactly:)) else { return .failure(errno: EINVAL) }
            var status: Int32 = 0
            let r = traced { Glibc.waitpid(pid, &status, (int(.nohang) ?? 0) != 0 ? WNOHANG : 0) }
            guard let reaped = r.value else { return r }
            guard reaped != 0 else { return .value(0) }
            let fields: [String: Int64] = status & 0x7F == 0 ? ["exit-code": Int64((status >> 8) & 0xFF)] : ["signal": Int64(status & 0x7F)]
            return .value(reaped, fields: fields)
        case .kill:
            guard let pid = int(.pid).flatMap(Int32.init(exactly:)), pid > 0, let signal = LinuxHost.signalNumber(string(.signal) ?? "TERM") else {
                return .failure(errno: EINVAL)
            }
            return Glibc.kill(pid, signal) == 0 ? .value(0) : .failure(errno: errno)
        case .timer:
            guard let after = int(.afterMs), after > 0 else { return .failure(errno: EINVAL) }
            return opened(traced { worldos_timerfd(after, int(.intervalMs) ?? 0) })
        case .inotify:
            return opened(traced { inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK)) })
        case .act, .gpioSet, .gpioGet, .usbTransfer, .usbControl:
            // Device steps need the devices the supervisor holds: its effector handles them.
            return .failure(errno: ENODEV)
        case .watch:
            guard let f = fd(), let path = string(.path) else { return .failure(errno: EINVAL) }
            let mask = UInt32(IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO)
            // The watch goes on the object opened (its descriptor's magic link leads nowhere else).
            let handle = LinuxHost.openExactly(call, path: path, flags: worldos_o_path())
            guard let held = handle.value.flatMap(Int32.init(exactly:)) else { return handle }
            defer { Glibc.close(held) }
            return traced { inotify_add_watch(f, "/proc/self/fd/\(held)", mask) }
        }
    }

    /// Open the call's canonical `path` with symlinks and magic links refused; when the call
    /// names the object the guard decided on (`object`), the descriptor must be that object.
    static func openExactly(_ call: ResolvedCall, path: String, relativeTo dir: Int32 = AT_FDCWD, flags: Int32) -> CallResult {
        switch ObjectOpener.open(path, relativeTo: dir, flags: flags, expect: call.object.flatMap(FileObject.identity)) {
        case .success(let fd): .value(Int64(fd))
        case .failure(let e): .failure(errno: e.code)
        }
    }

    private mutating func opened(_ r: CallResult) -> CallResult {
        if let v = r.value, let fd = Int32(exactly: v) { open.insert(fd) }
        return r
    }

    /// Close every descriptor and unmap every mapping still open through this adapter.
    public mutating func closeAll() {
        for fd in open { _ = Glibc.close(fd) }
        open = []
        for m in mappings.values { Glibc.munmap(m.base, m.length) }
        mappings = [:]
    }

    static func openFlags(_ mode: String) -> Int32? {
        switch mode {
        case "read": O_RDONLY
        case "write": O_WRONLY | O_TRUNC
        case "append": O_WRONLY | O_APPEND
        case "create": O_WRONLY | O_CREAT | O_EXCL
        case "readwrite": O_RDWR
        default: nil
        }
    }

    static func signalNumber(_ name: String) -> Int32? {
        let names: [String: Int32] = ["TERM": SIGTERM, "KILL": SIGKILL, "INT": SIGINT, "HUP": SIGHUP, "USR1": SIGUSR1, "USR2": SIGUSR2,
                                      "STOP": SIGSTOP, "CONT": SIGCONT, "0": 0]
        return names[name] ?? Int32(name).flatMap { (0...64).contains($0) ? $0 : nil }
    }
}

/// Field 22 of /proc/PID/stat: the process's start time in clock ticks.
func readStartTime(_ pid: pid_t) -> UInt64? {
    let fd = Glibc.open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { Glibc.close(fd) }
    var buffer = [UInt8](repeating: 0, count: 1024)
    let n = Glibc.read(fd, &buffer, buffer.count)
    guard n > 0, let close = buffer.prefix(n).lastIndex(of: UInt8(ascii: ")")) else { return nil }
    let fields = buffer[(close + 1)..<n].split(separator: UInt8(ascii: " "))
    guard fields.count > 19 else { return nil }
    return UInt64(String(decoding: fields[19], as: UTF8.self))
}

/// A socket address written as `127.0.0.1:8080`, `[::1]:8080` or `unix:/path`.
struct SocketAddress {
    private enum Kind {
        case inet(sockaddr_in)
        case inet6(sockaddr_in6)
        case unix(sockaddr_un)
    }
    private var kind: Kind

    init?(_ text: String) {
        if text.hasPrefix("unix:") {
            let path = Array(text.dropFirst(5).utf8)
            var a = sockaddr_un()
            a.sun_family = sa_family_t(AF_UNIX)
            guard !path.isEmpty, path.count < MemoryLayout.size(ofValue: a.sun_path) else { return nil }
            withUnsafeMutableBytes(of: &a.sun_path) { p in for (i, b) in path.enumerated() { p[i] = b } }
            kind = .unix(a)
            return
        }
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = String(host.dropFirst().dropLast())
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, host, &a.sin6_addr) == 1 else { return nil }
            kind = .inet6(a)
        } else {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = port.bigEndian
            guard inet_pton(AF_INET, host, &a.sin_addr) == 1 else { return nil }
            kind = .inet(a)
        }
    }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        switch kind {
        case .inet(var a): withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        case .inet6(var a): withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        case .unix(var a): withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        }
    }

    /// The local port a socket is bound to (inet and inet6), for `bind` to report.
    static func localPort(of fd: Int32) -> UInt16? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let r = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        guard r == 0 else { return nil }
        switch Int32(storage.ss_family) {
        case AF_INET: return withUnsafeBytes(of: storage) { UInt16(bigEndian: $0.load(fromByteOffset: 2, as: UInt16.self)) }
        case AF_INET6: return withUnsafeBytes(of: storage) { UInt16(bigEndian: $0.load(fromByteOffset: 2, as: UInt16.self)) }
        default: return nil
        }
    }
}

/// A call's outcome as the trace holds it: System's retrying call (EINTR retried there, once),
/// its value or errno.
func traced<T: FixedWidthInteger & SignedInteger>(_ call: () -> T) -> CallResult {
    switch Syscall.retrying(call) {
    case .success(let r): .value(Int64(r))
    case .failure(let e): .failure(errno: e.code)
    }
}

