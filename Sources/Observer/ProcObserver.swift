import CShim
import Dispatch
import Glibc
import LoopCore
import StateGraph
import Synchronization

/// Observes processes, their descriptors and what those refer to, from the real /proc.
///
/// Identity: a process is pid + start time (a reused pid is a new node); a regular file or
/// directory is device + inode; a character or block device is its major:minor; a pipe or
/// socket is its inode, and sockets carry their addresses and state from their own network
/// namespace: socket diagnostics (netlink) for the observer's, /proc/PID/net/* for others.
///
/// Incremental: each process's stat file and fd directory stay open; stat is re-read with one
/// pread and the directory fstat'ed; the descriptor table is re-read only when its size (on
/// procfs, the number of open descriptors) changed, when the process is new, or every `fullRescanEvery`
/// refreshes (which also catches a descriptor swapped for another with the count unchanged, and
/// TCP state changes). While the kernel's process events are all heard, a single-threaded
/// process whose schedstat (kept open too) reads as before has not run, and is not re-read at
/// all: what changes it without it running is its parent's exit, which the events tell; its
/// nice value set by another process waits until it runs or the next full refresh. /proc itself
/// is listed only when the kernel's process events say a process may have started since (a fork
/// of a new process, or events lost), or on a full refresh; without them (not root), every
/// refresh lists it. A refresh that finds nothing changed hands back the previous arrays; one
/// that finds a few processes changed, new or gone patches their parts of them; a full refresh,
/// or one where many changed, assembles them anew.
///
/// Parallel: processes are visited on one thread per core (at most four) when there are more
/// than a few dozen; each thread reads a process (a readlink per descriptor) and builds its
/// descriptor nodes and edges, and the refresh then gathers them and makes one node per shared
/// object. A dense descriptor table (0..<count, the count being the fd directory's size on the
/// live procfs) is read without listing the directory.
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
    ///   - scanThreads: threads a refresh visits processes on; nil: one per online core, at most four.
    ///   - denseTables: read a descriptor table as 0..<count without listing it where procfs
    ///     gives the count (false: always list; tests compare the two).
    public init(root: String = "/proc", includeMaps: Bool = false, fullRescanEvery: Int = 20, scanThreads: Int? = nil,
                denseTables: Bool = true) {
        self.root = root
        let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let procfs = worldos_filesystem_magic(root) == 0x9FA0  // PROC_SUPER_MAGIC
        cache = ProcCache(root: root, includeMaps: includeMaps, fullRescanEvery: fullRescanEvery,
                          scanThreads: max(1, scanThreads ?? min(cores, 4)), denseTables: denseTables && procfs)
    }

    /// What the last refresh read, for tests and the benchmark.
    public var lastRefresh: RefreshStats { cache.stats }

    /// Whether the kernel's process events reach this observer, so a refresh lists /proc only
    /// when a process may have started (root and the live /proc; otherwise every refresh lists).
    public var hearsProcessStarts: Bool { cache.hearsProcessStarts }

    public mutating func observe(at now: Instant) throws -> Observation {
        try refresh(at: now, full: false)
    }

    /// Refresh; `full` ignores every cache.
    public mutating func refresh(at now: Instant, full: Bool) throws -> Observation {
        let (nodes, edges, supervisor, raced) = try cache.refresh(full: full)
        return Observation(time: now, scope: Self.scope, nodes: nodes, edges: edges, supervisor: supervisor, raced: raced,
                           stamp: cache.stamp, change: cache.change)
    }
}

/// What one refresh read.
public struct RefreshStats: Equatable, Sendable {
    public var full = false
    public var processesRead = 0
    public var statRereads = 0
    /// Processes taken as unchanged because their main thread had not run since the last look
    /// (their stat file and fd directory were not read).
    public var notRun = 0
    public var descriptorScans = 0
    /// Descriptor scans that listed the fd directory (the others read a dense table directly).
    public var listings = 0
    /// Whether /proc itself was listed (otherwise the processes were the ones last found: the
    /// kernel's process events said none had started).
    public var listedProcesses = false
    public var netTableReads = 0
    /// Processes whose cgroup was read from /proc/PID/cgroup (the others' came from the
    /// unified hierarchy's cgroup.procs files, read once per full refresh).
    public var cgroupReads = 0
    /// Socket tables read through socket diagnostics (netlink) instead of /proc/net.
    public var socketDumps = 0
    public var raced = 0
    public var changed = false
    /// Processes whose part of the last observation was patched in place (0: assembled anew).
    public var patched = 0

    mutating func add(_ other: RefreshStats) {
        processesRead += other.processesRead
        statRereads += other.statRereads
        notRun += other.notRun
        descriptorScans += other.descriptorScans
        listings += other.listings
        netTableReads += other.netTableReads
        cgroupReads += other.cgroupReads
        raced += other.raced
    }
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
    let scanThreads: Int
    private var procFD: Int32 = -1
    /// Where /proc's directory entries are read into.
    private var listing = [UInt8](repeating: 0, count: 1 << 16)
    private var entries: [Int32: ProcEntry] = [:]
    private var sockets: [UInt64: [UInt64: SocketEntry]] = [:]
    private var socketSignature: [UInt64: SocketDigest] = [:]
    private var lastNodes: [Node] = []
    private var lastEdges: [Edge] = []
    private var layout = Layout()
    private var refreshes = 0
    /// The processes the last refresh found: visited again when no process has started since.
    private var known: [Int32] = []
    /// The kernel's process events, when it gives them to this observer (root, the live /proc).
    private let processEvents: ProcessEvents?
    var hearsProcessStarts: Bool { processEvents != nil }
    private var keepOpenBudget: Int
    /// The descriptor table's size made room for (see `reserveDescriptorTable`).
    private var reservedDescriptors = 0
    /// The observer's own mount namespace: paths other processes' descriptors show resolve the
    /// same way for it, so a path is stat'ed once per refresh instead of once per descriptor.
    private lazy var ownMountNamespace: UInt64 = readLinkAt(AT_FDCWD, "\(root)/self/ns/mnt").flatMap(namespaceInode) ?? 0
    /// Where the unified cgroup hierarchy is mounted, when `root` is the live /proc: a full
    /// refresh reads every process's cgroup from it at once (see `CgroupTree`).
    private lazy var cgroupMount: String? = root == "/proc" ? readAt(AT_FDCWD, "/proc/self/mountinfo").flatMap(CgroupTree.mountPoint) : nil
    /// The observer's own network namespace, when `root` is the live /proc (0 otherwise).
    private lazy var ownNetNamespace: UInt64 = root == "/proc" ? readLinkAt(AT_FDCWD, "/proc/self/ns/net").flatMap(namespaceInode) ?? 0 : 0
    /// Whether descriptor tables may be read densely: only the live procfs sizes an fd
    /// directory by its descriptor count. Tests turn it off to check the listing path.
    let denseTables: Bool
    /// Cleared the first time the kernel refuses a socket dump: /proc/net from then on.
    private var socketDiagnostics = true
    var stats = RefreshStats()
    /// The last refresh's identity, and what it changed since the one before: nothing when it
    /// found no change, what it patched when it patched, nil when it assembled everything anew.
    let observerID = ObservationStamp.newObserver()
    private(set) var stamp: ObservationStamp?
    private(set) var change: ObservationChange?
    /// Written by a patch as it cuts, replaces and adds parts and objects.
    private var log: PatchLog?

    /// What a patch did, in order: nodes given (as they are now) or removed, edges added or removed.
    struct PatchLog {
        var nodes: [(NodeID, Node?)] = []
        var addedEdges: [Edge] = []
        var removedEdges: [Edge] = []
    }

    init(root: String, includeMaps: Bool, fullRescanEvery: Int, scanThreads: Int, denseTables: Bool) {
        self.root = root
        self.denseTables = denseTables
        self.includeMaps = includeMaps
        self.fullRescanEvery = fullRescanEvery
        self.scanThreads = scanThreads
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
        processEvents = root == "/proc" ? ProcessEvents() : nil
    }

    deinit {
        for e in entries.values { e.close() }
        if procFD >= 0 { close(procFD) }
    }

    func refresh(full requested: Bool) throws -> ([Node], [Edge], NodeID?, Int) {
        refreshes += 1
        let full = requested || (fullRescanEvery > 0 && refreshes % fullRescanEvery == 0) || procFD < 0
        stats = RefreshStats(full: full)
        if procFD < 0 {
            procFD = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard procFD >= 0 else { throw ObserverError(path: root, errno: errno) }
        }
        // /proc is listed when a process may have started since the last listing; without the
        // kernel's process events, every time. Otherwise the processes are the ones last listed
        // (an exited one fails its stat re-read and goes). A process that exec'd is read anew
        // (its command line changed); without the events, or when some were lost, that waits
        // for the next full refresh.
        let news = processEvents?.drain() ?? ProcessEvents.News(started: true)
        let pids: [Int32]
        if full || news.started || known.isEmpty {
            guard lseek(procFD, 0, SEEK_SET) == 0, let listed = listNumbers(procFD, buffer: &listing) else {
                throw ObserverError(path: root, errno: errno)
            }
            pids = listed
            stats.listedProcesses = true
        } else {
            pids = known
        }
        // A single-threaded process that has not run since the last look is taken as unchanged
        // (one read of its schedstat) while every process event is heard: they tell what
        // changes such a process without it running — its parent's exit (a new parent); its
        // name, descriptors and state it changes itself. What they do not tell (its nice value
        // set by another process) waits until it runs, or for the next full refresh.
        let trustRuns = !full && processEvents != nil && !news.lost
        var recheck = Set<Int32>()
        if trustRuns, !news.exited.isEmpty {
            for (pid, entry) in entries where news.exited.contains(entry.stat.ppid) { recheck.insert(pid) }
        }
        var work: [ScanItem] = []
        var seen = Set<Int32>()
        work.reserveCapacity(pids.count)
        seen.reserveCapacity(pids.count)
        for pid in pids.sorted() {
            seen.insert(pid)
            var existing = entries[pid]
            var adopt: ProcEntry?
            if full || news.execed.contains(pid), let entry = existing {
                // Read anew, through the descriptors already kept on it: the observer's own
                // descriptor table stays as it was, so a full refresh is no change to it.
                adopt = entry
                existing = nil
            }
            work.append(ScanItem(pid: pid, existing: existing, keepOpen: work.count < keepOpenBudget,
                                 trustRuns: trustRuns && !recheck.contains(pid), adopt: adopt))
        }
        reserveDescriptorTable(keeping: min(work.count, keepOpenBudget))
        // A full refresh reads its own network namespace's sockets while the processes are
        // read, on whichever scanning thread comes to it first.
        let dumpAlongside = full && socketDiagnostics && ownNetNamespace != 0
        let cgroups = full ? cgroupMount.flatMap { CgroupTree.read(mount: $0, procRoot: root) } : nil
        let (visits, contexts, dumped) = scan(work, dumpingSockets: dumpAlongside, cgroups: cgroups)
        var changed = full
        var dropped = Set<Int32>()
        // What changed, for patching the last observation: processes changed in place, new
        // ones, and gone ones (a reused pid is both).
        var patches = Patches()
        for (item, visit) in zip(work, visits) {
            switch visit {
            case .unchanged: break
            case .changed:
                changed = true
                patches.changed.append(item.pid)
            case .read(let entry):
                if entries.updateValue(entry, forKey: item.pid) != nil { patches.removed.insert(item.pid) }
                patches.added.append(item.pid)
                changed = true
            case .dropped(let raced):
                // A process that cannot be read (it exited, or its stat is unreadable) is a
                // race, not a change, unless it was in the graph.
                if raced { stats.raced += 1 }
                if entries.removeValue(forKey: item.pid) != nil {
                    changed = true
                    patches.removed.insert(item.pid)
                }
                dropped.insert(item.pid)
            }
        }
        known = dropped.isEmpty ? pids : pids.filter { !dropped.contains($0) }
        for context in contexts { stats.add(context.stats) }
        for pid in entries.keys where !seen.contains(pid) {
            entries[pid]?.close()
            entries[pid] = nil
            changed = true
            patches.removed.insert(pid)
        }
        let socketsChanged = refreshSockets(force: full, processesChanged: changed, dumped: dumped)
        if socketsChanged { changed = true }
        stats.changed = changed
        let previous = stamp
        stamp = ObservationStamp(observer: observerID, sequence: UInt64(refreshes))
        change = previous.map { ObservationChange(since: $0) }
        if changed {
            // A few processes changed, came or went: their parts are patched (see `Layout`).
            log = change == nil ? nil : PatchLog()
            if full || patches.count > max(8, entries.count / 8) || !patch(patches, socketsChanged: socketsChanged) {
                assemble()
                change = nil
            } else {
                stats.patched = patches.count
                if let base = change, let log { change = Self.normalized(base, log) }
            }
            log = nil
        }
        return (lastNodes, lastEdges, entries[getpid()]?.id, stats.raced)
    }

    /// Grow this process's descriptor table at once to what keeping `processes` open needs (a
    /// stat file, the fd directory and the schedstat file each). The kernel grows a table by
    /// doubling, and in a process of several threads each doubling waits for an RCU grace period
    /// (10–20 ms measured here): a first refresh of 300 processes crossed 256, 512 and 1024
    /// descriptors and spent most of its time waiting. One descriptor duplicated high and
    /// closed again makes it one wait at most, or none while the process has one thread.
    private func reserveDescriptorTable(keeping processes: Int) {
        let needed = 3 * processes + 64
        guard needed > reservedDescriptors else { return }
        let high = fcntl(procFD, F_DUPFD_CLOEXEC, Int32(clamping: needed))
        if high >= 0 { Glibc.close(high) }
        reservedDescriptors = needed
    }

    /// Visit every process, on `scanThreads` threads when there are enough to be worth it, each
    /// taking the next process not yet taken; one of them first dumps the sockets when asked
    /// (nil if the kernel refused). The observer's own process is visited last and alone, so no
    /// scanner's passing descriptor is read as one of its own.
    private func scan(_ work: [ScanItem], dumpingSockets: Bool, cgroups: [Int32: String]?) -> ([ProcEntry.Visit], [ScanContext], [UInt64: SocketEntry]?) {
        let threads = work.count >= 64 ? scanThreads : 1
        let liveRoot = root == "/proc" ? root : nil
        var contexts = (0..<threads).map { _ in
            ScanContext(denseTables: denseTables, liveRoot: liveRoot, cgroups: cgroups, paths: PathStatCache(mountNamespace: ownMountNamespace))
        }
        var visits = [ProcEntry.Visit](repeating: .unchanged, count: work.count)
        let me = getpid()
        let procFD = procFD, includeMaps = includeMaps
        var dumped: [UInt64: SocketEntry]?
        let next = Atomic<Int>(dumpingSockets ? -1 : 0)
        withUnsafeMutablePointer(to: &dumped) { dumped in
            work.withUnsafeBufferPointer { items in
                visits.withUnsafeMutableBufferPointer { out in
                    contexts.withUnsafeMutableBufferPointer { context in
                        let share = ScanShare(items: items, out: out, context: context, dumped: dumped)
                        let visitShare = { @Sendable (worker: Int) in
                            while true {
                                let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
                                if i < 0 {
                                    share.dumped.pointee = SocketDiag.dump()
                                    continue
                                }
                                guard i < share.items.count else { break }
                                if share.items[i].pid != me {
                                    share.out[i] = ProcEntry.visit(share.items[i], procFD: procFD, includeMaps: includeMaps,
                                                                   context: &share.context[worker])
                                }
                            }
                        }
                        if threads == 1 { visitShare(0) } else { DispatchQueue.concurrentPerform(iterations: threads, execute: visitShare) }
                        if let i = items.firstIndex(where: { $0.pid == me }) {
                            if liveRoot != nil {
                                // Gathered only if its table is read this time.
                                context[0].ownKeptSource = {
                                    var kept: [Int32: KeptDescriptor] = [:]
                                    for (item, visit) in zip(share.items, share.out) {
                                        let entry: ProcEntry?
                                        switch visit {
                                        case .read(let fresh): entry = fresh
                                        case .unchanged, .changed: entry = item.existing
                                        case .dropped: entry = nil
                                        }
                                        for k in entry?.kept ?? [] { kept[k.fd] = k }
                                    }
                                    return kept
                                }
                            }
                            out[i] = ProcEntry.visit(items[i], procFD: procFD, includeMaps: includeMaps, context: &context[0])
                        }
                    }
                }
            }
        }
        return (visits, contexts, dumped)
    }

    /// Re-read the socket tables of every network namespace whose sockets held changed (which
    /// only a changed process can change). The observer's own namespace is read through socket
    /// diagnostics when the kernel has them; others, and recorded trees, from /proc/PID/net of
    /// a process inside. A table holds every socket of its namespace, held or not.
    private func refreshSockets(force: Bool, processesChanged: Bool, dumped: [UInt64: SocketEntry]?) -> Bool {
        guard force || processesChanged else { return false }
        var byNamespace: [UInt64: (pid: Int32, held: SocketDigest)] = [:]
        for (pid, entry) in entries where entry.sockets.count > 0 {
            byNamespace[entry.netns, default: (pid, SocketDigest())].held.add(entry.sockets)
        }
        var changed = false
        for (ns, (pid, held)) in byNamespace where force || socketSignature[ns] != held {
            var table: [UInt64: SocketEntry] = [:]
            if ns != 0, ns == ownNetNamespace, socketDiagnostics, let all = dumped ?? SocketDiag.dump() {
                stats.socketDumps += 1
                table = all
            } else {
                if ns != 0, ns == ownNetNamespace { socketDiagnostics = false }
                for name in ["tcp", "tcp6", "udp", "udp6", "unix"] {
                    guard let bytes = readAt(procFD, "\(pid)/net/\(name)") else { continue }
                    stats.netTableReads += 1
                    let parsed = name == "unix" ? NetTable.parseUnix(bytes) : NetTable.parseInet(bytes, protocolName: name)
                    for s in parsed.entries { table[s.inode] = s }
                }
            }
            if sockets[ns] != table { changed = true }
            sockets[ns] = table
            socketSignature[ns] = held
        }
        for ns in sockets.keys where byNamespace[ns] == nil {
            sockets[ns] = nil
            socketSignature[ns] = nil
            changed = true
        }
        return changed
    }

    /// Build the observation's nodes and edges from the entries: each process's own part as its
    /// scanning thread built it, then a node per shared object (file, device, pipe, socket),
    /// once, however many descriptors hold it. An object's node is kept from the last assembly
    /// while the object is still held under the same name (a socket's while its table entry is
    /// the same too). Where each part went is kept in `layout`.
    private func assemble() {
        let previous = layout.objects
        layout = Layout()
        // Room for every part and at most an object per reference (room never written to
        // costs no memory).
        var (partNodes, partEdges, references) = (0, 0, 0)
        for entry in entries.values {
            partNodes += 1 + entry.descriptors.nodes.count
            partEdges += 1 + entry.descriptors.edges.count + entry.maps.count
            references += entry.descriptors.shared.count + entry.maps.count
        }
        // Two threads: one gathers the parts (and which objects each refers to), the other holds
        // the objects they refer to and makes their nodes; the objects' nodes go after every part.
        let order = Array(entries)
        var parts = AssembledParts(), objects = AssembledObjects()
        parts.nodes.reserveCapacity(partNodes + references)
        parts.edges.reserveCapacity(partEdges)
        parts.placed.reserveCapacity(order.count)
        objects.shared.reserve(references)
        objects.made.reserveCapacity(references)
        let (entries, sockets) = (entries, sockets)
        withUnsafeMutablePointer(to: &parts) { parts in
            withUnsafeMutablePointer(to: &objects) { objects in
                let share = AssembleShare(order: order, entries: entries, sockets: sockets, previous: previous, parts: parts, objects: objects)
                DispatchQueue.concurrentPerform(iterations: 2) { half in
                    if half == 0 {
                        for (pid, entry) in share.order {
                            let (n0, e0) = (share.parts.pointee.nodes.count, share.parts.pointee.edges.count)
                            let references = Self.part(of: entry, parent: share.entries[entry.stat.ppid],
                                                       nodes: &share.parts.pointee.nodes, edges: &share.parts.pointee.edges)
                            share.parts.pointee.placed.append((pid, n0..<share.parts.pointee.nodes.count, e0..<share.parts.pointee.edges.count))
                            share.parts.pointee.keys[pid] = references.map(\.key)
                        }
                    } else {
                        for (pid, entry) in share.order {
                            let references = Self.references(of: entry)
                            Self.hold(references, table: share.sockets[entry.netns], netns: entry.netns, previous: share.previous,
                                      in: &share.objects.pointee.shared, made: &share.objects.pointee.made)
                        }
                    }
                }
            }
        }
        for (pid, nodes, edges) in parts.placed { layout.place(pid, nodes: nodes, edges: edges) }
        layout.keys = parts.keys
        layout.objects = objects.shared
        parts.nodes.append(contentsOf: objects.made)
        lastNodes = parts.nodes
        lastEdges = parts.edges
    }

    /// What a refresh found changed, process by process.
    struct Patches {
        var changed: [Int32] = []
        var added: [Int32] = []
        var removed = Set<Int32>()
        var count: Int { changed.count + added.count + removed.count }
    }

    /// Patch the last observation: a gone process's part is cut out, a changed one's replaced,
    /// a new one's added after the others (the parts after a cut or a replacement move); the
    /// children of a process gone or new are redone, since their parent edge follows it; an
    /// object no part refers to any more goes, a newly held one gets its node, and when a
    /// socket table changed every socket's node is checked against it. False if the layout
    /// does not know a process it should (assemble instead).
    private func patch(_ patches: Patches, socketsChanged: Bool) -> Bool {
        let added = Set(patches.added), changedInPlace = Set(patches.changed)
        guard patches.removed.allSatisfy({ layout.order[$0] != nil }),
              patches.changed.allSatisfy({ layout.order[$0] != nil && entries[$0] != nil }),
              added.allSatisfy({ entries[$0] != nil && (layout.order[$0] == nil || patches.removed.contains($0)) }) else { return false }
        var redo = patches.changed
        let moved = patches.removed.union(added)
        if !moved.isEmpty {
            for (pid, entry) in entries where moved.contains(entry.stat.ppid) && !added.contains(pid) && !changedInPlace.contains(pid) {
                redo.append(pid)
            }
        }
        for pid in patches.removed { cutPart(of: pid) }
        for pid in redo {
            let entry = entries[pid]!
            var nodes: [Node] = [], edges: [Edge] = []
            let keys = Self.part(of: entry, parent: entries[entry.stat.ppid], nodes: &nodes, edges: &edges)
            let (oldNodes, oldEdges) = (layout.nodes[pid]!, layout.edges[pid]!)
            logPart(removing: oldNodes, oldEdges, adding: nodes, edges)
            lastNodes.replaceSubrange(oldNodes, with: nodes)
            lastEdges.replaceSubrange(oldEdges, with: edges)
            layout.nodes[pid] = oldNodes.lowerBound..<(oldNodes.lowerBound + nodes.count)
            layout.edges[pid] = oldEdges.lowerBound..<(oldEdges.lowerBound + edges.count)
            shiftParts(after: pid, nodes: nodes.count - oldNodes.count, edges: edges.count - oldEdges.count)
            // New references first (a new object gets its node), then the old ones go.
            let old = layout.keys[pid] ?? []
            hold(keys, for: pid, netns: entry.netns)
            release(old)
        }
        for pid in patches.added {
            let entry = entries[pid]!
            var nodes: [Node] = [], edges: [Edge] = []
            let keys = Self.part(of: entry, parent: entries[entry.stat.ppid], nodes: &nodes, edges: &edges)
            let start = lastNodes.count - layout.objects.count
            logPart(removing: 0..<0, 0..<0, adding: nodes, edges)
            lastNodes.insert(contentsOf: nodes, at: start)
            layout.place(pid, nodes: start..<(start + nodes.count), edges: lastEdges.count..<(lastEdges.count + edges.count))
            lastEdges.append(contentsOf: edges)
            hold(keys, for: pid, netns: entry.netns)
        }
        if socketsChanged {
            let start = lastNodes.count - layout.objects.count
            for place in 0..<layout.objects.count where layout.objects.keys[place].kind == .socket {
                let kept = layout.objects.kept[place]
                let key = layout.objects.keys[place]
                let reference = ObjectReference(key: key, id: kept.node.id, target: kept.target)
                let made = Self.object(reference, netns: kept.netns, socket: sockets[kept.netns]?[key.a], kept: kept)
                if made.socket != kept.socket {
                    layout.objects.replace(at: place, with: made)
                    lastNodes[start + place] = made.node
                    log?.nodes.append((made.node.id, made.node))
                }
            }
        }
        return true
    }

    /// Cut a process's part out; the parts after it move back.
    private func cutPart(of pid: Int32) {
        let (nodes, edges) = (layout.nodes[pid]!, layout.edges[pid]!)
        logPart(removing: nodes, edges, adding: [], [])
        lastNodes.removeSubrange(nodes)
        lastEdges.removeSubrange(edges)
        shiftParts(after: pid, nodes: -nodes.count, edges: -edges.count)
        layout.order[pid] = nil
        layout.nodes[pid] = nil
        layout.edges[pid] = nil
        release(layout.keys.removeValue(forKey: pid) ?? [])
    }

    /// Move the parts placed after `pid`'s (an empty edge range says nothing of its place: the
    /// order does).
    private func shiftParts(after pid: Int32, nodes dn: Int, edges de: Int) {
        guard dn != 0 || de != 0, let place = layout.order[pid] else { return }
        for (other, order) in layout.order where order > place {
            let (n, e) = (layout.nodes[other]!, layout.edges[other]!)
            layout.nodes[other] = (n.lowerBound + dn)..<(n.upperBound + dn)
            layout.edges[other] = (e.lowerBound + de)..<(e.upperBound + de)
        }
    }

    /// Count a part's references to shared objects; an object not held before gets its node
    /// after the others.
    private func hold(_ keys: [ObjectReference], for pid: Int32, netns: UInt64) {
        layout.keys[pid] = keys.map(\.key)
        let before = lastNodes.count
        Self.hold(keys, table: sockets[netns], netns: netns, previous: nil, in: &layout.objects, made: &lastNodes)
        log?.nodes += lastNodes[before...].lazy.map { ($0.id, $0) }
    }

    /// A part's old nodes and edges (places in the last observation) go, its new ones come.
    private func logPart(removing nodes: Range<Int>, _ edges: Range<Int>, adding newNodes: [Node], _ newEdges: [Edge]) {
        guard log != nil else { return }
        log!.nodes += lastNodes[nodes].lazy.map { ($0.id, nil) }
        log!.removedEdges += lastEdges[edges]
        log!.nodes += newNodes.lazy.map { ($0.id, $0) }
        log!.addedEdges += newEdges
    }

    /// A patch's log as a change: each node as the last thing done to it left it (a part redone
    /// is given again; an object made and let go within the patch is removed, which it was not
    /// in the last observation either), an edge removed and added (or added and removed) is
    /// neither.
    private static func normalized(_ change: ObservationChange, _ log: PatchLog) -> ObservationChange {
        var change = change
        var last: [NodeID: Node?] = [:]
        for (id, node) in log.nodes { last[id] = .some(node) }
        for (id, node) in last {
            if let node { change.nodes.append(node) } else { change.removed.append(id) }
        }
        let added = Set(log.addedEdges), gone = Set(log.removedEdges)
        change.addedEdges = Array(added.subtracting(gone))
        change.removedEdges = Array(gone.subtracting(added))
        return change
    }

    /// Hold `references` in `objects`; each object not held before gets its node (the one
    /// `previous` kept, where it still stands), appended to `made`. `table`: the socket table
    /// of the part's network namespace.
    private static func hold(_ references: [ObjectReference], table: [UInt64: SocketEntry]?, netns: UInt64, previous: SharedObjects?,
                             in objects: inout SharedObjects, made: inout [Node]) {
        for i in references.indices {
            let key = references[i].key
            let added = objects.hold(key) {
                let socket = key.kind == .socket ? table?[key.a] : nil
                return object(references[i], netns: netns, socket: socket, kept: previous.flatMap { p in p.place(of: key).map { p.kept[$0] } })
            }
            if added { made.append(objects.kept[objects.count - 1].node) }
        }
    }

    /// Drop references; an object no part refers to any more is swap-removed from the objects
    /// after the parts.
    private func release(_ keys: [ObjectKey]) {
        for key in keys {
            guard let place = layout.objects.release(key) else { continue }
            // The last object's node moves where the released one's was.
            let start = lastNodes.count - layout.objects.count - 1
            log?.nodes.append((lastNodes[start + place].id, nil))
            lastNodes.swapAt(start + place, lastNodes.count - 1)
            lastNodes.removeLast()
        }
    }

    /// One process's part: its node, the edge from its parent, its descriptors' nodes and
    /// edges, the edges from the files it maps; and the shared objects these refer to.
    private static func part(of entry: ProcEntry, parent: ProcEntry?, nodes: inout [Node], edges: inout [Edge]) -> [ObjectReference] {
        nodes.append(entry.node)
        if let parent { edges.append(Edge(parent.id, .parentOf, entry.id)) }
        nodes.append(contentsOf: entry.descriptors.nodes)
        edges.append(contentsOf: entry.descriptors.edges)
        let references = references(of: entry)
        for reference in references.dropFirst(entry.descriptors.shared.count) { edges.append(Edge(reference.id, .backs, entry.id)) }
        return references
    }

    /// The shared objects a process's part refers to: its descriptors', then the files it maps.
    private static func references(of entry: ProcEntry) -> [ObjectReference] {
        guard !entry.maps.isEmpty else { return entry.descriptors.shared }
        return entry.descriptors.shared + entry.maps.map { ObjectReference(ObjectKey(kind: .regular, a: $0.device, b: $0.inode), target: $0.path) }
    }

    /// A shared object's node (`socket`: its entry in its namespace's table): `kept`, if it still
    /// stands (same name, same socket entry).
    private static func object(_ reference: ObjectReference, netns: UInt64, socket: SocketEntry?, kept: KeptObject?) -> KeptObject {
        if let kept, kept.socket == socket, kept.target == reference.target { return kept }
        return KeptObject(node: reference.key.node(id: reference.id, target: reference.target, socket: socket), target: reference.target,
                          netns: netns, socket: socket)
    }

    /// Where each process's part of the last observation sits, and the shared objects' nodes
    /// after all of them, with how many references each has: what a patch needs.
    struct Layout {
        /// Each process's part's place among the parts (a new part's is `nextOrder`).
        var order: [Int32: Int] = [:]
        var nextOrder = 0
        var nodes: [Int32: Range<Int>] = [:]
        var edges: [Int32: Range<Int>] = [:]
        /// The shared objects each process's part refers to, a key per reference.
        var keys: [Int32: [ObjectKey]] = [:]
        /// The objects in the order of their nodes, which come after every part.
        var objects = SharedObjects()

        /// A part placed after all the others.
        mutating func place(_ pid: Int32, nodes: Range<Int>, edges: Range<Int>) {
            order[pid] = nextOrder
            nextOrder += 1
            self.nodes[pid] = nodes
            self.edges[pid] = edges
        }
    }

    /// A shared object's node, and the link text and socket table entry (of that network
    /// namespace) it was made from.
    struct KeptObject {
        var node: Node
        var target: String
        var netns: UInt64
        var socket: SocketEntry?
    }
}

/// What the kernel's process-events connector (needs CAP_NET_ADMIN) said since the last look:
/// whether a new process (not a thread) may have started — a fork, or events lost — and which
/// processes exec'd (their command line is another now). Its receive buffer is kept small, so
/// on a machine that forks all the time it overflows and the look costs a few reads rather than
/// one per event; an overflow counts as a start (execs lost with it wait for a full refresh).
final class ProcessEvents {
    private let descriptor: Int32

    struct News {
        var started = false
        var execed = Set<Int32>()
        /// Processes (not threads) that exited.
        var exited = Set<Int32>()
        /// Some events were lost: nothing is known of what they said.
        var lost = false
    }

    init?() {
        guard let fd = try? openProcessConnector() else { return nil }
        var size: Int32 = 8192
        guard setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            Glibc.close(fd)
            return nil
        }
        descriptor = fd
    }

    deinit { Glibc.close(descriptor) }

    /// Read every event waiting.
    func drain() -> News {
        var news = News()
        let lost = drainDatagrams(descriptor) { datagram in
            var event = worldos_proc_event()
            switch worldos_proc_event_parse(datagram.bindMemory(to: UInt8.self).baseAddress, datagram.count, &event) {
            case 1:
                if event.what == UInt32(WORLDOS_PROC_EVENT_FORK) && event.pid == event.tgid { news.started = true }
                if event.what == UInt32(WORLDOS_PROC_EVENT_EXEC) { news.execed.insert(event.tgid) }
                if event.what == UInt32(WORLDOS_PROC_EVENT_EXIT) && event.pid == event.tgid { news.exited.insert(event.tgid) }
            case 0: break
            default:
                news.started = true
                news.lost = true
            }
        }
        // Events lost (ENOBUFS: the buffer overflowed) may have held a start.
        if lost {
            news.started = true
            news.lost = true
        }
        return news
    }
}

/// A reference to a shared object: its key, its node's id (made once, where the reference is
/// found), and the path or link text the referring descriptor or map shows for it.
struct ObjectReference {
    var key: ObjectKey
    var id: NodeID
    var target: String

    init(_ key: ObjectKey, target: String) {
        self.init(key: key, id: key.id, target: target)
    }

    init(key: ObjectKey, id: NodeID, target: String) {
        self.key = key
        self.id = id
        self.target = target
    }
}

/// Which sockets are held, as a digest that does not depend on their order: how many, and the
/// sum of each inode's bits mixed (a socket held twice counts twice). Two different holdings
/// give the same digest with odds of about 2^-64; a full rescan reads every table regardless.
struct SocketDigest: Equatable {
    private(set) var count = 0
    private var sum: UInt64 = 0

    mutating func add(_ inode: UInt64) {
        count += 1
        sum &+= mixed(inode)
    }

    mutating func add(_ other: SocketDigest) {
        count += other.count
        sum &+= other.sum
    }
}

/// What a descriptor refers to.
enum ObjectRef {
    /// A file, device, pipe or socket: one node per refresh, named by its identity, with the
    /// path (or link text) the first descriptor seen shows for it.
    case shared(ObjectReference)
    /// An anonymous inode (eventfd, timerfd, …): a node of its own under the descriptor.
    case own(Node)
}

/// A shared object's identity, cheap to hash.
struct ObjectKey: Hashable {
    enum Kind: UInt8 { case socket, pipe, fifo, regular, directory, charDevice, blockDevice }
    /// socket, pipe: a is the inode. fifo, regular, directory: device and inode. Devices: major, minor.
    var kind: Kind
    var a: UInt64
    var b: UInt64 = 0

    /// The object's node id: what it is, not which descriptor shows it.
    var id: NodeID {
        switch self.kind {
        case .socket: .object("socket:", a)
        case .pipe: .object("pipe:", a)
        case .fifo: .object("pipe:", a, b)
        case .regular, .directory: .object("file:", a, b)
        case .charDevice: .object("device:c:", a, b)
        case .blockDevice: .object("device:b:", a, b)
        }
    }

    /// The object's node (`id` is this key's); a socket's carries its table entry when one was found.
    func node(id: NodeID, target: String, socket: SocketEntry? = nil) -> Node {
        let ino = AttributeValue.int(Int64(bitPattern: kind == .socket || kind == .pipe ? a : b))
        switch kind {
        case .socket:
            guard let s = socket else {
                return Node(id: id, kind: .socket, observability: .background, attributes: ["ino": ino, "protocol": .string("other")])
            }
            return Node(id: id, kind: .socket, observability: .background,
                        attributes: ["ino": ino, "protocol": .string(s.protocolName), "local": .string(s.local),
                                     "remote": .string(s.remote), "state": .string(s.state)])
        case .pipe, .fifo:
            return Node(id: id, kind: .pipe, observability: .background, attributes: ["name": .string(target), "ino": ino])
        case .regular, .directory:
            return Node(id: id, kind: .file, observability: .background,
                        attributes: ["path": .string(target), "type": .string(kind == .regular ? "regular" : "directory"),
                                     "dev": .int(Int64(bitPattern: a)), "ino": ino])
        case .charDevice, .blockDevice:
            let type = kind == .charDevice ? "char-device" : "block-device"
            return Node(id: id, kind: .file, observability: .background,
                        attributes: ["path": .string(target), "type": .string(type), "major": .int(Int64(a)), "minor": .int(Int64(b))])
        }
    }
}

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
func readAt(_ dirFD: Int32, _ path: String, shortReadEnds: Bool = false) -> [UInt8]? {
    let fd = openat(dirFD, path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { Glibc.close(fd) }
    return preadAll(fd, shortReadEnds: shortReadEnds)
}

func readLinkAt(_ dirFD: Int32, _ path: UnsafePointer<CChar>) -> String? {
    withUnsafeTemporaryAllocation(of: CChar.self, capacity: 4096) { buffer -> String? in
        let n = readlinkat(dirFD, path, buffer.baseAddress!, buffer.count)
        guard n >= 0 else { return nil }
        return UnsafeRawBufferPointer(start: buffer.baseAddress, count: n).withMemoryRebound(to: UInt8.self) {
            String(decoding: $0, as: UTF8.self)
        }
    }
}

/// `n` (not negative) as a C string of decimal digits, without allocating.
func withDecimal<R>(_ n: Int32, _ body: (UnsafePointer<CChar>) -> R) -> R {
    withUnsafeTemporaryAllocation(of: CChar.self, capacity: 12) { digits in
        var value = UInt32(n)
        var start = 11
        digits[start] = 0
        repeat {
            start -= 1
            digits[start] = CChar(48 + value % 10)
            value /= 10
        } while value > 0
        return body(digits.baseAddress! + start)
    }
}

/// The entries of a directory whose names are decimal numbers (/proc's processes, a process's
/// descriptors), read with getdents64 into `buffer` from the descriptor's current position,
/// without a String per entry. nil if the directory cannot be read (errno says why).
func listNumbers(_ fd: Int32, buffer: inout [UInt8]) -> [Int32]? {
    var numbers: [Int32] = []
    while true {
        let n = buffer.withUnsafeMutableBytes { worldos_getdents64(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return nil
        }
        if n == 0 { return numbers }
        buffer.withUnsafeBytes { raw in
            // struct linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name.
            var record = 0
            while record < n {
                let length = Int(raw.loadUnaligned(fromByteOffset: record + 16, as: UInt16.self))
                var value: Int32 = 0
                var digits = 0
                var i = record + 19
                while i < record + length, raw[i] != 0 {
                    guard raw[i] >= 0x30, raw[i] <= 0x39, digits < 9 else { digits = -1; break }
                    value = value * 10 + Int32(raw[i] - 0x30)
                    digits += 1
                    i += 1
                }
                if digits > 0 { numbers.append(value) }
                record += max(length, 1)
            }
        }
    }
}

/// The buffers a refresh's scanning threads share. Each thread touches only its own share:
/// items i ≡ worker (mod threads), their visits, and context[worker].
private struct ScanShare: @unchecked Sendable {
    let items: UnsafeBufferPointer<ScanItem>
    let out: UnsafeMutableBufferPointer<ProcEntry.Visit>
    let context: UnsafeMutableBufferPointer<ScanContext>
    /// Written once, by the one thread that takes the dump.
    let dumped: UnsafeMutablePointer<[UInt64: SocketEntry]?>
}

/// What one assembly thread gathers: the parts, and where each went.
struct AssembledParts {
    var nodes: [Node] = []
    var edges: [Edge] = []
    var placed: [(pid: Int32, nodes: Range<Int>, edges: Range<Int>)] = []
    /// The shared objects each part refers to, a key per reference.
    var keys: [Int32: [ObjectKey]] = [:]
}

/// What the other gathers: the shared objects, and their nodes in the order of their places.
struct AssembledObjects {
    var shared = SharedObjects()
    var made: [Node] = []
}

/// What the two assembly threads read (the entries, the socket tables, the last objects) and
/// write (each its own half).
private struct AssembleShare: @unchecked Sendable {
    let order: [(key: Int32, value: ProcEntry)]
    let entries: [Int32: ProcEntry]
    let sockets: [UInt64: [UInt64: SocketEntry]]
    let previous: SharedObjects
    let parts: UnsafeMutablePointer<AssembledParts>
    let objects: UnsafeMutablePointer<AssembledObjects>
}

/// A descriptor the observer keeps open, as its own table shows it.
struct KeptDescriptor {
    var fd: Int32
    var target: String
    var stat: Glibc.stat
}

/// One process a refresh visits: its pid, the entry kept from the last refresh (nil: read it
/// anew), and whether its stat file and fd directory may stay open.
struct ScanItem {
    let pid: Int32
    let existing: ProcEntry?
    let keepOpen: Bool
    /// Whether a process whose main thread has not run may be taken as unchanged.
    var trustRuns = false
    /// Read anew, taking over this entry's kept descriptors.
    var adopt: ProcEntry? = nil
}

/// What one scanning thread keeps to itself during a refresh; merged after.
struct ScanContext {
    /// Descriptor tables may be read as 0..<size of the fd directory (the live procfs).
    let denseTables: Bool
    /// The live /proc's path, where the observer's own process is among those read.
    var liveRoot: String?
    /// Each process's cgroup, when a full refresh read them all at once.
    var cgroups: [Int32: String]?
    /// When the observer's own process is read: the descriptors it keeps open on the others,
    /// by number, classified from what was known when they were opened instead of a readlink
    /// each (a busy machine's supervisor holds two per process, and every process that comes
    /// or goes changes its table).
    var ownKept: [Int32: KeptDescriptor] = [:]
    /// Where `ownKept` comes from, asked the first time the own process's table is read.
    var ownKeptSource: (() -> [Int32: KeptDescriptor])?
    var paths: PathStatCache
    var stats = RefreshStats()
    /// Stat lines and directory listings are read into this.
    var buffer = [UInt8](repeating: 0, count: 1 << 14)
    /// A descriptor's link is read into this.
    var link = [UInt8](repeating: 0, count: 4096)

    /// Read the link of descriptor `n` under `dirFD` into `link`: its length, or nil (errno says why).
    mutating func readLink(_ dirFD: Int32, _ n: Int32) -> Int? {
        let length = link.withUnsafeMutableBytes { buffer in withDecimal(n) { readlinkat(dirFD, $0, buffer.baseAddress!, buffer.count) } }
        return length >= 0 ? length : nil
    }
}

private let RLIMIT_NOFILE_ = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
