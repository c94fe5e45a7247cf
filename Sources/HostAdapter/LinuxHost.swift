import CShim
import Glibc
import LoopCore

/// The host adapter for Linux syscalls: each micro-step becomes exactly one real syscall, and
/// returns its value or its errno. Descriptors it opens belong to the supervisor's process and
/// are closed by a `close` micro-step (or by ``closeAll()`` when the supervisor stops).
public struct LinuxHost: Effecting {
    /// Descriptors opened through this adapter and not yet closed.
    public private(set) var open: Set<Int32> = []

    public init() {}

    public mutating func perform(_ call: ResolvedCall) -> CallResult {
        switch call.op {
        case .open:
            guard let path = call.path else { return .failure(errno: EINVAL) }
            let flags: Int32 = switch call.args["mode"]?.string ?? "read" {
            case "read": O_RDONLY
            case "write": O_WRONLY | O_TRUNC
            case "append": O_WRONLY | O_APPEND
            case "create": O_WRONLY | O_CREAT | O_EXCL
            default: -1
            }
            guard flags >= 0 else { return .failure(errno: EINVAL) }
            let fd = Syscall.retrying { Glibc.open(path, flags | O_CLOEXEC | O_NOCTTY, 0o644) }
            if case .value(let v, _) = fd { open.insert(Int32(v)) }
            return fd
        case .read:
            guard let fd = call.fd.flatMap(Int32.init(exactly:)), let count = call.args["count"]?.int,
                  count >= 0, count <= MicroOp.maximumReadCount else { return .failure(errno: EINVAL) }
            var buffer = [UInt8](repeating: 0, count: Int(count))
            let n = buffer.withUnsafeMutableBytes { p in Syscall.retrying { Glibc.read(fd, p.baseAddress, p.count) } }
            guard case .value(let got, _) = n else { return n }
            return .value(got, data: Array(buffer.prefix(Int(got))))
        case .write:
            guard let fd = call.fd.flatMap(Int32.init(exactly:)), let data = call.args["data"]?.string else {
                return .failure(errno: EINVAL)
            }
            let bytes = Array(data.utf8)
            return bytes.withUnsafeBytes { p in Syscall.retrying { Glibc.write(fd, p.baseAddress, p.count) } }
        case .close:
            guard let fd = call.fd.flatMap(Int32.init(exactly:)) else { return .failure(errno: EINVAL) }
            // close is not retried on EINTR: on Linux the descriptor is gone either way.
            let result = Glibc.close(fd)
            open.remove(fd)
            return result == 0 ? .value(0) : .failure(errno: errno)
        case .fionread:
            guard let fd = call.fd.flatMap(Int32.init(exactly:)) else { return .failure(errno: EINVAL) }
            var count: Int32 = 0
            let result = Syscall.retrying { Int(worldos_ioctl_fionread(fd, &count)) }
            guard case .value = result else { return result }
            return .value(Int64(count))
        }
    }

    /// Close every descriptor still open through this adapter (the supervisor is stopping).
    public mutating func closeAll() {
        for fd in open { _ = Glibc.close(fd) }
        open = []
    }
}

/// errno triage, in one place: retry EINTR; everything else is a value for the trace.
enum Syscall {
    static func retrying<T: BinaryInteger>(_ call: () -> T) -> CallResult {
        while true {
            let r = call()
            if r >= 0 { return .value(Int64(r)) }
            if errno == EINTR { continue }
            return .failure(errno: errno)
        }
    }
}

/// The host's monotonic clock.
public final class SystemClock: WorldClock {
    public init() {}
    public func now() -> Instant {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Instant(nanoseconds: UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec))
    }
}
