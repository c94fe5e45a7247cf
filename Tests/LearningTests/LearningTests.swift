import Benches
import Executor
import Foundation
import Learning
import LoopCore
import StateGraph
import XCTest

/// The outcome predictor and dynamics model: trained from sessions of recorded transitions,
/// measured on sessions held out, deterministic, and refused when their file is not theirs.
final class LearningTests: XCTestCase {
    var directory: String!

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "worldos-learning-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    // MARK: sessions made of recorded transitions

    static func open(_ path: String, mode: String = "read") -> ResolvedCall { ResolvedCall(.open, ["path": .string(path), "mode": .string(mode)]) }

    /// `proposed`: the steps as the bench wrote them (default: each call's arguments as written).
    static func transition(_ step: Int, task: String, _ calls: [(ResolvedCall, CallResult)], observed: GraphDelta = GraphDelta(),
                           proposed: [MicroStep]? = nil) -> Transition {
        let steps = calls.enumerated().map { i, c in
            let written = proposed?[i] ?? MicroStep(c.0.op, c.0.args.mapValues { $0.int.map(Argument.int) ?? .string($0.string ?? "") })
            return StepOutcome(index: i, step: written, call: c.0, decision: .allow(rule: "test"), status: .performed(c.1))
        }
        let outcome = ActionOutcome(proposal: Proposal(context: "task", task: task, steps: steps.map(\.step)), steps: steps)
        return Transition(step: step, mode: .real, time: Instant(nanoseconds: UInt64(step)), observedNodes: 1, racedEntries: 0,
                          surprise: nil, frameHash: "", framePNG: nil, stateDelta: GraphDelta(), context: "task", outcome: outcome,
                          nodeCount: 1, observationDelta: observed)
    }

    /// A session in the manner of the generator's tasks: a file that exists and one that does
    /// not in a sandbox of its own; an output file created twice (the second time it exists);
    /// each read-data step followed by a new descriptor node in the next observation.
    static func session(_ n: Int) -> TraceSession {
        let root = "/data/task-\(n)/sandbox"
        let fd = Int64(3 + n % 4)
        let added = GraphDelta([.addNode(Node(id: .fileDescriptor(owner: .context("task"), fd: Int32(fd)), kind: .fileDescriptor, attributes: [:]))])
        var transitions: [Transition] = []
        for round in 0..<4 {
            transitions.append(transition(transitions.count, task: "read-data", [
                (open("\(root)/data-\(n % 3).txt"), .value(fd)),
                (ResolvedCall(.read, ["fd": .int(fd), "count": .int(64)]), .value(9, data: Array("line \(n)\n".utf8))),
                (ResolvedCall(.close, ["fd": .int(fd)]), .value(0)),
            ], proposed: [MicroStep(.open, ["path": .string("\(root)/data-\(n % 3).txt"), "mode": .string("read")]),
                          MicroStep(.read, ["fd": .result(of: 0), "count": .int(64)]), MicroStep(.close, ["fd": .result(of: 0)])]))
            // Observed at this step: what the read-data step before it left.
            transitions.append(transition(transitions.count, task: "read-missing", [(open("\(root)/missing-\(n % 5).txt"), .failure(errno: ENOENT))],
                                          observed: added))
            transitions.append(transition(transitions.count, task: "create-output", [
                (open("\(root)/out-\(n % 2).txt", mode: "create"), round == 0 ? .value(fd) : .failure(errno: EEXIST)),
            ]))
        }
        return TraceSession(name: String(format: "task-%04d/run/trace.jsonl", n), sha256: "sha-\(n)", transitions: transitions)
    }

    static let sessions = (0..<30).map(session)

    // MARK: the model

    func testTrained_predictsHeldOutSessions_wellAboveBothBaselines() {
        let model = Trainer.train(Self.sessions, seed: 3, holdout: 0.3)
        let held = Evaluation.heldOut(Self.sessions, by: model)
        XCTAssertFalse(held.isEmpty)
        XCTAssertEqual(held.count + model.trainedOn.count, Self.sessions.count, "a session is held out whole or trained on whole")
        XCTAssertTrue(Set(held.map(\.name)).isDisjoint(with: model.trainedOn.map(\.trace)))
        let e = Evaluation.run(model, on: held)
        XCTAssertEqual(e.calls, held.count * 20)
        // The second create of a file returns EEXIST: only the session's history says so.
        XCTAssertEqual(e.accuracy.model, 1, "\(e.accuracy)")
        XCTAssertLessThan(e.accuracy.majority, 0.5)
        XCTAssertLessThan(e.accuracy.sameAsLast, 0.9, "the first time each call runs, the baseline has only the majority")
        XCTAssertLessThan(e.logLoss.model, e.logLoss.majority)
        XCTAssertEqual(e.rollout.count, Evaluation.horizon)
        XCTAssertGreaterThanOrEqual(e.rollout[15].model, 0.95, "rolled on its own predictions, which are right here")
        // A read-missing step is followed by a new descriptor node; no other is.
        XCTAssertEqual(e.deltaRecall.model, 1)
        XCTAssertEqual(e.deltaPrecision.model, 1)
    }

    func testModel_unseenTarget_backsOffToWhatItsKindDoes() {
        let model = LearnedPredictor(Trainer.train(Self.sessions, holdout: 0))
        model.begin(Proposal(context: "other", task: "new", steps: []))
        // A file name never seen, of a kind seen often; an operation's coarsest level.
        XCTAssertEqual(model.predict(Self.open("/elsewhere/missing-77.txt")).label, "ENOENT")
        XCTAssertEqual(model.predict(Self.open("/elsewhere/data-9.txt")).label, "ok")
        let p = model.predict(Self.open("/elsewhere/missing-77.txt")).probability
        XCTAssertGreaterThan(p, 0.5)
        XCTAssertLessThan(p, 1)
    }

    func testFilteredMode_learnsOnline_fromEachRealReturn() {
        let model = LearnedPredictor(Trainer.train(Self.sessions, holdout: 0))
        let call = Self.open("/data/task-1/sandbox/data-1.txt")
        model.begin(Proposal(context: "task", task: "read-data", steps: []))
        XCTAssertEqual(model.predict(call).label, "ok")
        var probabilities: [Double] = []
        for _ in 0..<40 {
            model.begin(Proposal(context: "task", task: "read-data", steps: []))
            _ = model.perform(call)
            probabilities.append(model.observe(.failure(errno: EACCES), of: call, real: true))
        }
        XCTAssertLessThan(probabilities[0], 0.05, "at first EACCES is a surprise")
        XCTAssertGreaterThan(probabilities[39], 0.5, "counted, it is what this file does now")
        XCTAssertEqual(model.learned, 40)
        model.begin(Proposal(context: "task", task: "read-data", steps: []))
        XCTAssertEqual(model.predict(call).label, "EACCES")
    }

    func testDreamedReturns_teachNothing() {
        let model = LearnedPredictor(Trainer.train(Self.sessions, holdout: 0))
        let call = Self.open("/data/task-1/sandbox/data-1.txt")
        let before = model.model
        model.begin(Proposal(context: "task", task: "read-data", steps: []))
        let dreamed = model.perform(call)
        XCTAssertGreaterThanOrEqual(dreamed.value ?? 0, 1000, "a dreamed descriptor is no real one")
        XCTAssertGreaterThan(model.observe(dreamed, of: call, real: false), 0.9)
        XCTAssertEqual(model.model, before)
        XCTAssertEqual(model.learned, 0)
    }

    // MARK: the model's file

    func testTrainingTwice_givesTheSameFile() throws {
        let a = directory + "/a.json", b = directory + "/b.json"
        try Trainer.train(Self.sessions, seed: 9).write(to: a)
        try Trainer.train(Self.sessions.map { $0 }, seed: 9).write(to: b)
        XCTAssertEqual(FileManager.default.contents(atPath: a), FileManager.default.contents(atPath: b))
        XCTAssertEqual(try Model.read(from: a), Trainer.train(Self.sessions, seed: 9))
        try Trainer.train(Self.sessions, seed: 10).write(to: b)
        XCTAssertNotEqual(FileManager.default.contents(atPath: a), FileManager.default.contents(atPath: b), "another seed, another split")
    }

    func testModelFile_cutShort_ofAnotherSchema_orNotAModel_isRefusedSayingSo() throws {
        let path = directory + "/m.json"
        try Trainer.train(Self.sessions).write(to: path)
        let bytes = try XCTUnwrap(FileManager.default.contents(atPath: path))
        func refusal(_ data: Data) -> String {
            XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: data))
            do { _ = try Model.read(from: path); return "accepted" } catch { return "\(error)" }
        }
        XCTAssertTrue(refusal(bytes.prefix(bytes.count / 2)).hasPrefix("model \(path) is not a complete model file"), refusal(bytes.prefix(bytes.count / 2)))
        let other = String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: Model.schema, with: "worldos-model/0")
        XCTAssertEqual(refusal(Data(other.utf8)),
                       "model \(path) is a model of schema worldos-model/0; this worldos reads \(Model.schema): train it again with `worldos train`")
        XCTAssertEqual(refusal(Data("{\"tasks\": 3}".utf8)), "model \(path) has no \"schema\": it is not a WorldOS model file")
        let broken = String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: "\"holdout\":0.2", with: "\"holdout\":\"a fifth\"")
        XCTAssertTrue(refusal(Data(broken.utf8)).contains("field \"holdout\""), refusal(Data(broken.utf8)))
        XCTAssertTrue(refusal(Data()).contains("is not a complete model file"))
        XCTAssertThrowsError(try Model.read(from: directory + "/none.json")) { XCTAssertTrue("\($0)".hasPrefix("model \(self.directory!)/none.json cannot be read"), "\($0)") }
    }

    func testModelFile_namesTheTracesItCameFrom() throws {
        let model = Trainer.train(Self.sessions, seed: 3, holdout: 0.3)
        XCTAssertEqual(model.sources.map(\.trace), Self.sessions.map(\.name))
        XCTAssertEqual(model.sources.map(\.sha256), Self.sessions.map(\.sha256))
        XCTAssertEqual(model.sources.map(\.transitions), Self.sessions.map(\.transitions.count))
    }

    // MARK: the dynamics model

    func testSurprise_isLow_forWhatTheMachineUsuallyDoes_andNamesWhatItDidNot() throws {
        let model = LearnedPredictor(Trainer.train(Self.sessions, holdout: 0))
        // The observation after a read-data step shows a new descriptor node.
        let read = Self.sessions[0].transitions[0].outcome
        let fd = GraphDelta([.addNode(Node(id: .fileDescriptor(owner: .context("task"), fd: 3), kind: .fileDescriptor, attributes: [:]))])
        let usual = model.surprise(of: fd, after: read)
        let quiet = model.surprise(of: GraphDelta(), after: read)
        XCTAssertLessThan(usual.bits, 1)
        XCTAssertGreaterThan(quiet.bits, 3)
        XCTAssertEqual(Array(quiet.missing.keys), ["+fd"])
        XCTAssertEqual(quiet.after, "task")
        let odd = model.surprise(of: GraphDelta([.removeNode(.process(pid: 4, startTime: 5))]), after: Self.sessions[0].transitions[1].outcome)
        XCTAssertEqual(Array(odd.unexpected.keys), ["-process"], "never seen: as unlikely as the model can say")
    }

    // MARK: in the executor

    /// Allows everything, and keeps what the executor told it of predictions.
    struct NotingGuard: Guarding {
        var noted: [(String, Double)] = []
        mutating func decide(_ call: ResolvedCall, context: Node, held: Holdings, at now: Instant) -> Decision { .allow(rule: "test") }
        mutating func recordOutcome(_ call: ResolvedCall, context: String, result: CallResult, at now: Instant) {}
        mutating func notePrediction(_ call: ResolvedCall, context: String, result: CallResult, probability: Double, at now: Instant) {
            noted.append((call.op.rawValue, probability))
        }
    }

    final class Host: Effecting {
        func perform(_ call: ResolvedCall) -> CallResult { call.op == .open ? .failure(errno: EACCES) : .value(0) }
    }

    func testShadowingTheHost_everyReturnGetsItsProbability_andTheGuardHearsOfIt() throws {
        let learner = LearnedPredictor(Trainer.train(Self.sessions, holdout: 0))
        var policy: any Guarding = NotingGuard()
        var host: any Effecting = Host()
        var executor = TraceExecutor()
        let context = Node(id: .context("task"), kind: .executionContext, partition: .context("task"))
        let outcome = executor.execute(Proposal(context: "task", task: "read-data", steps: [MicroStep(.open, ["path": .string("/d/data-1.txt")])]),
                                       context: context, held: [], guard: &policy, effector: &host, shadow: learner, at: Instant(nanoseconds: 0))
        let p = try XCTUnwrap(outcome.steps[0].probability)
        XCTAssertLessThan(p, 0.05, "EACCES from a data file is unlike anything trained on")
        XCTAssertEqual(outcome.predictionMisses, 1)
        XCTAssertEqual((policy as? NotingGuard)?.noted.map(\.0), ["open"])
        XCTAssertEqual((policy as? NotingGuard)?.noted.first?.1, p)
        XCTAssertEqual(learner.learned, 1)
    }
}

/// The macro library: mined from sessions, written as YAML a bench names, expanded where a task
/// calls it, recorded in the proposal.
final class MacroTests: XCTestCase {
    func testMined_fragmentsRunInSeveralSessions_withTheirStringsAsParameters() {
        let macros = MacroMiner.mine(LearningTests.sessions, least: 3)
        let names = macros.map(\.name)
        XCTAssertEqual(names.first, "open-read-close", "\(names)")
        let first = macros[0]
        XCTAssertEqual(first.parameters, ["path"], "the open's mode is what it does, kept as written")
        XCTAssertEqual(first.steps.map(\.description), [#"open(mode: "read", path: "{path}")"#, "read(count: 64, fd: $0)", "close(fd: $0)"])
        XCTAssertEqual(first.sessions, 30)
        XCTAssertFalse(names.contains("open-read"), "a fragment only ever run inside a longer one is the longer one")
    }

    func testABench_callsAMinedMacro_andItsStepsAreThereForTheGuard() throws {
        let folder = NSTemporaryDirectory() + "worldos-macros-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try MacroMiner.yaml(MacroMiner.mine(LearningTests.sessions), from: "tests").write(toFile: folder + "/macros.yaml", atomically: true, encoding: .utf8)
        let text = """
            version: 1
            macros: macros.yaml
            contexts:
              reader:
                interval-ms: 0
                tasks:
                  read-twice:
                    - macro: { name: open-read-close, path: /etc/hostname }
                    - open: { path: /etc/hostname }
                    - read: { fd: $1, count: 8 }
            """
        try text.write(toFile: folder + "/bench.yaml", atomically: true, encoding: .utf8)
        let bench = try Bench.load(file: folder + "/bench.yaml")
        let task = try XCTUnwrap(bench.contexts.first?.tasks.first)
        XCTAssertEqual(task.steps.map(\.description), [#"open(mode: "read", path: "/etc/hostname")"#, "read(count: 64, fd: $0)", "close(fd: $0)",
                                                       #"open(path: "/etc/hostname")"#, "read(count: 8, fd: $3)"], "$1 is the second entry as written")
        var proposer = ScriptedProposer(bench: bench)
        let proposal = try XCTUnwrap(proposer.propose(for: "reader", posterior: Posterior(step: 0, graph: Graph(), surprise: nil, observedAt: nil),
                                                      at: Instant(nanoseconds: 0)))
        XCTAssertEqual(proposal.macros, [MacroUse(name: "open-read-close", first: 0, steps: 3)])
        XCTAssertEqual(proposal.macros?.first?.saved, 2)

        for (call, message) in [("{ name: nothing }", "no macro nothing in \(folder)/macros.yaml"), ("{ name: open-read-close }", "macro open-read-close needs path"),
                                ("{ name: open-read-close, path: /x, mode: write }", "macro open-read-close takes no mode")] {
            let bad = text.replacingOccurrences(of: "{ name: open-read-close, path: /etc/hostname }", with: call)
            XCTAssertThrowsError(try Bench.parse(bad, file: folder + "/bench.yaml")) { error in
                XCTAssertTrue("\(error)".hasPrefix("\(folder)/bench.yaml:8:"), "\(error)")
                XCTAssertTrue("\(error)".contains(message), "\(error)")
            }
        }
        try "version: 1\nmacros:\n  m:\n    parameters: []\n    steps:\n      - open: { path: \"{where}\" }\n".write(toFile: folder + "/macros.yaml", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Bench.load(file: folder + "/bench.yaml")) { XCTAssertTrue("\($0)".contains("macro m uses {where}, which is not one of its parameters"), "\($0)") }
    }
}
