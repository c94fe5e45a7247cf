import Benches
import DevicePorts
import Devices
import Foundation
import Glibc
import Guard
import HostAdapter
import Journal
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

    /// Losing a device latches a fault: the instruments still answering go to their safe state,
    /// nothing physical runs (even after a restart) until `worldos ack`, and the audit log has both.
    func testALostInstrument_latchesAFault_untilAPersonAcknowledgesIt() throws {
        var lost: BenchSimulator? = try BenchSimulator(arguments: ["--serial", "SIM-LOST"])
        let other = try BenchSimulator(arguments: ["--serial", "SIM-OK"])
        let clock = ManualClock()
        var session = try Supervisor.start(options(devices: [lost!.pty, other.pty]), clock: clock)
        XCTAssertEqual(Set(session.instruments.map(\.identity.serial)), ["SIM-LOST", "SIM-OK"])
        let survivor = try XCTUnwrap(session.instruments.first { $0.identity.serial == "SIM-OK" })
        try survivor.scpi.checked("RELAY 1,ON")
        try survivor.scpi.checked("HEAT:POW 40")
        try session.loop.step()
        lost = nil   // one bench goes away
        clock.advance(by: .milliseconds(500))
        try session.loop.step()
        XCTAssertEqual(try survivor.scpi.query("RELAY? 1"), "0", "the bench still answering is made safe")
        XCTAssertEqual(try survivor.scpi.query("HEAT:POW?"), "0")
        let fault = try XCTUnwrap(session.loop.memory.nodes(ofKind: .instrument).first?["fault"]?.stringValue)
        XCTAssertTrue(fault.hasPrefix("lost bench-bridge SIM-LOST on "), fault)

        func operatorDecisions(_ count: Int, _ session: inout Supervisor.Session) throws -> [Decision] {
            var decisions: [Decision] = []
            for _ in 0..<60 where decisions.count < count {
                let report = try session.loop.step()
                if report.context == "bench-operator", let d = report.outcome?.steps.first?.decision { decisions.append(d) }
                clock.advance(by: .milliseconds(500))
            }
            return decisions
        }
        for decision in try operatorDecisions(2, &session) {
            XCTAssertEqual(decision.rule, "latched-fault", "\(decision)")
            XCTAssertTrue(decision.reason?.contains("worldos ack") == true)
        }
        XCTAssertEqual(try survivor.scpi.query("RELAY? 0"), "0")

        // A restart does not clear it.
        var again = try Supervisor.start(options(devices: [other.pty]), clock: clock)
        XCTAssertTrue(again.notes.contains { $0.hasPrefix("HALTED by a fault latched") }, "\(again.notes)")
        XCTAssertEqual(try operatorDecisions(1, &again).first?.rule, "latched-fault")

        let ack = try runWorldOS(["ack", "--out", directory + "/out", "--by", "tester"])
        XCTAssertEqual(ack.status, 0, ack.stderr)
        XCTAssertTrue(ack.stdout.contains("acknowledged: lost bench-bridge SIM-LOST"), ack.stdout)
        let twice = try runWorldOS(["ack", "--out", directory + "/out"])
        XCTAssertTrue(twice.stderr.contains("already acknowledged by tester"), twice.stderr)
        let resumed = try operatorDecisions(2, &again)
        XCTAssertFalse(resumed.contains { $0.rule == "latched-fault" }, "\(resumed)")
        XCTAssertTrue(resumed.contains { $0.verdict == "allow" }, "release-relay runs again: \(resumed)")
        XCTAssertNil(again.loop.memory.nodes(ofKind: .instrument).first?["fault"])
        let nothing = try runWorldOS(["ack", "--out", directory + "/out"])
        XCTAssertTrue(nothing.stderr.contains("no fault is latched"), nothing.stderr)

        let audit = try String(contentsOfFile: directory + "/out/audit.jsonl", encoding: .utf8)
        XCTAssertEqual(audit.components(separatedBy: #""event":"fault""#).count - 1, 1, "latched once")
        XCTAssertTrue(audit.contains(#""event":"fault-acknowledged""#) && audit.contains("acknowledged by tester"))
        XCTAssertNoThrow(try AuditLog.verify(path: directory + "/out/audit.jsonl").get())
    }

    /// `worldos act` against a running supervisor: a named action runs as the context asked for,
    /// under its policy; an irreversible one waits for an approval; nothing runs without a
    /// supervisor to take it, and the request is withdrawn.
    func testAct_runsANamedActionThroughTheGuard_asTheContextNamed() throws {
        let sim = try BenchSimulator(arguments: ["--serial", "SIM-ACT"])
        let out = directory + "/out"
        let supervisor = try startWorldOS(["run", "--out", out, "--interval-ms", "100", "--device", sim.pty])
        defer { if supervisor.isRunning { kill(supervisor.processIdentifier, SIGINT); supervisor.waitUntilExit() } }
        func act(_ arguments: [String]) throws -> CommandResult { try runWorldOS(["act"] + arguments + ["--out", out, "--timeout", "20"]) }

        let release = try act(["relay.release", "relay=1", "--context", "bench-operator"])
        XCTAssertEqual(release.status, 0, release.stdout + release.stderr)
        XCTAssertTrue(release.stdout.hasPrefix("allow (") && release.stdout.contains("result: 1"), release.stdout)
        let energise = try act(["relay.energise", "relay=1", "--context", "bench-operator"])
        XCTAssertEqual(energise.status, 1)
        let request = try XCTUnwrap(energise.stdout.split(separator: "\n").last?.split(separator: " ").dropFirst(4).first, energise.stdout)
        XCTAssertTrue(energise.stdout.hasPrefix("needs-approval (approval \(request))"), energise.stdout)
        XCTAssertEqual(try runWorldOS(["approve", String(request), "--out", out, "--by", "tester"]).status, 0)
        let approved = try act(["relay.energise", "relay=1", "--context", "bench-operator"])
        XCTAssertEqual(approved.status, 0, approved.stdout + approved.stderr)
        XCTAssertTrue(approved.stdout.hasPrefix("allow (approval \(request) by \(Approver.ofThisProcess().name))"), approved.stdout)
        let replay = try act(["relay.energise", "relay=1", "--context", "bench-operator"])
        XCTAssertTrue(replay.stdout.hasPrefix("needs-approval"), "used once: \(replay.stdout)")

        for (arguments, expected) in [(["relay.release", "relay=1", "--context", "telemetry"], "deny (default-deny): no rule of context telemetry allows act"),
                                      (["relay.release", "--context", "nobody"], "deny (default-deny): this bench has no context nobody"),
                                      (["relay.melt", "--context", "bench-operator"], "refuse-uncertain (refuse-uncertain): no attached device offers relay.melt")] {
            let result = try act(arguments)
            XCTAssertEqual(result.status, 1)
            XCTAssertTrue(result.stdout.hasPrefix(expected), "\(arguments): \(result.stdout)")
        }
        for (arguments, expected) in [(["relay.release", "relay", "--context", "x"], "parameter \"relay\" is not key=value"),
                                      (["relay/../x", "--context", "x"], "action \"relay/../x\" may use letters")] {
            XCTAssertTrue(try act(arguments).stderr.contains(expected), "\(arguments)")
        }
        kill(supervisor.processIdentifier, SIGINT)
        supervisor.waitUntilExit()
        let orphan = try runWorldOS(["act", "relay.release", "relay=1", "--context", "bench-operator", "--out", out, "--timeout", "0.5"])
        XCTAssertEqual(orphan.status, 2)
        XCTAssertTrue(orphan.stderr.contains("withdrawn, it will not run"), orphan.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out + "/requests").filter { !$0.hasPrefix(".") }, [], "nothing left behind")

        let trace = try String(contentsOfFile: out + "/trace.jsonl", encoding: .utf8)
        XCTAssertEqual(trace.components(separatedBy: "\"task\":\"request ").count - 1, 5, "each request that reached a context is a traced step")
        XCTAssertEqual(try runWorldOS(["audit", "verify", "--out", out]).status, 0)
    }

    func testAMalformedRequest_isAnsweredWithItsFile_andTheBenchGoesOn() throws {
        let out = directory + "/out"
        let inbox = ActionInbox(directory: RunFolder(out).requests)
        try inbox.submit(ActionRequest(id: "00000000000000aa", context: "bench-operator", device: nil, action: "relay.release", params: [:], requestedBy: "t"))
        try Data("{\"id\": 12".utf8).write(to: URL(fileURLWithPath: inbox.directory + "/00000000000000bb.json"))
        let bench = try Bench.load(file: options(devices: []).bench)
        var proposer = RequestingProposer(bench: bench, inbox: inbox, offering: { _ in ["bench-bridge"] })
        let posterior = Posterior(step: 0, graph: Graph(), surprise: nil, observedAt: nil, supervisor: nil)
        XCTAssertEqual(proposer.propose(for: "telemetry", posterior: posterior, at: Instant(nanoseconds: 0))?.task, "read-loadavg", "not telemetry's request")
        XCTAssertEqual(proposer.propose(for: "bench-operator", posterior: posterior, at: Instant(nanoseconds: 0))?.task, "request 00000000000000aa")
        let reply = try XCTUnwrap(inbox.reply(to: "00000000000000bb"))
        XCTAssertEqual(reply.verdict, "deny")
        XCTAssertEqual(reply.reason, "\(inbox.directory)/00000000000000bb.json is not a request worldos act wrote")
    }

    func testBenchActions_reversibleRun_irreversibleWaitForApproval_thenRunOnce() throws {
        let sim = try BenchSimulator()
        let clock = ManualClock()
        var session = try Supervisor.start(options(devices: [sim.pty]), clock: clock)
        let bench = try XCTUnwrap(session.instruments.first)
        try bench.scpi.checked("RELAY 0,ON")   // as if someone had switched it on
        func operatorOutcomes(_ count: Int) throws -> [ActionOutcome] {
            var outcomes: [ActionOutcome] = []
            for _ in 0..<60 where outcomes.count < count {
                let report = try session.loop.step()
                if report.context == "bench-operator", let o = report.outcome { outcomes.append(o) }
                clock.advance(by: .milliseconds(500))
            }
            return outcomes
        }
        let first = try operatorOutcomes(2)
        XCTAssertEqual(first.map(\.proposal.task), ["release-relay", "energise-relay"])
        XCTAssertEqual(first[0].steps[0].result?.value, 1, "one line sent")
        guard case .needsApproval(let request, _)? = first[1].steps[0].decision else { return XCTFail("\(first[1].steps[0])") }
        XCTAssertEqual(first[1].steps[0].status, .denied, "not run while it waits")
        XCTAssertEqual(try bench.scpi.query("RELAY? 0"), "0", "released, and not energised")
        try session.loop.step()   // observed at the next step, like everything the action caused
        let waiting = try XCTUnwrap(session.loop.memory[NodeID("approval:\(request)")], "the waiting approval is a node of the graph")
        XCTAssertEqual(waiting["action"], .string("relay.energise"))
        XCTAssertEqual(waiting["context"], .string("bench-operator"))
        XCTAssertEqual(waiting["risk"], .string("irreversible-physical"))

        // A person approves it from the CLI, against the supervisor's run folder.
        let approve = try runWorldOS(["approve", request, "--out", directory + "/out", "--by", "tester"])
        XCTAssertEqual(approve.status, 0, approve.stderr)
        let second = try operatorOutcomes(2)
        XCTAssertEqual(second.map(\.proposal.task), ["release-relay", "energise-relay"])
        XCTAssertEqual(second[1].steps[0].decision, .allow(rule: "approval \(request) by \(Approver.ofThisProcess().name)"))
        XCTAssertEqual(second[1].steps[0].result?.value, 1)
        XCTAssertEqual(try bench.scpi.query("RELAY? 0"), "1", "energised, once")
        let third = try operatorOutcomes(2)
        guard case .needsApproval? = third[1].steps[0].decision else { return XCTFail("the approval was used up") }
        let audit = try String(contentsOfFile: directory + "/out/audit.jsonl", encoding: .utf8)
        XCTAssertTrue(audit.contains(#""decision":"needs-approval""#) && audit.contains("approval \(request) by \(Approver.ofThisProcess().name)"))
        XCTAssertNoThrow(try AuditLog.verify(path: directory + "/out/audit.jsonl").get())
        let verify = try runWorldOS(["audit", "verify", "--out", directory + "/out"])
        XCTAssertEqual(verify.status, 0, verify.stderr)
        XCTAssertTrue(verify.stdout.contains("chain intact"))
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
