import Benches
import Foundation
import Guard
import Journal
import LoopCore
import StateGraph
import Supervisor
import WorldOSTesting
import XCTest

/// A PID controller on the bench bridge's heater, against the firmware simulator at 50× real
/// time: its setpoint waits for an approval, it settles, and the guard's envelope — not the
/// controller — catches a heater whose element is cut.
final class ControllerTests: XCTestCase {
    var directory: String!
    override func setUpWithError() throws { directory = try temporaryDirectory("controller") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    /// At 50×, the heater's 200 s time constant is 4 s: the gains are the default bench's, with
    /// the integral's 50 times faster; the runaway window 2 s (100 simulated seconds).
    static func bench(maxOutput: Int = 100, lawMax: Int = 100) -> String {
        """
        version: 1
        contexts:
          heater-control:
            period-ms: 100
            deadline-ms: 50
            controller:
              name: heater
              law: pid
              input: bench-bridge/heater-temperature
              output: { device: bench-bridge, action: heater.set_power, parameter: percent, min: 0, max: \(lawMax) }
              setpoint: 80
              gains: { kp: 8, ki: 2 }
              setpoints: { min: 0, max: 120 }
              safety:
                max-output: \(maxOutput)
                range: [0, 130]
                stale-ms: 3000
                runaway: { output-above: 50, min-rise: 2, within-s: 2, hysteresis: 5 }
          operator:
            interval-ms: 200
            tasks:
              idle:
                - open: { path: /proc/loadavg }
                - close: { fd: $0 }
        """
    }

    static let policy = """
        version: 1
        uncertainty:
          max-observation-age-ms: 5000
          max-surprise: 100000
        contexts:
          heater-control:
            allow:
              - op: act
                action: [heater.*]
          operator:
            allow:
              - op: open
                path: /proc/loadavg
                mode: read
              - op: [close]
              - op: act
                action: [heater.*]
        """

    func options(_ sim: BenchSimulator, bench: String = ControllerTests.bench()) throws -> SupervisorOptions {
        try Self.options(directory: directory, sim, bench: bench)
    }

    /// A supervisor's options for `bench` and `policy` in `directory`, on the simulator.
    static func options(directory: String, _ sim: BenchSimulator, bench: String, policy: String = ControllerTests.policy) throws -> SupervisorOptions {
        var o = SupervisorOptions()
        try bench.write(toFile: directory + "/bench.yaml", atomically: true, encoding: .utf8)
        try policy.write(toFile: directory + "/policy.yaml", atomically: true, encoding: .utf8)
        o.bench = directory + "/bench.yaml"
        o.policy = directory + "/policy.yaml"
        o.profiles = repositoryRoot.appendingPathComponent("Devices").path
        o.devices = [sim.pty]
        o.out = directory + "/out"
        o.keys = directory + "/keys"
        return o
    }

    /// Run the loop for `seconds` of real time, answering the controller's setpoint request as
    /// a person at the CLI would; `each` sees every step and the graph after it.
    func run(_ session: inout Supervisor.Session, seconds: Double, folder: RunFolder,
             each: (StepReport, Graph) -> Void = { _, _ in }) throws {
        let end = Date().addingTimeInterval(seconds)
        var approved: Set<String> = []
        while Date() < end {
            let report = try session.loop.step()
            for step in report.outcome?.steps ?? [] {
                if case .needsApproval(let id, _)? = step.decision, approved.insert(id).inserted {
                    try ApprovalStore.answer(id, approve: true, label: "test", directory: folder.approvals)
                }
            }
            each(report, session.loop.memory)
            let wait = session.loop.scheduler.nextDue().map { $0.duration(since: session.loop.clock.now()) } ?? .milliseconds(100)
            if wait > .zero { Thread.sleep(forTimeInterval: Double(wait.components.attoseconds) / 1e18 + Double(wait.components.seconds)) }
        }
    }

    static func temperature(_ g: Graph) -> Double? {
        g.nodes(ofKind: .sensor).first { $0.id.rawValue.hasSuffix("/heater-temperature") }?["value"]?.doubleValue
    }

    func testPID_holdsTheHeaterWithinOneDegreeOf80_afterItsSetpointIsApproved() throws {
        let sim = try BenchSimulator(arguments: ["--speed", "50"])
        let o = try options(sim)
        var session = try Supervisor.start(o, clock: SystemClock())
        var temperatures: [(Date, Double)] = []
        var firstOutputAt: Date?
        var setpointRule: String?
        try run(&session, seconds: 22, folder: o.folder) { report, graph in
            if let t = Self.temperature(graph) { temperatures.append((Date(), t)) }
            for step in report.outcome?.steps ?? [] where step.call?.string(.action) == "heater.setpoint" && step.decision?.isAllowed == true {
                setpointRule = step.decision?.rule
            }
            if firstOutputAt == nil, report.outcome?.proposal.task == "control" { firstOutputAt = Date() }
        }
        XCTAssertTrue(setpointRule?.hasPrefix("approval ") == true, "raising the setpoint from none to 80 waited for an approval: \(String(describing: setpointRule))")
        let started = try XCTUnwrap(firstOutputAt, "the controller wrote its heater")
        let peak = temperatures.filter { $0.0 > started }.map(\.1).max() ?? 0
        let last = temperatures.filter { $0.0 > Date().addingTimeInterval(-4) }.map(\.1)
        print("PID at 50×: peak \(peak) °C, overshoot \(String(format: "%.2f", max(0, peak - 80))) °C; last 4 s between \(last.min() ?? .nan) and \(last.max() ?? .nan) °C")
        XCTAssertFalse(last.isEmpty)
        XCTAssertTrue(last.allSatisfy { abs($0 - 80) <= 1 }, "settled within ±1 °C of 80: \(last)")
        XCTAssertLessThan(peak - 80, 5, "overshoot under 5 °C")
        // Every write rested on the setpoint's approval, and the jitter is in the graph.
        let context = try XCTUnwrap(session.loop.memory[.context("heater-control")])
        XCTAssertEqual(context["setpoint"], .double(80))
        XCTAssertNotNil(context["jitter-p99-ms"])
        XCTAssertGreaterThan(context["runs"]?.intValue ?? 0, 50)
        let audit = try String(contentsOfFile: o.folder.audit, encoding: .utf8)
        XCTAssertTrue(audit.contains("controller heater at setpoint 80 (approval "), "writes cite the setpoint's approval: \(audit.suffix(600))")
        XCTAssertNil(session.loop.memory.nodes(ofKind: .instrument).first?["fault"], "no fault")
    }

    func testACutHeaterElement_tripsTheRunawayCheckWithinItsWindow_andEndsSafe() throws {
        let sim = try BenchSimulator(arguments: ["--speed", "50", "--cut-heater", "0"])
        let o = try options(sim)
        var session = try Supervisor.start(o, clock: SystemClock())
        var highSince: Date?
        var trippedAt: Date?
        try run(&session, seconds: 8, folder: o.folder) { report, graph in
            for step in report.outcome?.steps ?? [] where step.call?.string(.action) == "heater.set_power" && step.decision?.isAllowed == true {
                if highSince == nil, Double(step.call?.actionParameters.pairs["percent"] ?? "") ?? 0 >= 50 { highSince = Date() }
            }
            if trippedAt == nil, graph.nodes(ofKind: .instrument).first?["fault"] != nil { trippedAt = Date() }
        }
        let high = try XCTUnwrap(highSince, "the controller drove the heater high")
        let tripped = try XCTUnwrap(trippedAt, "the runaway check tripped")
        let after = tripped.timeIntervalSince(high)
        print("runaway tripped \(String(format: "%.2f", after)) s after the output went high (window 2 s)")
        XCTAssertGreaterThanOrEqual(after, 1.9, "not before the window")
        XCTAssertLessThan(after, 3.5, "within the window and a step or two")
        let fault = try String(contentsOfFile: o.folder.fault, encoding: .utf8)
        XCTAssertTrue(fault.contains("safety runaway (controller heater)"), fault)
        XCTAssertEqual(try session.instruments[0].scpi.query("HEAT:POW?"), "0", "the heater ends in its safe state")
        // Nothing physical runs now: the controller waits for a setpoint approved after an ack.
        XCTAssertNil(session.loop.memory[.context("heater-control")]?["setpoint"]?.doubleValue)
        let audit = try String(contentsOfFile: o.folder.audit, encoding: .utf8)
        XCTAssertTrue(audit.contains("\"event\":\"fault\""), "the trip is audited")
    }
}

/// The doors around a controlled heater, tried as an attacker would: another name for the
/// device, another context, a setpoint out of range, a raise dressed as a lowering.
final class ControllerGuardTests: XCTestCase {
    var directory: String!
    override func setUpWithError() throws { directory = try temporaryDirectory("controller-guard") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    /// Ask as `worldos act` does (a request in the run folder), stepping a manual clock until
    /// the operator context has answered it.
    func act(_ session: inout Supervisor.Session, _ clock: ManualClock, folder: RunFolder, _ action: String,
             _ params: [String: String], device: String? = nil) throws -> ActionReply {
        let inbox = ActionInbox(directory: folder.requests)
        let id = String(format: "%016llx", UInt64.random(in: .min ... .max))
        try inbox.submit(ActionRequest(id: id, context: "operator", device: device, action: action, params: params, requestedBy: "test"))
        for _ in 0..<80 {
            clock.advance(by: Self.untilDue(session))
            let report = try session.loop.step()
            if var requests = session.loop.proposer as? RequestingProposer {
                requests.settle(report)
                session.loop.proposer = requests
            }
            if let reply = inbox.reply(to: id) { return reply }
        }
        struct NoAnswer: Error { var action: String }
        throw NoAnswer(action: action)
    }

    /// As the run loop waits: until the next context is due (at most 100 ms).
    static func untilDue(_ session: Supervisor.Session) -> Duration {
        let wait = session.loop.scheduler.nextDue().map { $0.duration(since: session.loop.clock.now()) } ?? .milliseconds(100)
        return min(max(wait, .milliseconds(1)), .milliseconds(100))
    }

    /// Steps until the controller's setpoint request is approved and taken.
    func approveTheFirstSetpoint(_ session: inout Supervisor.Session, _ clock: ManualClock, folder: RunFolder) throws {
        for _ in 0..<120 {
            clock.advance(by: Self.untilDue(session))
            let report = try session.loop.step()
            for step in report.outcome?.steps ?? [] {
                if case .needsApproval(let id, _)? = step.decision { try ApprovalStore.answer(id, approve: true, label: nil, directory: folder.approvals) }
            }
            if session.loop.memory[.context("heater-control")]?["setpoint"] == .double(80) { return }
        }
        XCTFail("the first setpoint was never taken")
    }

    func start(maxOutput: Int) throws -> (Supervisor.Session, ManualClock, RunFolder, BenchSimulator) {
        let sim = try BenchSimulator(arguments: ["--serial", "SIM-G"])
        let o = try ControllerTests.options(directory: directory, sim, bench: ControllerTests.bench(maxOutput: maxOutput))
        let clock = ManualClock()
        return (try Supervisor.start(o, clock: clock), clock, o.folder, sim)
    }

    func testAWriteAboveTheMaximumOutput_underAnotherNameForTheDevice_isDenied_andLatchesAFault() throws {
        var (session, clock, folder, sim) = try start(maxOutput: 60)
        _ = sim
        let reply = try act(&session, clock, folder: folder, "heater.set_power", ["percent": "90.0"], device: "bench-bridge:SIM-G")
        XCTAssertEqual(reply.verdict, "deny")
        XCTAssertEqual(reply.rule, "safety max-output")
        let fault = try String(contentsOfFile: folder.fault, encoding: .utf8)
        XCTAssertTrue(fault.contains("safety max-output"), fault)
        XCTAssertEqual(try session.instruments[0].scpi.query("HEAT:POW?"), "0")
        // A write within the maximum still waits: the fault is latched.
        let after = try act(&session, clock, folder: folder, "heater.set_power", ["percent": "10"])
        XCTAssertEqual(after.rule, "latched-fault")
    }

    func testASetpoint_raisedWaitsForAnApproval_loweredDoesNot_andOneOutOfRangeIsDenied() throws {
        var (session, clock, folder, sim) = try start(maxOutput: 100)
        _ = sim
        try approveTheFirstSetpoint(&session, clock, folder: folder)
        let lower = try act(&session, clock, folder: folder, "heater.setpoint", ["value": "50"])
        XCTAssertEqual(lower.verdict, "allow", "lowering needs no approval: \(lower)")
        XCTAssertEqual((session.loop.policyGuard as? PolicyGuard)?.controls?.setpoint(of: "heater")?.value, 50)
        let raise = try act(&session, clock, folder: folder, "heater.setpoint", ["value": "50.5"])
        XCTAssertEqual(raise.verdict, "needs-approval", "\(raise)")
        XCTAssertTrue(raise.reason?.contains("controller:heater on bench-bridge:SIM-G") == true, "bound to the controller and its device: \(raise)")
        let wild = try act(&session, clock, folder: folder, "heater.setpoint", ["value": "500"])
        XCTAssertEqual(wild.rule, "safety setpoints")
        let sneaky = try act(&session, clock, folder: folder, "heater.setpoint", ["value": "40", "extra": "1"])
        XCTAssertEqual(sneaky.verdict, "deny", "one parameter, value: \(sneaky)")
        // The setpoint covers the controller's own writes, not another context's.
        let direct = try act(&session, clock, folder: folder, "heater.set_power", ["percent": "30"])
        XCTAssertEqual(direct.verdict, "needs-approval", "\(direct)")
    }
}

/// The default bench's heater controller and envelope, as shipped, in real time against the
/// simulator's thermal model (Firmware/host/hal_host.c: 20 W, 40 J/K, 0.2 W/K to 25 °C, read to
/// 0.1 °C): a working heater settles at 80 °C without tripping the runaway check on its slow last
/// approach, and a cut element trips it within its window. (The simulator tests run at 50× with
/// envelopes of their own: a real-time window cannot be checked on a sped-up plant.)
final class ShippedHeaterTests: XCTestCase {
    struct Run {
        var temperatures: [Double] = []
        var trip: (seconds: Double, check: String, detail: String)?
        var highSince: Double?
    }

    func run(cutElement: Bool, seconds: Double) throws -> Run {
        let bench = try Bench.load(file: repositoryRoot.appendingPathComponent("Devices/benches/default.yaml").path)
        let spec = try XCTUnwrap(bench.controllers["heater-control"])
        let period = Double(try XCTUnwrap(bench.contexts.first { $0.name == "heater-control" }?.periodMilliseconds)) / 1000
        let board = ControlBoard([spec.envelope])
        board.apply(controller: spec.name, value: 80, grant: "test")
        var law = spec.law
        let clock = ManualClock()
        var temperature = 25.0, result = Run()
        for k in 0..<Int(seconds / period) {
            let now = clock.now(), t = Double(k) * period
            let reading = (temperature * 10).rounded() / 10
            var graph = Graph()
            try graph.apply(.addNode(Node(id: NodeID("sensor:bench-bridge/SIM-0001/heater-temperature"), kind: .sensor, attributes: ["value": .double(reading)])))
            if let tripped = board.violation(in: graph, observedAt: now, now: now) {
                result.trip = (t, tripped.check, tripped.detail)
                break
            }
            var output = law.output(reading: reading, setpoint: 80, dt: k == 0 ? nil : period)
            output = min(max(output.rounded(), spec.outputRange.lowerBound), spec.outputRange.upperBound)
            if output >= spec.envelope.runaway!.outputAbove { result.highSince = result.highSince ?? t } else { result.highSince = nil }
            board.noteOutput(controller: spec.name, value: output, at: now)
            for _ in 0..<10 {
                let watts = (cutElement ? 0 : 20 * output / 100) - 0.2 * (temperature - 25)
                temperature += watts / 40 * period / 10
            }
            result.temperatures.append(reading)
            clock.advance(by: .milliseconds(Int64(period * 1000)))
        }
        return result
    }

    func testTheShippedHeater_settlesAt80_withoutAFalseRunawayTrip() throws {
        let r = try run(cutElement: false, seconds: 900)
        XCTAssertNil(r.trip.map { "\($0.check) at \($0.seconds) s: \($0.detail)" }, "a working heater does not trip")
        let last = r.temperatures.suffix(480)  // the last 2 minutes
        print("shipped heater in real time: peak \(r.temperatures.max() ?? .nan) °C; last 2 min \(last.min() ?? .nan)…\(last.max() ?? .nan) °C")
        XCTAssertTrue(last.allSatisfy { abs($0 - 80) <= 1 }, "settled within ±1 °C: \(last.min() ?? .nan)…\(last.max() ?? .nan)")
    }

    func testTheShippedHeater_withACutElement_tripsTheRunawayCheckWithinItsWindow() throws {
        let r = try run(cutElement: true, seconds: 120)
        let trip = try XCTUnwrap(r.trip, "a cut element trips")
        XCTAssertEqual(trip.check, "runaway", trip.detail)
        let window = try Bench.load(file: repositoryRoot.appendingPathComponent("Devices/benches/default.yaml").path).controllers["heater-control"]!.envelope.runaway!.window
        XCTAssertLessThanOrEqual(trip.seconds, Double(window.components.seconds) + 1, "within its window of the output going high")
    }
}
