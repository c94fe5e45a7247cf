import Executor
import LoopCore
import StateGraph
import WorldOSTesting
import XCTest

final class ExecutorTests: XCTestCase {
    let context = Node(id: .context("t"), kind: .executionContext, partition: .context("t"))
    let now = Instant(nanoseconds: 1)

    func run(_ steps: [MicroStep], allow: @escaping @Sendable (ResolvedCall) -> Bool = { _ in true },
             host: SpyHost) -> ActionOutcome {
        var policy: any Guarding = ClosureGuard(log: StageLog(), allow: allow)
        var effector: any Effecting = host
        var executor = TraceExecutor()
        return executor.execute(Proposal(context: "t", task: "test", steps: steps), context: context, held: [],
                                guard: &policy, effector: &effector, shadow: nil, at: now)
    }

    func testReferences_areReplacedByTheReturnOfTheEarlierStep() {
        let host = SpyHost { call in call.op == .open ? .value(42) : .value(5, data: [1, 2, 3, 4, 5]) }
        let outcome = run([MicroStep(.open, ["path": .string("/x")]),
                           MicroStep(.read, ["fd": .result(of: 0), "count": .int(5)]),
                           MicroStep(.close, ["fd": .result(of: 0)])], host: host)
        XCTAssertEqual(host.calls.map(\.description), ["open(path: \"/x\")", "read(count: 5, fd: 42)", "close(fd: 42)"])
        XCTAssertEqual(outcome.steps.map(\.result), [.value(42), .value(5, data: [1, 2, 3, 4, 5]), .value(5, data: [1, 2, 3, 4, 5])])
    }

    func testDeniedStep_neverReachesTheHost_andItsDependentsAreSkipped() {
        let host = SpyHost()
        let outcome = run([MicroStep(.open, ["path": .string("/etc/shadow")]),
                           MicroStep(.read, ["fd": .result(of: 0), "count": .int(5)]),
                           MicroStep(.close, ["fd": .result(of: 0)])],
                          allow: { $0.path != "/etc/shadow" }, host: host)
        XCTAssertEqual(host.calls, [], "a denied step must not reach the host adapter")
        XCTAssertEqual(outcome.steps[0].status, .denied)
        XCTAssertEqual(outcome.steps[1].status, .skipped(reason: "step 0 did not return a value"))
        XCTAssertEqual(outcome.steps[2].status, .skipped(reason: "step 0 did not return a value"))
    }

    func testFailedStep_skipsItsDependents_butNotIndependentSteps() {
        let host = SpyHost { call in call.op == .open && call.path == "/missing" ? .failure(errno: 2) : .value(3) }
        let outcome = run([MicroStep(.open, ["path": .string("/missing")]),
                           MicroStep(.read, ["fd": .result(of: 0), "count": .int(1)]),
                           MicroStep(.open, ["path": .string("/present")])], host: host)
        XCTAssertEqual(outcome.steps.map(\.status), [.performed(.failure(errno: 2)), .skipped(reason: "step 0 did not return a value"), .performed(.value(3))])
        XCTAssertEqual(host.calls.count, 2)
    }

    func testInvalidArguments_areRefusedBeforeTheGuardAndTheHost() {
        let host = SpyHost()
        let log = StageLog()
        var policy: any Guarding = ClosureGuard(log: log) { _ in true }
        var effector: any Effecting = host
        var executor = TraceExecutor()
        let outcome = executor.execute(Proposal(context: "t", task: "bad", steps: [
            MicroStep(.read, ["fd": .result(of: 1), "count": .int(1)]),
            MicroStep(.read, ["fd": .string("three"), "count": .int(1)]),
            MicroStep(.close, [:]),
            MicroStep(.close, ["fd": .int(3), "extra": .int(1)]),
        ]), context: context, held: [], guard: &policy, effector: &effector, shadow: nil, at: now)
        XCTAssertEqual(outcome.steps.map(\.status), [
            .invalid(reason: "$1 refers to step 1, which has not run before step 0"),
            .invalid(reason: "read argument \"fd\" must be int"),
            .invalid(reason: "close needs argument \"fd\""),
            .invalid(reason: "close takes no argument \"extra\""),
        ])
        XCTAssertEqual(log.entries, [])
        XCTAssertEqual(host.calls, [])
    }

    func testShadowPredictor_isComparedWithTheRealReturn() {
        let host = SpyHost { _ in .failure(errno: ENOENT) }
        var policy: any Guarding = ClosureGuard(log: StageLog()) { _ in true }
        var effector: any Effecting = host
        var executor = TraceExecutor()
        let outcome = executor.execute(Proposal(context: "t", task: "p", steps: [MicroStep(.open, ["path": .string("/x")])]),
                                       context: context, held: [], guard: &policy, effector: &effector,
                                       shadow: SpyHost { _ in .value(1000) }, at: now)
        XCTAssertEqual(outcome.steps[0].predicted, .value(1000))
        XCTAssertEqual(outcome.predictionMisses, 1)
    }
}
