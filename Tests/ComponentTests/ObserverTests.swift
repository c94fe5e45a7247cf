import Foundation
import Glibc
import LoopCore
import Observer
import StateGraph
import XCTest

final class ObserverTests: XCTestCase {
    let now = Instant(nanoseconds: 1)

    func testOwnProcess_andADescriptorItOpens_appearWithOwnershipAndOpenedEdges() throws {
        let path = NSTemporaryDirectory() + "worldos-observed-\(UUID().uuidString)"
        FileManager.default.createFile(atPath: path, contents: Data("x".utf8))
        defer { unlink(path) }
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        let o = try ProcObserver().observe(at: now)
        let me = try XCTUnwrap(o.supervisor)
        XCTAssertTrue(me.rawValue.hasPrefix("process:\(getpid())@"))
        let fdID = NodeID.fileDescriptor(owner: me, fd: fd)
        let fdNode = try XCTUnwrap(o.nodes.first { $0.id == fdID })
        XCTAssertEqual(fdNode["target"], .string(path))
        XCTAssertTrue(o.edges.contains(Edge(me, .owns, fdID)))
        XCTAssertTrue(o.edges.contains(Edge(fdID, .opened, .object(.file, path))))
        XCTAssertTrue(o.nodes.contains { $0.id == .object(.file, path) && $0.kind == .file })
    }

    func testChildProcess_appearsUnderItsParent_andIsGoneAfterItExits() throws {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/sleep")
        child.arguments = ["30"]
        try child.run()
        let pid = child.processIdentifier
        let during = try ProcObserver().observe(at: now)
        let node = try XCTUnwrap(during.nodes.first { $0.kind == .process && $0["pid"] == .int(Int64(pid)) })
        XCTAssertEqual(node["comm"], .string("sleep"))
        XCTAssertTrue(during.edges.contains(Edge(during.supervisor!, .parentOf, node.id)))
        child.terminate()
        child.waitUntilExit()
        let after = try ProcObserver().observe(at: now)
        XCTAssertFalse(after.nodes.contains { $0.id == node.id })
    }

    /// A recorded /proc tree with a process that vanished mid-read and one whose stat is garbage:
    /// both are counted as races, and the healthy process is still observed whole.
    func testRacesAndUnreadableEntries_areCounted_andTheRestOfTheStepStands() throws {
        let root = NSTemporaryDirectory() + "worldos-proc-\(UUID().uuidString)"
        let fm = FileManager.default
        try fm.createDirectory(atPath: "\(root)/10/fd", withIntermediateDirectories: true)
        try Data("10 (my (odd) name) S 1 10 10 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 4242 0 0\n".utf8)
            .write(to: URL(fileURLWithPath: "\(root)/10/stat"))
        try fm.createSymbolicLink(atPath: "\(root)/10/fd/0", withDestinationPath: "/dev/null")
        try fm.createSymbolicLink(atPath: "\(root)/10/fd/5", withDestinationPath: "socket:[777]")
        try fm.createDirectory(atPath: "\(root)/11", withIntermediateDirectories: true)   // exited: no stat
        try fm.createDirectory(atPath: "\(root)/12", withIntermediateDirectories: true)
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: "\(root)/12/stat"))
        try fm.createDirectory(atPath: "\(root)/self", withIntermediateDirectories: true)  // not a pid
        defer { try? fm.removeItem(atPath: root) }

        let o = try ProcObserver(root: root).observe(at: now)
        XCTAssertEqual(o.raced, 2)
        let p = NodeID.process(pid: 10, startTime: 4242)
        XCTAssertEqual(o.nodes.first { $0.id == p }?["comm"], .string("my (odd) name"))
        XCTAssertEqual(o.nodes.first { $0.id == p }?["fds"], .int(2))
        XCTAssertEqual(Set(o.nodes.map(\.kind)), [.process, .fileDescriptor, .file, .socket])
        XCTAssertTrue(o.edges.contains(Edge(.fileDescriptor(owner: p, fd: 5), .opened, .object(.socket, "socket:[777]"))))
    }

    func testMissingProcRoot_isAClearError() {
        XCTAssertThrowsError(try ProcObserver(root: "/nonexistent-proc").observe(at: now)) { error in
            XCTAssertTrue("\(error)".contains("/nonexistent-proc"), "\(error)")
        }
    }

    func testStatParser_handlesOddNames_andRejectsMalformedLines() {
        let line = "77 (a) b) c) R 5 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 999 0 0"
        XCTAssertEqual(ProcStat(parsing: Array(line.utf8)), ProcStat(parsingFields: "a) b) c", "R", 5, 999))
        for bad in ["", "77", "77 (x", "77 x) R 5", "77 (x) R notanumber 1 2", "77 (x) RR 5 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9",
                    "77 (x) R 5 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 -3"] {
            XCTAssertNil(ProcStat(parsing: Array(bad.utf8)), bad)
        }
    }
}

extension ProcStat {
    init?(parsingFields comm: String, _ state: String, _ ppid: Int32, _ start: UInt64) {
        self.init(parsing: Array("1 (\(comm)) \(state) \(ppid) 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 0 \(start)".utf8))
    }
}
