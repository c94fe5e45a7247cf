import CShim
import Foundation
import Glibc
import LoopCore
@testable import Observer
import StateGraph
import WorldOSTesting
import XCTest

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
