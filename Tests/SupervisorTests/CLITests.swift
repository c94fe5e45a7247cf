import Foundation
import Glibc
import StateGraph
import XCTest

/// The `worldos` binary itself, run as a user would run it.
final class CLITests: XCTestCase {
    func golden(_ name: String) throws -> String {
        try String(contentsOf: repositoryRoot.appendingPathComponent("Tests/SupervisorTests/Golden/\(name)"), encoding: .utf8)
    }

    func testHelpText_matchesTheGoldenFilesExactly() throws {
        for (arguments, file) in [([], "help-worldos.txt"), (["run"], "help-run.txt"), (["graph"], "help-graph.txt"), (["step"], "help-step.txt"),
                                  (["approvals"], "help-approvals.txt"), (["approve"], "help-approve.txt"), (["reject"], "help-reject.txt"),
                                  (["audit", "verify"], "help-audit-verify.txt"), (["policy", "diff"], "help-policy-diff.txt"), (["ack"], "help-ack.txt"), (["act"], "help-act.txt"),
                                  (["trace", "repair"], "help-trace-repair.txt"), (["replay"], "help-replay.txt"), (["export"], "help-export.txt"), (["generate"], "help-generate.txt"), (["token", "add"], "help-token-add.txt"),
                                  (["trace", "mark"], "help-trace-mark.txt"),
                                  (["train"], "help-train.txt"), (["eval"], "help-eval.txt"), (["dream"], "help-dream.txt"), (["plan"], "help-plan.txt"), (["plan", "run"], "help-plan-run.txt")] {
            let result = try runWorldOS(arguments + ["--help"])
            XCTAssertEqual(result.status, 0)
            XCTAssertEqual(result.stdout, try golden(file), "worldos \(arguments.joined(separator: " ")) --help changed; if on purpose, update \(file)")
        }
    }

    /// A supervisor restarted under an edited policy audits the change, keeps both versions, and
    /// `worldos policy diff` shows what a context gained and lost.
    func testPolicyChange_isAudited_andPolicyDiffShowsIt() throws {
        let folder = NSTemporaryDirectory() + "worldos-policy-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let original = try String(contentsOf: repositoryRoot.appendingPathComponent("Policies/default.yaml"), encoding: .utf8)
        let edited = original.replacingOccurrences(of: "rate: 60/minute", with: "rate: 30/minute")
        XCTAssertNotEqual(edited, original, "the default policy no longer has the line this test edits")
        let policy = folder + "/policy.yaml", out = folder + "/run"
        func start() throws -> CommandResult {
            let result = try runWorldOS(["run", "--steps", "1", "--interval-ms", "10", "--out", out, "--policy", policy])
            XCTAssertEqual(result.status, 0, result.stderr)
            return result
        }
        try original.write(toFile: policy, atomically: true, encoding: .utf8)
        _ = try start()
        try edited.write(toFile: policy, atomically: true, encoding: .utf8)
        XCTAssertTrue(try start().stdout.contains("policy changed from "), "the restart says the policy changed")
        _ = try start()
        let events = try String(contentsOfFile: out + "/audit.jsonl", encoding: .utf8).split(separator: "\n").filter { $0.contains("\"event\":\"policy\"") }
        XCTAssertEqual(events.count, 2, "one record per policy loaded, none for a restart under the same one")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out + "/policies").count, 2)

        let diff = try runWorldOS(["policy", "diff", "--out", out])
        XCTAssertEqual(diff.status, 1, "a change exits 1, as diff does: \(diff.stderr)")
        XCTAssertEqual(Array(diff.stdout.split(separator: "\n").dropFirst(2)), [
            "  context bench-operator",
            "-   allow act action relay.* params relay 0.0...1.0 rate 60/minute",
            "+   allow act action relay.* params relay 0.0...1.0 rate 30/minute",
        ])
        let same = try runWorldOS(["policy", "diff", "Policies/default.yaml", "Policies/default.yaml", "--out", out])
        XCTAssertEqual(same.status, 0)
        XCTAssertTrue(same.stdout.hasSuffix("no change in what any context may do\n"), same.stdout)
        XCTAssertEqual(try runWorldOS(["audit", "verify", "--out", out]).status, 0)

        for (side, message) in [("1234", "1234 is neither a policy file nor a policy hash"), ("deadbeef", "no policy deadbeef kept in \(out)/policies"),
                                ("/nonexistent/policy.yaml", "/nonexistent/policy.yaml is neither a policy file nor a policy hash")] {
            let bad = try runWorldOS(["policy", "diff", side, policy, "--out", out])
            XCTAssertNotEqual(bad.status, 0)
            XCTAssertTrue(bad.stderr.contains(message), "\(side): \(bad.stderr)")
        }
        let empty = try runWorldOS(["policy", "diff", "--out", folder + "/nothing"])
        XCTAssertTrue(empty.stderr.contains("records 0 policies; nothing to compare"), empty.stderr)
    }

    func testGraphJSON_showsItsOwnProcessWithItsDescriptorsJoinedByOwnership() throws {
        let result = try runWorldOS(["graph", "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let snapshot = try GraphSnapshot.decode(Data(result.stdout.utf8))
        let graph = try Graph(snapshot: snapshot)
        // The one this test started (other supervisors may be running on the machine).
        let me = try XCTUnwrap(snapshot.nodes.first { node in
            node.kind == .process && node["comm"] == .string("worldos")
                && graph.edges(to: node.id).contains { $0.kind == .parentOf && graph[$0.from]?["pid"] == .int(Int64(getpid())) }
        }, "the worldos process is in its own graph, a child of this one")
        let fds = graph.owned(by: me.id).compactMap { graph[$0] }
        XCTAssertTrue(fds.allSatisfy { $0.kind == .fileDescriptor })
        XCTAssertTrue(Set(fds.compactMap { $0["fd"]?.intValue }).isSuperset(of: [0, 1, 2]))
        // Its stdout is the pipe this test reads: the fd has an opened edge to that pipe's node.
        let stdout = try XCTUnwrap(fds.first { $0["fd"] == .int(1) })
        XCTAssertTrue(graph.edges(from: stdout.id).contains { $0.kind == .opened && graph[$0.to]?.kind == .pipe })
    }

    func testGraphTree_marksThisProcess() throws {
        let result = try runWorldOS(["graph"])
        XCTAssertEqual(result.status, 0)
        XCTAssertTrue(result.stdout.hasPrefix("kernel ("))
        XCTAssertTrue(result.stdout.contains(" worldos [process:") && result.stdout.contains("<- this process"), result.stdout)
    }

    func testStep_printsWhatEachStageDid() throws {
        let out = try temporaryDirectory("cli-step")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let result = try runWorldOS(["step", "2", "--out", out])
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.filter { $0.hasPrefix("step ") }, ["step 0 [real]", "step 1 [real]"])
        for stage in ["  prior:", "  observe:", "  posterior:", "  render:", "  schedule:", "  act [0]:", "  fold:"] {
            XCTAssertTrue(lines.contains { $0.hasPrefix(stage) }, "no \(stage) line in\n\(result.stdout)")
        }
        XCTAssertTrue(lines.contains("  act [0]:   open(path: \"/proc/loadavg\") guard: allow (Policies/default.yaml:17) -> " + (lines.first { $0.hasPrefix("  act [0]:   open(path: \"/proc/loadavg\")") }?.components(separatedBy: "-> ").last ?? "?")))
    }

    func testRun_stopsCleanlyOnCtrlC_withEverythingRecorded() throws {
        let out = try temporaryDirectory("cli-run")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let pipe = Pipe()
        let process = try startWorldOS(["run", "--out", out, "--interval-ms", "50"], output: pipe)
        // Wait for the loop to report its second step (blocking reads, no sleeps), then interrupt it.
        var text = ""
        let handle = pipe.fileHandleForReading
        while !text.contains("step 1:") {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        kill(process.processIdentifier, SIGINT)
        text += String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .exit)
        XCTAssertEqual(process.terminationStatus, 0)
        XCTAssertTrue(text.contains("worldos: stopped on signal after"), text)
        XCTAssertTrue(text.contains("device libraries: libusb 1."), text)
        let steps = text.split(separator: "\n").filter { $0.hasPrefix("step ") }.count
        let recorded = try String(contentsOfFile: out + "/trace.jsonl", encoding: .utf8).split(separator: "\n").count
        XCTAssertEqual(recorded, steps, "every step reported is in the trace")
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/panel.png"))
    }

    func testBadConfiguration_exitsNonZero_namingTheFileAndLine() throws {
        let dir = try temporaryDirectory("cli-bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try write("version: 1\ncontexts:\n  telemetry:\n    allow:\n      - op: open\n        path: relative/path\n", to: dir + "/policy.yaml")
        let result = try runWorldOS(["step", "1", "--out", dir + "/out", "--policy", dir + "/policy.yaml"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("\(dir)/policy.yaml:6:15: contexts.telemetry.allow[0].path: path pattern \"relative/path\" must be absolute"), result.stderr)
        let mode = try runWorldOS(["run", "--mode", "dream"])
        XCTAssertNotEqual(mode.status, 0)
        XCTAssertTrue(mode.stderr.contains("'real', 'filtered' or 'latent'"), mode.stderr)
    }
}

/// A command that fails for a reason the person can act on exits 1 with the reason alone; only
/// a malformed command line prints usage (exit 64).
final class CLIErrorTests: XCTestCase {
    func testRuntimeFailures_exitOne_withTheReason_andNoUsage() throws {
        let out = try temporaryDirectory("cli-errors")
        defer { try? FileManager.default.removeItem(atPath: out) }
        try FileManager.default.createDirectory(atPath: out + "/approvals", withIntermediateDirectories: true)
        try "{\"seq\":0}\n".write(toFile: out + "/audit.jsonl", atomically: false, encoding: .utf8)
        for (arguments, reason) in [(["approve", "0123456789abcdef"], "no approval request 0123456789abcdef"),
                                    (["reject", "0123456789abcdef"], "no approval request 0123456789abcdef"),
                                    (["approvals", "--out", out + "/nowhere"], "no approvals in"),
                                    (["audit", "verify"], "record 1 is not a valid record"),
                                    (["ack"], "no fault")] {
            let result = try runWorldOS(arguments + (arguments.contains("--out") ? [] : ["--out", out]))
            XCTAssertEqual(result.status, 1, "\(arguments): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(reason), "\(arguments): \(result.stderr)")
            XCTAssertFalse(result.stderr.contains("Usage:") || result.stderr.contains("USAGE:"), "\(arguments): \(result.stderr)")
        }
        let malformed = try runWorldOS(["approve"])
        XCTAssertEqual(malformed.status, 64, "a missing argument is a usage error")
    }
}
