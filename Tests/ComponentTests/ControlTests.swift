import Config
import Control
import Guard
import LoopCore
import StateGraph
import WorldOSTesting
import XCTest

/// The control laws as arithmetic, and the guard's envelope checks on a graph.
final class ControlLawTests: XCTestCase {
    func testPID_clampsItsOutput_andDoesNotWindUpWhileSaturated() {
        var pid = PID(kp: 2, ki: 1, kd: 0, minimum: 0, maximum: 100)
        for _ in 0..<100 { XCTAssertEqual(pid.output(reading: 0, setpoint: 80, dt: 1), 100) }
        XCTAssertEqual(pid.integral, 0, "no integral gathered while the output was pinned at its maximum")
        // Past the setpoint the output falls at once, without an integral to unwind.
        XCTAssertEqual(pid.output(reading: 81, setpoint: 80, dt: 1), 0)
    }

    func testPID_integratesTheErrorAwayFromSaturation_andTheDerivativeActsOnTheReading() {
        var pid = PID(kp: 1, ki: 0.5, kd: 2, minimum: -100, maximum: 100)
        XCTAssertEqual(pid.output(reading: 10, setpoint: 12, dt: nil), 2, "the first step: proportional only")
        XCTAssertEqual(pid.output(reading: 10, setpoint: 12, dt: 1), 3, "2 + 0.5 × 2")
        XCTAssertEqual(pid.output(reading: 11, setpoint: 12, dt: 1), 1 + 0.5 * 3 - 2, accuracy: 1e-9)
        XCTAssertEqual(pid.output(reading: 11, setpoint: 50, dt: 1), 39 + 0.5 * 42, accuracy: 1e-9, "a setpoint step does not kick the derivative")
    }

    func testBangBang_switchesOutsideItsHysteresis_only() {
        var law = BangBang(hysteresis: 1, onOutput: 100, offOutput: 0)
        XCTAssertEqual(law.output(reading: 78.9, setpoint: 80), 100)
        XCTAssertEqual(law.output(reading: 80.9, setpoint: 80), 100, "still inside the band: stays on")
        XCTAssertEqual(law.output(reading: 81.1, setpoint: 80), 0)
        XCTAssertEqual(law.output(reading: 79.5, setpoint: 80), 0, "inside the band: stays off")
    }

    func testCurve_isStraightBetweenItsPoints_andFlatBeyond() throws {
        let curve = try XCTUnwrap(Curve(points: [(60, 50), (30, 0), (80, 100)]))
        XCTAssertEqual(curve.output(reading: 10), 0)
        XCTAssertEqual(curve.output(reading: 45), 25)
        XCTAssertEqual(curve.output(reading: 70), 75)
        XCTAssertEqual(curve.output(reading: 99), 100)
        XCTAssertNil(Curve(points: [(1, 1)]))
        XCTAssertNil(Curve(points: [(1, 1), (1, 2)]))
    }

    func spec(_ text: String) throws(ConfigError) -> ControllerSpec {
        try ControllerSpec.parse(ConfigNode.parse(text, file: "b.yaml"), context: "c")
    }

    static let pid = """
        name: heater
        law: pid
        input: bench-bridge/heater-temperature
        output: { device: bench-bridge, action: heater.set_power, parameter: percent }
        gains: { kp: 8 }
        safety: { max-output: 80, runaway: { output-above: 50, min-rise: 2, within-s: 20 } }
        """

    func testASpec_parses_andItsMistakesNameTheirLine() throws {
        let s = try spec(Self.pid)
        XCTAssertEqual(s.law.kind, "pid")
        XCTAssertEqual(s.envelope.maximumOutput, 80)
        XCTAssertEqual(s.envelope.runaway?.window, .seconds(20))
        XCTAssertEqual(s.envelope.deviceName, "controller:heater")
        for (bad, message) in [
            (Self.pid.replacingOccurrences(of: "law: pid", with: "law: fuzzy"), "b.yaml:2:6: law: unknown control law \"fuzzy\" (use pid, bang-bang or curve)"),
            (Self.pid.replacingOccurrences(of: "max-output: 80", with: "max-output: 180"), "b.yaml:6:23: safety.max-output: 180 is out of range (use 0.0...100.0)"),
            (Self.pid.replacingOccurrences(of: "gains: { kp: 8 }", with: "gains: { kp: 8 }\nhysteresis: 2"), "b.yaml:6:13: hysteresis: it does not apply to a pid controller (remove it, or change the law)"),
            (Self.pid.replacingOccurrences(of: "input: bench-bridge/heater-temperature", with: "input: heater-temperature"), "b.yaml:3:8: input: input \"heater-temperature\" is not PROFILE/READING (such as bench-bridge/heater-temperature, or bench-bridge:SERIAL/heater-temperature)"),
            (Self.pid + "\nsetpoint: 500", "b.yaml:7:11: setpoint: setpoint 500.0 is outside the setpoints 0.0...100.0"),
        ] {
            XCTAssertThrowsError(try spec(bad)) { XCTAssertEqual("\($0)", message) }
        }
    }
}

final class SafetyEnvelopeTests: XCTestCase {
    func graph(temperature: Double?) throws -> Graph {
        var g = Graph()
        if let temperature {
            try g.apply(.addNode(Node(id: NodeID("sensor:bench-bridge/SIM-1/heater-temperature"), kind: .sensor, attributes: ["value": .double(temperature)])))
        }
        return g
    }

    func board(_ configure: (inout SafetyEnvelope) -> Void = { _ in }) -> ControlBoard {
        var e = SafetyEnvelope(controller: "heater", context: "c", input: "bench-bridge/heater-temperature", device: "bench-bridge",
                               action: "heater.set_power", parameter: "percent", maximumOutput: 100, setpoints: 0...120)
        configure(&e)
        return ControlBoard([e])
    }

    func setpointCall(_ value: String) -> ResolvedCall {
        ResolvedCall(.act, ["device": .string("controller:heater"), "action": .string("heater.setpoint"), "params": .string("value=\(value)")])
    }

    func testRaisingASetpoint_costsTheRaiseRisk_andLoweringItTheLowerRisk() {
        let b = board()
        XCTAssertEqual(b.risk(of: setpointCall("80")), "irreversible-physical", "from none: a raise")
        b.apply(controller: "heater", value: 80, grant: "test")
        XCTAssertEqual(b.risk(of: setpointCall("60")), "reversible")
        XCTAssertEqual(b.risk(of: setpointCall("80.5")), "irreversible-physical")
        XCTAssertEqual(b.risk(of: setpointCall("hot")), "irreversible-physical", "a value it cannot read is not a lowering")
        b.revokeAll()
        XCTAssertNil(b.setpoint(of: "heater"))
    }

    func testAReadingOutOfRange_trips_evenWithNoSetpointInForce() throws {
        let b = board { $0.range = 0...130 }
        let now = ManualClock().now()
        XCTAssertNil(b.violation(in: try graph(temperature: 129), observedAt: now, now: now))
        XCTAssertEqual(b.violation(in: try graph(temperature: 131), observedAt: now, now: now)?.check, "range")
    }

    func testAStaleReading_trips_whileTheControllerRuns() throws {
        let clock = ManualClock()
        let b = board { $0.staleAfter = .seconds(3) }
        b.apply(controller: "heater", value: 80, grant: "test")
        XCTAssertNil(b.violation(in: try graph(temperature: 40), observedAt: clock.now(), now: clock.now()))
        clock.advance(by: .seconds(3))
        XCTAssertNil(b.violation(in: try graph(temperature: nil), observedAt: clock.now(), now: clock.now()))
        clock.advance(by: .milliseconds(1))
        XCTAssertEqual(b.violation(in: try graph(temperature: nil), observedAt: clock.now(), now: clock.now())?.check, "stale")
    }

    func testAnOutputNotRenewedWithinItsMaximumOnTime_trips() throws {
        let clock = ManualClock()
        let b = board { $0.maximumOn = .seconds(10) }
        b.apply(controller: "heater", value: 80, grant: "test")
        b.noteOutput(controller: "heater", value: 30, at: clock.now())
        clock.advance(by: .seconds(10))
        XCTAssertNil(b.violation(in: try graph(temperature: 60), observedAt: clock.now(), now: clock.now()))
        b.noteOutput(controller: "heater", value: 30, at: clock.now())
        clock.advance(by: .seconds(11))
        XCTAssertEqual(b.violation(in: try graph(temperature: 60), observedAt: clock.now(), now: clock.now())?.check, "max-on-time")
        b.noteOutput(controller: "heater", value: 0, at: clock.now())
        clock.advance(by: .seconds(60))
        XCTAssertNil(b.violation(in: try graph(temperature: 60), observedAt: clock.now(), now: clock.now()), "an output that is off may stand")
    }

    func testTheRunawayCheck_wantsTheReadingToGainWithinItsWindow_whileTheOutputIsHigh() throws {
        let clock = ManualClock()
        let b = board { $0.runaway = .init(outputAbove: 50, minimumRise: 2, window: .seconds(20), hysteresis: 5) }
        b.apply(controller: "heater", value: 80, grant: "test")
        b.noteOutput(controller: "heater", value: 100, at: clock.now())
        XCTAssertNil(b.violation(in: try graph(temperature: 25), observedAt: clock.now(), now: clock.now()), "the window opens")
        clock.advance(by: .seconds(15))
        XCTAssertNil(b.violation(in: try graph(temperature: 27.5), observedAt: clock.now(), now: clock.now()), "gained 2.5: a new window")
        clock.advance(by: .seconds(19))
        XCTAssertNil(b.violation(in: try graph(temperature: 28), observedAt: clock.now(), now: clock.now()))
        clock.advance(by: .seconds(2))
        XCTAssertEqual(b.violation(in: try graph(temperature: 28.5), observedAt: clock.now(), now: clock.now())?.check, "runaway", "0.5 in 21 s")
        // Near the setpoint, or with the output low, there is nothing to gain.
        let near = board { $0.runaway = .init(outputAbove: 50, minimumRise: 2, window: .seconds(20), hysteresis: 5) }
        near.apply(controller: "heater", value: 80, grant: "test")
        near.noteOutput(controller: "heater", value: 100, at: clock.now())
        _ = near.violation(in: try graph(temperature: 76), observedAt: clock.now(), now: clock.now())
        clock.advance(by: .seconds(60))
        XCTAssertNil(near.violation(in: try graph(temperature: 76), observedAt: clock.now(), now: clock.now()))
    }
}
