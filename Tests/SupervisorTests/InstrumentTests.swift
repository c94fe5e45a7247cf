import Devices
import Foundation
import Guard
import Glibc
import HostAdapter
import LoopCore
import StateGraph
import Supervisor
import WorldOSTesting
import XCTest

/// The default bench's instrument: found through its profile, observed every step, returned to
/// its safe state on the way out.
final class InstrumentTests: XCTestCase {
    var directory: String!
    override func setUpWithError() throws { directory = try temporaryDirectory("instruments") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    func options(devices: [String]) -> SupervisorOptions {
        var o = SupervisorOptions()
        o.bench = repositoryRoot.appendingPathComponent("Devices/benches/default.yaml").path
        o.policy = repositoryRoot.appendingPathComponent("Policies/default.yaml").path
        o.profiles = repositoryRoot.appendingPathComponent("Devices").path
        o.devices = devices
        o.out = directory + "/out"
        return o
    }

    func testSimulator_isFoundThroughItsProfile_andItsReadingsAreSensorNodes() throws {
        let sim = try BenchSimulator(arguments: ["--serial", "SIM-7"])
        var session = try Supervisor.start(options(devices: [sim.pty]), clock: ManualClock())
        XCTAssertEqual(session.instruments.map(\.profile.name), ["bench-bridge"])
        XCTAssertEqual(session.instruments.first?.identity.serial, "SIM-7")
        try session.loop.step()
        let g = session.loop.memory
        let instrument = try XCTUnwrap(g[NodeID("instrument:bench-bridge:SIM-7")])
        XCTAssertEqual(instrument["status"], .string("ok"))
        XCTAssertEqual(instrument["path"], .string(sim.pty))
        XCTAssertTrue(instrument["actions"]?.stringValue?.contains("relay.energise (irreversible-physical)") ?? false)
        XCTAssertTrue(g.contains(Edge(instrument.id, .attachedTo, NodeID("serial-port:\(sim.pty)"))))
        let temperature = try XCTUnwrap(g[NodeID("sensor:bench-bridge/SIM-7/heater-temperature")])
        XCTAssertEqual(temperature["value"], .double(25))
        XCTAssertEqual(temperature["unit"], .string("°C"))
        XCTAssertEqual(g.owner(of: temperature.id), instrument.id)
        XCTAssertEqual(g.owned(by: instrument.id).count, 9, "one sensor per reading in the profile")
        XCTAssertEqual(temperature["role"], .string("sensor"))
        XCTAssertEqual(g[NodeID("sensor:bench-bridge/SIM-7/relay-0")]?["role"], .string("actuator"), "a relay's state is an actuator's")
    }

    func testSafeState_isSentToEveryInstrument_onTheWayOut() throws {
        let sim = try BenchSimulator()
        let session = try Supervisor.start(options(devices: [sim.pty]), clock: ManualClock())
        let bench = try XCTUnwrap(session.instruments.first)
        try bench.scpi.checked("RELAY 0,ON")
        try bench.scpi.checked("HEAT:POW 40")
        XCTAssertEqual(session.returnToSafeState(), [])
        XCTAssertEqual(try bench.scpi.query("RELAY? 0"), "0")
        XCTAssertEqual(try bench.scpi.query("HEAT:POW?"), "0")
    }

    func testALostInstrument_isAStateOfTheGraph_notACrash() throws {
        var sim: BenchSimulator? = try BenchSimulator()
        var session = try Supervisor.start(options(devices: [sim!.pty]), clock: ManualClock())
        try session.loop.step()
        sim = nil   // the instrument goes away
        let report = try session.loop.step()
        let instrument = try XCTUnwrap(session.loop.memory.nodes(ofKind: .instrument).first)
        XCTAssertEqual(instrument["status"], .string("lost"))
        XCTAssertNotNil(instrument["problem"])
        XCTAssertTrue(report.events.contains { $0.source == "instrument" && $0.action == "lost" })
    }

    func testBenchActions_reversibleOnesRun_irreversibleOnesNeverReachTheDevice() throws {
        let sim = try BenchSimulator()
        let clock = ManualClock()
        var session = try Supervisor.start(options(devices: [sim.pty]), clock: clock)
        let bench = try XCTUnwrap(session.instruments.first)
        try bench.scpi.checked("RELAY 0,ON")   // as if someone had switched it on
        var outcomes: [ActionOutcome] = []
        for _ in 0..<40 where outcomes.count < 2 {
            let report = try session.loop.step()
            if report.context == "bench-operator", let o = report.outcome { outcomes.append(o) }
            clock.advance(by: .milliseconds(500))
        }
        XCTAssertEqual(outcomes.map(\.proposal.task), ["release-relay", "energise-relay"])
        XCTAssertEqual(outcomes[0].steps[0].result?.value, 1, "one line sent")
        XCTAssertEqual(outcomes[1].steps[0].status, .denied)
        guard case .deny(let rule, _)? = outcomes[1].steps[0].decision else { return XCTFail() }
        XCTAssertEqual(rule, "approval-required")
        XCTAssertEqual(try bench.scpi.query("RELAY? 0"), "0", "released by the reversible action, and never energised")
        let audit = try String(contentsOfFile: directory + "/out/audit.jsonl", encoding: .utf8)
        XCTAssertTrue(audit.contains(#""decision":"deny""#) && audit.contains("approval-required"))
    }

    func testAPortNobodyAnswersOn_isANote_notAnInstrument() throws {
        // A pseudo-terminal whose other end is held by a process that never says a word.
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        holder.arguments = ["python3", "-c", "import os, pty, time; m, s = pty.openpty(); print(os.ttyname(s), flush=True); time.sleep(60)"]
        let out = Pipe()
        holder.standardOutput = out
        try holder.run()
        defer { holder.terminate(); holder.waitUntilExit() }
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        let silent = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let session = try Supervisor.start(options(devices: [silent]), clock: ManualClock())
        XCTAssertEqual(session.instruments.count, 0)
        XCTAssertTrue(session.notes.contains { $0.hasPrefix("\(silent): bench-bridge did not answer") }, "\(session.notes)")
    }
}
