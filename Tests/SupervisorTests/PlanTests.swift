import Benches
import Control
import DataEngine
import Foundation
import Guard
import Journal
import LoopCore
import PNGCodec
import StateGraph
import Supervisor
import WorldOSTesting
import XCTest

/// The shipped supply scan (Devices/benches/plans/supply-scan.yaml) on the default bench, against
/// the firmware simulator, driven from the CLI as a person would: one approval for the plan,
/// pause and resume, its measurements and plot; a crash, and a resume from its checkpoint.
final class PlanTests: XCTestCase {
    var directory: String!
    override func setUpWithError() throws { directory = try temporaryDirectory("plan") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    static let plan = repositoryRoot.appendingPathComponent("Devices/benches/plans/supply-scan.yaml").path

    func startSupervisor(_ sim: BenchSimulator, out: String) throws -> Process {
        try startWorldOS(["run", "--out", out, "--device", sim.pty, "--interval-ms", "50", "--display", "none", "--listen", "none"])
    }

    /// `worldos plan run` and its answer: the plan's id and the approval it waits for.
    func submit(out: String) throws -> (id: String, approval: String) {
        let run = try runWorldOS(["plan", "run", Self.plan, "--out", out])
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        let id = try XCTUnwrap(run.stdout.split(separator: "\n").dropFirst().first?.split(separator: " ").first.map(String.init), run.stdout)
        let approval = try XCTUnwrap(run.stdout.range(of: #"worldos approve [0-9a-f]{16}"#, options: .regularExpression).map { String(run.stdout[$0].suffix(16)) },
                                     run.stdout)
        XCTAssertTrue(run.stdout.contains("waiting-for-approval"), run.stdout)
        return (id, approval)
    }

    func testTheSupplyScan_fromTheCLI_runsOnOneApprovalOfItsHash_pausesAndResumes_andWritesItsMeasurementsAndPlot() throws {
        let sim = try BenchSimulator()
        let out = directory + "/out"
        let child = try startSupervisor(sim, out: out)
        defer { if child.isRunning { kill(child.processIdentifier, SIGTERM); child.waitUntilExit() } }
        let files = PlanFiles(directory: RunFolder(out).plans)
        let (id, approval) = try submit(out: out)
        // One approval, bound to the plan's hash, its ranges and the supply's identity.
        let request = try XCTUnwrap(ApprovalStore.read(directory: out + "/approvals").first { $0.id == approval })
        let text = try String(contentsOfFile: Self.plan, encoding: .utf8)
        XCTAssertEqual(request.binding.action, "plan supply-scan")
        XCTAssertEqual(request.binding.context, "plan-runner")
        XCTAssertEqual(request.binding.params["plan-sha256"], try Plan.parse(text, file: Self.plan).hash)
        XCTAssertEqual(request.binding.params["psu.set_voltage on bench-bridge"], "volts 0…5 (11 values)")
        XCTAssertTrue(request.binding.device.hasPrefix("bench-bridge:"), request.binding.device)
        // Nothing runs before it is given.
        usleep(500_000)
        XCTAssertEqual(files.status(id)?.position, 0)
        XCTAssertEqual(files.status(id)?.state, .waitingForApproval)
        try ApprovalStore.approveAsCLI(approval, out: out)
        XCTAssertTrue(waitFor(30) { (files.status(id)?.position ?? 0) >= 8 }, "the scan began: \(files.status(id)?.line ?? "no status")")
        let pause = try runWorldOS(["plan", "pause", id, "--out", out])
        XCTAssertEqual(pause.status, 0, pause.stdout + pause.stderr)
        XCTAssertTrue(pause.stdout.contains("paused"), pause.stdout)
        let held = try XCTUnwrap(files.status(id))
        usleep(1_000_000)
        XCTAssertEqual(files.status(id)?.position, held.position, "a paused plan takes no step")
        XCTAssertEqual(files.status(id)?.state, .paused)
        let resume = try runWorldOS(["plan", "resume", id, "--out", out])
        XCTAssertEqual(resume.status, 0, resume.stdout + resume.stderr)
        XCTAssertTrue(waitFor(60) { files.status(id)?.state == .done }, "done: \(files.status(id)?.line ?? "no status")")
        XCTAssertEqual(files.status(id)?.measurements, 14)

        let export = directory + "/measurements"
        let cli = try runWorldOS(["export", "--measurements", "--plan", id, "--to", export, "--out", out])
        XCTAssertEqual(cli.status, 0, cli.stdout + cli.stderr)
        let rows = try String(contentsOfFile: export + "/measurements.csv", encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        XCTAssertEqual(rows.first, ["time_ns", "plan", "plan_id", "series", "index", "volts", "supply-current", "supply-voltage"])
        let iv = rows.dropFirst().filter { $0[3] == "iv" }
        XCTAssertEqual(iv.map { $0[5] }, ["0.0", "0.5", "1.0", "1.5", "2.0", "2.5", "3.0", "3.5", "4.0", "4.5", "5.0"])
        for row in iv {
            // The simulator's supply drives a 10 Ω load: each point read after it was set.
            let (volts, current, measured) = (Double(row[5])!, Double(row[6])!, Double(row[7])!)
            XCTAssertEqual(measured, volts, accuracy: 0.01, "\(row)")
            XCTAssertEqual(current, volts / 10, accuracy: 0.01, "\(row)")
        }
        XCTAssertEqual(rows.dropFirst().filter { $0[3] == "hold" }.count, 3)
        let png = try PNG.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: export + "/iv.png"))))
        XCTAssertGreaterThan(png.width, 100)
        // Every psu.output_on ran on the plan's approval, and the preflight is on the record.
        let audit = try String(contentsOfFile: out + "/audit.jsonl", encoding: .utf8)
        XCTAssertTrue(audit.contains("\"event\":\"plan-preflight\""), audit.suffix(400).description)
        XCTAssertTrue(audit.contains("plan supply-scan \(id) (approval \(approval) by "), "the on step cites the plan's approval")
        // The Parquet beside it, as a reader we did not write reads it: the same table.
        guard let (status, data, errors) = try PythonFixture.run("parquet_check.py", [export + "/measurements.parquet"]) else {
            throw XCTSkip("PYARROW VENV MISSING — SKIPPED LOUDLY: `make setup` installs pyarrow into .venv-tests")
        }
        XCTAssertEqual(status, 0, errors)
        let table = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual((table["schema"] as? [[String: Any]])?.compactMap { $0["name"] as? String }, rows[0].map(String.init))
        let read = try XCTUnwrap(table["rows"] as? [[String: Any]])
        XCTAssertEqual(read.count, rows.count - 1)
        for (row, csv) in zip(read, rows.dropFirst()) {
            XCTAssertEqual(row["series"] as? String, String(csv[3]))
            XCTAssertEqual((row["time_ns"] as? NSNumber)?.int64Value, Int64(csv[0]))
            XCTAssertEqual((row["supply-current"] as? String).flatMap(Double.init), Double(csv[6]))
            XCTAssertEqual(row["volts"] is NSNull, csv[5].isEmpty, "a hold has no point: null, as the CSV's empty cell")
        }
    }

    func testAPlanInterruptedByACrash_resumesOnlyFromItsCheckpoint_andOnlyWhenAPersonSaysSo() throws {
        let sim = try BenchSimulator()
        let out = directory + "/out"
        var child = try startSupervisor(sim, out: out)
        defer { if child.isRunning { kill(child.processIdentifier, SIGTERM); child.waitUntilExit() } }
        let files = PlanFiles(directory: RunFolder(out).plans)
        let (id, approval) = try submit(out: out)
        try ApprovalStore.approveAsCLI(approval, out: out)
        XCTAssertTrue(waitFor(30) { (files.status(id)?.position ?? 0) >= 10 }, "into the scan: \(files.status(id)?.line ?? "no status")")
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        let crashed = try XCTUnwrap(files.status(id))
        XCTAssertEqual(crashed.checkpoint, "powered")
        XCTAssertEqual(crashed.resumeAt, 4)

        child = try startSupervisor(sim, out: out)
        XCTAssertTrue(waitFor(30) { files.status(id)?.state == .interrupted }, "\(files.status(id)?.line ?? "")")
        XCTAssertTrue(files.status(id)?.message?.contains("resume from step 4 (checkpoint powered)") == true, files.status(id)?.message ?? "")
        usleep(1_500_000)
        XCTAssertEqual(files.status(id)?.state, .interrupted, "nothing of it runs on its own")
        let resume = try runWorldOS(["plan", "resume", id, "--out", out])
        XCTAssertEqual(resume.status, 0, resume.stdout + resume.stderr)
        // Checked again, on a new approval: the old one was used, and the bench may have changed.
        var again: String?
        XCTAssertTrue(waitFor(30) {
            again = files.status(id).flatMap { $0.state == .waitingForApproval ? $0.approval : nil }
            return again != nil
        }, "\(files.status(id)?.line ?? "")")
        XCTAssertNotEqual(again, approval)
        XCTAssertEqual(files.status(id)?.position, 4, "from the step after the checkpoint")
        try ApprovalStore.approveAsCLI(try XCTUnwrap(again), out: out)
        XCTAssertTrue(waitFor(60) { files.status(id)?.state == .done }, "\(files.status(id)?.line ?? "")")
        kill(child.processIdentifier, SIGTERM)
        child.waitUntilExit()
        // The scan ran whole after the resume: 0 V again after the checkpoint, through 5 V.
        let measured = try MeasurementExport.read(traces: RunFolder(out).mcapTraces(), plan: id).filter { $0.series == "iv" }
        let volts = measured.map { $0.point["volts"]! }
        let restart = try XCTUnwrap(volts.lastIndex(of: 0))
        XCTAssertGreaterThan(restart, 0, "some points were measured before the crash")
        XCTAssertEqual(Array(volts[restart...]), stride(from: 0.0, through: 5.0, by: 0.5).map { $0 })
    }
}

/// A plan run in the loop itself (no CLI), for what only the loop shows: the abort's cleanup
/// and safe state, and the doors around a plan's approval tried as an attacker would.
final class PlanGuardTests: XCTestCase {
    var directory: String!
    override func setUpWithError() throws { directory = try temporaryDirectory("plan-guard") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    static let bench = """
        version: 1
        contexts:
          plan-runner:
            interval-ms: 50
            plans: true
          operator:
            interval-ms: 200
            tasks:
              idle:
                - open: { path: /proc/loadavg }
                - close: { fd: $0 }
        """

    static let policy = """
        version: 1
        uncertainty:
          max-observation-age-ms: 5000
          max-surprise: 100000
        contexts:
          plan-runner:
            allow:
              - op: act
                action: psu.set_voltage
                params: { volts: { min: 0, max: 12 } }
              - op: act
                action: [psu.output_off, psu.output_on]
          operator:
            allow:
              - op: open
                path: /proc/loadavg
                mode: read
              - op: [close]
        """

    func start(_ sim: BenchSimulator, bench: String = PlanGuardTests.bench, policy: String = PlanGuardTests.policy) throws -> Supervisor.Session {
        try Supervisor.start(ControllerTests.options(directory: directory, sim, bench: bench, policy: policy), clock: SystemClock())
    }

    var folder: RunFolder { RunFolder(directory + "/out") }
    var files: PlanFiles { PlanFiles(directory: folder.plans) }

    /// Step the loop (answering requests as the run loop does) until `done` or `seconds` pass.
    @discardableResult
    func step(_ session: inout Supervisor.Session, seconds: Double = 20, each: (StepReport) throws -> Void = { _ in },
              until done: () -> Bool) throws -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            let report = try session.loop.step()
            if var requests = session.loop.proposer as? RequestingProposer {
                requests.settle(report)
                session.loop.proposer = requests
            }
            try each(report)
            if done() { return true }
            usleep(20_000)
        }
        return false
    }

    func submit(_ text: String, id: String) throws {
        try files.submit(PlanSubmission(id: id, file: "test.yaml", text: text, context: nil, requestedBy: "tester"))
    }

    func approve(_ session: inout Supervisor.Session, _ id: String) throws -> String {
        var approval: String?
        try step(&session) { approval = files.status(id).flatMap { $0.state == .waitingForApproval ? $0.approval : nil }; return approval != nil }
        let request = try XCTUnwrap(approval, "plan \(id) waits for an approval: \(files.status(id)?.line ?? "no status")")
        try ApprovalStore.answer(request, approve: true, label: "tester", directory: folder.approvals)
        return request
    }

    func testAnAbort_runsTheCleanup_thenDrivesTheSafeState() throws {
        let sim = try BenchSimulator()
        var session = try start(sim)
        try submit(try String(contentsOfFile: PlanTests.plan, encoding: .utf8), id: "abort1")
        _ = try approve(&session, "abort1")
        XCTAssertTrue(try step(&session) { (files.status("abort1")?.position ?? 0) >= 12 }, files.status("abort1")?.line ?? "")
        XCTAssertEqual(try session.instruments[0].scpi.query("OUTP?"), "1", "the supply is on mid-scan")
        try files.ask("abort1", PlanCommand(op: .abort, by: "tester"))
        var cleanup: [String] = []
        XCTAssertTrue(try step(&session, each: { report in
            if report.outcome?.proposal.task.hasPrefix("plan abort1 cleanup") == true, let d = report.outcome?.steps.first?.decision {
                cleanup.append("\(report.outcome!.steps[0].call!.string(.action)!) \(d.verdict)")
            }
        }) { files.status("abort1")?.state == .aborted }, files.status("abort1")?.line ?? "")
        XCTAssertEqual(cleanup, ["psu.output_off allow", "psu.set_voltage allow"], "the plan's cleanup ran, through the guard")
        XCTAssertTrue(files.status("abort1")?.message?.contains("aborted by tester") == true)
        XCTAssertTrue(files.status("abort1")?.message?.contains("driven to the safe state") == true)
        XCTAssertEqual(try session.instruments[0].scpi.query("OUTP?"), "0")
        XCTAssertEqual(Double(try session.instruments[0].scpi.query("SOUR:VOLT?")) ?? -1, 0, accuracy: 1e-9)
    }

    /// The plan's approval covers the plan's own steps only: not a request made as the same
    /// context meanwhile, not another plan, not the same plan run again.
    func testAPlansApproval_coversOnlyThatPlansOwnSteps() throws {
        let sim = try BenchSimulator()
        var session = try start(sim)
        let text = try String(contentsOfFile: PlanTests.plan, encoding: .utf8)
        try submit(text, id: "first")
        let approval = try approve(&session, "first")
        XCTAssertTrue(try step(&session) { (files.status("first")?.position ?? 0) >= 6 })
        // A request as plan-runner for the very action the plan was approved for.
        let inbox = ActionInbox(directory: folder.requests)
        try inbox.submit(ActionRequest(id: "0000000000000001", context: "plan-runner", device: "bench-bridge", action: "psu.output_on",
                                       params: ["current-limit": "1"], requestedBy: "mallory"))
        try step(&session) { inbox.reply(to: "0000000000000001") != nil }
        let reply = try XCTUnwrap(inbox.reply(to: "0000000000000001"))
        XCTAssertEqual(reply.verdict, "needs-approval", "\(reply)")
        XCTAssertTrue(try step(&session, seconds: 30) { files.status("first")?.state == .done }, files.status("first")?.line ?? "")
        // The same plan again: its approval was used once.
        try submit(text, id: "second")
        let second = try approve(&session, "second")
        XCTAssertNotEqual(second, approval)
        try files.ask("second", PlanCommand(op: .abort, by: "tester"))
        try step(&session) { files.status("second")?.state.isFinal == true }
        // An edited plan (a wider scan) does not ride on another plan's approval.
        let wider = text.replacingOccurrences(of: "to: 5\n", with: "to: 9\n")
        XCTAssertNotEqual(wider, text)
        try submit(wider, id: "third")
        try step(&session) { files.status("third")?.state == .waitingForApproval }
        let third = try XCTUnwrap(ApprovalStore.read(directory: folder.approvals).first { $0.id == files.status("third")?.approval })
        XCTAssertEqual(third.binding.params["psu.set_voltage on bench-bridge"], "volts 0…9 (19 values)")
        XCTAssertEqual(third.state, .pending)
    }

    /// A plan may raise a controller's setpoint: its one approval binds the controller and the
    /// actuator's identity, and the controller's writes then rest on the plan's approval.
    func testAPlanRaisingAControllersSetpoint_bindsItsApprovalToTheActuator() throws {
        let sim = try BenchSimulator()
        let bench = Self.bench + """

              heater-control:
                period-ms: 100
                controller:
                  name: heater
                  law: pid
                  input: bench-bridge/heater-temperature
                  output: { device: bench-bridge, action: heater.set_power, parameter: percent, min: 0, max: 100 }
                  gains: { kp: 8, ki: 0.04 }
                  setpoints: { min: 0, max: 120 }
                  safety: { max-output: 100, range: [0, 130], stale-ms: 3000 }
            """
        let policy = Self.policy.replacingOccurrences(of: "        action: [psu.output_off, psu.output_on]\n",
                                                      with: "        action: [psu.output_off, psu.output_on, heater.setpoint, heater.off]\n")
            + "\n  heater-control:\n    allow:\n      - op: act\n        action: [heater.*]\n"
        var session = try start(sim, bench: bench, policy: policy)
        try submit("""
            version: 1
            plan: warm
            context: plan-runner
            device: bench-bridge
            cleanup:
              - set: { device: controller:heater, action: heater.setpoint, params: { value: 0 } }
              - set: { action: heater.off }
            steps:
              - set: { device: controller:heater, action: heater.setpoint, params: { value: 60 } }
              - wait-until: { condition: "heater-temperature >= 25.5", timeout-s: 30 }
              - set: { device: controller:heater, action: heater.setpoint, params: { value: 0 } }
            """, id: "warm")
        let approval = try approve(&session, "warm")
        let request = try XCTUnwrap(ApprovalStore.read(directory: folder.approvals).first { $0.id == approval })
        XCTAssertEqual(request.binding.device, "bench-bridge:SIM-0001,controller:heater on bench-bridge:SIM-0001", "the cleanup's heater.off, and the setpoints")
        XCTAssertEqual(request.binding.params["heater.setpoint on controller:heater"], "value 0…60 (2 values)")
        var writes: [String] = []
        XCTAssertTrue(try step(&session, seconds: 40, each: { report in
            for s in report.outcome?.steps ?? [] where s.call?.string(.action) == "heater.set_power" && s.decision?.isAllowed == true { writes.append(s.decision!.rule) }
        }) { files.status("warm")?.state.isFinal == true }, files.status("warm")?.line ?? "")
        XCTAssertEqual(files.status("warm")?.state, .done, files.status("warm")?.line ?? "")
        // At 60 the controller's writes rest on the plan's approval; at 0 (a lowering) on the rule that allowed it.
        let at60 = writes.filter { $0.hasPrefix("controller heater at setpoint 60 ") }
        XCTAssertFalse(at60.isEmpty, "the controller heated: \(Set(writes))")
        XCTAssertTrue(at60.allSatisfy { $0.hasPrefix("controller heater at setpoint 60 (plan warm warm (approval \(approval) by ") }, "\(Set(at60))")
    }

    /// A plan with a step no rule allows does not start, and nothing of it runs.
    func testAPlanWithAStepThePolicyRefuses_isRefusedWhole_beforeAnyStep() throws {
        let sim = try BenchSimulator()
        var session = try start(sim)
        let text = try String(contentsOfFile: PlanTests.plan, encoding: .utf8).replacingOccurrences(of: "to: 5\n", with: "to: 20\n")
        try submit(text, id: "toohigh")
        var acted = 0
        try step(&session, each: { report in
            if report.outcome?.proposal.task.hasPrefix("plan toohigh") == true { acted += 1 }
        }) { files.status("toohigh")?.state == .refused }
        let status = try XCTUnwrap(files.status("toohigh"))
        XCTAssertEqual(status.state, .refused)
        XCTAssertTrue(status.message?.contains("volts=12.5 is outside 0.0...12.0") == true, status.message ?? "")
        XCTAssertEqual(acted, 0)
        XCTAssertTrue(ApprovalStore.read(directory: folder.approvals).isEmpty, "no approval is asked for a plan that cannot run")
    }

    /// A plan file changed in the run folder behind the supervisor's back does not resume.
    func testAnInterruptedPlanWhoseFileWasEdited_isNotResumed() throws {
        let sim = try BenchSimulator()
        let text = try String(contentsOfFile: PlanTests.plan, encoding: .utf8)
        let plan = try Plan.parse(text, file: "test.yaml")
        try submit(text.replacingOccurrences(of: "current-limit: 1", with: "current-limit: 2"), id: "edited")
        // As a crashed run left it: active, past its first checkpoint, under the original hash.
        let crashed = ##"{"id": "edited", "plan": "supply-scan", "file": "test.yaml", "hash": "HASH", "context": "plan-runner", "requestedBy": "tester", "state": "running", "position": 9, "total": TOTAL, "checkpoint": "powered", "resumeAt": 4, "measurements": 2, "updated": "2026-12-07T10:00:00Z"}"##
        try crashed.replacingOccurrences(of: "HASH", with: plan.hash).replacingOccurrences(of: "TOTAL", with: "\(plan.steps.count)")
            .write(toFile: folder.plans + "/edited.status.json", atomically: true, encoding: .utf8)
        var session = try start(sim)
        XCTAssertEqual(files.status("edited")?.state, .interrupted)
        try files.ask("edited", PlanCommand(op: .resume, by: "tester"))
        try step(&session) { files.status("edited")?.state == .refused }
        XCTAssertTrue(files.status("edited")?.message?.contains("was changed since it was accepted") == true, files.status("edited")?.message ?? "")
    }
}
