/// Parsers for the text files of /proc. Each takes bytes and returns a value or nil (or skips the
/// malformed line); none of them trusts the input's shape.

/// The fields of /proc/PID/stat the observer uses.
public struct ProcStat: Equatable, Sendable {
    public var comm: String
    public var state: Character
    public var ppid: Int32
    /// Field 18: the kernel's scheduling priority.
    public var priority: Int64
    /// Field 19: nice value.
    public var nice: Int64
    /// Field 20.
    public var threads: Int64
    /// Field 22: start time in clock ticks after boot.
    public var startTime: UInt64
    /// Field 9 (flags) has PF_KTHREAD: a kernel thread, which has no command line and no
    /// descriptor table.
    public var kernelThread: Bool

    /// Parses one stat line. The command name sits in parentheses and may itself contain
    /// spaces and parentheses, so the fields are counted from the last ')'. Read in place: a
    /// full refresh parses one per process.
    public init?<C: Collection>(parsing bytes: C) where C.Element == UInt8 {
        let parsed: ProcStat?? = bytes.withContiguousStorageIfAvailable { ProcStat.parse($0) }
        guard let stat = parsed ?? Array(bytes).withUnsafeBufferPointer({ ProcStat.parse($0) }) else { return nil }
        self = stat
    }

    private init(comm: String, state: Character, ppid: Int32, priority: Int64, nice: Int64, threads: Int64, startTime: UInt64,
                 kernelThread: Bool) {
        self.comm = comm
        self.state = state
        self.ppid = ppid
        self.priority = priority
        self.nice = nice
        self.threads = threads
        self.startTime = startTime
        self.kernelThread = kernelThread
    }

    private static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> ProcStat? {
        guard let open = bytes.firstIndex(of: UInt8(ascii: "(")),
              let close = bytes.lastIndex(of: UInt8(ascii: ")")), open < close else { return nil }
        // Fields 3...22 after the name, separated by runs of spaces; a field's trailing newlines
        // are not part of it.
        var fields: [Range<Int>] = []
        fields.reserveCapacity(20)
        var i = close + 1
        while i < bytes.count && fields.count < 20 {
            while i < bytes.count && bytes[i] == UInt8(ascii: " ") { i += 1 }
            let start = i
            while i < bytes.count && bytes[i] != UInt8(ascii: " ") { i += 1 }
            var end = i
            while end > start && bytes[end - 1] == UInt8(ascii: "\n") { end -= 1 }
            if i > start { fields.append(start..<end) }
        }
        guard fields.count == 20 else { return nil }
        // fields[0] is field 3 (state), so field N is fields[N - 3].
        func integer(_ n: Int) -> (negative: Bool, magnitude: UInt64)? {
            var digits = fields[n - 3]
            guard !digits.isEmpty else { return nil }
            let negative = bytes[digits.lowerBound] == UInt8(ascii: "-")
            if negative || bytes[digits.lowerBound] == UInt8(ascii: "+") { digits = digits.dropFirst() }
            guard let value: UInt64 = decimal(bytes[digits]) else { return nil }
            return (negative, value)
        }
        func signed<T: FixedWidthInteger & SignedInteger>(_ n: Int, as: T.Type) -> T? {
            guard let (negative, magnitude) = integer(n) else { return nil }
            if negative { return magnitude == 0 ? 0 : T(exactly: -Int128(magnitude)) }
            return T(exactly: magnitude)
        }
        let stateBytes = UnsafeBufferPointer(rebasing: bytes[fields[0]])
        let stateText = String(decoding: stateBytes, as: UTF8.self)
        guard stateText.count == 1, let state = stateText.first,
              let ppid = signed(4, as: Int32.self), let priority = signed(18, as: Int64.self),
              let nice = signed(19, as: Int64.self), let threads = signed(20, as: Int64.self),
              let start = integer(22), !start.negative || start.magnitude == 0 else { return nil }
        let flags = integer(9).map { $0.negative ? 0 : $0.magnitude } ?? 0
        return ProcStat(comm: String(decoding: UnsafeBufferPointer(rebasing: bytes[(open + 1)..<close]), as: UTF8.self),
                        state: state, ppid: ppid, priority: priority, nice: nice, threads: threads, startTime: start.magnitude,
                        kernelThread: flags & 0x0020_0000 != 0)
    }
}

/// The value of a run of decimal digits (no sign), or nil if it is empty, holds anything else,
/// or does not fit `T`.
func decimal<T: FixedWidthInteger, C: Collection>(_ digits: C) -> T? where C.Element == UInt8 {
    guard !digits.isEmpty else { return nil }
    var value: T = 0
    for byte in digits {
        let d = byte &- UInt8(ascii: "0")
        guard d < 10 else { return nil }
        let (times, o1) = value.multipliedReportingOverflow(by: 10)
        let (sum, o2) = times.addingReportingOverflow(T(d))
        guard !o1, !o2 else { return nil }
        value = sum
    }
    return value
}

/// One socket from /proc/net/{tcp,tcp6,udp,udp6,unix}, keyed by its inode.
public struct SocketEntry: Equatable, Sendable {
    public var inode: UInt64
    /// tcp, tcp6, udp, udp6 or unix.
    public var protocolName: String
    public var local: String
    public var remote: String
    /// TCP state name (LISTEN, ESTABLISHED, …); for unix sockets the socket type and state.
    public var state: String

    public init(inode: UInt64, protocolName: String, local: String, remote: String, state: String) {
        self.inode = inode
        self.protocolName = protocolName
        self.local = local
        self.remote = remote
        self.state = state
    }
}

public enum NetTable {
    /// `a.b.c.d:port`, written in one allocation (none at all when it fits a small string).
    static func ipv4(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8, port: UInt16) -> String {
        String(unsafeUninitializedCapacity: 21) { out in
            var at = 0
            func put(_ value: UInt16, then separator: UInt8?) {
                let digits = value >= 10_000 ? 5 : value >= 1_000 ? 4 : value >= 100 ? 3 : value >= 10 ? 2 : 1
                var rest = value
                for i in stride(from: at + digits - 1, through: at, by: -1) {
                    out[i] = UInt8(ascii: "0") + UInt8(rest % 10)
                    rest /= 10
                }
                at += digits
                if let separator {
                    out[at] = separator
                    at += 1
                }
            }
            put(UInt16(a), then: UInt8(ascii: "."))
            put(UInt16(b), then: UInt8(ascii: "."))
            put(UInt16(c), then: UInt8(ascii: "."))
            put(UInt16(d), then: UInt8(ascii: ":"))
            put(port, then: nil)
            return at
        }
    }

    /// A TCP state by its number, named as /proc/net/tcp's hex code names it.
    static func tcpStateName(_ state: UInt8) -> String {
        (1...11).contains(state) ? tcpStateNames[Int(state) - 1] : stateCode(state)
    }

    /// A state number as /proc/net shows it: two hex digits.
    static func stateCode(_ state: UInt8) -> String {
        let code = String(state, radix: 16, uppercase: true)
        return code.count == 1 ? "0" + code : code
    }

    private static let tcpStateNames = (1...11).map { tcpStates[stateCode(UInt8($0))]! }

    static let tcpStates = ["01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
                            "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"]

    /// Parse a tcp/tcp6/udp/udp6 table. The header line and malformed lines are skipped;
    /// `malformed` counts the latter.
    public static func parseInet<C: Collection>(_ bytes: C, protocolName: String) -> (entries: [SocketEntry], malformed: Int) where C.Element == UInt8 {
        var entries: [SocketEntry] = []
        var malformed = 0
        for (i, line) in Array(bytes).split(separator: UInt8(ascii: "\n")).enumerated() where i > 0 {
            let f = line.split(separator: UInt8(ascii: " ")).map { String(decoding: $0, as: UTF8.self) }
            guard f.count >= 10, f[0].hasSuffix(":"), let local = address(f[1]), let remote = address(f[2]),
                  f[3].count == 2, let inode = UInt64(f[9]) else { malformed += 1; continue }
            let state = protocolName.hasPrefix("udp") ? (f[3] == "07" ? "UNCONN" : (f[3] == "01" ? "ESTABLISHED" : f[3])) : (tcpStates[f[3]] ?? f[3])
            entries.append(SocketEntry(inode: inode, protocolName: protocolName, local: local, remote: remote, state: state))
        }
        return (entries, malformed)
    }

    /// `0100007F:1F90` → `127.0.0.1:8080`; 32 hex digits for IPv6 (four little-endian words).
    static func address(_ text: String) -> String? {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1], radix: 16) else { return nil }
        let hex = Array(parts[0])
        guard hex.count == 8 || hex.count == 32 else { return nil }
        var bytes: [UInt8] = []
        for w in 0..<(hex.count / 8) {
            guard let word = UInt32(String(hex[(w * 8)..<(w * 8 + 8)]), radix: 16) else { return nil }
            bytes += [UInt8(word & 0xFF), UInt8(word >> 8 & 0xFF), UInt8(word >> 16 & 0xFF), UInt8(word >> 24)]
        }
        return address(bytes, port: port)
    }

    /// An address in network byte order (4 bytes: IPv4, 16: IPv6) with its port: dotted quad, or
    /// eight uncompressed hexadecimal groups in brackets. /proc/net's tables and socket
    /// diagnostics are both shown this way.
    static func address(_ bytes: [UInt8], port: UInt16) -> String {
        if bytes.count == 4 { return ipv4(bytes[0], bytes[1], bytes[2], bytes[3], port: port) }
        let groups = stride(from: 0, to: bytes.count, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
        return "[\(groups.joined(separator: ":"))]:\(port)"
    }

    /// Parse /proc/net/unix: `Num RefCount Protocol Flags Type St Inode [Path]`.
    public static func parseUnix<C: Collection>(_ bytes: C) -> (entries: [SocketEntry], malformed: Int) where C.Element == UInt8 {
        var entries: [SocketEntry] = []
        var malformed = 0
        let types = ["0001": "stream", "0002": "dgram", "0005": "seqpacket"]
        let states = ["01": "UNCONNECTED", "02": "CONNECTING", "03": "CONNECTED", "04": "DISCONNECTING"]
        for (i, line) in Array(bytes).split(separator: UInt8(ascii: "\n")).enumerated() where i > 0 {
            let f = line.split(separator: UInt8(ascii: " "), maxSplits: 7).map { String(decoding: $0, as: UTF8.self) }
            guard f.count >= 7, f[0].hasSuffix(":"), f[4].count == 4, f[5].count == 2, let inode = UInt64(f[6]) else { malformed += 1; continue }
            let path = f.count > 7 ? f[7] : ""
            let flags = UInt32(f[3], radix: 16) ?? 0
            let state = (flags & 0x10000 != 0) ? "LISTEN" : (states[f[5]] ?? f[5])
            entries.append(SocketEntry(inode: inode, protocolName: "unix", local: path, remote: "",
                                       state: "\(types[f[4]] ?? f[4]) \(state)"))
        }
        return (entries, malformed)
    }
}

/// One file-backed mapping from /proc/PID/maps.
public struct MappedFile: Equatable, Sendable {
    public var device: UInt64
    public var inode: UInt64
    public var path: String
}

public enum ProcMaps {
    /// The distinct files a process maps (anonymous, [heap], [stack] and the like are left out).
    public static func parse<C: Collection>(_ bytes: C) -> [MappedFile] where C.Element == UInt8 {
        var seen: Set<UInt64> = []
        var files: [MappedFile] = []
        for line in Array(bytes).split(separator: UInt8(ascii: "\n")) {
            let f = line.split(separator: UInt8(ascii: " "), maxSplits: 5, omittingEmptySubsequences: true)
            guard f.count == 6, let inode = UInt64(String(decoding: f[4], as: UTF8.self)), inode != 0 else { continue }
            let dev = String(decoding: f[3], as: UTF8.self).split(separator: ":")
            guard dev.count == 2, let major = UInt64(dev[0], radix: 16), let minor = UInt64(dev[1], radix: 16) else { continue }
            let path = String(decoding: f[5], as: UTF8.self).trimmingCharacters(in: " ")
            guard path.hasPrefix("/") else { continue }
            let device = makeDevice(major: major, minor: minor)
            if seen.insert(device ^ (inode &* 0x9E37_79B9_7F4A_7C15)).inserted {
                files.append(MappedFile(device: device, inode: inode, path: path))
            }
        }
        return files
    }
}

/// glibc's makedev: the st_dev encoding of a major:minor pair.
public func makeDevice(major: UInt64, minor: UInt64) -> UInt64 {
    ((major & 0xFFF) << 8) | ((major & ~0xFFF) << 32) | (minor & 0xFF) | ((minor & ~0xFF) << 12)
}

public func deviceMajor(_ dev: UInt64) -> UInt64 { ((dev >> 8) & 0xFFF) | ((dev >> 32) & ~0xFFF) }
public func deviceMinor(_ dev: UInt64) -> UInt64 { (dev & 0xFF) | ((dev >> 12) & ~0xFF) }

extension String {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

/// `0::/user.slice/x` (cgroup v2) or the first hierarchy's path.
func parseCgroup(_ bytes: [UInt8]) -> String {
    let lines = bytes.split(separator: UInt8(ascii: "\n"))
    guard let line = lines.first(where: { $0.starts(with: "0::".utf8) }) ?? lines.first else { return "" }
    return line.split(separator: UInt8(ascii: ":"), maxSplits: 2).last.map { String(decoding: $0, as: UTF8.self) } ?? ""
}

/// /proc/PID/cmdline's NUL-separated arguments joined by single spaces (empty ones dropped).
func joinArguments(_ bytes: [UInt8]) -> String {
    var joined: [UInt8] = []
    joined.reserveCapacity(bytes.count)
    var gap = false
    for byte in bytes {
        if byte == 0 {
            gap = !joined.isEmpty
        } else {
            if gap { joined.append(0x20) }
            gap = false
            joined.append(byte)
        }
    }
    return String(decoding: joined, as: UTF8.self)
}

/// `net:[4026531840]` → 4026531840.
func namespaceInode(_ link: String) -> UInt64? {
    guard let open = link.firstIndex(of: "["), let close = link.lastIndex(of: "]") else { return nil }
    return UInt64(link[link.index(after: open)..<close])
}
