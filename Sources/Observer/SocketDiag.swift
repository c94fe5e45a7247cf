import Glibc
import SystemCalls

/// The kernel's socket diagnostics (NETLINK_SOCK_DIAG, what `ss` reads): every TCP, UDP and
/// unix socket of the caller's network namespace as binary records in a few netlink reads,
/// instead of the /proc/net text tables, which the kernel formats line by line (and walks
/// its hash tables again for each read). The entries are the ones NetTable parses from
/// /proc/net, field for field, so either source gives the same graph.
public enum SocketDiag {
    /// What one dump asked for.
    public struct Query: Equatable, Sendable {
        public var family: UInt8
        public var protocolNumber: UInt8
        public var name: String

        public static let all = [
            Query(family: UInt8(AF_INET), protocolNumber: UInt8(IPPROTO_TCP), name: "tcp"),
            Query(family: UInt8(AF_INET6), protocolNumber: UInt8(IPPROTO_TCP), name: "tcp6"),
            Query(family: UInt8(AF_INET), protocolNumber: UInt8(IPPROTO_UDP), name: "udp"),
            Query(family: UInt8(AF_INET6), protocolNumber: UInt8(IPPROTO_UDP), name: "udp6"),
            Query(family: UInt8(AF_UNIX), protocolNumber: 0, name: "unix"),
        ]
    }

    /// One datagram's worth of a dump, parsed.
    public struct Part: Equatable {
        public var entries: [SocketEntry] = []
        /// The dump's last message (NLMSG_DONE) was in this datagram.
        public var done = false
        /// The kernel refused the request (NLMSG_ERROR): its errno.
        public var error: Int32?
        /// Messages too short for what their type says they hold; parsing stops at the first
        /// whose length is impossible.
        public var malformed = 0
    }

    static let netlinkSockDiag: Int32 = 4      // NETLINK_SOCK_DIAG
    static let sockDiagByFamily: UInt16 = 20   // SOCK_DIAG_BY_FAMILY
    static let done: UInt16 = 3                // NLMSG_DONE
    static let error: UInt16 = 2               // NLMSG_ERROR
    static let requestDump: UInt16 = 0x1 | 0x300  // NLM_F_REQUEST | NLM_F_DUMP
    static let unixShowName: UInt32 = 0x1      // UDIAG_SHOW_NAME
    static let unixNameAttribute: UInt16 = 0   // UNIX_DIAG_NAME

    /// Every socket of the observer's network namespace, by inode; nil if the kernel has no
    /// socket diagnostics for one of the families, does not answer within a second, or answers
    /// something this cannot read (the caller reads /proc/net instead).
    public static func dump() -> [UInt64: SocketEntry]? {
        let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), netlinkSockDiag)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        // A dump is answered at once; a kernel that does not answer within a second gets the
        // /proc/net tables instead of a supervisor stuck in recv.
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        guard setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)) == 0 else { return nil }
        var table: [UInt64: SocketEntry] = [:]
        table.reserveCapacity(1024)
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        for (sequence, query) in Query.all.enumerated() {
            let message = request(query, sequence: UInt32(sequence + 1))
            guard message.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == message.count else { return nil }
            while true {
                guard case .success(let n) = buffer.withUnsafeMutableBytes({ b in Syscall.retrying { recv(fd, b.baseAddress, b.count, 0) } }),
                      n > 0 else { return nil }
                let part = parse(buffer[0..<n], query: query)
                // A refusal, or anything misread, and the caller reads /proc/net: no socket is
                // silently left out.
                if part.error != nil || part.malformed > 0 { return nil }
                for entry in part.entries { table[entry.inode] = entry }
                if part.done { break }
            }
        }
        return table
    }

    /// The dump request for one family and protocol.
    public static func request(_ query: Query, sequence: UInt32) -> [UInt8] {
        var body: [UInt8]
        if query.family == UInt8(AF_UNIX) {
            // struct unix_diag_req: family, protocol, pad(2), states, ino, show, cookie[2].
            body = [query.family, 0, 0, 0] + le(UInt32.max) + le(UInt32(0)) + le(unixShowName) + [UInt8](repeating: 0, count: 8)
        } else {
            // struct inet_diag_req_v2: family, protocol, ext, pad, states, then a zero socket id (48).
            body = [query.family, query.protocolNumber, 0, 0] + le(UInt32.max) + [UInt8](repeating: 0, count: 48)
        }
        return le(UInt32(16 + body.count)) + le(sockDiagByFamily) + le(requestDump) + le(sequence) + le(UInt32(0)) + body
    }

    /// Parse one datagram of a dump's reply.
    public static func parse<C: Collection>(_ datagram: C, query: Query) -> Part where C.Element == UInt8 {
        let bytes = Array(datagram)
        var part = Part()
        var offset = 0
        while offset + 16 <= bytes.count {
            let length = Int(u32(bytes, offset))
            let type = u16(bytes, offset + 4)
            guard length >= 16, offset + length <= bytes.count else {
                part.malformed += 1
                return part
            }
            let payload = offset + 16
            switch type {
            case done:
                part.done = true
                return part
            case error:
                // struct nlmsgerr: a negative errno, then the request.
                guard length >= 20 else { part.malformed += 1; part.error = EPROTO; return part }
                part.error = -Int32(bitPattern: u32(bytes, payload))
                return part
            case sockDiagByFamily:
                if let entry = query.family == UInt8(AF_UNIX)
                    ? unixEntry(bytes, payload, end: offset + length) : inetEntry(bytes, payload, end: offset + length, query: query) {
                    part.entries.append(entry)
                } else {
                    part.malformed += 1
                }
            default: break
            }
            offset += (length + 3) & ~3
        }
        if offset < bytes.count { part.malformed += 1 }  // a tail too short for a header
        return part
    }

    /// struct inet_diag_msg: family, state, timer, retrans, id {sport, dport (big-endian),
    /// src[16], dst[16], if, cookie[2]}, expires, rqueue, wqueue, uid, inode.
    static func inetEntry(_ b: [UInt8], _ at: Int, end: Int, query: Query) -> SocketEntry? {
        guard end - at >= 72 else { return nil }
        let family = b[at]
        guard family == UInt8(AF_INET) || family == UInt8(AF_INET6) else { return nil }
        let state = b[at + 1]
        let localPort = UInt16(b[at + 4]) << 8 | UInt16(b[at + 5])
        let remotePort = UInt16(b[at + 6]) << 8 | UInt16(b[at + 7])
        func address(_ from: Int, port: UInt16) -> String {
            family == UInt8(AF_INET) ? NetTable.ipv4(b[from], b[from + 1], b[from + 2], b[from + 3], port: port)
                                     : NetTable.address(Array(b[from..<(from + 16)]), port: port)
        }
        let inode = UInt64(u32(b, at + 68))
        let name: String
        if query.protocolNumber == UInt8(IPPROTO_UDP) {
            name = state == 7 ? "UNCONN" : (state == 1 ? "ESTABLISHED" : NetTable.stateCode(state))
        } else {
            name = NetTable.tcpStateName(state)
        }
        return SocketEntry(inode: inode, protocolName: query.name, local: address(at + 8, port: localPort),
                           remote: address(at + 24, port: remotePort), state: name)
    }

    /// struct unix_diag_msg: family, type, state, pad, ino, cookie[2]; then attributes, of
    /// which UNIX_DIAG_NAME is the bound path (a leading NUL: abstract, shown as `@`).
    static func unixEntry(_ b: [UInt8], _ at: Int, end: Int) -> SocketEntry? {
        guard end - at >= 16, b[at] == UInt8(AF_UNIX) else { return nil }
        let state = unixState(type: b[at + 1], state: b[at + 2])
        var path = ""
        var attribute = at + 16
        while attribute + 4 <= end {
            let length = Int(u16(b, attribute))
            guard length >= 4, attribute + length <= end else { return nil }
            if u16(b, attribute + 2) == unixNameAttribute {
                // As /proc/net/unix shows it: a path without its closing NUL; an abstract name
                // (leading NUL) with every NUL as `@`.
                var name = Array(b[(attribute + 4)..<(attribute + length)])
                if name.first == 0 {
                    name = name.map { $0 == 0 ? UInt8(ascii: "@") : $0 }
                } else if let nul = name.firstIndex(of: 0) {
                    name = Array(name[..<nul])
                }
                path = String(decoding: name, as: UTF8.self)
            }
            attribute += (length + 3) & ~3
        }
        return SocketEntry(inode: UInt64(u32(b, at + 4)), protocolName: "unix", local: path, remote: "", state: state)
    }

    /// A unix socket's type and state as /proc/net/unix shows them (`stream CONNECTED`); the
    /// common ones made once, not per socket.
    static func unixState(type: UInt8, state: UInt8) -> String {
        if let t = commonTypes.firstIndex(of: type), let s = commonStates.firstIndex(of: state) {
            return commonUnixStates[t * commonStates.count + s]
        }
        return typeName(type) + " " + stateName(state)
    }

    private static let commonTypes: [UInt8] = [1, 2, 5], commonStates: [UInt8] = [1, 2, 7, 10]
    private static let commonUnixStates = commonTypes.flatMap { t in commonStates.map { typeName(t) + " " + stateName($0) } }

    private static func typeName(_ type: UInt8) -> String {
        switch type {
        case 1: "stream"
        case 2: "dgram"
        case 5: "seqpacket"
        default: String(format4: type)
        }
    }

    /// sk_state, as /proc/net/unix shows it: the listen flag, else the socket's SS_ state.
    private static func stateName(_ state: UInt8) -> String {
        switch state {
        case 1: "CONNECTED"
        case 2: "CONNECTING"
        case 7: "UNCONNECTED"
        case 10: "LISTEN"
        default: String(state)
        }
    }

    static func u16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }
    static func u32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
    }
    static func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
}

private extension String {
    /// A unix socket type the table does not name, as /proc/net/unix's four hex digits.
    init(format4 value: UInt8) {
        let hex = String(value, radix: 16, uppercase: true)
        self = String(repeating: "0", count: 4 - hex.count) + hex
    }
}
