import Foundation
import StateGraph
import WorldOSTesting
import XCTest

/// `worldos graph` against lsof on a controlled load: every descriptor lsof lists for the
/// children is in the graph, owned by the right process, referring to the same object.
final class LsofComparisonTests: XCTestCase {
    func testGraph_showsEveryDescriptorAndSocketLsofShows_forAControlledLoad() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/lsof") else {
            throw XCTSkip("LSOF MISSING — SKIPPED: install lsof (make setup does) to compare against it")
        }
        let dir = try temporaryDirectory("lsof")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/data", contents: Data("x".utf8)))
        let fixture = repositoryRoot.appendingPathComponent("Tests/Fixtures/fdchild.py").path
        var children: [ScriptedChild] = []
        for i in 0..<3 {
            let c = try ScriptedChild("/usr/bin/env", ["python3", fixture])
            c.send("file \(dir)/data")
            c.send("pipe")
            let port = c.send("tcp-listen").split(separator: " ")[1]
            c.send("tcp-connect \(port)")
            c.send("udp")
            c.send("unix-pair")
            c.send("unix-listen \(dir)/s\(i)")
            c.send("eventfd")
            children.append(c)
        }
        let pids = children.map(\.pid)
        let expected = try Lsof.descriptors(of: pids)
        XCTAssertGreaterThan(expected.count, 30, "lsof saw the load")

        let result = try runWorldOS(["graph", "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let graph = try Graph(snapshot: GraphSnapshot.decode(Data(result.stdout.utf8)))
        var seen: Set<Lsof.Entry> = []
        for pid in pids {
            let process = try XCTUnwrap(graph.nodes(ofKind: .process).first { $0["pid"] == .int(Int64(pid)) }, "process \(pid) is in the graph")
            for fdID in graph.owned(by: process.id) {
                guard let fd = graph[fdID], let number = fd["fd"]?.intValue else { continue }
                let object = graph.edges(from: fdID).first { $0.kind == .opened }.flatMap { graph[$0.to] }
                seen.insert(Lsof.Entry(pid: pid, fd: number, kind: "", inode: object?["ino"].map { "\($0)" } ?? ""))
            }
        }
        for e in expected {
            XCTAssertTrue(seen.contains { $0.pid == e.pid && $0.fd == e.fd }, "lsof shows fd \(e.fd) (\(e.kind)) of \(e.pid); the graph does not")
            if ["IPv4", "IPv6", "unix", "sock", "FIFO", "REG", "DIR"].contains(e.kind), !e.inode.isEmpty {
                XCTAssertTrue(seen.contains { $0.pid == e.pid && $0.fd == e.fd && $0.inode == e.inode },
                              "fd \(e.fd) of \(e.pid): lsof says inode \(e.inode) (\(e.kind)), the graph disagrees")
            }
        }
        XCTAssertEqual(seen.map { "\($0.pid)/\($0.fd)" }.sorted(), expected.map { "\($0.pid)/\($0.fd)" }.sorted(),
                       "the graph shows no descriptor lsof does not")
        children.forEach { $0.finish() }
    }
}
