import CShim
import Foundation
import Glibc
import LoopCore
@testable import Observer
import StateGraph
import WorldOSTesting
import XCTest

let fdChild = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/fdchild.py").path

/// The observer against the real /proc, with children that hold exactly what a test asks for.
final class ObserverTests: XCTestCase {
    let now = Instant(nanoseconds: 1)

    func graph(_ o: Observation) throws -> Graph {
        var g = Graph()
        try g.apply(GraphDelta(o.nodes.map { .addNode($0) } + o.edges.map { .addEdge($0) }))
        return g
    }

    func descriptors(of pid: Int32, in g: Graph) throws -> [Int64: Node] {
        let p = try XCTUnwrap(g.nodes(ofKind: .process).first { $0["pid"] == .int(Int64(pid)) })
        return Dictionary(uniqueKeysWithValues: g.owned(by: p.id).compactMap { g[$0] }.map { ($0["fd"]!.intValue!, $0) })
    }

    func object(of fd: Node, in g: Graph) -> Node? {
        g.edges(from: fd.id).first { $0.kind == .opened }.flatMap { g[$0.to] }
    }

    func testEveryKindOfDescriptor_isClassified_andJoinedToWhatItRefersTo() throws {
        let dir = NSTemporaryDirectory() + "worldos-obs-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/data", contents: Data("x".utf8)))
        let child = try ScriptedChild("/usr/bin/env", ["python3", fdChild])
        let file = Int64(child.send("file \(dir)/data"))!
        let folder = Int64(child.send("file \(dir)"))!
        let pipe = child.send("pipe").split(separator: " ").map { Int64($0)! }
        let listen = child.send("tcp-listen").split(separator: " ").map { Int64($0)! }
        let connected = Int64(child.send("tcp-connect \(listen[1])").split(separator: " ")[0])!
        let listen6 = Int64(child.send("tcp6-listen").split(separator: " ")[0])!
        let udp = child.send("udp").split(separator: " ").map { Int64($0)! }
        let unix = Int64(child.send("unix-listen \(dir)/sock"))!
        let event = Int64(child.send("eventfd"))!

        var observer = ProcObserver()
        let o = try observer.observe(at: now)
        let g = try graph(o)
        XCTAssertEqual(g.invariantViolations(), [])
        let fds = try descriptors(of: child.pid, in: g)

        var st = stat()
        stat(dir + "/data", &st)
        let dataNode = try XCTUnwrap(object(of: fds[file]!, in: g))
        XCTAssertEqual(dataNode.id, .object(.file, "\(st.st_dev):\(st.st_ino)"), "a file is device + inode")
        XCTAssertEqual(dataNode["path"], .string(dir + "/data"))
        XCTAssertEqual(object(of: fds[folder]!, in: g)?["type"], .string("directory"))
        XCTAssertEqual(fds[0]?["type"], .string("fifo"), "stdin is the test's pipe")
        let devNull = try XCTUnwrap(g[NodeID("device:c:1:3")], "a character device is its major:minor")
        XCTAssertEqual(devNull["path"], .string("/dev/null"))
        XCTAssertEqual(object(of: fds[pipe[0]]!, in: g)?.id, object(of: fds[pipe[1]]!, in: g)?.id, "both ends reach one pipe node")
        XCTAssertEqual(object(of: fds[pipe[0]]!, in: g)?.kind, .pipe)
        let listener = try XCTUnwrap(object(of: fds[listen[0]]!, in: g))
        XCTAssertEqual(listener["protocol"], .string("tcp"))
        XCTAssertEqual(listener["state"], .string("LISTEN"))
        XCTAssertEqual(listener["local"], .string("127.0.0.1:\(listen[1])"))
        let client = try XCTUnwrap(object(of: fds[connected]!, in: g))
        XCTAssertEqual(client["state"], .string("ESTABLISHED"))
        XCTAssertEqual(client["remote"], .string("127.0.0.1:\(listen[1])"))
        XCTAssertEqual(object(of: fds[listen6]!, in: g)?["protocol"], .string("tcp6"))
        XCTAssertTrue(object(of: fds[listen6]!, in: g)?["local"]?.stringValue?.hasPrefix("[0:0:0:0:0:0:0:1]:") ?? false)
        XCTAssertEqual(object(of: fds[udp[0]]!, in: g)?["local"], .string("127.0.0.1:\(udp[1])"))
        XCTAssertEqual(object(of: fds[unix]!, in: g)?["local"], .string(dir + "/sock"))
        XCTAssertEqual(object(of: fds[unix]!, in: g)?["state"], .string("stream LISTEN"))
        let anon = try XCTUnwrap(object(of: fds[event]!, in: g))
        XCTAssertEqual(anon.kind, .anonInode)
        XCTAssertEqual(anon["subtype"], .string("eventfd"))
        XCTAssertEqual(g.owner(of: anon.id), fds[event]!.id, "an anonymous inode goes with its descriptor")
        let process = try XCTUnwrap(g.nodes(ofKind: .process).first { $0["pid"] == .int(Int64(child.pid)) })
        XCTAssertEqual(process["uid"], .int(Int64(getuid())))
        XCTAssertTrue(process["cmdline"]?.stringValue?.contains("fdchild.py") ?? false)
        XCTAssertEqual(process["threads"], .int(1))
        XCTAssertNotNil(process["cgroup"]?.stringValue)
        child.finish()
    }

    /// `sleep` children holding a file, a pipe and a unix socket pair at the given descriptor
    /// numbers (stdio on /dev/null): a controlled table layout, dense or with gaps.
    func sleepers(_ count: Int, holding numbers: (Int) -> [Int32], file: String) throws -> [pid_t] {
        var pids: [pid_t] = []
        for i in 0..<count {
            var p: [Int32] = [0, 0], s: [Int32] = [0, 0]
            pipe(&p)
            socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &s)
            let held = [open(file, O_RDONLY), p[0], p[1], s[0], s[1]]
            let targets = numbers(i)
            // Everything the test runner has open, so none of it goes along.
            var st = stat()
            let inherited = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? [])
                .compactMap(Int32.init).filter { $0 > 2 && fstat($0, &st) == 0 }
            let park = max(100, (inherited.max() ?? 0) + 1)
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            for std in 0..<3 { posix_spawn_file_actions_addopen(&actions, Int32(std), "/dev/null", O_RDWR, 0) }
            for (k, fd) in held.enumerated() { posix_spawn_file_actions_adddup2(&actions, fd, park + Int32(k)) }
            for fd in inherited { posix_spawn_file_actions_addclose(&actions, fd) }
            for (k, target) in targets.enumerated() { posix_spawn_file_actions_adddup2(&actions, park + Int32(k % held.count), target) }
            worldos_spawn_close_from(&actions, (targets.max() ?? 2) + 1)
            var pid: pid_t = 0
            let argv: [UnsafeMutablePointer<CChar>?] = [strdup("sleep"), strdup("60"), nil]
            let r = posix_spawn(&pid, "/bin/sleep", &actions, nil, argv, environ)
            argv.forEach { free($0) }
            posix_spawn_file_actions_destroy(&actions)
            held.forEach { close($0) }
            XCTAssertEqual(r, 0)
            pids.append(pid)
        }
        return pids
    }

    /// Everything the observation says about these processes: their nodes, their descriptors'
    /// nodes and what those reach, by id, with attributes.
    func subgraph(of pids: [pid_t], in g: Graph) -> [NodeID: Node] {
        var out: [NodeID: Node] = [:]
        for p in g.nodes(ofKind: .process) where pids.contains(Int32(p["pid"]!.intValue!)) {
            out[p.id] = p
            for fd in g.owned(by: p.id).compactMap({ g[$0] }) {
                out[fd.id] = fd
                for e in g.edges(from: fd.id) { out[e.to] = g[e.to] }
            }
        }
        return out
    }

    func testParallelDenseScan_seesExactlyWhatASerialListingSees() throws {
        let file = NSTemporaryDirectory() + "worldos-dense-\(UUID().uuidString)"
        XCTAssertTrue(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
        defer { try? FileManager.default.removeItem(atPath: file) }
        // Half the tables are dense (0...7); half have gaps (3, 5, 9, 12, 40) the dense
        // reader must notice and list instead. Enough processes that the scan runs in parallel.
        let children = try sleepers(80, holding: { $0 % 2 == 0 ? Array(3...7) : [3, 5, 9, 12, 40] }, file: file)
        defer {
            for pid in children { kill(pid, SIGKILL) }
            for pid in children { var status: Int32 = 0; waitpid(pid, &status, 0) }
        }
        var serial = ProcObserver(scanThreads: 1, denseTables: false)
        var parallel = ProcObserver(scanThreads: 4)
        let listed = try graph(serial.refresh(at: now, full: true))
        let dense = try graph(parallel.refresh(at: now, full: true))
        XCTAssertEqual(serial.lastRefresh.listings, serial.lastRefresh.descriptorScans, "the serial observer listed every table")
        XCTAssertLessThan(parallel.lastRefresh.listings, parallel.lastRefresh.descriptorScans - 30, "dense tables were read without listing")
        XCTAssertGreaterThanOrEqual(parallel.lastRefresh.listings, 40, "every table with a gap was listed")
        let expected = subgraph(of: children, in: listed)
        XCTAssertEqual(expected.values.filter { $0.kind == .fileDescriptor }.count, 80 * 8, "3 stdio + 5 held, in every child")
        let gapped = try descriptors(of: children[1], in: dense)
        XCTAssertEqual(gapped.keys.sorted(), [0, 1, 2, 3, 5, 9, 12, 40])
        XCTAssertEqual(gapped[40]?["type"], .string("socket"))
        XCTAssertEqual(subgraph(of: children, in: dense), expected)
    }

    func testSocketDiagnostics_giveTheSameEntriesAsProcNet() throws {
        let dir = NSTemporaryDirectory() + "worldos-diag-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let child = try ScriptedChild("/usr/bin/env", ["python3", fdChild])
        defer { child.finish() }
        let listen = child.send("tcp-listen").split(separator: " ").map { Int32($0)! }
        let connected = Int32(child.send("tcp-connect \(listen[1])").split(separator: " ")[0])!
        let sockets = [listen[0], connected, Int32(child.send("tcp6-listen").split(separator: " ")[0])!,
                       Int32(child.send("udp").split(separator: " ")[0])!, Int32(child.send("unix-listen \(dir)/sock"))!]
            + child.send("unix-pair").split(separator: " ").map { Int32($0)! }
        let inodes = try sockets.map { fd -> UInt64 in
            let link = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(child.pid)/fd/\(fd)")
            return try XCTUnwrap(UInt64(link.dropFirst("socket:[".count).dropLast()), link)
        }
        var fromProc: [UInt64: SocketEntry] = [:]
        for name in ["tcp", "tcp6", "udp", "udp6", "unix"] {
            // Read to the end: Data(contentsOf:) takes only a procfs file's first read.
            let bytes = try Array(XCTUnwrap(FileHandle(forReadingAtPath: "/proc/\(child.pid)/net/\(name)")).readDataToEndOfFile())
            for e in (name == "unix" ? NetTable.parseUnix(bytes) : NetTable.parseInet(bytes, protocolName: name)).entries { fromProc[e.inode] = e }
        }
        let fromDiag = try XCTUnwrap(SocketDiag.dump(), "this kernel answers NETLINK_SOCK_DIAG for tcp, udp and unix")
        for inode in inodes {
            XCTAssertNotNil(fromDiag[inode], "socket \(inode)")
            XCTAssertEqual(fromDiag[inode], fromProc[inode])
        }
        XCTAssertEqual(Set(inodes.compactMap { fromDiag[$0]?.protocolName }), ["tcp", "tcp6", "udp", "unix"])
    }

    func testIncrementalRefresh_rereadsOnlyTheProcessThatChanged() throws {
        let child = try ScriptedChild("/usr/bin/env", ["python3", fdChild])
        // Wait until the child has finished starting (python opens and closes files while it
        // imports): a table swapped for another of the same size is only seen at a full rescan.
        XCTAssertEqual(child.send("ping"), "pong")
        var observer = ProcObserver(fullRescanEvery: 0)
        _ = try observer.refresh(at: now, full: true)
        XCTAssertTrue(observer.lastRefresh.full)
        let fd = child.send("file /etc/hostname")
        let after = try observer.observe(at: now)
        XCTAssertFalse(observer.lastRefresh.full)
        XCTAssertEqual(observer.lastRefresh.processesRead, 0, "no process was new")
        XCTAssertGreaterThanOrEqual(observer.lastRefresh.descriptorScans, 1)
        XCTAssertNotNil(try descriptors(of: child.pid, in: graph(after))[Int64(fd)!], "the new descriptor is seen within one refresh")
        child.send("close \(fd)")
        XCTAssertNil(try descriptors(of: child.pid, in: graph(try observer.observe(at: now)))[Int64(fd)!])
        child.finish()
        let gone = try graph(try observer.observe(at: now))
        XCTAssertFalse(gone.nodes(ofKind: .process).contains { $0["pid"] == .int(Int64(child.pid)) })
        XCTAssertFalse(gone.nodes.keys.contains { $0.rawValue.contains("process:\(child.pid)@") }, "its descriptors went with it")
    }

    func testObjectNodes_followARenameAndASocketStateChange_atTheNextFullRefresh() throws {
        // A shared object's node is kept between refreshes while it is held: it must still show
        // the name the descriptor now shows and the state the socket is now in.
        let dir = NSTemporaryDirectory() + "worldos-rename-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/before", contents: Data("x".utf8)))
        let (listener, port) = try loopbackListener()
        defer { close(listener) }
        let child = try ScriptedChild("/usr/bin/env", ["python3", fdChild])
        let file = try XCTUnwrap(Int64(child.send("file \(dir)/before")))
        let client = try XCTUnwrap(child.send("tcp-connect \(port)").split(separator: " ").first.flatMap { Int64($0) })
        let accepted = accept(listener, nil, nil)
        XCTAssertGreaterThanOrEqual(accepted, 0)
        var observer = ProcObserver(fullRescanEvery: 0)
        var g = try graph(try observer.refresh(at: now, full: true))
        var fds = try descriptors(of: child.pid, in: g)
        XCTAssertEqual(try XCTUnwrap(fds[file].flatMap { object(of: $0, in: g) })["path"], .string(dir + "/before"))
        XCTAssertEqual(try XCTUnwrap(fds[client].flatMap { object(of: $0, in: g) })["state"], .string("ESTABLISHED"))

        XCTAssertEqual(rename(dir + "/before", dir + "/after"), 0)
        close(accepted)  // the child's end of the connection goes to CLOSE_WAIT
        g = try graph(try observer.refresh(at: now, full: true))
        fds = try descriptors(of: child.pid, in: g)
        XCTAssertEqual(try XCTUnwrap(fds[file].flatMap { object(of: $0, in: g) })["path"], .string(dir + "/after"))
        XCTAssertEqual(try XCTUnwrap(fds[client].flatMap { object(of: $0, in: g) })["state"], .string("CLOSE_WAIT"))
        child.finish()
    }

    func testPatchedObservations_matchAFreshObserver_overRandomChanges() throws {
        // A refresh that finds a few processes changed, new or gone patches their parts of the
        // last observation. Checked against a fresh observer's full refresh after each of 80
        // random changes — a child opening and closing descriptors, processes started and
        // killed under this one: the child's process, descriptors, their edges and the objects
        // they refer to, and this process's children, must be the same; and the whole
        // observation must apply as a graph (no node twice, no edge to a node that is not
        // there) with no object left that nothing holds.
        let child = try ScriptedChild("/usr/bin/env", ["python3", fdChild])
        defer { child.finish() }
        XCTAssertEqual(child.send("ping"), "pong")
        var observer = ProcObserver(fullRescanEvery: 0)
        _ = try observer.refresh(at: now, full: true)
        var random = SeededRandom(seed: 4)
        var held: [String] = []
        var sleepers: [ScriptedChild] = []
        defer { for s in sleepers { s.process.terminate(); s.finish() } }
        var patched = 0
        // A listener here: the child connects to it, and closing our end of a connection
        // moves the child's socket to CLOSE_WAIT with nothing of the child's changing.
        let (listener, port) = try loopbackListener()
        defer { close(listener) }
        var accepted: [Int32] = []
        defer { accepted.forEach { close($0) } }
        let ops = ["file /etc/hostname", "file /etc/passwd", "pipe", "eventfd", "unix-pair", "udp", "close", "close", "close",
                   "start", "start", "stop", "tcp", "hangup"]
        func part(of g: Graph, supervisor: NodeID?) throws -> (Set<Node>, Set<Edge>) {
            let p = try XCTUnwrap(g.nodes(ofKind: .process).first { $0["pid"] == .int(Int64(child.pid)) })
            var nodes: Set<Node> = [p], edges = Set<Edge>()
            for fd in g.owned(by: p.id).compactMap({ g[$0] }) {
                nodes.insert(fd)
                for edge in g.edges(from: fd.id) {
                    edges.insert(edge)
                    if let target = g[edge.to] { nodes.insert(target) }
                }
            }
            edges.formUnion(g.edges(from: p.id).filter { $0.kind == .owns })
            let me = try XCTUnwrap(supervisor)
            for edge in g.edges(from: me) where edge.kind == .parentOf {
                edges.insert(edge)
                if let started = g[edge.to] { nodes.insert(started) }
            }
            return (nodes, edges)
        }
        for step in 0..<80 {
            let op = ops[Int(random.next() % UInt64(ops.count))]
            switch op {
            case "close":
                guard !held.isEmpty else { continue }
                XCTAssertEqual(child.send("close \(held.remove(at: Int(random.next() % UInt64(held.count))))"), "ok")
            case "start":
                // Observed once it sleeps (exec done), so the two observers do not race its start.
                let started = try ScriptedChild("/bin/sleep", ["60"])
                sleepers.append(started)
                XCTAssertTrue(waitFor { sleeping(started.pid, comm: "sleep") })
            case "tcp":
                held += child.send("tcp-connect \(port)").split(separator: " ").prefix(1).map(String.init)
                accepted.append(accept(listener, nil, nil))
            case "hangup":
                guard !accepted.isEmpty else { continue }
                close(accepted.removeFirst())
            case "stop":
                guard !sleepers.isEmpty else { continue }
                let gone = sleepers.remove(at: Int(random.next() % UInt64(sleepers.count)))
                gone.process.terminate()
                gone.process.waitUntilExit()
            default:
                held += child.send(op).split(separator: " ").map(String.init).prefix(op == "udp" ? 1 : 2)
            }
            // The child answers, then goes back to its read: observed once it sleeps there, so
            // the two observers do not race it between running and sleeping.
            XCTAssertTrue(waitFor { sleeping(child.pid, comm: "python3") })
            let observed = try observer.observe(at: now)
            let incremental = try graph(observed)
            patched += observer.lastRefresh.patched
            var fresh = ProcObserver(fullRescanEvery: 0)
            let full = try fresh.refresh(at: now, full: true)
            let expected = try part(of: graph(full), supervisor: full.supervisor)
            let got = try part(of: incremental, supervisor: observed.supervisor)
            func differing(_ a: Set<Node>, _ b: Set<Node>) -> [String] { a.subtracting(b).map { "\($0.id) \($0.attributes)" }.sorted() }
            XCTAssertEqual(differing(got.0, expected.0), [], "step \(step) (\(op)): nodes only the patched observation has")
            XCTAssertEqual(differing(expected.0, got.0), [], "step \(step) (\(op)): nodes only a fresh observer has")
            XCTAssertEqual(got.1.subtracting(expected.1).map(\.description).sorted(), [], "step \(step) (\(op)): edges only the patched observation has")
            XCTAssertEqual(expected.1.subtracting(got.1).map(\.description).sorted(), [], "step \(step) (\(op)): edges only a fresh observer has")
            let unheld = [NodeKind.file, .pipe, .socket].flatMap(incremental.nodes(ofKind:)).filter { incremental.edges(to: $0.id).isEmpty }
            XCTAssertEqual(unheld.map(\.id), [], "step \(step) (\(op)): an object no descriptor holds any more stays")
        }
        XCTAssertGreaterThan(patched, 20, "most changes were patched, not reassembled")
    }

    func testObserversOwnKeptDescriptors_showAsTheKernelShowsThem() throws {
        // The observer keeps each process's stat file and fd directory open; its own table is
        // classified from what it knew when it opened them, not by a readlink each. Each must
        // read exactly as the kernel shows it.
        var observer = ProcObserver(fullRescanEvery: 0)
        _ = try observer.refresh(at: now, full: true)
        let child = try ScriptedChild("/bin/sleep", ["30"])
        defer { child.process.terminate(); child.finish() }
        XCTAssertTrue(waitFor { FileManager.default.fileExists(atPath: "/proc/\(child.pid)/stat") })
        let o = try observer.observe(at: now)
        let g = try graph(o)
        var checked = 0
        for (n, fd) in try descriptors(of: getpid(), in: g) {
            guard case .string(let target)? = fd["target"], target.hasPrefix("/proc/"), target.hasSuffix("/stat") || target.hasSuffix("/fd") else { continue }
            XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(n)"), target)
            var st = stat()
            XCTAssertEqual(stat("/proc/self/fd/\(n)", &st), 0)
            XCTAssertEqual(object(of: fd, in: g)?.id, .object(.file, "\(st.st_dev):\(st.st_ino)"), "fd \(n) -> \(target)")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 2 * 10, "two kept per process seen")
        XCTAssertTrue(g.nodes.values.contains { $0["target"] == .string("/proc/\(child.pid)/stat") }, "the new process's stat file, kept open")
    }

    func testChildProcess_appearsUnderItsParent() throws {
        let child = try ScriptedChild("/bin/sleep", ["30"])
        var observer = ProcObserver()
        let o = try observer.observe(at: now)
        let node = try XCTUnwrap(o.nodes.first { $0.kind == .process && $0["pid"] == .int(Int64(child.pid)) })
        XCTAssertEqual(node["comm"], .string("sleep"))
        XCTAssertTrue(o.edges.contains(Edge(try XCTUnwrap(o.supervisor), .parentOf, node.id)))
        child.process.terminate()
        child.finish()
    }

    /// A TCP socket listening on 127.0.0.1, and its port.
    func loopbackListener() throws -> (Int32, UInt16) {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: 0, sin_addr: in_addr(s_addr: inet_addr("127.0.0.1")), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0))
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(listener, $0, length) == 0 && listen(listener, 16) == 0 && getsockname(listener, $0, &length) == 0
        } }
        guard listener >= 0, bound else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        return (listener, UInt16(bigEndian: address.sin_port))
    }

    /// Poll `condition` for up to two seconds.
    func procStat(_ pid: Int32) -> ProcStat? {
        (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)).flatMap { ProcStat(parsing: Array($0.utf8)) }
    }

    /// Whether `pid` sleeps (in a read, a wait) as `comm`: settled, so two observers do not race it.
    func sleeping(_ pid: Int32, comm: String) -> Bool { procStat(pid).map { $0.state == "S" && $0.comm == comm } == true }

    func waitFor(_ condition: () -> Bool) -> Bool {
        for _ in 0..<200 {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }

    func testKernelThreads_areNotAskedForWhatTheyCannotHave() throws {
        var observer = ProcObserver(fullRescanEvery: 0)
        let o = try observer.refresh(at: now, full: true)
        let kernel = o.nodes.filter { $0.kind == .process && ($0["ppid"] == .int(2) || $0["pid"] == .int(2)) }
        guard !kernel.isEmpty else {
            print("SKIPPED (loudly): no kernel threads visible here")
            return
        }
        for k in kernel {
            XCTAssertEqual(k["cmdline"], .string(""), "\(k.id)")
            XCTAssertEqual(k["fds"], .int(0), "\(k.id)")
            XCTAssertTrue(o.edges.allSatisfy { $0.from != k.id || $0.kind != .owns }, "\(k.id) owns no descriptor")
        }
        // Their command line, namespaces and descriptor tables are not read.
        let stats = observer.lastRefresh
        XCTAssertEqual(stats.descriptorScans, stats.processesRead - kernel.count)
        XCTAssertEqual(ProcStat(parsing: Array("2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 3".utf8))?.kernelThread, true)
        XCTAssertEqual(ProcStat(parsing: Array("9 (sh) S 1 9 9 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 3".utf8))?.kernelThread, false)
        XCTAssertEqual(ProcStat(parsing: Array("9 (sh) S 1 9 9 0 -1 flags 0 0 0 0 0 0 0 0 20 0 1 0 3".utf8))?.kernelThread, false,
                       "unreadable flags: not a kernel thread")
    }

    func testAProcessThatHasNotRun_isNotReread_yetItsNewParentIsSeen() throws {
        var observer = ProcObserver(fullRescanEvery: 0)
        guard observer.hearsProcessStarts else {
            print("SKIPPED (loudly): no process events here (needs root); every process is reread each refresh")
            return
        }
        // A parent starts a sleeper (holding none of the descriptors Foundation watches to see
        // the parent end), says its pid, and waits for a line; then exits, and the sleeper gets
        // a new parent without running.
        let script = """
            import subprocess, sys
            child = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            sys.stdin.readline(); print(child.pid, flush=True)
            sys.stdin.readline(); print("bye", flush=True)
            """
        let sh = try ScriptedChild("/usr/bin/env", ["python3", "-c", script])
        defer { sh.finish() }
        let sleeper = try XCTUnwrap(Int32(sh.send("go")))
        defer { kill(sleeper, SIGKILL) }
        XCTAssertTrue(waitFor { sleeping(sleeper, comm: "sleep") })
        func node(_ o: Observation) throws -> Node {
            try XCTUnwrap(o.nodes.first { $0.kind == .process && $0["pid"] == .int(Int64(sleeper)) })
        }
        XCTAssertEqual(try node(observer.refresh(at: now, full: true))["ppid"], .int(Int64(sh.pid)))
        _ = try observer.observe(at: now)  // opens each schedstat: the first look at whether it ran
        _ = try observer.observe(at: now)
        XCTAssertGreaterThan(observer.lastRefresh.notRun, 0, "sleeping processes are not reread")

        // Its parent exits: it is re-parented without running.
        XCTAssertEqual(sh.send("bye"), "bye")
        sh.finish()
        XCTAssertTrue(waitFor { procStat(sleeper).map { $0.ppid != sh.pid } == true })
        let adopted = try XCTUnwrap(procStat(sleeper)).ppid
        XCTAssertEqual(try node(observer.observe(at: now))["ppid"], .int(Int64(adopted)))
        var fresh = ProcObserver(fullRescanEvery: 0)
        XCTAssertEqual(try node(observer.observe(at: now)), try node(fresh.refresh(at: now, full: true)), "as a fresh observer reads it")
    }

    func testProcessEvents_spareTheListingOfProc_andNoNewProcessIsMissed() throws {
        var observer = ProcObserver(fullRescanEvery: 0)
        guard observer.hearsProcessStarts else {
            throw XCTSkip("NO PROCESS EVENTS — SKIPPED: the process-events connector needs root (CAP_NET_ADMIN); every refresh lists /proc")
        }
        _ = try observer.refresh(at: now, full: true)
        // A quiet refresh lists /proc only if some process on the machine started since the
        // last one: of up to 50 back to back (a busy machine forks now and then), one finds none did.
        var quiet = false
        for _ in 0..<50 where !quiet {
            _ = try observer.observe(at: now)
            quiet = !observer.lastRefresh.listedProcesses
        }
        XCTAssertTrue(quiet, "no refresh was spared the listing")
        // A process started after the last refresh is seen by the next one.
        let child = try ScriptedChild("/bin/sleep", ["30"])
        defer { child.process.terminate(); child.finish() }
        XCTAssertTrue(try observer.observe(at: now).nodes.contains { $0.kind == .process && $0["pid"] == .int(Int64(child.pid)) })
        XCTAssertTrue(observer.lastRefresh.listedProcesses)
        // So is one started after a burst that overflows the events' buffer.
        for _ in 0..<200 {
            var pid: pid_t = 0
            let argv: [UnsafeMutablePointer<CChar>?] = [strdup("true"), nil]
            XCTAssertEqual(posix_spawn(&pid, "/bin/true", nil, nil, argv, environ), 0)
            argv.forEach { free($0) }
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        let last = try ScriptedChild("/bin/sleep", ["30"])
        defer { last.process.terminate(); last.finish() }
        XCTAssertTrue(try observer.observe(at: now).nodes.contains { $0.kind == .process && $0["pid"] == .int(Int64(last.pid)) })
        // One that exec's is read anew: its command line is the new program's.
        let shell = try ScriptedChild("/bin/sh", ["-c", "read line; echo ok; exec /bin/sleep 60"])
        defer { shell.process.terminate(); shell.finish() }
        let cmdline = { (o: Observation) in o.nodes.first { $0.kind == .process && $0["pid"] == .int(Int64(shell.pid)) }?["cmdline"] }
        XCTAssertTrue(waitFor { (try? String(contentsOfFile: "/proc/\(shell.pid)/cmdline", encoding: .utf8))?.hasPrefix("/bin/sh") == true })
        XCTAssertEqual(cmdline(try observer.observe(at: now)), .string("/bin/sh -c read line; echo ok; exec /bin/sleep 60"))
        XCTAssertEqual(shell.send("go"), "ok")
        XCTAssertTrue(waitFor { (try? String(contentsOfFile: "/proc/\(shell.pid)/cmdline", encoding: .utf8))?.hasPrefix("/bin/sleep") == true })
        XCTAssertEqual(cmdline(try observer.observe(at: now)), .string("/bin/sleep 60"))
        // And one that exits is gone from the next refresh, listed or not.
        child.process.terminate()
        child.process.waitUntilExit()
        XCTAssertFalse(try observer.observe(at: now).nodes.contains { $0.kind == .process && $0["pid"] == .int(Int64(child.pid)) })
    }

    func testMemoryMaps_whenAsked_addBacksEdgesFromEachMappedFile() throws {
        var plain = ProcObserver()
        XCTAssertFalse(try plain.observe(at: now).edges.contains { $0.kind == .backs }, "maps are read only when asked")
        var observer = ProcObserver(includeMaps: true)
        let o = try observer.observe(at: now)
        let me = try XCTUnwrap(o.supervisor)
        let mapped = o.edges.filter { $0.kind == .backs && $0.to == me }.compactMap { e in o.nodes.first { $0.id == e.from } }
        let paths = mapped.compactMap { $0["path"]?.stringValue }
        XCTAssertTrue(paths.contains { $0.hasSuffix("/libc.so.6") }, "the C library backs this process: \(paths)")
        var st = stat()
        let libc = try XCTUnwrap(paths.first { $0.hasSuffix("/libc.so.6") })
        stat(libc, &st)
        XCTAssertTrue(mapped.contains { $0.id == .object(.file, "\(st.st_dev):\(st.st_ino)") }, "identified by device + inode, as open files are")
    }

    func testMissingProcRoot_isAClearError() {
        var observer = ProcObserver(root: "/nonexistent-proc")
        XCTAssertThrowsError(try observer.observe(at: now)) { XCTAssertTrue("\($0)".contains("/nonexistent-proc"), "\($0)") }
    }
}

/// A recorded /proc tree: fixed files, so refreshes are deterministic.
final class RecordedProcTests: XCTestCase {
    var root: String!
    let now = Instant(nanoseconds: 1)

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "worldos-proc-\(UUID().uuidString)"
        let fm = FileManager.default
        try fm.createDirectory(atPath: "\(root!)/10/fd", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: "\(root!)/10/ns", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: "\(root!)/10/net", withIntermediateDirectories: true)
        try stat(pid: 10, name: "my (odd) name", start: 4242)
        try fm.createSymbolicLink(atPath: "\(root!)/10/fd/0", withDestinationPath: "/dev/null")
        try fm.createSymbolicLink(atPath: "\(root!)/10/fd/1", withDestinationPath: "/nonexistent/closed-mid-read")
        try fm.createSymbolicLink(atPath: "\(root!)/10/fd/2", withDestinationPath: "anon_inode:[timerfd]")
        try fm.createSymbolicLink(atPath: "\(root!)/10/ns/net", withDestinationPath: "net:[4026531840]")
        try Data("0::/bench.slice/worker\n".utf8).write(to: URL(fileURLWithPath: "\(root!)/10/cgroup"))
        try Data("worker\0--fast\0".utf8).write(to: URL(fileURLWithPath: "\(root!)/10/cmdline"))
        try fm.createDirectory(atPath: "\(root!)/11", withIntermediateDirectories: true)   // exited: no stat
        try fm.createDirectory(atPath: "\(root!)/12", withIntermediateDirectories: true)
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: "\(root!)/12/stat"))
        try fm.createDirectory(atPath: "\(root!)/self", withIntermediateDirectories: true)  // not a pid
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: root) }

    func stat(pid: Int, name: String, start: Int, state: String = "S") throws {
        try Data("\(pid) (\(name)) \(state) 1 10 10 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 3 0 \(start) 0 0\n".utf8)
            .write(to: URL(fileURLWithPath: "\(root!)/\(pid)/stat"))
    }

    func testRacesAndUnreadableEntries_areCounted_andTheRestOfTheStepStands() throws {
        var observer = ProcObserver(root: root)
        let o = try observer.observe(at: now)
        XCTAssertEqual(o.raced, 3, "pid 11 vanished, pid 12's stat is garbage, fd 1 was closed mid-read")
        let p = NodeID.process(pid: 10, startTime: 4242)
        let node = try XCTUnwrap(o.nodes.first { $0.id == p })
        XCTAssertEqual(node["comm"], .string("my (odd) name"))
        XCTAssertEqual(node["fds"], .int(2), "fd 1 raced; 0 and 2 stand")
        XCTAssertEqual(node["threads"], .int(3))
        XCTAssertEqual(node["cmdline"], .string("worker --fast"))
        XCTAssertEqual(node["cgroup"], .string("/bench.slice/worker"))
        XCTAssertTrue(o.edges.contains(Edge(.fileDescriptor(owner: p, fd: 0), .opened, NodeID("device:c:1:3"))))
        XCTAssertTrue(o.nodes.contains { $0.kind == .anonInode && $0["subtype"] == .string("timerfd") })
    }

    func testLinkNames_areReadFromTheirText_andMalformedOnesNameNothing() throws {
        let links = ["socket:[123]", "pipe:[77]", "anon_inode:inotify", "socket:[12a]", "pipe:[99999999999999999999999]", "socket:[]",
                     "anon_inode:[eventfd]", "socket:["]
        for (i, link) in links.enumerated() {
            try FileManager.default.createSymbolicLink(atPath: "\(root!)/10/fd/\(3 + i)", withDestinationPath: link)
        }
        var observer = ProcObserver(root: root)
        let o = try observer.observe(at: now)
        let p = NodeID.process(pid: 10, startTime: 4242)
        XCTAssertTrue(o.edges.contains(Edge(.fileDescriptor(owner: p, fd: 3), .opened, NodeID("socket:123"))))
        XCTAssertTrue(o.edges.contains(Edge(.fileDescriptor(owner: p, fd: 4), .opened, NodeID("pipe:77"))))
        XCTAssertEqual(Set(o.nodes.filter { $0.kind == .anonInode }.compactMap { $0["subtype"]?.stringValue }), ["timerfd", "inotify", "eventfd"])
        XCTAssertEqual(Set(o.nodes.filter { $0.kind == .socket || $0.kind == .pipe }.map(\.id)), [NodeID("socket:123"), NodeID("pipe:77")],
                       "a bad inode (letters, too large, empty, unclosed) names no socket or pipe")
        // Those four are not links to anything this tree holds: each counts as a descriptor gone mid-read.
        XCTAssertEqual(o.raced, 3 + 4)
    }

    func testNothingChanged_handsBackTheSameObservation_withoutRereadingDescriptors() throws {
        var observer = ProcObserver(root: root, fullRescanEvery: 0)
        let first = try observer.observe(at: now)
        let second = try observer.observe(at: now)
        XCTAssertFalse(observer.lastRefresh.changed)
        XCTAssertEqual(observer.lastRefresh.processesRead, 0)
        XCTAssertEqual(observer.lastRefresh.statRereads, 1)
        XCTAssertEqual(observer.lastRefresh.descriptorScans, 0)
        XCTAssertEqual(Set(second.nodes), Set(first.nodes))
    }

    func testStateChange_updatesTheNode_andPidReuse_isANewNode() throws {
        var observer = ProcObserver(root: root, fullRescanEvery: 0)
        _ = try observer.observe(at: now)
        try stat(pid: 10, name: "my (odd) name", start: 4242, state: "R")
        let running = try observer.observe(at: now)
        XCTAssertTrue(observer.lastRefresh.changed)
        XCTAssertEqual(running.nodes.first { $0.id == .process(pid: 10, startTime: 4242) }?["state"], .string("R"))
        try stat(pid: 10, name: "successor", start: 9999)
        let reused = try observer.observe(at: now)
        XCTAssertNil(reused.nodes.first { $0.id == .process(pid: 10, startTime: 4242) })
        XCTAssertEqual(reused.nodes.first { $0.id == .process(pid: 10, startTime: 9999) }?["comm"], .string("successor"))
        XCTAssertEqual(observer.lastRefresh.processesRead, 1)
    }
}

/// Parsers of /proc text, on good and malformed input.
final class ProcParserTests: XCTestCase {
    func testStat_handlesOddNames_andRejectsMalformedLines() throws {
        let line = "77 (a) b) c) R 5 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 -5 4 0 999 0 0"
        let s = try XCTUnwrap(ProcStat(parsing: Array(line.utf8)))
        XCTAssertEqual([s.comm, String(s.state)], ["a) b) c", "R"])
        XCTAssertEqual([Int64(s.ppid), s.priority, s.nice, s.threads, Int64(s.startTime)], [5, 20, -5, 4, 999])
        let spaced = try XCTUnwrap(ProcStat(parsing: Array("8 (b)  S  1 8 8 0 -1 0 0 0 0 0 0 0 0 0 +19 0 2 0 12\n".utf8)))
        XCTAssertEqual([Int64(spaced.ppid), spaced.priority, spaced.threads, Int64(spaced.startTime)], [1, 19, 2, 12], "runs of spaces, a sign, the newline")
        for bad in ["", "77", "77 (x", "77 x) R 5", "77 (x) R 99999999999 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9",
                    "77 (x) R - 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9", "77 (x) R 5 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0",
                    "77 (x) R 5 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99999999999999999999", "77 (x) R notanumber 1 2", "77 (x) RR 5 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9",
                    "77 (x) R 5 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 -3", "77 (x) R 5 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 one 0 9"] {
            XCTAssertNil(ProcStat(parsing: Array(bad.utf8)), bad)
        }
    }

    func testInetTables_decodeAddressesAndStates_andSkipMalformedLines() {
        let tcp = """
          sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
           0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0
           1: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 12346 1 0000000000000000 20 4 0 10 -1
           2: garbage line
           3: 0100007F:ZZZZ 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
        """
        let (entries, malformed) = NetTable.parseInet(Array(tcp.utf8), protocolName: "tcp")
        XCTAssertEqual(malformed, 2)
        XCTAssertEqual(entries, [
            SocketEntry(inode: 12345, protocolName: "tcp", local: "127.0.0.1:8080", remote: "0.0.0.0:0", state: "LISTEN"),
            SocketEntry(inode: 12346, protocolName: "tcp", local: "127.0.0.1:50000", remote: "127.0.0.1:8080", state: "ESTABLISHED"),
        ])
        let tcp6 = "header\n   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1\n"
        XCTAssertEqual(NetTable.parseInet(Array(tcp6.utf8), protocolName: "tcp6").entries.first?.local, "[0:0:0:0:0:0:0:1]:8080")
        let udp = "header\n  5: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 888 2\n"
        XCTAssertEqual(NetTable.parseInet(Array(udp.utf8), protocolName: "udp").entries.first?.state, "UNCONN")
        XCTAssertEqual(NetTable.parseInet([UInt8](), protocolName: "tcp").entries, [])
        XCTAssertEqual([NetTable.address([255, 255, 255, 255], port: 65535), NetTable.address([0, 0, 0, 0], port: 0),
                        NetTable.address([10, 0, 20, 1], port: 80), NetTable.address([192, 168, 100, 9], port: 1000)],
                       ["255.255.255.255:65535", "0.0.0.0:0", "10.0.20.1:80", "192.168.100.9:1000"])
        XCTAssertEqual([NetTable.tcpStateName(1), NetTable.tcpStateName(10), NetTable.tcpStateName(11), NetTable.tcpStateName(12),
                        NetTable.tcpStateName(0)], ["ESTABLISHED", "LISTEN", "CLOSING", "0C", "00"])
        XCTAssertEqual([SocketDiag.unixState(type: 1, state: 10), SocketDiag.unixState(type: 2, state: 7), SocketDiag.unixState(type: 9, state: 3)],
                       ["stream LISTEN", "dgram UNCONNECTED", "0009 3"])
    }

    func testSocketDiagReplies_malformedOrRefused_areReportedNotMisread() {
        let tcp = SocketDiag.Query.all[0], unix = SocketDiag.Query.all[4]
        func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
        func message(_ type: UInt16, _ payload: [UInt8], length: UInt32? = nil) -> [UInt8] {
            le(length ?? UInt32(16 + payload.count)) + le(type) + [0, 0] + [UInt8](repeating: 0, count: 8) + payload
        }
        // A well-formed inet record: 127.0.0.1:8080 listening, inode 4242.
        var inet = [UInt8](repeating: 0, count: 72)
        inet[0] = UInt8(AF_INET); inet[1] = 10; inet[4] = 0x1F; inet[5] = 0x90
        inet[8...11] = [127, 0, 0, 1]; inet[68] = 0x92; inet[69] = 0x10
        let good = SocketDiag.parse(message(20, inet) + message(3, [0, 0, 0, 0]), query: tcp)
        XCTAssertEqual(good.entries, [SocketEntry(inode: 4242, protocolName: "tcp", local: "127.0.0.1:8080", remote: "0.0.0.0:0", state: "LISTEN")])
        XCTAssertTrue(good.done)
        XCTAssertEqual(good.malformed, 0)
        // Too short a record, a length past the datagram, a length below a header, a stray tail.
        XCTAssertEqual(SocketDiag.parse(message(20, Array(inet[0..<40])), query: tcp).malformed, 1)
        let overlong = SocketDiag.parse(message(20, inet, length: 400), query: tcp)
        XCTAssertEqual([overlong.malformed, overlong.entries.count], [1, 0])
        XCTAssertEqual(SocketDiag.parse(message(20, inet, length: 8), query: tcp).malformed, 1)
        XCTAssertEqual(SocketDiag.parse(message(20, inet) + [1, 2, 3], query: tcp).malformed, 1)
        // The kernel's refusal carries its errno.
        XCTAssertEqual(SocketDiag.parse(message(2, le(UInt32(bitPattern: -ENOENT)) + [UInt8](repeating: 0, count: 16)), query: tcp).error, ENOENT)
        // A unix record whose name attribute runs past the message is rejected whole.
        var record: [UInt8] = [UInt8(AF_UNIX), 1, 10, 0] + le(UInt32(77)) + [UInt8](repeating: 0, count: 8)
        XCTAssertEqual(SocketDiag.parse(message(20, record + le(UInt16(40)) + [0, 0] + Array("/x".utf8)), query: unix).malformed, 1)
        record += le(UInt16(4 + 9)) + [0, 0] + [0] + Array("abstract".utf8) + [0, 0, 0]
        XCTAssertEqual(SocketDiag.parse(message(20, record), query: unix).entries,
                       [SocketEntry(inode: 77, protocolName: "unix", local: "@abstract", remote: "", state: "stream LISTEN")])
        // Names as /proc/net/unix shows them: an abstract name's NULs as `@`, a path without its NUL.
        let padded: [UInt8] = [UInt8(AF_UNIX), 2, 7, 0] + le(UInt32(78)) + [UInt8](repeating: 0, count: 8)
            + le(UInt16(4 + 6)) + [0, 0] + [0, 0x61, 0x62, 0, 0x63, 0] + [0, 0]
        XCTAssertEqual(SocketDiag.parse(message(20, padded), query: unix).entries.map(\.local), ["@ab@c@"])
        let path: [UInt8] = [UInt8(AF_UNIX), 1, 1, 0] + le(UInt32(79)) + [UInt8](repeating: 0, count: 8)
            + le(UInt16(4 + 7)) + [0, 0] + Array("/run/x".utf8) + [0] + [0]
        XCTAssertEqual(SocketDiag.parse(message(20, path), query: unix).entries.map(\.local), ["/run/x"])
        XCTAssertEqual(SocketDiag.parse(message(20, path), query: unix).entries.map(\.state), ["stream CONNECTED"])
    }

    func testUnixTable_readsPathsTypesAndListeningSockets() {
        let unix = """
        Num       RefCount Protocol Flags    Type St Inode Path
        0000000000000000: 00000002 00000000 00010000 0001 01 20001 /run/bench.sock
        0000000000000000: 00000003 00000000 00000000 0001 03 20002
        0000000000000000: 00000002 00000000 00000000 0002 01 20003 @abstract name
        bad
        """
        let (entries, malformed) = NetTable.parseUnix(Array(unix.utf8))
        XCTAssertEqual(malformed, 1)
        XCTAssertEqual(entries.map(\.state), ["stream LISTEN", "stream CONNECTED", "dgram UNCONNECTED"])
        XCTAssertEqual(entries.map(\.local), ["/run/bench.sock", "", "@abstract name"])
        XCTAssertEqual(entries.map(\.inode), [20001, 20002, 20003])
    }

    func testMaps_listsEachMappedFileOnce_withItsDeviceNumber() {
        let maps = """
        55d0c0a00000-55d0c0a02000 r--p 00000000 08:01 131090                     /usr/bin/cat
        55d0c0a02000-55d0c0a07000 r-xp 00002000 08:01 131090                     /usr/bin/cat
        7f1c2e400000-7f1c2e428000 r--p 00000000 103:02 2621 /usr/lib/x86_64-linux-gnu/libc.so.6
        7ffd4a1e9000-7ffd4a20a000 rw-p 00000000 00:00 0                          [stack]
        55d0c1f6e000-55d0c1f8f000 rw-p 00000000 00:00 0                          [heap]
        not a maps line
        """
        let files = ProcMaps.parse(Array(maps.utf8))
        XCTAssertEqual(files.map(\.path), ["/usr/bin/cat", "/usr/lib/x86_64-linux-gnu/libc.so.6"])
        XCTAssertEqual(files[0].device, makeDevice(major: 8, minor: 1))
        XCTAssertEqual(deviceMajor(files[1].device), 0x103)
        XCTAssertEqual(deviceMinor(files[1].device), 2)
    }
}

/// Every process's cgroup read at once from the unified hierarchy.
final class CgroupTreeTests: XCTestCase {
    func testMountPoint_isTheUnifiedHierarchysMountedFromItsRoot() {
        func mount(_ text: String) -> String? { CgroupTree.mountPoint(mountinfo: Array(text.utf8)) }
        let v1 = "35 28 0:30 / /sys/fs/cgroup/cpu rw,relatime shared:12 - cgroup cgroup rw,cpu\n"
        XCTAssertEqual(mount(v1 + "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"), "/sys/fs/cgroup/unified")
        XCTAssertEqual(mount("29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 master:1 - cgroup2 cgroup2 rw,nsdelegate\n"), "/sys/fs/cgroup",
                       "optional fields before the dash")
        XCTAssertNil(mount(v1), "v1 only")
        XCTAssertNil(mount("41 31 0:38 /sub /mnt/cg rw - cgroup2 cgroup2 rw\n"), "not mounted from its root")
        XCTAssertNil(mount("41 31 0:38 / /mnt/my\\040cg rw - cgroup2 cgroup2 rw\n"), "an escaped mount point")
        XCTAssertNil(mount("garbage\n41 31 -\n\n - cgroup2\n"), "malformed lines name nothing")
    }

    func testPids_areDecimalLines_andAnythingElseIsRefused() {
        XCTAssertEqual(CgroupTree.parsePids(Array("1\n22\n333\n".utf8)), [1, 22, 333])
        XCTAssertEqual(CgroupTree.parsePids([]), [])
        for bad in ["1\nx2\n", "-1\n", "99999999999\n", "1 2\n"] {
            XCTAssertNil(CgroupTree.parsePids(Array(bad.utf8)), bad)
        }
    }

    func testWalk_namesEachProcessByItsCgroupsPath_andRefusesAnUnreadableTree() throws {
        let root = NSTemporaryDirectory() + "worldos-cgroup-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        func cgroup(_ path: String, _ procs: String?) throws {
            try FileManager.default.createDirectory(atPath: root + path, withIntermediateDirectories: true)
            if let procs { try procs.write(toFile: root + path + "/cgroup.procs", atomically: false, encoding: .utf8) }
        }
        try cgroup("", "1\n2\n")
        try cgroup("/system.slice", "")
        try cgroup("/system.slice/a.service", "10\n")
        try cgroup("/user.slice", "11\n12\n")
        XCTAssertEqual(CgroupTree.walk(root), [1: "/", 2: "/", 10: "/system.slice/a.service", 11: "/user.slice", 12: "/user.slice"])
        XCTAssertNil(CgroupTree.walk(root, limit: 3), "more cgroups than the limit")
        try cgroup("/broken", "7\nseven\n")
        XCTAssertNil(CgroupTree.walk(root), "a malformed cgroup.procs")
        try FileManager.default.removeItem(atPath: root + "/broken/cgroup.procs")
        XCTAssertNil(CgroupTree.walk(root), "a cgroup without its cgroup.procs")
    }

    func testAFullRefresh_readsCgroupsFromTheTree_asProcShowsThem() throws {
        let mountinfo = try Array(XCTUnwrap(FileHandle(forReadingAtPath: "/proc/self/mountinfo")).readDataToEndOfFile())
        guard CgroupTree.mountPoint(mountinfo: mountinfo) != nil else {
            print("SKIPPED (loudly): no unified cgroup hierarchy mounted here; cgroups are read per process")
            return
        }
        var observer = ProcObserver(fullRescanEvery: 0)
        let o = try observer.refresh(at: Instant(nanoseconds: 1), full: true)
        let processes = o.nodes.filter { $0.kind == .process }
        XCTAssertLessThan(observer.lastRefresh.cgroupReads, processes.count / 2, "most cgroups came from the tree")
        var compared = 0
        for p in processes {
            guard case .int(let pid)? = p["pid"],
                  let bytes = try? Array(XCTUnwrap(FileHandle(forReadingAtPath: "/proc/\(pid)/cgroup")).readDataToEndOfFile()) else { continue }
            XCTAssertEqual(p["cgroup"], .string(parseCgroup(bytes)), "process \(pid)")
            compared += 1
        }
        XCTAssertGreaterThan(compared, 10)
    }
}

/// The table of shared objects a patch keeps: held and released at random against a model.
final class SharedObjectsTests: XCTestCase {
    func testHoldAndRelease_keepPlacesAndCounts_likeADictionary() {
        var objects = SharedObjects()
        var model: [ObjectKey: Int] = [:]
        var random = SeededRandom(seed: 11)
        // Few keys over many operations: collisions, wrap-around and deletion by backward
        // shift all happen; kinds differ with the same numbers.
        let kinds: [ObjectKey.Kind] = [.socket, .regular, .pipe]
        let universe = (0..<300).map { (i: Int) -> ObjectKey in
            let shift: UInt64 = i % 2 == 0 ? 0 : 32
            return ObjectKey(kind: kinds[i % 3], a: UInt64(i / 3) << shift, b: UInt64(i % 7))
        }
        for step in 0..<40_000 {
            let key = universe[Int(random.next() % UInt64(universe.count))]
            if random.next() % 2 == 0 || model[key] == nil {
                let added = objects.hold(key) {
                    ProcCache.KeptObject(node: key.node(id: key.id, target: "t"), target: "t", netns: 0, socket: nil)
                }
                XCTAssertEqual(added, model[key] == nil, "step \(step)")
                model[key, default: 0] += 1
            } else {
                let place = objects.place(of: key)
                let freed = objects.release(key)
                model[key]! -= 1
                if model[key] == 0 {
                    model[key] = nil
                    XCTAssertEqual(freed, place, "step \(step): the place it left")
                } else {
                    XCTAssertNil(freed, "step \(step)")
                }
            }
            if step % 500 == 0 || step == 39_999 {
                XCTAssertEqual(objects.count, model.count)
                for (held, references) in model {
                    let place = objects.place(of: held)
                    XCTAssertEqual(place.map { objects.keys[$0] }, held, "step \(step)")
                    XCTAssertEqual(place.map { objects.kept[$0].node.id }, held.id)
                    XCTAssertEqual(objects.referenceCount(held), references)
                }
                for other in universe where model[other] == nil { XCTAssertNil(objects.place(of: other)) }
            }
        }
    }
}
