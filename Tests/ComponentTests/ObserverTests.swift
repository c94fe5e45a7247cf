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
