import Estimator
import LoopCore
import StateGraph
import XCTest

final class EstimatorTests: XCTestCase {
    let now = Instant(nanoseconds: 10)
    let estimator = LiveEstimator()

    func process(_ pid: Int32, _ start: UInt64, state: String = "S") -> Node {
        Node(id: .process(pid: pid, startTime: start), kind: .process, attributes: ["pid": .int(Int64(pid)), "state": .string(state)])
    }

    func observation(_ nodes: [Node], _ edges: [Edge] = [], supervisor: NodeID? = nil) -> Observation {
        Observation(time: now, scope: [.process, .fileDescriptor, .file], nodes: nodes, edges: edges, supervisor: supervisor)
    }

    func testSurprise_countsWhatThePriorGotWrong() throws {
        var memory = Graph()
        try memory.apply(GraphDelta([.addNode(process(1, 1)), .addNode(process(2, 2)), .addNode(process(3, 3))]))
        let prior = estimator.prior(from: memory, step: 4, at: now)
        // 1 unchanged, 2 changed state, 3 exited, 4 new, and pid 1 reused? no: same start time.
        let posterior = try estimator.posterior(from: prior, observation: observation([process(1, 1), process(2, 2, state: "R"), process(4, 4)]), at: now)
        XCTAssertEqual(posterior.surprise, Surprise(missing: 1, unexpected: 1, changed: 1))
        XCTAssertEqual(posterior.step, 4)
        XCTAssertEqual(Set(posterior.graph.nodes(ofKind: .process).map(\.id)), [process(1, 1).id, process(2, 2).id, process(4, 4).id])
        XCTAssertEqual(posterior.graph.uiProjection.count, 3, "visible processes are projected onto the panel")
    }

    func testReusedPid_isANewNode_andTheOldOneIsCollected() throws {
        var memory = Graph()
        let old = process(9, 100)
        let fd = Node(id: .fileDescriptor(owner: old.id, fd: 0), kind: .fileDescriptor)
        try memory.apply(GraphDelta([.addNode(old), .addNode(fd), .addEdge(Edge(old.id, .owns, fd.id))]))
        let posterior = try estimator.posterior(from: estimator.prior(from: memory, step: 1, at: now),
                                                observation: observation([process(9, 200)]), at: now)
        XCTAssertFalse(posterior.graph.contains(old.id))
        XCTAssertFalse(posterior.graph.contains(fd.id))
        XCTAssertTrue(posterior.graph.contains(process(9, 200).id))
        XCTAssertEqual(posterior.surprise, Surprise(missing: 2, unexpected: 1, changed: 0))
    }

    func testContextPartitions_surviveObservation_butADescriptorTheSupervisorNoLongerHoldsIsDropped() throws {
        var memory = Graph()
        let me = process(50, 5)
        let ctx = Node(id: .context("c"), kind: .executionContext, partition: .context("c"))
        let held = Node(id: .fileDescriptor(owner: ctx.id, fd: 7), kind: .fileDescriptor, partition: .context("c"), attributes: ["fd": .int(7)])
        let lost = Node(id: .fileDescriptor(owner: ctx.id, fd: 8), kind: .fileDescriptor, partition: .context("c"), attributes: ["fd": .int(8)])
        try memory.apply(GraphDelta([.addNode(me), .addNode(ctx), .addNode(held), .addNode(lost),
                                     .addEdge(Edge(ctx.id, .owns, held.id)), .addEdge(Edge(ctx.id, .owns, lost.id))]))
        let kernelFD = Node(id: .fileDescriptor(owner: me.id, fd: 7), kind: .fileDescriptor, attributes: ["fd": .int(7)])
        let posterior = try estimator.posterior(from: estimator.prior(from: memory, step: 1, at: now),
                                                observation: observation([me, kernelFD], [Edge(me.id, .owns, kernelFD.id)], supervisor: me.id), at: now)
        XCTAssertTrue(posterior.graph.contains(ctx.id))
        XCTAssertTrue(posterior.graph.contains(held.id))
        XCTAssertFalse(posterior.graph.contains(lost.id))
        XCTAssertEqual(posterior.surprise?.missing, 1)
        XCTAssertEqual(posterior.graph.invariantViolations(), [])
    }

    func testFold_addsDescriptorsLeftOpen_removesClosedOnes_andRemembersTheOutcome() throws {
        var memory = Graph()
        let me = process(50, 5)
        let ctx = Node(id: .context("c"), kind: .executionContext, partition: .context("c"))
        try memory.apply(GraphDelta([.addNode(me), .addNode(ctx)]))
        let posterior = Posterior(step: 0, graph: memory, surprise: Surprise(), observedAt: now, supervisor: me.id)
        func performed(_ i: Int, _ call: ResolvedCall, _ r: CallResult) -> StepOutcome {
            StepOutcome(index: i, step: MicroStep(call.op, [:]), call: call, decision: .allow(rule: "r"), status: .performed(r))
        }
        let open = ActionOutcome(proposal: Proposal(context: "c", task: "keep-open", steps: []), steps: [
            performed(0, ResolvedCall(.open, ["path": .string("/etc/hostname")]), .value(9)),
            StepOutcome(index: 1, step: MicroStep(.open, [:]), call: ResolvedCall(.open, ["path": .string("/etc/shadow")]),
                        decision: .deny(rule: "p.yaml:3", reason: "no"), status: .denied),
        ])
        let after = estimator.fold(open, into: posterior, at: now)
        let ctxFD = NodeID.fileDescriptor(owner: ctx.id, fd: 9)
        XCTAssertTrue(after.contains(Edge(ctx.id, .owns, ctxFD)))
        XCTAssertTrue(after.contains(Edge(me.id, .owns, .fileDescriptor(owner: me.id, fd: 9))), "the prior expects the supervisor's own fd")
        XCTAssertEqual(after[ctx.id]?["denied"], .int(1))
        XCTAssertEqual(after[ctx.id]?["last-denial"], .string("open(path: \"/etc/shadow\"): no [p.yaml:3]"))
        let close = ActionOutcome(proposal: Proposal(context: "c", task: "close", steps: []), steps: [
            performed(0, ResolvedCall(.close, ["fd": .int(9)]), .value(0)),
        ])
        let closed = estimator.fold(close, into: Posterior(step: 1, graph: after, surprise: nil, observedAt: now, supervisor: me.id), at: now)
        XCTAssertFalse(closed.contains(ctxFD))
        XCTAssertFalse(closed.contains(.fileDescriptor(owner: me.id, fd: 9)))
        XCTAssertEqual(closed[ctx.id]?["runs"], .int(2))
        XCTAssertEqual(closed.invariantViolations(), [])
    }

    func testLatent_withoutObservation_thePriorStands() throws {
        var memory = Graph()
        try memory.apply(.addNode(process(1, 1)))
        let posterior = try estimator.posterior(from: estimator.prior(from: memory, step: 3, at: now), observation: nil, at: now)
        XCTAssertNil(posterior.surprise)
        XCTAssertEqual(posterior.graph, memory)
    }

    func testTrivialPredictor_inventsDescriptorsThatCannotBeReal() {
        var p = TrivialPredictor()
        XCTAssertEqual(p.perform(ResolvedCall(.open, ["path": .string("/x")])), .value(1000))
        XCTAssertEqual(p.perform(ResolvedCall(.open, ["path": .string("/y")])), .value(1001))
        XCTAssertEqual(p.perform(ResolvedCall(.write, ["fd": .int(1000), "data": .string("abcd")])), .value(4))
    }
}
