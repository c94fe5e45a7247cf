import Dispatch
import Glibc
import LoopCore
import StateGraph
import Synchronization
import SystemCalls

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
    private let processEvents: ProcessConnector?
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
        processEvents = root == "/proc" ? try? ProcessConnector(receiveBuffer: 8192) : nil
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
        let news = processEvents.map(ProcessNews.read) ?? ProcessNews(started: true)
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
                        for (_, entry) in share.order {
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

private let RLIMIT_NOFILE_ = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
