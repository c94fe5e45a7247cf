import DataEngine
import Foundation
import Guard
import Learning
import LoopCore
import Supervisor
import Traces
import WorldOSTesting
import XCTest

/// generate → train → eval → dream on the real binary, a model in a running supervisor (its
/// approvals carry their dream), and a dream that never reaches a host.
final class LearningPipelineTests: XCTestCase {
    /// One dataset for the class: generating it is most of the cost.
    nonisolated(unsafe) static var dataset: String?

    func generated() throws -> String {
        if let dataset = Self.dataset { return dataset }
        let out = try temporaryDirectory("learn")
        let r = try runWorldOS(["generate", "--tasks", "10", "--steps", "8", "--seed", "5", "--out", out + "/dataset"])
        XCTAssertEqual(r.status, 0, r.stderr)
        Self.dataset = out
        return out
    }

    override class func tearDown() {
        if let dataset { try? FileManager.default.removeItem(atPath: dataset) }
    }

    func testGenerate_train_eval_dream_onTheBinary() throws {
        let root = try generated()
        let train = try runWorldOS(["train", root + "/dataset", "--to", root + "/model.json", "--holdout", "0.3"])
        XCTAssertEqual(train.status, 0, train.stderr)
        XCTAssertTrue(train.stdout.contains("held out for worldos eval"), train.stdout)
        XCTAssertTrue(train.stderr.contains("] 10/10 sessions"), "a progress bar on stderr: \(train.stderr)")
        let again = try runWorldOS(["train", root + "/dataset", "--to", root + "/again.json", "--holdout", "0.3"])
        XCTAssertEqual(again.status, 0)
        XCTAssertEqual(FileManager.default.contents(atPath: root + "/model.json"), FileManager.default.contents(atPath: root + "/again.json"),
                       "training twice gives identical files")

        let eval = try runWorldOS(["eval", root + "/model.json", root + "/dataset", "--out", root + "/eval"])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        XCTAssertTrue(eval.stdout.contains("next-return accuracy"), eval.stdout)
        let e = try Evaluation.read(Data(contentsOf: URL(fileURLWithPath: root + "/eval/eval.json")))
        let model = try Model.read(from: root + "/model.json")
        XCTAssertEqual(Set(e.sessions), Set(model.sources.filter(\.heldOut).map(\.trace)), "evaluated on the held-out sessions only")
        XCTAssertGreaterThan(e.calls, 20)
        XCTAssertGreaterThanOrEqual(e.accuracy.model, 0.9, "\(e.accuracy)")
        XCTAssertGreaterThan(e.accuracy.model, e.accuracy.majority + 0.1, "\(e.accuracy)")
        XCTAssertLessThan(e.logLoss.model, e.logLoss.majority)
        let png = try Data(contentsOf: URL(fileURLWithPath: root + "/eval/eval.png"))
        XCTAssertEqual(Array(png.prefix(4)), [0x89, 0x50, 0x4E, 0x47])

        let task = root + "/dataset/task-0000"
        let dream = try runWorldOS(["dream", task + "/bench.yaml", "--policy", task + "/policy.yaml", "--model", root + "/model.json",
                                    "--steps", "4", "--out", root + "/dream"])
        XCTAssertEqual(dream.status, 0, dream.stderr)
        let lines = dream.stdout.split(separator: "\n")
        XCTAssertFalse(lines.isEmpty)
        XCTAssertTrue(lines.allSatisfy { $0.hasPrefix("DREAM") }, "every line is marked: \(dream.stdout)")
        XCTAssertTrue(dream.stdout.contains("(p "), "returns with their probability: \(dream.stdout)")
        XCTAssertTrue(dream.stdout.contains("expected change:"), dream.stdout)
        let transitions = try TraceWriter.read(path: root + "/dream/dream.jsonl")
        XCTAssertEqual(transitions.count, 4)
        XCTAssertTrue(transitions.allSatisfy { $0.mode == .latent && $0.observedNodes == nil })
        for i in 0..<4 { XCTAssertTrue(FileManager.default.fileExists(atPath: root + String(format: "/dream/dream-%04d.png", i))) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/dream/trace.jsonl"), "a dream writes no real trace")
    }

    func testADream_neverCallsTheHost() throws {
        let root = try generated()
        try Trainer.train(try TraceSession.all(at: root + "/dataset")).write(to: root + "/all.json")
        final class FailingHost: Effecting {
            var calls: [ResolvedCall] = []
            func perform(_ call: ResolvedCall) -> CallResult {
                calls.append(call)
                XCTFail("a dream called the host: \(call)")
                return .failure(errno: EIO)
            }
        }
        let host = FailingHost()
        let task = root + "/dataset/task-0001"
        var options = Dream.Options(bench: task + "/bench.yaml")
        (options.policy, options.out, options.steps) = (task + "/policy.yaml", root + "/dream-nohost", 10)
        options.profiles = repositoryRoot.appendingPathComponent("Devices").path
        let steps = try Dream.run(options, model: LearnedPredictor(try Model.read(from: root + "/all.json")), host: host)
        XCTAssertEqual(host.calls.count, 0)
        let performed = steps.flatMap { $0.report.outcome?.steps ?? [] }.filter { $0.result != nil }
        XCTAssertGreaterThan(performed.count, 5, "the dream ran calls, every one the model's")
        XCTAssertTrue(performed.allSatisfy { $0.probability != nil })
        // What a dream "opened" is no descriptor of this process.
        for s in performed where s.call?.op.returnsDescriptor == true { XCTAssertGreaterThanOrEqual(s.result?.value ?? 1000, 1000) }
    }

    func testASupervisorWithAModel_showsTheDreamOfAnActionWaitingForApproval() throws {
        let root = try generated()
        let sim = try BenchSimulator(arguments: ["--serial", "SIM-LEARN"])
        let out = root + "/run-" + UUID().uuidString.prefix(6)
        try write("""
            version: 1
            contexts:
              task:
                interval-ms: 0
                tasks:
                  energise-relay:
                    - act: { device: bench-bridge, action: relay.energise, params: "relay=1" }
            """, to: root + "/bench.yaml")
        try write("""
            version: 1
            uncertainty:
              max-surprise: 100000
            contexts:
              task:
                allow:
                  - op: act
                    action: [relay.*]
            """, to: root + "/policy.yaml")
        try Trainer.train(try TraceSession.all(at: root + "/dataset")).write(to: root + "/all.json")
        var settings = SupervisorOptions()
        (settings.bench, settings.policy, settings.out, settings.devices) = (root + "/bench.yaml", root + "/policy.yaml", out, [sim.pty])
        settings.profiles = repositoryRoot.appendingPathComponent("Devices").path
        settings.redaction = root + "/none.yaml"
        settings.keys = root + "/keys"
        (settings.mode, settings.model) = (.filtered, root + "/all.json")
        var session = try Supervisor.start(settings)
        defer { _ = session.returnToSafeState() }
        var surprise: LearnedSurprise?
        _ = try Supervisor.run(&session.loop, steps: 3, interval: .milliseconds(20)) { report in surprise = report.surprise?.learned ?? surprise }
        let request = try XCTUnwrap(ApprovalStore.read(directory: settings.folder.approvals).first { $0.state == .pending })
        let dream = try XCTUnwrap(request.dream, "the request carries the dream of its action")
        XCTAssertEqual(dream.model, root + "/all.json")
        XCTAssertEqual(dream.returns.first?.label, "scpi-ok", "\(dream)")
        XCTAssertGreaterThan(dream.confidence, 0.5)
        XCTAssertTrue(dream.summary.hasPrefix("DREAM (model "), dream.summary)
        XCTAssertNotNil(surprise, "filtered mode with a model measures the learned surprise")
        let listed = try runWorldOS(["approvals", "--out", out])
        XCTAssertTrue(listed.stdout.contains("    DREAM (model "), listed.stdout)
    }

    func testArithmeticProbe_executedSumsAreExact_dreamedOnesAreTheModelsGuess() throws {
        let root = try temporaryDirectory("probe")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let r = try ArithmeticProbe.run(in: root, count: 12, seed: 3, profiles: repositoryRoot.appendingPathComponent("Devices").path)
        XCTAssertEqual(r.real, r.sums.map { "\($0.a + $0.b)" }, "a real process computed every sum")
        XCTAssertEqual(r.realAccuracy, 1)
        XCTAssertEqual(r.dreamed.count, 12)
        XCTAssertEqual(Set(r.dreamed).count, 1, "a dream says what such a read usually returned, one answer for all: \(r.dreamed)")
        XCTAssertTrue(r.real.contains(r.dreamed[0]), "a sum it saw")
        XCTAssertLessThan(r.dreamAccuracy, 0.5)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/dream/trace.jsonl"))
    }

    /// A macro is no way around the guard: it expands into steps decided one by one, so one that
    /// opens a denied file is denied as the open alone would be, whatever the library says.
    func testAMacro_opensNothingThePolicyDenies() throws {
        let root = try temporaryDirectory("macro-attack")
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write("""
            version: 1
            macros:
              harmless-looking:
                parameters: [where]
                steps:
                  - open: { path: "{where}" }
                  - read: { fd: $0, count: 64 }
            """, to: root + "/macros.yaml")
        try write("""
            version: 1
            macros: macros.yaml
            contexts:
              task:
                interval-ms: 0
                tasks:
                  peek:
                    - macro: { name: harmless-looking, where: /etc/../etc/shadow }
            """, to: root + "/bench.yaml")
        try write("""
            version: 1
            contexts:
              task:
                deny:
                  - op: open
                    path: /etc/shadow
                    reason: credentials
                allow:
                  - op: open
                    path: /etc/*
                  - op: [read, close]
            """, to: root + "/policy.yaml")
        var settings = SupervisorOptions()
        (settings.bench, settings.policy, settings.out, settings.keys) = (root + "/bench.yaml", root + "/policy.yaml", root + "/run", root + "/keys")
        (settings.profiles, settings.redaction) = (repositoryRoot.appendingPathComponent("Devices").path, root + "/none.yaml")
        var session = try Supervisor.start(settings)
        var outcome: ActionOutcome?
        _ = try Supervisor.run(&session.loop, steps: 1, interval: .zero) { outcome = $0.outcome ?? outcome }
        let steps = try XCTUnwrap(outcome).steps
        XCTAssertEqual(steps[0].status, .denied)
        XCTAssertEqual(steps[0].decision?.reason, "credentials")
        XCTAssertEqual(steps[1].status, .skipped(reason: "step 0 did not return a value"))
        XCTAssertEqual(outcome?.proposal.macros, [MacroUse(name: "harmless-looking", first: 0, steps: 2)], "the trace says the macro ran")
    }
}
