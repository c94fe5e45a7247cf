import Glibc
import LoopCore
import StateGraph

/// Observes processes and their descriptors from the real /proc.
///
/// A process is identified by pid + start time, so a reused pid is a new node. Each descriptor
/// is owned by its process and has an `opened` edge to the file, socket or pipe it refers to.
/// Entries that vanish mid-read (a process exiting between readdir and read, an fd closed
/// between readdir and readlink) are counted in `raced` and skipped; the rest of the step stands.
public struct ProcObserver: Observing {
    public static let scope: Set<NodeKind> = [.process, .fileDescriptor, .file, .socket, .pipe]
    /// Root of the proc filesystem; a recorded tree in tests.
    public let root: String

    public init(root: String = "/proc") { self.root = root }

    public func observe(at now: Instant) throws -> Observation {
        guard let dir = opendir(root) else { throw ObserverError(path: root, errno: errno) }
        defer { closedir(dir) }
        var pids: [Int32] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let pid = Int32(name) { pids.append(pid) }
        }
        var nodes: [Node] = []
        var edges: [Edge] = []
        var objects: Set<NodeID> = []
        var processIDs: [Int32: NodeID] = [:]
        var parents: [(child: NodeID, ppid: Int32)] = []
        var raced = 0
        for pid in pids.sorted() {
            guard let stat = readSmallFile("\(root)/\(pid)/stat"), let parsed = ProcStat(parsing: stat) else { raced += 1; continue }
            let id = NodeID.process(pid: pid, startTime: parsed.startTime)
            processIDs[pid] = id
            let kernelThread = parsed.ppid == 2 || pid == 2
            var process = Node(id: id, kind: .process, observability: kernelThread ? .background : .visible,
                               attributes: ["pid": .int(Int64(pid)), "ppid": .int(Int64(parsed.ppid)), "comm": .string(parsed.comm),
                                            "state": .string(String(parsed.state)), "start": .int(Int64(parsed.startTime))])
            parents.append((id, parsed.ppid))
            var fdCount = 0
            let fdDir = "\(root)/\(pid)/fd"
            if let fds = listDirectory(fdDir) {
                for fd in fds.compactMap(Int32.init).sorted() {
                    guard let target = readLink("\(fdDir)/\(fd)") else { raced += 1; continue }
                    let fdID = NodeID.fileDescriptor(owner: id, fd: fd)
                    nodes.append(Node(id: fdID, kind: .fileDescriptor, observability: .background,
                                      attributes: ["fd": .int(Int64(fd)), "target": .string(target)]))
                    edges.append(Edge(id, .owns, fdID))
                    fdCount += 1
                    if let (kind, objectID) = Self.object(for: target) {
                        if objects.insert(objectID).inserted {
                            nodes.append(Node(id: objectID, kind: kind, observability: .background, attributes: ["name": .string(target)]))
                        }
                        edges.append(Edge(fdID, .opened, objectID))
                    }
                }
            } else if !kernelThread {
                raced += 1
            }
            process["fds"] = .int(Int64(fdCount))
            nodes.append(process)
        }
        for (child, ppid) in parents {
            if let parent = processIDs[ppid] { edges.append(Edge(parent, .parentOf, child)) }
        }
        return Observation(time: now, scope: Self.scope, nodes: nodes, edges: edges, supervisor: processIDs[getpid()], raced: raced)
    }

    /// The node a descriptor's link target refers to. Anonymous inodes get no shared node here:
    /// `anon_inode:[eventfd]` names a kind, not an object.
    static func object(for target: String) -> (NodeKind, NodeID)? {
        if target.hasPrefix("socket:") { return (.socket, .object(.socket, target)) }
        if target.hasPrefix("pipe:") { return (.pipe, .object(.pipe, target)) }
        if target.hasPrefix("anon_inode:") { return nil }
        return (.file, .object(.file, target))
    }
}

/// The fields of /proc/PID/stat the observer uses.
public struct ProcStat: Equatable, Sendable {
    public var comm: String
    public var state: Character
    public var ppid: Int32
    /// Field 22: start time in clock ticks after boot.
    public var startTime: UInt64

    /// Parses one stat line. The command name sits in parentheses and may itself contain
    /// spaces and parentheses, so the fields are counted from the last ')'.
    public init?(parsing bytes: [UInt8]) {
        guard let open = bytes.firstIndex(of: UInt8(ascii: "(")),
              let close = bytes.lastIndex(of: UInt8(ascii: ")")), open < close else { return nil }
        comm = String(decoding: bytes[(open + 1)..<close], as: UTF8.self)
        let rest = String(decoding: bytes[(close + 1)...], as: UTF8.self).split(separator: " ", omittingEmptySubsequences: true)
        // rest[0] is field 3 (state), so field N is rest[N - 3].
        guard rest.count >= 20, let s = rest[0].first, rest[0].count == 1,
              let ppid = Int32(rest[1]), let start = UInt64(rest[19].trimmingCharacters(in: "\n")) else { return nil }
        state = s
        self.ppid = ppid
        startTime = start
    }
}

public struct ObserverError: Error, CustomStringConvertible {
    public var path: String
    public var errno: Int32
    public var description: String { "cannot read \(path): \(String(cString: strerror(errno))); is /proc mounted?" }
}

extension Substring {
    func trimmingCharacters(in set: String) -> Substring {
        var s = self
        while let last = s.last, set.contains(last) { s = s.dropLast() }
        return s
    }
}

/// Reads a small file (a /proc or /sys entry) whole; nil if it vanished or cannot be read.
func readSmallFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 { if errno == EINTR { continue } else { return nil } }
        if n == 0 { return out }
        out.append(contentsOf: chunk.prefix(n))
    }
}

func listDirectory(_ path: String) -> [String]? {
    guard let dir = opendir(path) else { return nil }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

func readLink(_ path: String) -> String? {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink(path, &buffer, buffer.count)
    guard n >= 0 else { return nil }
    return String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
