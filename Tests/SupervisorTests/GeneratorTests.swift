import DataEngine
import Foundation
import LoopCore
import Supervisor
import Traces
import XCTest

/// `worldos generate`: seeded tasks in sandboxes, with faults, making a dataset with failures.
final class GeneratorTests: XCTestCase {
    func options(_ out: String, seed: UInt64 = 42) -> Generator.Options {
        var o = Generator.Options()
        o.tasks = 5
        o.seed = seed
        o.steps = 8
        o.out = out
        o.simulator = repositoryRoot.appendingPathComponent("Firmware/build/bench-bridge-sim").path
        o.profiles = repositoryRoot.appendingPathComponent("Devices").path
        return o
    }

    func testTheSeed_decidesEveryTask_andFiveTasksCoverEveryFault() throws {
        let a = Generator(options: options("/x")).plan(sandboxRoot: "/x")
        XCTAssertEqual(a, Generator(options: options("/x")).plan(sandboxRoot: "/x"), "the same seed, the same tasks")
        XCTAssertNotEqual(a, Generator(options: options("/x", seed: 43)).plan(sandboxRoot: "/x"))
        XCTAssertEqual(Set(a.map(\.fault)), Set(Generator.Fault.allCases))
        XCTAssertTrue(a.allSatisfy { $0.bench.contains("program: [/bin/sh") && $0.policy.contains("the secret stays closed") })
    }

    func testADataset_holdsFailuresAndRecoveries_recordedTaskByTask() throws {
        let out = try temporaryDirectory("generate")
        defer { try? FileManager.default.removeItem(atPath: out) }
        var progress: [Int] = []
        let summary = try Generator(options: options(out)).run { done, _ in progress.append(done) }
        XCTAssertEqual(progress, [1, 2, 3, 4, 5], "progress after each task")
        XCTAssertEqual(summary.tasks, 5)
        XCTAssertEqual(summary.transitions, 40)
        XCTAssertEqual(Set(summary.faults.keys), Set(Generator.Fault.allCases.map(\.rawValue)))
        XCTAssertGreaterThan(summary.errnos.values.reduce(0, +), 0, "calls failed: \(summary.errnos)")
        XCTAssertGreaterThan(summary.verdicts["deny"] ?? 0, 0, "the guard refused: \(summary.verdicts)")
        XCTAssertGreaterThan(summary.events["instrument/lost"] ?? 0, 0, "the unplug was seen: \(summary.events)")
        XCTAssertGreaterThan(summary.mediatedCalls.filter { $0.key.hasSuffix(" deny") }.count, 0, "a program was refused under seccomp")
        XCTAssertTrue(summary.deviceActions.keys.contains { $0.hasPrefix("relay.energise allow") }, "an approved irreversible action ran: \(summary.deviceActions)")
        for i in 0..<5 {
            let dir = out + String(format: "/task-%04d", i)
            for file in ["task.json", "bench.yaml", "policy.yaml", "run/trace.jsonl", "run/trace-0001.mcap", "run/audit.jsonl"] {
                XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/" + file), "\(dir)/\(file)")
            }
        }
        let written = try JSONDecoder().decode(Generator.Summary.self, from: Data(contentsOf: URL(fileURLWithPath: out + "/summary.json")))
        XCTAssertEqual(written.transitions, 40)
    }

    func testBadOptions_areRefusedSayingWhy() throws {
        let zero = try runWorldOS(["generate", "--tasks", "0"])
        XCTAssertNotEqual(zero.status, 0)
        XCTAssertTrue(zero.stderr.contains("--tasks must be at least 1"), zero.stderr)
        let short = try runWorldOS(["generate", "--steps", "3"])
        XCTAssertTrue(short.stderr.contains("--steps must be at least 8"), short.stderr)
        let out = try temporaryDirectory("generate-bad")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let noSimulator = try runWorldOS(["generate", "--tasks", "1", "--out", out, "--simulator", out + "/no-such-sim"])
        XCTAssertNotEqual(noSimulator.status, 0)
        XCTAssertTrue(noSimulator.stderr.contains("cannot start the simulator"), noSimulator.stderr)
    }
}
