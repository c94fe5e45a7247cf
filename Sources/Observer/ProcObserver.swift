import Glibc
import LoopCore
import StateGraph

/// Observes processes, their descriptors and what those refer to, from the real /proc.
///
/// Identity: a process is pid + start time (a reused pid is a new node); a regular file or
/// directory is device + inode; a character or block device is its major:minor; a pipe or
/// socket is its inode, and sockets carry their addresses and state from /proc/PID/net/* of
/// their own network namespace.
///
/// Incremental: each process's stat file and fd directory stay open; stat is re-read with one
/// pread and the directory fstat'ed; the descriptor table is re-read only when its size (on
/// procfs, the number of open descriptors) changed, when the process is new, or every `fullRescanEvery`
/// refreshes (which also catches a descriptor swapped for another with the count unchanged, and
/// TCP state changes). A refresh that finds nothing changed hands back the previous arrays.
///
/// Races are normal: a process that exits between readdir and read, or a descriptor closed
/// between readdir and readlink, is counted in `raced` and skipped; the rest of the step stands.
public struct ProcObserver: Observing {
    public static let scope: Set<NodeKind> = [.process, .fileDescriptor, .file, .socket, .pipe, .anonInode]
    public let root: String
    private let cache: ProcCache

    /// - Parameters:
    ///   - root: the proc filesystem; a recorded tree in tests.
    ///   - includeMaps: also read /proc/PID/maps and add a `backs` edge from each mapped file.
    ///   - fullRescanEvery: re-read everything every this many refreshes (0: never).
    public init(root: String = "/proc", includeMaps: Bool = false, fullRescanEvery: Int = 20) {
        self.root = root
        cache = ProcCache(root: root, includeMaps: includeMaps, fullRescanEvery: fullRescanEvery)
    }

    /// What the last refresh read, for tests and the benchmark.
    public var lastRefresh: RefreshStats { cache.stats }

    public mutating func observe(at now: Instant) throws -> Observation {
        try refresh(at: now, full: false)
    }

    /// Refresh; `full` ignores every cache.
    public mutating func refresh(at now: Instant, full: Bool) throws -> Observation {
        let (nodes, edges, supervisor, raced) = try cache.refresh(full: full)
        return Observation(time: now, scope: Self.scope, nodes: nodes, edges: edges, supervisor: supervisor, raced: raced)
    }
}

/// What one refresh read.
public struct RefreshStats: Equatable, Sendable {
    public var full = false
    public var processesRead = 0
    public var statRereads = 0
    public var descriptorScans = 0
    public var netTableReads = 0
    public var raced = 0
    public var changed = false
}

public struct ObserverError: Error, CustomStringConvertible {
    public var path: String
    public var errno: Int32
    public var description: String { "cannot read \(path): \(String(cString: strerror(errno))); is /proc mounted?" }
}

/// The observer's memory between refreshes. A class: it owns descriptors (the /proc directory
/// and each process's stat file) and closes them in deinit.
final class ProcCache {
    let root: String
    let includeMaps: Bool
    let fullRescanEvery: Int
    private var procFD: Int32 = -1
    private var entries: [Int32: ProcEntry] = [:]
    private var sockets: [UInt64: [UInt64: SocketEntry]] = [:]
    private var socketSignature: [UInt64: Set<UInt64>] = [:]
    private var lastNodes: [Node] = []
    private var lastEdges: [Edge] = []
    private var refreshes = 0
    private var keepOpenBudget: Int
    /// The observer's own mount namespace: paths other processes' descriptors show resolve the
    /// same way for it, so a path is stat'ed once per refresh instead of once per descriptor.
    private lazy var ownMountNamespace: UInt64 = readLinkAt(AT_FDCWD, "\(root)/self/ns/mnt").flatMap(namespaceInode) ?? 0
    var stats = RefreshStats()

    init(root: String, includeMaps: Bool, fullRescanEvery: Int) {
        self.root = root
        self.includeMaps = includeMaps
        self.fullRescanEvery = fullRescanEvery
        // Each process kept open costs two descriptors (stat and the fd directory): raise the
        // soft limit to the hard one and use at most half of it, falling back to
        // open/read/close (and a path walk) beyond that.
        var limit = rlimit()
        getrlimit(RLIMIT_NOFILE_, &limit)
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = min(limit.rlim_max, 1 << 20)
            setrlimit(RLIMIT_NOFILE_, &limit)
            getrlimit(RLIMIT_NOFILE_, &limit)
        }
        keepOpenBudget = Int(min(limit.rlim_cur, 1 << 20)) / 4
    }

    deinit {
        for e in entries.values { e.close() }
        if procFD >= 0 { close(procFD) }
    }

    func refresh(full requested: Bool) throws -> ([Node], [Edge], NodeID?, Int) {
        refreshes += 1
        let full = requested || (fullRescanEvery > 0 && refreshes % fullRescanEvery == 0) || procFD < 0
        stats = RefreshStats(full: full)
        var pathCache = PathStatCache(mountNamespace: ownMountNamespace)
        if procFD < 0 {
            procFD = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard procFD >= 0 else { throw ObserverError(path: root, errno: errno) }
        }
        let pids = try listPids()
        var changed = full
        var seen = Set<Int32>()
        seen.reserveCapacity(pids.count)
        for pid in pids {
            seen.insert(pid)
            if let entry = entries[pid], !full {
                switch entry.recheck(procFD: procFD, paths: &pathCache, stats: &stats) {
                case .unchanged: continue
                case .changed:
                    changed = true
                    continue
                case .gone:
                    entry.close()
                    entries[pid] = nil
                    changed = true
                    continue
                case .reused:
                    entry.close()
                    entries[pid] = nil
                    changed = true
                }
            } else if let entry = entries[pid] {
                entry.close()
                entries[pid] = nil
            }
            // A process that cannot be read (it exited, or its stat is unreadable) is a race,
            // not a change: it was never in the graph.
            if let entry = ProcEntry.read(pid: pid, procFD: procFD, keepOpen: entries.count < keepOpenBudget,
                                          includeMaps: includeMaps, paths: &pathCache, stats: &stats) {
                entries[pid] = entry
                changed = true
            } else {
                stats.raced += 1
            }
        }
        for pid in entries.keys where !seen.contains(pid) {
            entries[pid]?.close()
            entries[pid] = nil
            changed = true
        }
        if refreshSockets(force: full) { changed = true }
        stats.changed = changed
        if changed { assemble() }
        return (lastNodes, lastEdges, entries[getpid()]?.id, stats.raced)
    }

    private func listPids() throws -> [Int32] {
        let dup = dup(procFD)
        guard dup >= 0, let dir = fdopendir(dup) else { throw ObserverError(path: root, errno: errno) }
        defer { closedir(dir) }
        rewinddir(dir)
        var pids: [Int32] = []
        while let entry = readdir(dir) {
            let first = entry.pointee.d_name.0
            guard first >= 0x31, first <= 0x39 else { continue }
            if let pid = Int32(entryName(entry)) { pids.append(pid) }
        }
        return pids.sorted()
    }

    /// Re-read the socket tables of every network namespace whose set of socket inodes changed.
    private func refreshSockets(force: Bool) -> Bool {
        var byNamespace: [UInt64: (pid: Int32, inodes: Set<UInt64>)] = [:]
        for (pid, entry) in entries where !entry.socketInodes.isEmpty {
            byNamespace[entry.netns, default: (pid, [])].inodes.formUnion(entry.socketInodes)
        }
        var changed = false
        for (ns, (pid, inodes)) in byNamespace where force || socketSignature[ns] != inodes {
            var table: [UInt64: SocketEntry] = [:]
            for (file, name) in [("tcp", "tcp"), ("tcp6", "tcp6"), ("udp", "udp"), ("udp6", "udp6"), ("unix", "unix")] {
                guard let bytes = readAt(procFD, "\(pid)/net/\(file)") else { continue }
                stats.netTableReads += 1
                let parsed = name == "unix" ? NetTable.parseUnix(bytes) : NetTable.parseInet(bytes, protocolName: name)
                for s in parsed.entries where inodes.contains(s.inode) { table[s.inode] = s }
            }
            if sockets[ns] != table { changed = true }
            sockets[ns] = table
            socketSignature[ns] = inodes
        }
        for ns in sockets.keys where byNamespace[ns] == nil {
            sockets[ns] = nil
            socketSignature[ns] = nil
            changed = true
        }
        return changed
    }

    /// Build the observation's nodes and edges from the entries.
    private func assemble() {
        var nodes: [Node] = []
        var edges: [Edge] = []
        var objects: [NodeID: Node] = [:]
        nodes.reserveCapacity(lastNodes.count + 64)
        edges.reserveCapacity(lastEdges.count + 64)
        for entry in entries.values {
            nodes.append(entry.node)
            if let parent = entries[entry.stat.ppid] { edges.append(Edge(parent.id, .parentOf, entry.id)) }
            for fd in entry.fds {
                nodes.append(fd.node)
                edges.append(Edge(entry.id, .owns, fd.node.id))
                if var object = fd.object {
                    if object.kind == .anonInode {
                        nodes.append(object)
                        edges.append(Edge(fd.node.id, .owns, object.id))
                    } else if objects[object.id] == nil {
                        if object.kind == .socket, let s = sockets[entry.netns]?[fd.inode] {
                            object["protocol"] = .string(s.protocolName)
                            object["local"] = .string(s.local)
                            object["remote"] = .string(s.remote)
                            object["state"] = .string(s.state)
                        }
                        objects[object.id] = object
                    }
                    edges.append(Edge(fd.node.id, .opened, object.id))
                }
            }
            for mapped in entry.maps {
                let id = NodeID.object(.file, "\(mapped.device):\(mapped.inode)")
                if objects[id] == nil {
                    objects[id] = Node(id: id, kind: .file, observability: .background,
                                       attributes: ["path": .string(mapped.path), "type": .string("regular"),
                                                    "dev": .int(Int64(bitPattern: mapped.device)), "ino": .int(Int64(bitPattern: mapped.inode))])
                }
                edges.append(Edge(id, .backs, entry.id))
            }
        }
        nodes.append(contentsOf: objects.values)
        lastNodes = nodes
        lastEdges = edges
    }
}

/// One process as last read.
final class ProcEntry {
    struct FD {
        var number: Int32
        var node: Node
        /// The file, device, pipe, socket or anonymous inode it refers to.
        var object: Node?
        var inode: UInt64
    }

    enum Recheck { case unchanged, changed, gone, reused }

    let pid: Int32
    let id: NodeID
    private(set) var statFD: Int32
    /// /proc/PID/fd kept open alongside stat, so the recheck is an fstat, not a path walk.
    private(set) var fdDirFD: Int32 = -1
    private(set) var statBytes: [UInt8]
    private(set) var stat: ProcStat
    private(set) var node: Node
    /// The fd directory's size and modification time when it was last scanned, taken before the
    /// scan. On procfs the size is the number of open descriptors (Linux ≥ 6.2); on a recorded
    /// tree size and mtime change with its entries. A different signature means rescan.
    private(set) var fdSignature: FDSignature
    private(set) var fds: [FD]
    private(set) var maps: [MappedFile]
    let netns: UInt64
    let mountns: UInt64
    /// `PID/fd`, relative to /proc, built once.
    let fdPath: String
    private(set) var socketInodes: Set<UInt64>
    private let includeMaps: Bool

    struct FDSignature: Equatable {
        var size: Int
        var seconds: Int
        var nanoseconds: Int
        static let none = FDSignature(size: -1, seconds: 0, nanoseconds: 0)
        init(size: Int, seconds: Int, nanoseconds: Int) {
            self.size = size
            self.seconds = seconds
            self.nanoseconds = nanoseconds
        }
        init(_ st: Glibc.stat) {
            self.init(size: Int(st.st_size), seconds: st.st_mtim.tv_sec, nanoseconds: st.st_mtim.tv_nsec)
        }
    }

    private init(pid: Int32, statFD: Int32, statBytes: [UInt8], stat: ProcStat, node: Node, fds: [FD],
                 maps: [MappedFile], netns: UInt64, mountns: UInt64, includeMaps: Bool) {
        self.pid = pid
        id = node.id
        self.statFD = statFD
        self.statBytes = statBytes
        self.stat = stat
        self.node = node
        fdSignature = .none
        self.fds = fds
        self.maps = maps
        self.netns = netns
        self.mountns = mountns
        fdPath = "\(pid)/fd"
        self.includeMaps = includeMaps
        socketInodes = Set(fds.filter { $0.object?.kind == .socket }.map(\.inode))
    }

    func close() {
        if statFD >= 0 { Glibc.close(statFD) }
        if fdDirFD >= 0 { Glibc.close(fdDirFD) }
        statFD = -1
        fdDirFD = -1
    }

    static func read(pid: Int32, procFD: Int32, keepOpen: Bool, includeMaps: Bool, paths: inout PathStatCache,
                     stats: inout RefreshStats) -> ProcEntry? {
        let fd = openat(procFD, "\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        guard let bytes = preadAll(fd, shortReadEnds: true), let stat = ProcStat(parsing: bytes) else {
            Glibc.close(fd)
            return nil
        }
        stats.processesRead += 1
        var st = Glibc.stat()
        let owner = fstatat(procFD, "\(pid)", &st, 0) == 0 ? (Int64(st.st_uid), Int64(st.st_gid)) : (-1, -1)
        let cmdline = readAt(procFD, "\(pid)/cmdline").map { bytes in
            String(decoding: Array(bytes.split(separator: 0).joined(separator: [0x20])), as: UTF8.self)
        } ?? ""
        let cgroup = readAt(procFD, "\(pid)/cgroup").map(parseCgroup) ?? ""
        let netns = readLinkAt(procFD, "\(pid)/ns/net").flatMap(namespaceInode) ?? 0
        let mountns = readLinkAt(procFD, "\(pid)/ns/mnt").flatMap(namespaceInode) ?? 0
        let id = NodeID.process(pid: pid, startTime: stat.startTime)
        let kernelThread = stat.ppid == 2 || pid == 2
        let node = Node(id: id, kind: .process, observability: kernelThread ? .background : .visible, attributes: [
            "pid": .int(Int64(pid)), "ppid": .int(Int64(stat.ppid)), "comm": .string(stat.comm), "state": .string(String(stat.state)),
            "start": .int(Int64(stat.startTime)), "uid": .int(owner.0), "gid": .int(owner.1), "cmdline": .string(cmdline),
            "cgroup": .string(cgroup), "priority": .int(stat.priority), "nice": .int(stat.nice), "threads": .int(stat.threads),
        ])
        let entry = ProcEntry(pid: pid, statFD: keepOpen ? fd : -1, statBytes: bytes, stat: stat, node: node, fds: [],
                              maps: [], netns: netns, mountns: mountns, includeMaps: includeMaps)
        if !keepOpen { Glibc.close(fd) } else { entry.fdDirFD = openat(procFD, "\(pid)/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        entry.scanDescriptors(procFD: procFD, paths: &paths, stats: &stats)
        if includeMaps { entry.maps = readAt(procFD, "\(pid)/maps").map { ProcMaps.parse($0) } ?? [] }
        return entry
    }

    /// Cheap check: one pread of stat into a reused buffer, compared in place, and one fstatat
    /// of the fd directory. Allocates nothing when nothing changed.
    func recheck(procFD: Int32, paths: inout PathStatCache, stats: inout RefreshStats) -> Recheck {
        stats.statRereads += 1
        var same = false
        var fresh: [UInt8]?
        if statFD >= 0 {
            let n = ProcEntry.scratch.withUnsafeMutableBytes { p in pread(statFD, p.baseAddress, p.count, 0) }
            guard n > 0 else { return .gone }
            if n < ProcEntry.scratch.count {
                same = n == statBytes.count && ProcEntry.scratch.withUnsafeBytes { a in
                    statBytes.withUnsafeBytes { b in memcmp(a.baseAddress!, b.baseAddress!, n) == 0 }
                }
                if !same { fresh = Array(ProcEntry.scratch.prefix(n)) }
            } else {
                fresh = preadAll(statFD)
            }
        } else {
            fresh = readAt(procFD, "\(pid)/stat")
            guard fresh != nil else { return .gone }
        }
        var changed = false
        if !same, let bytes = fresh, bytes != statBytes {
            guard let parsed = ProcStat(parsing: bytes) else { return .gone }
            guard parsed.startTime == stat.startTime else { return .reused }
            if parsed != stat {
                stat = parsed
                node["ppid"] = .int(Int64(parsed.ppid))
                node["comm"] = .string(parsed.comm)
                node["state"] = .string(String(parsed.state))
                node["priority"] = .int(parsed.priority)
                node["nice"] = .int(parsed.nice)
                node["threads"] = .int(parsed.threads)
                changed = true
            }
            statBytes = bytes
        }
        var st = Glibc.stat()
        let statted = fdDirFD >= 0 ? fstat(fdDirFD, &st) == 0 : fstatat(procFD, fdPath, &st, 0) == 0
        guard statted else { return .gone }
        if FDSignature(st) != fdSignature {
            scanDescriptors(procFD: procFD, paths: &paths, stats: &stats)
            changed = true
        }
        return changed ? .changed : .unchanged
    }

    /// The buffer rechecks read stat lines into (one loop, one thread: never shared).
    nonisolated(unsafe) static var scratch = [UInt8](repeating: 0, count: 1024)

    func scanDescriptors(procFD: Int32, paths: inout PathStatCache, stats: inout RefreshStats) {
        stats.descriptorScans += 1
        fds = []
        // The signature is taken as recheck takes it: before this scan opens the directory
        // (which, for the observer's own process, is one more descriptor).
        var st = Glibc.stat()
        let signed = fdDirFD >= 0 ? fstat(fdDirFD, &st) == 0 : fstatat(procFD, "\(pid)/fd", &st, 0) == 0
        let dirFD = openat(procFD, "\(pid)/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard signed, dirFD >= 0, let dir = fdopendir(dirFD) else {
            if dirFD >= 0 { Glibc.close(dirFD) }
            fdSignature = .none
            node["fds"] = .int(0)
            socketInodes = []
            return
        }
        fdSignature = FDSignature(st)
        defer { closedir(dir) }
        var numbers: [Int32] = []
        while let entry = readdir(dir) {
            if let n = Int32(entryName(entry)) { numbers.append(n) }
        }
        for n in numbers.sorted() {
            let name = String(n)
            guard let target = readLinkAt(dirFD, name) else { stats.raced += 1; continue }
            // Anonymous inodes, sockets and pipes are named by their link (`socket:[123]`): no stat needed.
            if target.hasPrefix("anon_inode:") || target.hasPrefix("socket:[") || target.hasPrefix("pipe:[") {
                fds.append(ProcEntry.describe(fd: n, owner: id, target: target, stat: nil))
                continue
            }
            if let st = paths.lookup(target, mountNamespace: mountns) {
                fds.append(ProcEntry.describe(fd: n, owner: id, target: target, stat: st))
                continue
            }
            var st = Glibc.stat()
            let statted = fstatat(dirFD, name, &st, 0) == 0
            if !statted && errno == ENOENT { stats.raced += 1; continue }
            fds.append(ProcEntry.describe(fd: n, owner: id, target: target, stat: statted ? st : nil))
        }
        node["fds"] = .int(Int64(fds.count))
        socketInodes = Set(fds.filter { $0.object?.kind == .socket }.map(\.inode))
    }

    /// Classify a descriptor by what the kernel says it refers to.
    static func describe(fd: Int32, owner: NodeID, target: String, stat: Glibc.stat?) -> FD {
        let fdID = NodeID.fileDescriptor(owner: owner, fd: fd)
        var attributes: [String: AttributeValue] = ["fd": .int(Int64(fd)), "target": .string(target)]
        var object: Node?
        var inode: UInt64 = 0
        if let inode = bracketedInode(target, prefix: "socket:[") {
            attributes["type"] = .string("socket")
            object = Node(id: .object(.socket, String(inode)), kind: .socket, observability: .background,
                          attributes: ["ino": .int(Int64(bitPattern: inode)), "protocol": .string("other")])
            return FD(number: fd, node: Node(id: fdID, kind: .fileDescriptor, observability: .background, attributes: attributes),
                      object: object, inode: inode)
        }
        if let inode = bracketedInode(target, prefix: "pipe:[") {
            attributes["type"] = .string("fifo")
            object = Node(id: .object(.pipe, String(inode)), kind: .pipe, observability: .background,
                          attributes: ["name": .string(target), "ino": .int(Int64(bitPattern: inode))])
            return FD(number: fd, node: Node(id: fdID, kind: .fileDescriptor, observability: .background, attributes: attributes),
                      object: object, inode: inode)
        }
        if target.hasPrefix("anon_inode:") {
            var subtype = String(target.dropFirst("anon_inode:".count))
            if subtype.hasPrefix("[") && subtype.hasSuffix("]") { subtype = String(subtype.dropFirst().dropLast()) }
            attributes["type"] = .string(subtype)
            object = Node(id: NodeID("anon:\(owner.rawValue)#\(fd)"), kind: .anonInode, observability: .background,
                          attributes: ["subtype": .string(subtype)])
        } else if let st = stat {
            inode = UInt64(st.st_ino)
            let dev = UInt64(st.st_dev)
            switch st.st_mode & S_IFMT {
            case S_IFSOCK:
                attributes["type"] = .string("socket")
                object = Node(id: .object(.socket, String(inode)), kind: .socket, observability: .background,
                              attributes: ["ino": .int(Int64(bitPattern: inode)), "protocol": .string("other")])
            case S_IFIFO:
                attributes["type"] = .string("fifo")
                object = Node(id: .object(.pipe, "\(dev):\(inode)"), kind: .pipe, observability: .background,
                              attributes: ["name": .string(target), "ino": .int(Int64(bitPattern: inode))])
            case S_IFCHR, S_IFBLK:
                let rdev = UInt64(st.st_rdev)
                let kind = st.st_mode & S_IFMT == S_IFCHR ? "char-device" : "block-device"
                attributes["type"] = .string(kind)
                object = Node(id: NodeID("device:\(kind == "char-device" ? "c" : "b"):\(deviceMajor(rdev)):\(deviceMinor(rdev))"), kind: .file,
                              observability: .background, attributes: ["path": .string(target), "type": .string(kind),
                                                                      "major": .int(Int64(deviceMajor(rdev))), "minor": .int(Int64(deviceMinor(rdev)))])
            default:
                let kind = st.st_mode & S_IFMT == S_IFDIR ? "directory" : "regular"
                attributes["type"] = .string(kind)
                object = Node(id: .object(.file, "\(dev):\(inode)"), kind: .file, observability: .background,
                              attributes: ["path": .string(target), "type": .string(kind),
                                           "dev": .int(Int64(bitPattern: dev)), "ino": .int(Int64(bitPattern: inode))])
            }
        } else {
            attributes["type"] = .string("unknown")
        }
        return FD(number: fd, node: Node(id: fdID, kind: .fileDescriptor, observability: .background, attributes: attributes),
                  object: object, inode: inode)
    }
}

/// stat results by path, for one refresh, for descriptors of processes that share the
/// observer's mount namespace. Only absolute paths of files that still exist are cached:
/// `socket:[…]`, `pipe:[…]`, `… (deleted)` and anything else go through the descriptor itself.
struct PathStatCache {
    let mountNamespace: UInt64
    private var cache: [String: Glibc.stat?] = [:]

    init(mountNamespace: UInt64) { self.mountNamespace = mountNamespace }

    mutating func lookup(_ path: String, mountNamespace ns: UInt64) -> Glibc.stat? {
        guard ns == mountNamespace, ns != 0, path.hasPrefix("/"), !path.hasSuffix(" (deleted)") else { return nil }
        if let hit = cache[path] { return hit }
        var st = Glibc.stat()
        let result: Glibc.stat? = stat(path, &st) == 0 ? st : nil
        cache[path] = result
        return result
    }
}

/// `socket:[123]` → 123 (for the given prefix).
func bracketedInode(_ target: String, prefix: String) -> UInt64? {
    guard target.hasPrefix(prefix), target.hasSuffix("]") else { return nil }
    return UInt64(target.dropFirst(prefix.count).dropLast())
}

/// `0::/user.slice/x` (cgroup v2) or the first hierarchy's path.
func parseCgroup(_ bytes: [UInt8]) -> String {
    let lines = bytes.split(separator: UInt8(ascii: "\n")).map { String(decoding: $0, as: UTF8.self) }
    let line = lines.first { $0.hasPrefix("0::") } ?? lines.first ?? ""
    return line.split(separator: ":", maxSplits: 2).last.map(String.init) ?? ""
}

/// `net:[4026531840]` → 4026531840.
func namespaceInode(_ link: String) -> UInt64? {
    guard let open = link.firstIndex(of: "["), let close = link.lastIndex(of: "]") else { return nil }
    return UInt64(link[link.index(after: open)..<close])
}

func entryName(_ entry: UnsafeMutablePointer<dirent>) -> String {
    withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
}

/// A whole small file read from offset 0 of an open descriptor (fresh each time for /proc files).
/// With `shortReadEnds`, a read shorter than the buffer is taken as the end: true of files
/// procfs generates in one go (a stat line), never of seq_file tables like /proc/net/tcp, which
/// hand over whole records per read and so return short reads before their end.
func preadAll(_ fd: Int32, shortReadEnds: Bool = false) -> [UInt8]? {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 4096) { chunk -> [UInt8]? in
        var out: [UInt8] = []
        var offset = 0
        while true {
            let n = pread(fd, chunk.baseAddress, chunk.count, off_t(offset))
            if n < 0 { if errno == EINTR { continue } else { return nil } }
            if n == 0 { return out }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: chunk[0..<n]))
            if shortReadEnds && n < chunk.count { return out }
            offset += n
        }
    }
}

/// A whole small file under a directory descriptor; nil if it vanished or cannot be read.
func readAt(_ dirFD: Int32, _ path: String) -> [UInt8]? {
    let fd = openat(dirFD, path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { Glibc.close(fd) }
    return preadAll(fd)
}

func readLinkAt(_ dirFD: Int32, _ path: String) -> String? {
    withUnsafeTemporaryAllocation(of: CChar.self, capacity: 4096) { buffer -> String? in
        let n = readlinkat(dirFD, path, buffer.baseAddress!, buffer.count)
        guard n >= 0 else { return nil }
        return UnsafeRawBufferPointer(start: buffer.baseAddress, count: n).withMemoryRebound(to: UInt8.self) {
            String(decoding: $0, as: UTF8.self)
        }
    }
}

private let RLIMIT_NOFILE_ = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
