import Glibc

/// An errno, triaged once: what a failed call said, and what kind of failure that is.
public struct Errno: Error, Hashable, Sendable, CustomStringConvertible {
    public var code: Int32
    public init(_ code: Int32) { self.code = code }

    /// The calling thread's errno now.
    public static var current: Errno { Errno(errno) }

    /// EAGAIN / EWOULDBLOCK: nothing now, try again when the descriptor is ready. A value, not
    /// a fault.
    public var wouldBlock: Bool { code == EAGAIN || code == EWOULDBLOCK }
    /// The device behind the descriptor went away (unplugged, unbound, powered off): ENODEV,
    /// ENXIO or, for USB and serial adapters, ESHUTDOWN. The descriptor is useless from now on.
    public var deviceGone: Bool { code == ENODEV || code == ENXIO || code == ESHUTDOWN }

    /// The C name (ENOENT, …) and strerror's text.
    public var description: String { String(cString: strerror(code)) }
}

/// Each system call the project makes with errno, wrapped once: EINTR is retried here and
/// nowhere else; what remains is a value (``Errno``) for the caller to decide on.
public enum Syscall {
    /// `call` again while it fails with EINTR; its result, or the errno it failed with.
    @inlinable @inline(__always)
    public static func retrying<T: FixedWidthInteger & SignedInteger>(_ call: () -> T) -> Result<T, Errno> {
        while true {
            let r = call()
            if r >= 0 { return .success(r) }
            let e = errno
            if e == EINTR { continue }
            return .failure(Errno(e))
        }
    }

    /// Every byte written, again after an interrupted or short write. On a non-blocking
    /// descriptor that is full, `whenFull` is called (to wait for room) and the write goes on;
    /// without it, EAGAIN ends the write like any other errno. nil when all were written.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, whenFull: (() -> Void)? = nil) -> Errno? {
        var offset = 0
        while offset < bytes.count {
            switch retrying({ write(fd, bytes.baseAddress! + offset, bytes.count - offset) }) {
            case .success(let n): offset += n
            case .failure(let e) where e.wouldBlock && whenFull != nil: whenFull!()
            case .failure(let e): return e
            }
        }
        return nil
    }

    /// ``writeAll(_:_:whenFull:)`` of an array.
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8], whenFull: (() -> Void)? = nil) -> Errno? {
        bytes.withUnsafeBytes { writeAll(fd, $0, whenFull: whenFull) }
    }

    /// `count` bytes read at `offset` into `buffer`; the bytes read when the file ended first.
    public static func preadFully(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) -> Result<Int, Errno> {
        var got = 0
        while got < buffer.count {
            switch retrying({ pread(fd, buffer.baseAddress! + got, buffer.count - got, off_t(offset + got)) }) {
            case .success(0): return .success(got)
            case .success(let n): got += n
            case .failure(let e): return .failure(e)
            }
        }
        return .success(got)
    }

    /// poll(2) on `fds` for up to `milliseconds` (-1: no limit), a signal's interruption
    /// retried with the whole wait again (the waits here are short or event-driven). The number
    /// of ready descriptors (0: timed out).
    public static func poll(_ fds: inout [pollfd], milliseconds: Int32) -> Result<Int32, Errno> {
        let count = nfds_t(fds.count)
        return fds.withUnsafeMutableBufferPointer { p in retrying { Glibc.poll(p.baseAddress, count, milliseconds) } }
    }

    /// waitpid(2): the pid reaped and its wait status; pid 0 with WNOHANG while it runs.
    public static func wait(_ pid: pid_t, options: Int32 = 0) -> Result<(pid: pid_t, status: Int32), Errno> {
        var status: Int32 = 0
        return retrying { waitpid(pid, &status, options) }.map { ($0, status) }
    }
}
