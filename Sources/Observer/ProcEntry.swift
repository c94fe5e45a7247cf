import CShim
import Glibc
import LoopCore
import StateGraph
import SystemCalls

/// One process as last read.
final class ProcEntry {
    /// A process's descriptors as the graph shows them, built by the scanning thread that read
    /// them, so a refresh only gathers them: the descriptor nodes (and each anonymous inode's),
    /// the edges from the process and from each descriptor, and the shared objects referred to
    /// (their nodes are made once per refresh, however many descriptors hold them).
    struct Descriptors {
        var nodes: [Node] = []
        var edges: [Edge] = []
        /// Each shared object referred to, with the link text of the descriptor that showed it.
        var shared: [ObjectReference] = []
        var count = 0

        mutating func reserve(_ n: Int) {
            nodes.reserveCapacity(n)
            edges.reserveCapacity(2 * n)
            shared.reserveCapacity(n)
        }

        /// Descriptor `fd` of `owner`, classified, with what it refers to.
        mutating func add(_ fd: Node, of owner: NodeID, referring object: ObjectRef?) {
            count += 1
            nodes.append(fd)
            edges.append(Edge(owner, .owns, fd.id))
            switch object {
            case .own(let anonymous):
                nodes.append(anonymous)
                edges.append(Edge(fd.id, .owns, anonymous.id))
                edges.append(Edge(fd.id, .opened, anonymous.id))
            case .shared(let reference):
                edges.append(Edge(fd.id, .opened, reference.id))
                shared.append(reference)
            case nil: break
            }
        }
    }

    enum Recheck { case unchanged, changed, gone, reused }

    let pid: Int32
    let id: NodeID
    private(set) var statFD: Int32
    /// /proc/PID/fd kept open alongside stat, so the recheck is an fstat, not a path walk.
    private(set) var fdDirFD: Int32 = -1
    /// /proc/PID/schedstat, opened at the first recheck on the live procfs, and what it read:
    /// it changes whenever the main thread has run.
    private(set) var schedFD: Int32 = -1
    private var schedBytes: [UInt8] = []
    private(set) var statBytes: [UInt8]
    private(set) var stat: ProcStat
    private(set) var node: Node
    /// The fd directory's size and modification time when it was last scanned, taken before the
    /// scan. On procfs the size is the number of open descriptors (Linux ≥ 6.2); on a recorded
    /// tree size and mtime change with its entries. A different signature means rescan.
    private(set) var fdSignature: FDSignature
    private(set) var descriptors = Descriptors()
    /// The descriptors the observer keeps open on this process (its stat file and fd
    /// directory), as its own descriptor table will show them.
    var kept: [KeptDescriptor] = []
    private(set) var maps: [MappedFile]
    let netns: UInt64
    let mountns: UInt64
    /// `PID/fd`, relative to /proc, built once.
    let fdPath: String
    /// The sockets its descriptors hold.
    private(set) var sockets = SocketDigest()
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

    /// A process as its stat file reads; its descriptors and maps are read after.
    private init(pid: Int32, statFD: Int32, statBytes: [UInt8], stat: ProcStat, node: Node, netns: UInt64, mountns: UInt64,
                 includeMaps: Bool) {
        self.pid = pid
        id = node.id
        self.statFD = statFD
        self.statBytes = statBytes
        self.stat = stat
        self.node = node
        fdSignature = .none
        maps = []
        self.netns = netns
        self.mountns = mountns
        fdPath = "\(pid)/fd"
        self.includeMaps = includeMaps
        sockets = SocketDigest()
    }

    func close() {
        for fd in [statFD, fdDirFD, schedFD] where fd >= 0 { Glibc.close(fd) }
        relinquish()
    }

    /// Forget the kept descriptors without closing them: another entry has taken them over.
    private func relinquish() {
        kept = []
        statFD = -1
        fdDirFD = -1
        schedFD = -1
    }

    /// What a refresh did with one process.
    enum Visit { case unchanged, changed, read(ProcEntry), dropped(raced: Bool) }

    /// Recheck a known process or read a new one. Runs on a scanning thread: touches only this
    /// item's entry and the thread's own context.
    static func visit(_ item: ScanItem, procFD: Int32, includeMaps: Bool, context: inout ScanContext) -> Visit {
        if let entry = item.existing {
            switch entry.recheck(procFD: procFD, trustRuns: item.trustRuns, context: &context) {
            case .unchanged: return .unchanged
            case .changed: return .changed
            case .gone:
                entry.close()
                return .dropped(raced: false)
            case .reused: entry.close()
            }
        }
        guard let entry = read(pid: item.pid, procFD: procFD, keepOpen: item.keepOpen, includeMaps: includeMaps, adopting: item.adopt,
                                context: &context) else {
            return .dropped(raced: true)
        }
        return .read(entry)
    }

    /// `adopting`: the entry this process had, whose kept descriptors the new one takes over
    /// (unless the pid now names another process); it is left holding none.
    static func read(pid: Int32, procFD: Int32, keepOpen: Bool, includeMaps: Bool, adopting: ProcEntry? = nil,
                     context: inout ScanContext) -> ProcEntry? {
        var adopted = adopting
        // What the adopted stat descriptor reads now: this read's stat, unless the pid names
        // another process since (then nothing is adopted).
        var checked: [UInt8]?
        if let a = adopted {
            checked = keepOpen && a.statFD >= 0 ? preadAll(a.statFD, shortReadEnds: true) : nil
            if checked.flatMap(ProcStat.init(parsing:))?.startTime != a.stat.startTime {
                a.close()
                adopted = nil
                checked = nil
            }
        }
        // The process's directory, opened once: every file below is looked up from it, and its
        // owner is the process's.
        let dir = withDecimal(pid) { openat(procFD, $0, worldos_o_path() | O_DIRECTORY | O_CLOEXEC) }
        guard dir >= 0 else {
            adopted?.close()
            return nil
        }
        defer { Glibc.close(dir) }
        let fd = adopted?.statFD ?? openat(dir, "stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        guard let bytes = checked ?? preadAll(fd, shortReadEnds: true), let stat = ProcStat(parsing: bytes) else {
            if let adopted { adopted.close() } else { Glibc.close(fd) }
            return nil
        }
        context.stats.processesRead += 1
        var st = Glibc.stat()
        let owner = fstat(dir, &st) == 0 ? (Int64(st.st_uid), Int64(st.st_gid)) : (-1, -1)
        // cmdline and cgroup are produced whole on each read: a short read is their end.
        // A kernel thread has no command line, no descriptors and the kernel's namespaces: none
        // of them is read.
        let kernel = stat.kernelThread
        let cmdline = kernel ? "" : readAt(dir, "cmdline", shortReadEnds: true).map(joinArguments) ?? ""
        let cgroup: String
        if let known = context.cgroups?[pid] {
            cgroup = known
        } else {
            context.stats.cgroupReads += 1
            cgroup = readAt(dir, "cgroup", shortReadEnds: true).map(parseCgroup) ?? ""
        }
        let netns = kernel ? 0 : readLinkAt(dir, "ns/net").flatMap(namespaceInode) ?? 0
        let mountns = kernel ? 0 : readLinkAt(dir, "ns/mnt").flatMap(namespaceInode) ?? 0
        let id = NodeID.process(pid: pid, startTime: stat.startTime)
        let kernelThread = stat.ppid == 2 || pid == 2
        let node = Node(id: id, kind: .process, observability: kernelThread ? .background : .visible, attributes: [
            "pid": .int(Int64(pid)), "ppid": .int(Int64(stat.ppid)), "comm": .string(stat.comm), "state": .string(String(stat.state)),
            "start": .int(Int64(stat.startTime)), "uid": .int(owner.0), "gid": .int(owner.1), "cmdline": .string(cmdline),
            "cgroup": .string(cgroup), "priority": .int(stat.priority), "nice": .int(stat.nice), "threads": .int(stat.threads),
        ])
        let entry = ProcEntry(pid: pid, statFD: keepOpen ? fd : -1, statBytes: bytes, stat: stat, node: node, netns: netns,
                              mountns: mountns, includeMaps: includeMaps)
        if let a = adopted {
            (entry.fdDirFD, entry.schedFD, entry.schedBytes, entry.kept) = (a.fdDirFD, a.schedFD, a.schedBytes, a.kept)
            a.relinquish()
        } else if !keepOpen { Glibc.close(fd) } else if !kernel { entry.fdDirFD = openat(dir, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        if keepOpen, adopted == nil, let live = context.liveRoot {
            // The observer's own descriptor table shows these two: what they are is known now.
            for (kept, name) in [(entry.statFD, "stat"), (entry.fdDirFD, "fd")] where kept >= 0 {
                var st = Glibc.stat()
                if fstat(kept, &st) == 0 { entry.kept.append(KeptDescriptor(fd: kept, target: "\(live)/\(pid)/\(name)", stat: st)) }
            }
        }
        if kernel { entry.node["fds"] = .int(0) } else { entry.scanDescriptors(procFD: procFD, context: &context) }
        if includeMaps && !kernel { entry.maps = readAt(dir, "maps").map { ProcMaps.parse($0) } ?? [] }
        return entry
    }

    /// Cheap check: one pread of stat into the thread's buffer, compared in place, and one
    /// fstat of the fd directory. Allocates nothing when nothing changed. When `trustRuns`, a
    /// single-threaded process whose schedstat reads as before has not run: one pread, and
    /// nothing of it can have changed that its process events would not have told. Schedstat
    /// is read before stat and the fd directory, so a run after it shows at the next look.
    func recheck(procFD: Int32, trustRuns: Bool, context: inout ScanContext) -> Recheck {
        if statFD >= 0, let live = context.liveRoot {
            if schedFD < 0 {
                schedFD = openat(procFD, "\(pid)/schedstat", O_RDONLY | O_CLOEXEC)
                var st = Glibc.stat()
                if schedFD >= 0, fstat(schedFD, &st) == 0 { kept.append(KeptDescriptor(fd: schedFD, target: "\(live)/\(pid)/schedstat", stat: st)) }
            }
            if schedFD >= 0 {
                let schedFD = schedFD
                let n = context.buffer.withUnsafeMutableBytes { p in pread(schedFD, p.baseAddress, p.count, 0) }
                guard n > 0 else { return .gone }
                let same = n == schedBytes.count && context.buffer.withUnsafeBytes { a in
                    schedBytes.withUnsafeBytes { b in memcmp(a.baseAddress!, b.baseAddress!, n) == 0 }
                }
                if same && trustRuns && stat.threads == 1 {
                    context.stats.notRun += 1
                    return .unchanged
                }
                if !same { schedBytes = Array(context.buffer.prefix(n)) }
            }
        }
        context.stats.statRereads += 1
        var same = false
        var fresh: [UInt8]?
        if statFD >= 0 {
            let statFD = statFD, statBytes = statBytes
            let n = context.buffer.withUnsafeMutableBytes { p in pread(statFD, p.baseAddress, p.count, 0) }
            guard n > 0 else { return .gone }
            if n < context.buffer.count {
                same = n == statBytes.count && context.buffer.withUnsafeBytes { a in
                    statBytes.withUnsafeBytes { b in memcmp(a.baseAddress!, b.baseAddress!, n) == 0 }
                }
                if !same { fresh = Array(context.buffer.prefix(n)) }
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
        if stat.kernelThread { return changed ? .changed : .unchanged }
        var st = Glibc.stat()
        let statted = fdDirFD >= 0 ? fstat(fdDirFD, &st) == 0 : fstatat(procFD, fdPath, &st, 0) == 0
        guard statted else { return .gone }
        if FDSignature(st) != fdSignature {
            scanDescriptors(procFD: procFD, context: &context)
            changed = true
        }
        return changed ? .changed : .unchanged
    }

    func scanDescriptors(procFD: Int32, context: inout ScanContext) {
        context.stats.descriptorScans += 1
        if let source = context.ownKeptSource {
            context.ownKept = source()
            context.ownKeptSource = nil
        }
        descriptors = Descriptors()
        // The signature is taken as recheck takes it: before this scan opens the directory
        // (which, for the observer's own process, is one more descriptor).
        var st = Glibc.stat()
        let signed = fdDirFD >= 0 ? fstat(fdDirFD, &st) == 0 : fstatat(procFD, fdPath, &st, 0) == 0
        let kept = fdDirFD >= 0
        let dirFD = kept ? fdDirFD : openat(procFD, fdPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer { if !kept && dirFD >= 0 { Glibc.close(dirFD) } }
        guard signed, dirFD >= 0 else {
            fdSignature = .none
            node["fds"] = .int(0)
            sockets = SocketDigest()
            return
        }
        fdSignature = FDSignature(st)
        // On the live procfs (Linux ≥ 6.2) the directory's size is the number of open
        // descriptors, and most tables are dense: 0..<size are read without listing the
        // directory. The first gap (or a race) falls back to the listing for the rest.
        var dense: Int32 = 0
        if context.denseTables, st.st_size > 0, st.st_size < Int(Int32.max) {
            let count = Int32(st.st_size)
            descriptors.reserve(Int(count))
            while dense < count {
                if let known = context.ownKept[dense] {
                    describe(fd: dense, target: known.target, named: nil, stat: known.stat)
                } else if let n = context.readLink(dirFD, dense) {
                    add(dense, n, dirFD: dirFD, context: &context)
                } else {
                    break
                }
                dense += 1
            }
            if dense == count { return finishScan() }
        }
        context.stats.listings += 1
        guard !kept || lseek(dirFD, 0, SEEK_SET) == 0, let numbers = listNumbers(dirFD, buffer: &context.buffer) else {
            fdSignature = .none
            return finishScan()
        }
        for (i, n) in numbers.sorted().enumerated() where n >= dense {
            if let known = context.ownKept[n] {
                describe(fd: n, target: known.target, named: nil, stat: known.stat)
                continue
            }
            guard let length = context.readLink(dirFD, n) else {
                // Unreadable (EACCES: the whole directory is) or closed since the listing.
                if errno == EACCES {
                    context.stats.raced += numbers.count - i
                    break
                }
                context.stats.raced += 1
                continue
            }
            add(n, length, dirFD: dirFD, context: &context)
        }
        finishScan()
    }

    /// One descriptor whose link was read (its first `length` bytes in the context's buffer):
    /// classified, with a stat of what it refers to where the link does not say (a socket, pipe
    /// or anonymous inode is named by it: `socket:[123]`).
    private func add(_ n: Int32, _ length: Int, dirFD: Int32, context: inout ScanContext) {
        let (target, named) = context.link.withUnsafeBytes { bytes in
            let link = UnsafeRawBufferPointer(rebasing: bytes[0..<length])
            return (String(decoding: link, as: UTF8.self), NamedLink(link))
        }
        if let named {
            return describe(fd: n, target: target, named: named, stat: nil)
        }
        if let st = context.paths.lookup(target, mountNamespace: mountns) {
            return describe(fd: n, target: target, named: nil, stat: st)
        }
        var st = Glibc.stat()
        let statted = withDecimal(n) { fstatat(dirFD, $0, &st, 0) } == 0
        if !statted && errno == ENOENT {
            context.stats.raced += 1
            return
        }
        describe(fd: n, target: target, named: nil, stat: statted ? st : nil)
    }

    private func finishScan() {
        node["fds"] = .int(Int64(descriptors.count))
        sockets = SocketDigest()
        for reference in descriptors.shared where reference.key.kind == .socket { sockets.add(reference.key.a) }
    }

    /// Classify a descriptor by what the kernel says it refers to, and add it.
    private func describe(fd: Int32, target: String, named: NamedLink?, stat: Glibc.stat?) {
        let fdID = NodeID.fileDescriptor(owner: id, fd: fd)
        func shared(_ key: ObjectKey) -> ObjectRef { .shared(ObjectReference(key, target: target)) }
        func described(_ type: String, _ object: ObjectRef?) {
            descriptors.add(Node(id: fdID, kind: .fileDescriptor, observability: .background,
                                 attributes: ["fd": .int(Int64(fd)), "target": .string(target), "type": .string(type)]),
                            of: id, referring: object)
        }
        switch named {
        case .socket(let inode): return described("socket", shared(ObjectKey(kind: .socket, a: inode)))
        case .pipe(let inode): return described("fifo", shared(ObjectKey(kind: .pipe, a: inode)))
        case .anonymous(let subtype):
            return described(subtype, .own(Node(id: NodeID.anonymousInode(owner: id, fd: fd), kind: .anonInode, observability: .background,
                                                attributes: ["subtype": .string(subtype)])))
        case nil: break
        }
        guard let st = stat else { return described("unknown", nil) }
        let inode = UInt64(st.st_ino), dev = UInt64(st.st_dev), rdev = UInt64(st.st_rdev)
        switch st.st_mode & S_IFMT {
        case S_IFSOCK: return described("socket", shared(ObjectKey(kind: .socket, a: inode)))
        case S_IFIFO: return described("fifo", shared(ObjectKey(kind: .fifo, a: dev, b: inode)))
        case S_IFCHR:
            return described("char-device", shared(ObjectKey(kind: .charDevice, a: deviceMajor(rdev), b: deviceMinor(rdev))))
        case S_IFBLK:
            return described("block-device", shared(ObjectKey(kind: .blockDevice, a: deviceMajor(rdev), b: deviceMinor(rdev))))
        case S_IFDIR: return described("directory", shared(ObjectKey(kind: .directory, a: dev, b: inode)))
        default: return described("regular", shared(ObjectKey(kind: .regular, a: dev, b: inode)))
        }
    }
}

/// What a descriptor's link names without a stat: `socket:[123]`, `pipe:[456]`,
/// `anon_inode:[eventfd]` (or `anon_inode:inotify`). Read from the link's bytes.
enum NamedLink: Equatable {
    case socket(UInt64)
    case pipe(UInt64)
    case anonymous(String)

    init?(_ link: UnsafeRawBufferPointer) {
        func after(_ prefix: StaticString) -> UnsafeRawBufferPointer? {
            let p = UnsafeRawBufferPointer(start: prefix.utf8Start, count: prefix.utf8CodeUnitCount)
            guard link.count >= p.count, memcmp(link.baseAddress!, p.baseAddress!, p.count) == 0 else { return nil }
            return UnsafeRawBufferPointer(rebasing: link[p.count...])
        }
        func bracketed(_ rest: UnsafeRawBufferPointer) -> UInt64? {
            guard rest.last == UInt8(ascii: "]") else { return nil }
            return decimal(rest.dropLast())
        }
        if let rest = after("socket:["), let inode = bracketed(rest) {
            self = .socket(inode)
        } else if let rest = after("pipe:["), let inode = bracketed(rest) {
            self = .pipe(inode)
        } else if var rest = after("anon_inode:") {
            if rest.count >= 2, rest.first == UInt8(ascii: "["), rest.last == UInt8(ascii: "]") {
                rest = UnsafeRawBufferPointer(rebasing: rest[(rest.startIndex + 1)..<(rest.endIndex - 1)])
            }
            self = .anonymous(String(decoding: rest, as: UTF8.self))
        } else {
            return nil
        }
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
