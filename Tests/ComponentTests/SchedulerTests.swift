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
        var s = ContextScheduler()
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
        var s = ContextScheduler()
        let p = try posterior([("blocked", 50, 0, "blocked"), ("ready", 1, 0, "ready")])
        XCTAssertEqual(s.pick(from: p, at: ManualClock().now()), "ready")
    }

    func testAging_letsALowerPriorityContextRun_whenAHigherOneIsAlwaysReady() throws {
        let clock = ManualClock()
        var s = ContextScheduler()
        let p = try posterior([("busy", 10, 0, "ready"), ("patient", 5, 0, "ready")])
        var picks: [String] = []
        for _ in 0..<8 {
            picks.append(s.pick(from: p, at: clock.now())!)
            clock.advance(by: .milliseconds(10))
        }
        XCTAssertEqual(picks, ["busy", "busy", "busy", "patient", "busy", "busy", "busy", "patient"])
    }
}

/// Contexts with a period: released on it, run earliest deadline first ahead of the rest, late
/// steps and skipped releases counted, jitter kept.
final class DeadlineSchedulerTests: XCTestCase {
    func posterior(_ contexts: [(name: String, period: Int64?, deadline: Int64?)]) throws -> Posterior {
        var g = Graph()
        for c in contexts {
            var a: Attributes = ["priority": .int(50), "interval-ms": .int(0), "state": .string("ready")]
            if let period = c.period { a["period-ms"] = .int(period); a["deadline-ms"] = .int(c.deadline ?? period) }
            try g.apply(.addNode(Node(id: .context(c.name), kind: .executionContext, partition: .context(c.name), attributes: a)))
        }
        return Posterior(step: 0, graph: g, surprise: nil, observedAt: nil)
    }

    func testReleasedContexts_runEarliestDeadlineFirst_aheadOfBestEffortOnes() throws {
        let clock = ManualClock()
        var s = ContextScheduler()
        let p = try posterior([("best-effort", nil, nil), ("slow", 100, 100), ("fast", 100, 20)])
        XCTAssertEqual(s.pick(from: p, at: clock.now()), "fast", "both released now; fast is due first")
        XCTAssertEqual(s.pick(from: p, at: clock.now()), "best-effort", "it waited while a release ran: its turn before the next")
        XCTAssertEqual(s.pick(from: p, at: clock.now()), "slow")
        XCTAssertEqual(s.pick(from: p, at: clock.now()), "best-effort", "no release waits")
        XCTAssertEqual(s.nextDue(), clock.now() + ContextScheduler.bestEffortGap, "the best-effort context, always ready, waits the gap")
        clock.advance(by: .milliseconds(100))
        XCTAssertEqual(s.pick(from: p, at: clock.now()), "fast")
    }

    func testALateStep_andAReleasePassedWithoutAStep_areCounted_andTheJitterIsKept() throws {
        let clock = ManualClock()
        var s = ContextScheduler()
        let p = try posterior([("loop", 10, 2)])
        XCTAssertEqual(s.pick(from: p, at: clock.now()), "loop")
        clock.advance(by: .milliseconds(11))       // 1 ms after its release: on time
        XCTAssertEqual(s.pick(from: p, at: clock.now()), "loop")
        clock.advance(by: .milliseconds(14))       // release at 20 ms, started at 25: late
        XCTAssertEqual(s.pick(from: p, at: clock.now()), "loop")
        clock.advance(by: .milliseconds(30))       // releases 30, 40, 50 went by: one late step, two skipped
        XCTAssertEqual(s.pick(from: p, at: clock.now()), "loop")
        let a = try XCTUnwrap(s.nodeAttributes()[.context("loop")])
        XCTAssertEqual(a["late"], .int(4), "25 ms (late), 55 ms (late, and 2 releases skipped)")
        XCTAssertEqual(a["jitter-max-ms"], .double(25))
        XCTAssertEqual(s.nextDue(), Instant(nanoseconds: clock.now().nanoseconds + 5_000_000), "the next release is 60 ms")
        XCTAssertNotNil(s.nodeAttributes()[.kernel]?["loop-cadence-p50-ms"])
    }
}
