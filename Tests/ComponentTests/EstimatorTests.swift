import Estimator
import LoopCore
import Observer
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

    /// What a context waits on is its state in the graph: a person, a device, or nothing.
    func testFold_setsTheContextsState_waitingForApproval_blockedOnIO_orReady() throws {
        var graph = Graph()
        try graph.apply(GraphDelta([.addNode(Node(id: .context("c"), kind: .executionContext, partition: .context("c"), attributes: ["state": .string("ready")])),
                                    .addNode(Node(id: .context("p"), kind: .executionContext, partition: .context("p"), attributes: ["state": .string("program")]))]))
        let act = ResolvedCall(.act, ["device": .string("d"), "action": .string("a.b")])
        func fold(_ context: String, _ decision: Decision, _ status: StepOutcome.Status) -> String? {
            let outcome = ActionOutcome(proposal: Proposal(context: context, task: "t", steps: []),
                                        steps: [StepOutcome(index: 0, step: MicroStep(.act, [:]), call: act, decision: decision, status: status)])
            graph = estimator.fold(outcome, into: Posterior(step: 0, graph: graph, surprise: nil, observedAt: now, supervisor: nil), at: now)
            return graph[.context(context)]?["state"]?.stringValue
        }
        XCTAssertEqual(fold("c", .needsApproval(request: "r1", reason: "irreversible"), .denied), "waiting-for-approval")
        XCTAssertEqual(fold("c", .allow(rule: "approval r1 by me"), .performed(.failure(errno: 110))), "blocked-on-io", "ETIMEDOUT: the device did not answer")
        XCTAssertEqual(fold("c", .allow(rule: "r"), .performed(.value(0))), "ready")
        XCTAssertEqual(fold("c", .deny(rule: "r", reason: "no"), .denied), "ready", "a refusal waits on nobody")
        XCTAssertEqual(fold("c", .allow(rule: "r"), .performed(.failure(errno: 2))), "ready", "ENOENT is an answer, not a device that is not answering")
        XCTAssertEqual(fold("p", .needsApproval(request: "r2", reason: "irreversible"), .denied), "program", "a program's state is its own")
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

    /// The posterior as the skeleton first built it: whole snapshots, filtered and diffed.
    /// Slow, and plainly right — the oracle for the estimator that edits only what changed.
    func referencePosterior(_ before: Graph, _ observation: Observation, step: Int) throws -> (Graph, GraphDelta) {
        let inScope = { (n: Node) in n.partition == .kernel && observation.scope.contains(n.kind) }
        var observedByID: [NodeID: Node] = [:]
        for var node in observation.nodes {
            if node.kind == .process { node.projected = node.observability == .visible }
            observedByID[node.id] = node
        }
        let supervisorFDs = Set(observation.edges.filter { $0.kind == .owns && $0.from == observation.supervisor }
            .compactMap { observedByID[$0.to]?["fd"]?.intValue })
        let stale = Set(before.nodes.values.filter { n in
            guard n.kind == .fileDescriptor, case .context = n.partition, let fd = n["fd"]?.intValue else { return false }
            return !supervisorFDs.contains(fd)
        }.map(\.id))
        let earlierEvent = { (n: Node) in n.partition == .kernel && n.kind == .pendingEvent && n["observed"] == .bool(true) }
        var nodes = before.nodes.values.filter { !inScope($0) && !stale.contains($0.id) && !earlierEvent($0) && observedByID[$0.id] == nil }
        nodes.append(contentsOf: observedByID.values)
        for (i, event) in observation.events.enumerated() {
            nodes.append(Node(id: .pendingEvent("\(step).\(i)"), kind: .pendingEvent, projected: true, attributes: [
                "observed": .bool(true), "source": .string(event.source), "action": .string(event.action),
                "subject": .string(event.subject), "time": .int(Int64(event.time.nanoseconds))]))
        }
        let kept = Set(nodes.map(\.id))
        var edges = before.allEdges.filter { e in
            kept.contains(e.from) && kept.contains(e.to) && !(observedByID[e.from] != nil && observedByID[e.to] != nil)
        }
        edges.append(contentsOf: observation.edges)
        let delta = before.snapshot().diff(to: GraphSnapshot(nodes: nodes, edges: edges))
        var graph = before
        try graph.apply(delta)
        return (graph, delta)
    }

    /// Random machines and random next observations — processes that stay, change, exit, come,
    /// or come back as another kind; descriptors moving between files; the supervisor's own
    /// descriptors appearing and going under a context's; events — give the posterior, the
    /// delta and the surprise the whole-snapshot estimator gives.
    func testPosterior_onRandomSteps_isWhatWholeSnapshotsGive() throws {
        var rng = SeededRandom(seed: 11)
        func pick<T>(_ xs: [T]) -> T { xs[Int.random(in: 0..<xs.count, using: &rng)] }
        let supervisor = process(1, 1).id
        let files = (0..<6).map { Node(id: .object(.file, "/f\($0)"), kind: .file, observability: .background) }
        func machine() -> (nodes: [Node], edges: [Edge]) {
            var nodes = [process(1, 1)] + files, edges: [Edge] = []
            for pid in Int32(2)...Int32(12) where Bool.random(using: &rng) {
                let p = process(pid, UInt64(pid), state: pick(["S", "R"]))
                nodes.append(p)
                if Bool.random(using: &rng) { edges.append(Edge(supervisor, .parentOf, p.id)) }
            }
            for owner in nodes.filter({ $0.kind == .process }) {
                for fd in Int32(0)..<Int32.random(in: 0...4, using: &rng) {
                    let d = Node(id: .fileDescriptor(owner: owner.id, fd: fd), kind: pick([.fileDescriptor, .fileDescriptor, .socket]),
                                 observability: .background, attributes: ["fd": .int(Int64(fd))])
                    nodes.append(d)
                    edges.append(Edge(owner.id, .owns, d.id))
                    if Bool.random(using: &rng) { edges.append(Edge(d.id, .opened, pick(files).id)) }
                }
            }
            return (nodes, edges)
        }
        var steady = process(20, 20)
        steady.projected = true  // as the last posterior left it
        let held = Node(id: .fileDescriptor(owner: steady.id, fd: 0), kind: .fileDescriptor, observability: .background, attributes: ["fd": .int(0)])
        for round in 0..<200 {
            var memory = Graph()
            let first = machine()
            try memory.apply(GraphDelta(first.nodes.sorted(by: { $0.id < $1.id }).map { $0.id == .kernel ? .updateNode($0) : .addNode($0) }
                                        + first.edges.map { .addEdge($0) }))
            // Outside the observed scope: a sensor, a context with descriptors (some the
            // supervisor holds), an edge from the context to a process, last step's event.
            let context = Node(id: .context("c"), kind: .executionContext, partition: .context("c"))
            var outside: [GraphChange] = [.addNode(Node(id: NodeID("sensor:t"), kind: .sensor, attributes: ["value": .int(1)])), .addNode(context),
                                          .addNode(Node(id: .pendingEvent("0.0"), kind: .pendingEvent, attributes: ["observed": .bool(true)]))]
            for fd in 0..<3 {
                outside.append(.addNode(Node(id: .fileDescriptor(owner: context.id, fd: Int32(fd)), kind: .fileDescriptor,
                                             partition: .context("c"), attributes: ["fd": .int(Int64(fd))])))
            }
            if let p = first.nodes.last(where: { $0.kind == .process }) { outside.append(.addEdge(Edge(context.id, .parentOf, p.id))) }
            try memory.apply(GraphDelta(outside))
            try memory.apply(GraphDelta([.addNode(steady), .addNode(held), .addEdge(Edge(steady.id, .owns, held.id)),
                                         .addEdge(Edge(held.id, .opened, files[0].id))]))
            // The next look: half the machine as it was, half drawn again.
            let second = machine()
            var nodes = first.nodes.filter { _ in Bool.random(using: &rng) }, edges = first.edges.filter { _ in Bool.random(using: &rng) }
            nodes += second.nodes
            edges += second.edges
            // One process seen exactly as before but for one descriptor that is now another
            // kind of node: its owner's edges are the same, yet the edge to it must be put back.
            var flipped = held
            flipped.kind = .socket
            nodes += [steady, flipped]
            edges += [Edge(steady.id, .owns, held.id), Edge(held.id, .opened, files[0].id)]
            var byID: [NodeID: Node] = [:]
            for n in nodes { byID[n.id] = n }
            // An edge the observation draws from a node it does not observe.
            if let p = byID.values.first(where: { $0.kind == .process }) { edges.append(Edge(NodeID("sensor:t"), .attachedTo, p.id)) }
            let ids = Set(byID.keys)
            let seen = Observation(time: now, scope: [.process, .fileDescriptor, .file, .socket], nodes: Array(byID.values).shuffled(using: &rng),
                                   edges: Array(Set(edges.filter { (ids.contains($0.from) || $0.from == NodeID("sensor:t")) && ids.contains($0.to) }))
                                    .shuffled(using: &rng),
                                   supervisor: supervisor,
                                   events: Bool.random(using: &rng) ? [ObservedEvent(source: "uevent", action: "add", subject: "usb", time: now)] : [])
            let prior = estimator.prior(from: memory, step: 3, at: now)
            let (expected, expectedDelta) = try referencePosterior(memory, seen, step: 3)
            let posterior = try estimator.posterior(from: prior, observation: seen, at: now)
            XCTAssertEqual(posterior.graph, expected, "round \(round)")
            XCTAssertEqual(posterior.change, expectedDelta, "round \(round)")
            XCTAssertEqual(posterior.graph.invariantViolations(), [], "round \(round)")
        }
    }

    /// `worldos graph --json` prints the snapshot of a first posterior without building the
    /// graph: equal to the posterior's, on this machine's real observation and on one with an
    /// identity given twice and events.
    func testFirstSnapshot_isTheFirstPosteriorsSnapshot() throws {
        var observer = CompositeObserver([ProcObserver(), TelemetryObserver()])
        let real = try observer.observe(at: now)
        XCTAssertGreaterThan(real.nodes.count, 20)
        var made = observation([process(1, 1), process(2, 2), process(1, 1, state: "R")],
                               [Edge(process(1, 1).id, .parentOf, process(2, 2).id)])
        made.events = [ObservedEvent(source: "gpio", action: "edge", subject: "line 3", time: now, details: ["value": "1"])]
        for o in [real, made] {
            let posterior = try estimator.posterior(from: estimator.prior(from: Graph(), step: 0, at: now), observation: o, at: now)
            let first = LiveEstimator.firstSnapshot(of: o)
            XCTAssertEqual(first, posterior.graph.snapshot())
            XCTAssertEqual(first.jsonData(), posterior.graph.snapshot().jsonData(), "byte for byte")
        }
        XCTAssertEqual(LiveEstimator.firstSnapshot(of: made).nodes.first { $0.id == process(1, 1).id }?["state"], .string("R"), "the last one stands")
    }

    /// From the change: what the fold did since the last posterior is held against the
    /// observation again — an edge it drew between two observed nodes that the observation does
    /// not have goes, a node it made that the observation does not show goes — as the whole
    /// observation would have it.
    func testPosteriorFromTheChange_undoesWhatTheFoldSupposedAndTheObservationDenies() throws {
        let observer: UInt64 = 42
        let (s1, s2) = (ObservationStamp(observer: observer, sequence: 1), ObservationStamp(observer: observer, sequence: 2))
        var first = observation([process(1, 1), process(2, 2)])
        first.stamp = s1
        let posterior = try estimator.posterior(from: estimator.prior(from: Graph(), step: 0, at: now), observation: first, at: now)
        XCTAssertEqual(posterior.integrated, s1)
        var next = posterior.graph
        let made = process(3, 3)
        try next.apply(GraphDelta([.addEdge(Edge(process(1, 1).id, .parentOf, process(2, 2).id)), .addNode(made),
                                   .addEdge(Edge(process(1, 1).id, .parentOf, made.id))]))
        let basis = PriorBasis(integrated: s1, edited: try XCTUnwrap(next.changed(since: posterior.graph)), in: posterior.graph)
        XCTAssertEqual(basis.edited, [process(1, 1).id, made.id])
        var second = observation([process(1, 1), process(2, 2)])
        second.stamp = s2
        second.change = ObservationChange(since: s1)
        let prior = Prior(step: 1, graph: next, basis: basis)
        let fromChange = try estimator.posterior(from: prior, observation: second, at: now)
        let whole = try estimator.posterior(from: Prior(step: 1, graph: next), observation: second, at: now)
        XCTAssertEqual(fromChange.graph, whole.graph)
        XCTAssertEqual(fromChange.surprise, whole.surprise)
        XCTAssertEqual(fromChange.change, whole.change)
        XCTAssertFalse(fromChange.graph.contains(Edge(process(1, 1).id, .parentOf, process(2, 2).id)))
        XCTAssertFalse(fromChange.graph.contains(made.id))
        XCTAssertEqual(fromChange.surprise, Surprise(missing: 1, unexpected: 0, changed: 0))
    }
}
