import DevicePorts
import Estimator
import Executor
import Foundation
import Guard
import HostAdapter
import LoopCore
import StateGraph
import Supervisor
import WorldOSTesting
import XCTest

/// The macro step's order and its guarantees, with test twins for every stage.
final class LoopTests: XCTestCase {
    let me = NodeID.process(pid: 1, startTime: 1)

    func observation(_ count: Int) -> Observation {
        let nodes = (0..<count).map { Node(id: .process(pid: Int32($0 + 1), startTime: 1), kind: .process, attributes: ["pid": .int(Int64($0 + 1))]) }
        return Observation(time: Instant(nanoseconds: 0), scope: [.process, .fileDescriptor], nodes: nodes, edges: [], supervisor: me)
    }

    func context() throws -> Graph {
        var g = Graph()
        try g.apply(.addNode(Node(id: .context("c"), kind: .executionContext, partition: .context("c"))))
        return g
    }

    func loop<E: Estimating>(log: StageLog, estimator: E, host: SpyHost, allow: @escaping @Sendable (ResolvedCall) -> Bool,
                             observations: [Observation], clock: ManualClock = ManualClock(), mode: Mode = .real) throws -> SupervisorLoop {
        SupervisorLoop(mode: mode, clock: clock, initial: try context(), observer: ScriptedObserver(observations, log: log),
                       estimator: LoggingEstimator(estimator, log: log), renderer: RecordingRenderer(log: log),
                       frameSink: MemoryFrameSink(), scheduler: FixedScheduler("c"),
                       proposer: FixedProposer([MicroStep(.open, ["path": .string("/a")]), MicroStep(.open, ["path": .string("/etc/shadow")])]),
                       policyGuard: ClosureGuard(log: log, allow: allow), executor: LiteralExecutor(), host: host,
                       predictor: SpyHost(log: log) { _ in .value(1000) }, recorder: MemoryRecorder())
    }

    func testStep_runsPriorPosteriorRenderScheduleGuardActFold_inThatOrder() throws {
        let log = StageLog()
        var l = try loop(log: log, estimator: LiveEstimator(), host: SpyHost(log: log), allow: { _ in true }, observations: [observation(3)])
        try l.step()
        XCTAssertEqual(log.entries, ["prior", "observe", "posterior:0:5", "render:0:5",
                                     "guard:open:allow", "host:open", "guard:open:allow", "host:open", "fold"])
    }

    func testSurface_isDrawnOnlyFromThePosterior_neverFromThePrior() throws {
        let log = StageLog()
        var l = try loop(log: log, estimator: LiveEstimator(), host: SpyHost(), allow: { _ in true },
                         observations: [observation(3), observation(7)])
        try l.step()
        try l.step()
        // The prior of step 1 has 5 nodes (kernel, context, 3 processes); the observation
        // brings 7 processes. Each frame shows the posterior of its own step.
        let renders = log.entries.filter { $0.hasPrefix("render") }
        let posteriors = log.entries.filter { $0.hasPrefix("posterior") }.map { $0.replacingOccurrences(of: "posterior", with: "render") }
        XCTAssertEqual(renders, posteriors)
        XCTAssertEqual(renders, ["render:0:5", "render:1:9"])
        for (i, entry) in log.entries.enumerated() where entry.hasPrefix("render") {
            XCTAssertTrue(log.entries[i - 1].hasPrefix("posterior"), "render at \(i) did not follow a posterior: \(log.entries)")
        }
    }

    /// Each transition records how the panel's semantics tree changed; replayed from nothing,
    /// the changes give every frame's tree.
    func testTransitions_carryTheSemanticsTreeDelta_thatRebuildsEachFramesTree() throws {
        let log = StageLog()
        let sink = MemoryFrameSink(), recorder = MemoryRecorder()
        var l = try loop(log: log, estimator: LiveEstimator(), host: SpyHost(), allow: { _ in true },
                         observations: [observation(3), observation(5), observation(2), observation(2)])
        l.frameSink = sink
        l.recorder = recorder
        for _ in 0..<4 { try l.step() }
        var tree: [Frame.Semantic] = []
        for (transition, frame) in zip(recorder.transitions, sink.frames) {
            tree.removeAll { (transition.semanticsRemoved ?? []).contains($0) }
            tree += transition.semanticsAdded ?? []
            XCTAssertEqual(Set(tree), Set(frame.semantics), "step \(transition.step)")
        }
        XCTAssertEqual(recorder.transitions.map { $0.semanticsAdded?.count ?? 0 }, [3, 2, 0, 0])
        XCTAssertEqual(recorder.transitions.map { $0.semanticsRemoved?.count ?? 0 }, [0, 0, 3, 0])
        XCTAssertNil(recorder.transitions[3].semanticsAdded, "an unchanged tree costs nothing")
    }

    func testFailingPosterior_drawsNothing_andActsOnNothing() throws {
        struct Broken: Error {}
        struct FailingEstimator: Estimating {
            func prior(from memory: Graph, step: Int, at now: Instant) -> Prior { Prior(step: step, graph: memory) }
            func posterior(from prior: consuming Prior, observation: Observation?, at now: Instant) throws -> Posterior { throw Broken() }
            func fold(_ outcome: ActionOutcome?, into posterior: Posterior, at now: Instant) -> Graph { posterior.graph }
        }
        let log = StageLog()
        let host = SpyHost()
        var l = try loop(log: log, estimator: FailingEstimator(), host: host, allow: { _ in true }, observations: [observation(1)])
        XCTAssertThrowsError(try l.step())
        XCTAssertFalse(log.entries.contains { $0.hasPrefix("render") || $0.hasPrefix("guard") })
        XCTAssertEqual(host.calls, [])
    }

    func testDeniedMicroStep_neverReachesTheHostAdapter() throws {
        let log = StageLog()
        let host = SpyHost(log: log)
        var l = try loop(log: log, estimator: LiveEstimator(), host: host, allow: { $0.path != "/etc/shadow" }, observations: [observation(1)])
        let report = try l.step()
        XCTAssertEqual(host.calls.map(\.path), ["/a"])
        XCTAssertEqual(report.outcome?.steps.map(\.status), [.performed(.value(0)), .denied])
        XCTAssertTrue(report.lines.contains { $0.contains("/etc/shadow") && $0.contains("NOT RUN") }, report.lines.joined(separator: "\n"))
    }

    func testLatentMode_neverObservesAndNeverCallsTheHost() throws {
        let log = StageLog()
        let host = SpyHost()
        var l = try loop(log: log, estimator: LiveEstimator(), host: host, allow: { _ in true }, observations: [observation(3)], mode: .latent)
        let report = try l.step()
        XCTAssertEqual(host.calls, [])
        XCTAssertFalse(log.entries.contains("observe"))
        XCTAssertNil(report.surprise)
        XCTAssertEqual(report.outcome?.steps.map(\.result), [.value(1000), .value(1000)], "returns come from the predictor")
        XCTAssertTrue(report.lines.contains("  observe:   skipped (latent: no machine in the loop)"))
    }

    func testFilteredMode_reportsTheGapBetweenPredictedAndRealReturns() throws {
        let log = StageLog()
        // The predictor says every call succeeds; the host's fail.
        var l = try loop(log: log, estimator: LiveEstimator(), host: SpyHost { _ in .failure(errno: EACCES) }, allow: { _ in true },
                         observations: [observation(2)], mode: .filtered)
        l.executor = TraceExecutor()
        let report = try l.step()
        XCTAssertEqual(report.outcome?.steps.map(\.predicted), [.value(1000), .value(1000)])
        XCTAssertEqual(report.outcome?.predictionMisses, 2)
        XCTAssertTrue(report.lines.contains("  gap:       2 of 2 returns mispredicted"))
        XCTAssertNotNil(report.surprise)
    }

    func testFailedObservation_isReported_andTheStepGoesOnFromThePrior() throws {
        struct Unreadable: Observing {
            func observe(at now: Instant) throws -> Observation { throw NSError(domain: "proc", code: 1) }
        }
        let log = StageLog()
        var l = try loop(log: log, estimator: LiveEstimator(), host: SpyHost(), allow: { _ in true }, observations: [])
        l.observer = Unreadable()
        let report = try l.step()
        XCTAssertNotNil(report.observationError)
        XCTAssertNil(report.surprise)
        XCTAssertEqual(l.stepCount, 1)
    }
}
