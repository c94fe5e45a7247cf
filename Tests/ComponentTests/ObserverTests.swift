import Foundation
import Glibc
import LoopCore
import Observer
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
        FileManager.default.createFile(atPath: dir + "/data", contents: Data("x".utf8))
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
        for bad in ["", "77", "77 (x", "77 x) R 5", "77 (x) R notanumber 1 2", "77 (x) RR 5 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9",
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
