import LoopCore
import Scheduler
import StateGraph
import WorldOSTesting
import XCTest

final class SchedulerTests: XCTestCase {
    func posterior(_ contexts: [(String, Int64, Int64, String)]) throws -> Posterior {
        var g = Graph()
        for (name, priority, interval, state) in contexts {
            try g.apply(.addNode(Node(id: .context(name), kind: .executionContext, partition: .context(name),
                                      attributes: ["priority": .int(priority), "interval-ms": .int(interval), "state": .string(state)])))
        }
        return Posterior(step: 0, graph: g, surprise: nil, observedAt: nil)
    }

    func testHighestPriorityReadyContext_wins_andWaitsItsIntervalBeforeRunningAgain() throws {
        let clock = ManualClock()
        var s = PriorityScheduler()
        let p = try posterior([("low", 1, 1000, "ready"), ("high", 9, 1000, "ready")])
        XCTAssertEqual(s.pick(from: p, at: clock.now()), "high")
        XCTAssertEqual(s.pick(from: p, at: clock.now()), "low")
        XCTAssertNil(s.pick(from: p, at: clock.now()), "both ran less than an interval ago")
        clock.advance(by: .milliseconds(999))
        XCTAssertNil(s.pick(from: p, at: clock.now()))
        clock.advance(by: .milliseconds(1))
        XCTAssertEqual(s.pick(from: p, at: clock.now()), "high")
    }

    func testBlockedContexts_areNeverPicked() throws {
        var s = PriorityScheduler()
        let p = try posterior([("blocked", 50, 0, "blocked"), ("ready", 1, 0, "ready")])
        XCTAssertEqual(s.pick(from: p, at: ManualClock().now()), "ready")
    }

    func testAging_letsALowerPriorityContextRun_whenAHigherOneIsAlwaysReady() throws {
        let clock = ManualClock()
        var s = PriorityScheduler()
        let p = try posterior([("busy", 10, 0, "ready"), ("patient", 5, 0, "ready")])
        var picks: [String] = []
        for _ in 0..<8 {
            picks.append(s.pick(from: p, at: clock.now())!)
            clock.advance(by: .milliseconds(10))
        }
        XCTAssertEqual(picks, ["busy", "busy", "busy", "patient", "busy", "busy", "busy", "patient"])
    }
}
