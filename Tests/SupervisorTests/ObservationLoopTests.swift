import DataEngine
import Foundation
import Glibc
import LoopCore
import StateGraph
import Supervisor
import WorldOSTesting
import XCTest

/// The real observer and estimator in the loop, against real children.
final class ObservationLoopTests: XCTestCase {
    var directory: String!
    override func setUpWithError() throws { directory = try temporaryDirectory("observation-loop") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    func loop(tasks: String, allow: String) throws -> SupervisorLoop {
        try write("version: 1\ncontexts:\n  probe:\n    interval-ms: 0\n    tasks:\n" + tasks, to: directory + "/bench.yaml")
        try write("version: 1\ncontexts:\n  probe:\n    allow:\n" + allow, to: directory + "/policy.yaml")
        var o = SupervisorOptions()
        o.bench = directory + "/bench.yaml"
        o.policy = directory + "/policy.yaml"
        o.out = directory + "/out"
        o.redaction = directory + "/no-redaction.yaml"  // absent: the trace is exact
        return try Supervisor.make(o, clock: ManualClock())
    }

    func process(_ pid: Int32, in g: Graph) -> Node? { g.nodes(ofKind: .process).first { $0["pid"] == .int(Int64(pid)) } }
    func descriptors(_ pid: Int32, in g: Graph) -> [Int64: Node] {
        guard let p = process(pid, in: g) else { return [:] }
        return Dictionary(uniqueKeysWithValues: g.owned(by: p.id).compactMap { g[$0] }.map { ($0["fd"]!.intValue!, $0) })
    }
    func target(_ fd: Node?, in g: Graph) -> Node? { fd.flatMap { f in g.edges(from: f.id).first { $0.kind == .opened }.flatMap { g[$0.to] } } }

    func testChildDescriptors_appearWithinOneStep_withTheirOwner_andTheSubgraphGoesOnExit() throws {
        var l = try loop(tasks: "      idle:\n        - open: { path: /proc/loadavg }\n        - close: { fd: $0 }\n",
                         allow: "      - op: open\n        path: /proc/loadavg\n      - op: close\n")
        let child = try ScriptedChild("/usr/bin/env", ["python3", repositoryRoot.appendingPathComponent("Tests/Fixtures/fdchild.py").path])
        XCTAssertEqual(child.send("ping"), "pong")
        XCTAssertTrue(FileManager.default.createFile(atPath: directory + "/held", contents: Data("x".utf8)))
        try l.step()
        let me = try XCTUnwrap(l.memory.nodes(ofKind: .process).first { $0["pid"] == .int(Int64(getpid())) })
        XCTAssertTrue(l.memory.contains(Edge(me.id, .parentOf, try XCTUnwrap(process(child.pid, in: l.memory)).id)))

        let file = Int64(child.send("file \(directory!)/held"))!
        let pipe = child.send("pipe").split(separator: " ").map { Int64($0)! }
        let listen = child.send("tcp-listen").split(separator: " ").map { Int64($0)! }
        let unix = Int64(child.send("unix-listen \(directory!)/s.sock"))!
        try l.step()
        var fds = descriptors(child.pid, in: l.memory)
        XCTAssertEqual(target(fds[file], in: l.memory)?["path"], .string(directory + "/held"))
        XCTAssertEqual(target(fds[pipe[0]], in: l.memory)?.kind, .pipe)
        XCTAssertEqual(target(fds[pipe[0]], in: l.memory)?.id, target(fds[pipe[1]], in: l.memory)?.id)
        XCTAssertEqual(target(fds[listen[0]], in: l.memory)?["state"], .string("LISTEN"))
        XCTAssertEqual(target(fds[unix], in: l.memory)?["local"], .string(directory + "/s.sock"))
        let heldFile = try XCTUnwrap(target(fds[file], in: l.memory)).id

        child.send("close \(file)")
        try l.step()
        fds = descriptors(child.pid, in: l.memory)
        XCTAssertNil(fds[file], "closed within one step")
        XCTAssertFalse(l.memory.contains(heldFile), "nothing else holds the file: its node is gone too")
        XCTAssertNotNil(fds[pipe[0]])

        let childNode = try XCTUnwrap(process(child.pid, in: l.memory)).id
        child.finish()
        try l.step()
        XCTAssertFalse(l.memory.contains(childNode))
        XCTAssertFalse(l.memory.nodes.keys.contains { $0.rawValue.hasPrefix("fd:\(childNode.rawValue)#") }, "its descriptors went with it")
        XCTAssertEqual(l.memory.invariantViolations(), [])
        XCTAssertTrue(l.memory.pendingEvents.contains { $0["action"] == .string("exit") && $0["subject"] == .string(String(child.pid)) },
                      "the exit arrived as an event in the same step")
    }

    func testFoldedOutcomes_areWhatTheNextObservationFinds() throws {
        var l = try loop(tasks: "      keep-open:\n        - open: { path: /etc/hostname }\n      start-child:\n        - spawn: { path: /bin/sleep, args: \"30\" }\n",
                         allow: "      - op: open\n        path: /etc/hostname\n      - op: spawn\n        path: /usr/bin/sleep\n")
        let first = try l.step()
        let fd = try XCTUnwrap(first.outcome?.steps.first?.result?.value)
        let me = try XCTUnwrap(first.outcome.flatMap { _ in l.memory.nodes(ofKind: .process).first { $0["pid"] == .int(Int64(getpid())) } })
        let kernelFD = NodeID.fileDescriptor(owner: me.id, fd: Int32(fd))
        XCTAssertTrue(l.memory.contains(kernelFD), "folded: the prior of the next step expects the descriptor")
        XCTAssertTrue(l.memory.contains(.fileDescriptor(owner: .context("probe"), fd: Int32(fd))))

        let second = try l.step()
        XCTAssertTrue(l.memory.contains(kernelFD), "and the observation found it")
        XCTAssertEqual(l.memory[kernelFD]?["target"], .string("/etc/hostname"))
        let spawned = try XCTUnwrap(second.outcome?.steps.first?.result)
        let pid = try XCTUnwrap(spawned.value), start = try XCTUnwrap(spawned.fields["start"])
        defer { kill(Int32(pid), SIGKILL); var s: Int32 = 0; waitpid(Int32(pid), &s, 0) }
        let child = NodeID.process(pid: Int32(pid), startTime: UInt64(start))
        XCTAssertTrue(l.memory.contains(Edge(.context("probe"), .parentOf, child)), "folded with its pid + start identity")

        try l.step()
        XCTAssertEqual(l.memory[child]?["comm"], .string("sleep"), "the observation found the same node")
        XCTAssertTrue(l.memory.contains(Edge(me.id, .parentOf, child)))
        XCTAssertTrue(l.memory.contains(Edge(.context("probe"), .parentOf, child)), "the context still holds its child")
    }

    /// The causal cut: what a step's action causes (a child's fork, exec and exit) is observed
    /// in a later step, never in the step whose observation came before the action; a return is
    /// in the step that made the call; and each step's graph is rebuilt from the one before with
    /// the recorded observation and state deltas.
    func testCausalCut_whatAnActionCauses_isObservedInALaterStep_andEachGraphRebuildsFromTheLast() throws {
        var l = try loop(tasks: "      run-true:\n        - spawn: { path: /bin/true }\n        - waitpid: { pid: $0 }\n",
                         allow: "      - op: spawn\n        path: /usr/bin/true\n      - op: waitpid\n")
        let initial = l.memory
        var reports: [StepReport] = []
        for _ in 0..<3 { reports.append(try l.step()) }
        let transitions = try TraceWriter.read(path: directory + "/out/trace.jsonl")
        XCTAssertEqual(transitions.count, 3)
        let pid = try XCTUnwrap(transitions[0].outcome?.steps.first?.result?.value)
        XCTAssertEqual(transitions[0].outcome?.steps.last?.result?.value, pid, "the child is reaped, its return in the same step")
        func mentions(_ t: Transition) -> [ObservedEvent] { t.events.filter { $0.subject == String(pid) } }
        XCTAssertEqual(mentions(transitions[0]), [], "step 0 observed before its action: nothing of the child")
        let later = mentions(transitions[1]) + mentions(transitions[2])
        XCTAssertTrue(later.contains { $0.action == "exit" }, "the child's exit is observed in a later step: \(transitions.map(\.events))")
        XCTAssertTrue(later.allSatisfy { $0.time.nanoseconds >= transitions[0].time.nanoseconds }, "and stamped no earlier than the action")
        // Replaying the deltas from the first graph gives each step's graph.
        var graph = initial
        for t in transitions {
            try graph.apply(try XCTUnwrap(t.observationDelta))
            try graph.apply(t.stateDelta)
            XCTAssertEqual(graph.nodeCount, t.nodeCount, "step \(t.step)")
        }
        XCTAssertEqual(graph.snapshot().diff(to: l.memory.snapshot()), GraphDelta(), "the last graph, rebuilt exactly")
    }
}
