import DataEngine
import Foundation
import Glibc
import LoopCore
import Supervisor
import Traces
import WorldOSTesting
import XCTest

/// What `worldos run` records as MCAP, read by the `mcap` package from PyPI and compared with
/// the JSON-lines trace of the same run; and a run killed with -9, repaired.
final class MCAPTraceTests: XCTestCase {
    func read(_ path: String) throws -> [String: Any] {
        guard let (status, data, errors) = try PythonFixture.run("mcap_check.py", [path]) else {
            throw XCTSkip("MCAP VENV MISSING — SKIPPED LOUDLY: `make setup` creates .venv-tests with the mcap package")
        }
        XCTAssertEqual(status, 0, errors)
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// The transitions of an MCAP file as the PyPI reader returned them, and its panel frames.
    func transitions(_ json: [String: Any]) throws -> (transitions: [Transition], frames: [[String: Any]]) {
        let messages = try XCTUnwrap(json["messages"] as? [[String: Any]])
        let transitions = try messages.filter { $0["topic"] as? String == "/worldos/transition" }
            .map { try JSONDecoder().decode(Transition.self, from: Data(try XCTUnwrap($0["data"] as? String).utf8)) }
        let frames = try messages.filter { $0["topic"] as? String == "/worldos/panel" }
            .map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap($0["data"] as? String).utf8)) as? [String: Any]) }
        return (transitions, frames)
    }

    func testARun_recordsEveryTransitionAndChangedFrame_asMCAPThePyPIReaderReads() throws {
        let out = try temporaryDirectory("mcap-run")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let result = try runWorldOS(["run", "--out", out, "--steps", "5", "--interval-ms", "50"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let json = try read(out + "/trace-0001.mcap")
        let (recorded, frames) = try transitions(json)
        let lines = try TraceWriter.read(path: out + "/trace.jsonl")
        XCTAssertEqual(recorded.map(\.step), lines.map(\.step))
        XCTAssertEqual(recorded.map(\.frameHash), lines.map(\.frameHash))
        XCTAssertEqual(recorded.map { $0.outcome?.steps.map(\.call) }, lines.map { $0.outcome?.steps.map(\.call) })
        // A frame for each transition whose frame changed, and the last one is the panel on disk.
        XCTAssertEqual(frames.count, lines.filter { $0.framePNG != nil }.count)
        XCTAssertGreaterThan(frames.count, 0)
        XCTAssertEqual(frames.last?["format"] as? String, "png")
        let png = try XCTUnwrap(Data(base64Encoded: try XCTUnwrap(frames.last?["data"] as? String)))
        XCTAssertEqual(png, try Data(contentsOf: URL(fileURLWithPath: out + "/panel.png")))
        let schemas = try XCTUnwrap(json["schemas"] as? [String: [String: String]])
        XCTAssertEqual(Set(schemas.values.map { $0["name"] ?? "" }), ["worldos.Transition", "foxglove.CompressedImage", "worldos.Mark"])
        // And the core, replayed on what was recorded, does and draws exactly the same.
        var options = SupervisorOptions()
        options.bench = repositoryRoot.appendingPathComponent("Devices/benches/default.yaml").path
        options.policy = repositoryRoot.appendingPathComponent("Policies/default.yaml").path
        options.profiles = repositoryRoot.appendingPathComponent("Devices").path
        XCTAssertEqual(try Replay.run(try Replay.transitions(from: out + "/trace-0001.mcap"), options: options).mismatches, [])
        // A second run in the same folder starts the next file.
        XCTAssertEqual(try runWorldOS(["run", "--out", out, "--steps", "1"]).status, 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/trace-0002.mcap"))
    }

    func testARunKilledWithMinus9_leavesWholeChunks_thatTraceRepairCompletes() throws {
        let out = try temporaryDirectory("mcap-kill")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let child = try startWorldOS(["run", "--out", out, "--interval-ms", "50"])
        // Long enough for a few 1-second chunks.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, ((try? TraceWriter.read(path: out + "/trace.jsonl"))?.count ?? 0) < 30 { usleep(50_000) }
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        let lines = try TraceWriter.read(path: out + "/trace.jsonl")
        XCTAssertGreaterThanOrEqual(lines.count, 30)

        let repair = try runWorldOS(["trace", "repair", "--out", out])
        XCTAssertEqual(repair.status, 0, repair.stderr)
        XCTAssertTrue(repair.stdout.contains("trace-0001.mcap: repaired"), repair.stdout)
        let (recorded, _) = try transitions(try read(out + "/trace-0001.mcap"))
        // Everything up to the last whole chunk: a prefix of the steps, losing at most ~1 s.
        XCTAssertGreaterThan(recorded.count, 0)
        XCTAssertEqual(recorded.map(\.step), Array(lines.map(\.step).prefix(recorded.count)))
        XCTAssertGreaterThanOrEqual(recorded.count, lines.count - 25, "at most a second's chunk (about 20 steps at 50 ms) is lost")
        let again = try runWorldOS(["trace", "repair", out + "/trace-0001.mcap"])
        XCTAssertTrue(again.stdout.contains("complete"), again.stdout)
        XCTAssertEqual(try runWorldOS(["trace", "repair", out + "/audit.jsonl"]).status, 1, "not an MCAP file: an error, named")
    }

    /// Redacted values never reach a file: not the JSON-lines trace, not an MCAP message, not
    /// its index or summary. The same run without the rules is the control.
    func testRedactedValues_neverReachAnyRecordedFile() throws {
        let rules = try temporaryDirectory("redaction") + "/redaction.yaml"
        try """
        version: 1
        fields:
          data: drop
        paths:
          - /proc/**
        frame-regions:
          - { x: 0, y: 0, width: 400, height: 60 }
        """.write(toFile: rules, atomically: true, encoding: .utf8)
        for redacted in [true, false] {
            let out = try temporaryDirectory("redacted-run")
            defer { try? FileManager.default.removeItem(atPath: out) }
            let run = try runWorldOS(["run", "--out", out, "--steps", "4", "--interval-ms", "50", "--redaction", redacted ? rules : out + "/none.yaml"])
            XCTAssertEqual(run.status, 0, run.stderr)
            let json = try read(out + "/trace-0001.mcap")
            let decoded = String(decoding: try JSONSerialization.data(withJSONObject: json, options: [.withoutEscapingSlashes]), as: UTF8.self)
            let raw = String(decoding: try Data(contentsOf: URL(fileURLWithPath: out + "/trace-0001.mcap")), as: UTF8.self)
            let lines = try String(contentsOfFile: out + "/trace.jsonl", encoding: .utf8)
            let (_, frames) = try transitions(json)
            let recordedFrame = try XCTUnwrap(Data(base64Encoded: try XCTUnwrap(frames.last?["data"] as? String)))
            let panel = try Data(contentsOf: URL(fileURLWithPath: out + "/panel.png"))
            if redacted {
                for (name, text) in [("decoded MCAP messages", decoded), ("raw MCAP bytes", raw), ("trace.jsonl", lines)] {
                    XCTAssertFalse(text.contains("/proc/loadavg"), "a redacted path in the \(name)")
                    XCTAssertFalse(text.contains(#"\"data\":["#) || text.contains(#""data":["#), "dropped read data in the \(name)")
                }
                XCTAssertTrue(lines.contains("sha256:"), "the paths are there, hashed")
                XCTAssertNotEqual(recordedFrame, panel, "the recorded frame has its region painted over")
            } else {
                XCTAssertTrue(decoded.contains("/proc/loadavg"), "control: without the rules the path is recorded")
                XCTAssertTrue(lines.contains(#""data":["#), "control: read data is recorded")
                XCTAssertEqual(recordedFrame, panel)
            }
        }
    }
}
