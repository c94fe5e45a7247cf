import DataEngine
import Foundation
import LoopCore
import MCAP
import Supervisor
import SystemCalls
import Traces
import XCTest

/// `worldos replay` against the checked-in golden trace of the default bench (recorded by
/// Golden/record-golden-trace: 60 steps with the simulator, one approval), and against traces
/// changed on purpose, which it must catch.
final class ReplayTests: XCTestCase {
    let golden = repositoryRoot.appendingPathComponent("Tests/SupervisorTests/Golden/traces/default-bench.mcap").path

    func options(policy: String? = nil) -> SupervisorOptions {
        var o = SupervisorOptions()
        o.bench = repositoryRoot.appendingPathComponent("Devices/benches/default.yaml").path
        o.policy = policy ?? repositoryRoot.appendingPathComponent("Policies/default.yaml").path
        o.profiles = repositoryRoot.appendingPathComponent("Devices").path
        return o
    }

    func testTheGoldenTrace_replaysExactly_andHoldsWhatItShould() throws {
        let recorded = try Replay.transitions(from: golden)
        XCTAssertEqual(recorded.count, 60)
        let report = try Replay.run(recorded, options: options())
        XCTAssertEqual(report.mismatches, [], "regenerate with Tests/SupervisorTests/Golden/record-golden-trace only if the change is intended")
        let decisions = recorded.flatMap { $0.outcome?.steps.compactMap(\.decision) ?? [] }
        XCTAssertTrue(decisions.contains { if case .needsApproval = $0 { true } else { false } }, "an approval was asked for")
        XCTAssertTrue(decisions.contains { $0.rule.hasPrefix("approval ") }, "and given, and the action ran")
        XCTAssertTrue(decisions.contains { !$0.isAllowed && $0.rule.hasPrefix("Policies/default.yaml") }, "a policy denial")
        // The CLI says the same.
        let cli = try runWorldOS(["replay", golden])
        XCTAssertEqual(cli.status, 0, cli.stdout + cli.stderr)
        XCTAssertTrue(cli.stdout.hasPrefix("replayed 60 steps"), cli.stdout)
    }

    func testAChangedPolicy_showsAsTheDecisionsItChanges() throws {
        let dir = try temporaryDirectory("replay-policy")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let original = try String(contentsOfFile: options().policy, encoding: .utf8)
        let lenient = original.replacingOccurrences(of: "path: [/etc/shadow, /etc/gshadow, /etc/ssh/**]", with: "path: [/etc/gshadow]")
        XCTAssertNotEqual(lenient, original)
        try lenient.write(toFile: dir + "/policy.yaml", atomically: true, encoding: .utf8)
        let report = try Replay.run(try Replay.transitions(from: golden), options: options(policy: dir + "/policy.yaml"))
        XCTAssertTrue(report.mismatches.contains { $0.contains("decision allow") && $0.contains("recorded deny") }, "\(report.mismatches.prefix(5))")
        let cli = try runWorldOS(["replay", golden, "--policy", dir + "/policy.yaml"])
        XCTAssertEqual(cli.status, 1)
    }

    /// The guard of a replay knows files as the recording saw them, not as this machine has
    /// them now: a recorded open whose object is, today, the identity of a file the policy
    /// denies replays as recorded (allowed), not as "that file under another name".
    func testTheReplaysGuard_takesIdentitiesFromTheRecording_notFromThisMachine() throws {
        let dir = try temporaryDirectory("replay-identity")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let secret = dir + "/secret"
        try "s".write(toFile: secret, atomically: true, encoding: .utf8)
        let live = try XCTUnwrap(FileObject.at(secret)).description
        // Same lines as the shipped policy (locations unchanged), and the same file name.
        let original = try String(contentsOfFile: options().policy, encoding: .utf8)
        let stricter = original.replacingOccurrences(of: "/etc/ssh/**]", with: "/etc/ssh/**, \(secret)]")
        XCTAssertNotEqual(stricter, original)
        try stricter.write(toFile: dir + "/default.yaml", atomically: true, encoding: .utf8)
        var recorded = try Replay.transitions(from: golden)
        let (t, s) = try XCTUnwrap(recorded.indices.lazy.compactMap { t in
            recorded[t].outcome?.steps.firstIndex { $0.call?.op == .open && $0.call?.object != nil && $0.decision?.isAllowed == true
                && $0.call?.path?.hasPrefix("/etc/") == true }.map { (t, $0) }
        }.first)
        recorded[t].outcome!.steps[s].call![.object] = .string(live)
        let report = try Replay.run(recorded, options: options(policy: dir + "/default.yaml"))
        XCTAssertEqual(report.mismatches, [], "the live identity of \(secret) leaked into the replay's guard")
    }

    /// Returns are served from the trace, but what the core does with them is checked against
    /// what it did: a descriptor the recording never got leads to other calls and another state.
    func testATamperedReturn_isCaught() throws {
        var recorded = try Replay.transitions(from: golden)
        let (t, s) = try XCTUnwrap(recorded.indices.lazy.compactMap { t in
            recorded[t].outcome?.steps.firstIndex { $0.call?.op == .open && $0.result?.value != nil }.map { (t, $0) }
        }.first)
        let fd = try XCTUnwrap(recorded[t].outcome?.steps[s].result?.value)
        recorded[t].outcome!.steps[s].status = .performed(.value(fd + 1000))
        let report = try Replay.run(recorded, options: options())
        XCTAssertTrue(report.mismatches.first?.hasPrefix("step \(recorded[t].step):") == true, "\(report.mismatches.prefix(3))")
        XCTAssertTrue(report.mismatches.contains { $0.contains("fd: \(fd + 1000)") }, "the read used the tampered descriptor: \(report.mismatches.prefix(3))")
    }

    func testWhatIsNotATrace_isRefusedNamingTheFile() throws {
        let dir = try temporaryDirectory("replay-bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let other = dir + "/other.mcap"
        let w = try MCAPWriter(path: other)
        _ = try w.addChannel(topic: "/camera", messageEncoding: "json", schema: 0)
        try w.close()
        XCTAssertThrowsError(try Replay.transitions(from: other)) { XCTAssertTrue("\($0)".contains("has no /worldos/transition channel"), "\($0)") }
        try "{\"step\": 1}\n".write(toFile: dir + "/trace.jsonl", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Replay.transitions(from: dir + "/trace.jsonl")) { XCTAssertTrue("\($0)".contains("line 1 is not a transition"), "\($0)") }
        let cli = try runWorldOS(["replay", dir + "/missing.mcap"])
        XCTAssertNotEqual(cli.status, 0)
        XCTAssertTrue(cli.stderr.contains("missing.mcap"), cli.stderr)
    }
}
