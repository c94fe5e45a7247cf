import CShim
import Glibc

/// Stream sockets on a filesystem path (AF_UNIX), wrapped once: the supervisor's control socket
/// listens on one, the CLI connects to it, and the listener learns who connected from the kernel.
public enum UnixSocket {
    /// Who is at the other end of a connection, as the kernel recorded it at connect().
    public struct Peer: Sendable, Equatable {
        public var pid: Int32
        public var uid: UInt32
        public var gid: UInt32
    }

    /// Listen on `path` (a socket file left there by an earlier run is replaced; anything else
    /// there is an error), with `mode` and, when given, `group`.
    public static func listen(path: String, mode: mode_t, group: gid_t? = nil, backlog: Int32 = 64) -> Result<Int32, Errno> {
        var info = stat()
        if lstat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFSOCK else { return .failure(Errno(EEXIST)) }
            unlink(path)
        }
        guard var address = address(path) else { return .failure(Errno(ENAMETOOLONG)) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(.current) }
        // Made with no rights at all, then given its mode: nobody connects in between.
        let mask = umask(0o777)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(mask)
        guard bound == 0 else { return failing(fd) }
        if let group, chown(path, getuid(), group) != 0 { return failing(fd) }
        guard chmod(path, mode) == 0, Glibc.listen(fd, backlog) == 0 else { return failing(fd) }
        return .success(fd)
    }

    /// Connect to the socket at `path`.
    public static func connect(path: String) -> Result<Int32, Errno> {
        guard var address = address(path) else { return .failure(Errno(ENAMETOOLONG)) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(.current) }
        let rc = Syscall.retrying {
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        }
        if case .failure = rc { return failing(fd) }
        return .success(fd)
    }

    /// The next connection (close-on-exec), waiting for one.
    public static func accept(_ listener: Int32) -> Result<Int32, Errno> {
        Syscall.retrying { worldos_accept_cloexec(listener) }
    }

    /// The process at the other end of a connection.
    public static func peer(_ fd: Int32) -> Result<Peer, Errno> {
        var (pid, uid, gid): (Int32, UInt32, UInt32) = (0, 0, 0)
        guard worldos_peer_credentials(fd, &pid, &uid, &gid) == 0 else { return .failure(.current) }
        return .success(Peer(pid: pid, uid: uid, gid: gid))
    }

    /// Send all of `bytes` on a connected socket; a peer that hung up is EPIPE, never SIGPIPE
    /// (which would end the process).
    public static func send(_ fd: Int32, _ bytes: [UInt8]) -> Errno? {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                Syscall.retrying { Glibc.send(fd, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL)) }
            }
            switch n {
            case .success(let count): sent += count
            case .failure(let e): return e
            }
        }
        return nil
    }

    /// One datagram to the socket at `path` (a leading `@` names an abstract socket), from a
    /// socket made for it and closed again: how a service tells systemd how it is.
    public static func sendDatagram(to path: String, _ bytes: [UInt8]) -> Errno? {
        let abstract = path.hasPrefix("@")
        guard var address = address(abstract ? " " + path.dropFirst() : path) else { return Errno(ENAMETOOLONG) }
        if abstract { withUnsafeMutableBytes(of: &address.sun_path) { $0[0] = 0 } }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .current }
        defer { close(fd) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.utf8.count + (abstract ? 0 : 1))
        let rc = bytes.withUnsafeBytes { raw in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL), $0, length) }
            }
        }
        return rc < 0 ? .current : nil
    }

    /// At most `limit` seconds for each read and write on `fd`: a client that stops reading or
    /// writing is let go, not waited for.
    public static func setTimeouts(_ fd: Int32, seconds: Int) {
        var limit = timeval(tv_sec: seconds, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    }

    private static func address(_ path: String) -> sockaddr_un? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        return address
    }

    private static func failing<T>(_ fd: Int32) -> Result<T, Errno> {
        let e = Errno.current
        close(fd)
        return .failure(e)
    }
}
