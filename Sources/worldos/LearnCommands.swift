import ArgumentParser
import Foundation
import Learning
import LoopCore
import Supervisor

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Learn the outcome predictor and the dynamics model from recorded traces.",
        discussion: """
        TRACES is a trace.jsonl or a folder holding run folders (worldos generate makes one). Each trace is a \
        session; a share of the sessions (by the seed, never by step) is held out for worldos eval. The model is \
        counts with backoff, so training is deterministic: the same traces and seed give the same file, which \
        names every trace it came from with its SHA-256.
        """)

    @ArgumentParser.Argument(help: "A trace.jsonl, or a folder of run folders.") var traces: String = ".worldos/dataset"
    @Option(help: "Where the model goes.") var to: String = ".worldos/model.json"
    @Option(help: "The seed the held-out split follows from.") var seed: UInt64 = 1
    @Option(help: "The share of sessions held out for evaluation (0 trains on all).") var holdout: Double = 0.2
    @Option(help: "Where the mined macro library goes (a bench names it with macros: FILE; default: macros.yaml beside the model).") var macros: String?

    func validate() throws {
        guard (0..<1).contains(holdout) else { throw ValidationError("--holdout must be at least 0 and below 1") }
    }

    func run() throws {
        let sessions: [TraceSession]
        do { sessions = try TraceSession.all(at: traces) } catch { throw CLIFailure("\(error)") }
        let model = Trainer.train(sessions, seed: seed, holdout: holdout) { done, all in progressBar(done, all, "sessions") }
        do { try model.write(to: to) } catch { throw CLIFailure("\(error)") }
        let mined = MacroMiner.mine(sessions.filter { !TraceSession.isHeldOut($0.name, seed: seed, share: holdout) })
        let macros = self.macros ?? URL(fileURLWithPath: to).deletingLastPathComponent().appendingPathComponent("macros.yaml").path
        do { try MacroMiner.yaml(mined, from: traces).write(toFile: macros, atomically: true, encoding: .utf8) } catch { throw CLIFailure("\(macros): \(error)") }
        print("\(macros): \(mined.count) macros mined" + (mined.isEmpty ? "" : ": " + mined.prefix(5).map { "\($0.name) (\($0.sessions) sessions)" }.joined(separator: ", ")))
        let held = model.sources.filter(\.heldOut).count
        print("\(to): trained on \(sessions.count - held) sessions (\(model.trainedOn.map(\.transitions).reduce(0, +)) transitions), \(held) held out for worldos eval")
    }
}

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Measure a model on the sessions it did not train on, beside two baselines.",
        discussion: """
        Evaluates on the sessions of TRACES the model was not trained on (those it held out, and any it never \
        saw): next-return accuracy and log-loss, graph-delta precision and recall, and k-step rollout accuracy \
        for k = 1…16, each beside the majority label and "same as last time". Prints a table and writes \
        eval.json and eval.png (the rollout curves) into --out.
        """)

    @ArgumentParser.Argument(help: "The model (worldos train).") var model: String = ".worldos/model.json"
    @ArgumentParser.Argument(help: "A trace.jsonl, or a folder of run folders.") var traces: String = ".worldos/dataset"
    @Option(help: "Where eval.json and eval.png go.") var out: String = ".worldos/eval"

    func run() throws {
        let trained: Model, sessions: [TraceSession]
        do {
            trained = try Model.read(from: model)
            sessions = Evaluation.heldOut(try TraceSession.all(at: traces), by: trained)
        } catch { throw CLIFailure("\(error)") }
        guard !sessions.isEmpty else {
            throw CLIFailure("every session in \(traces) was trained on; train with --holdout above 0, or name traces the model has not seen")
        }
        let e = Evaluation.run(trained, on: sessions)
        print("held-out: \(e.sessions.count) sessions, \(e.calls) calls, \(e.steps) steps")
        print("                           model   majority  same-as-last")
        func row(_ name: String, _ s: Evaluation.Scores, percent: Bool = true) {
            let f = { (v: Double) in v.isNaN ? "     —" : percent ? String(format: "%6.1f%%", v * 100) : String(format: "%7.3f", v) }
            print(name.padding(toLength: 24, withPad: " ", startingAt: 0) + "  " + [f(s.model), f(s.majority), f(s.sameAsLast)].joined(separator: "   "))
        }
        row("next-return accuracy", e.accuracy)
        row("log-loss (bits/call)", e.logLoss, percent: false)
        row("graph-delta precision", e.deltaPrecision)
        row("graph-delta recall", e.deltaRecall)
        for k in [1, 2, 4, 8, 16] where k <= e.rollout.count { row("rollout k=\(k)", e.rollout[k - 1]) }
        do {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            try e.json().write(to: URL(fileURLWithPath: out + "/eval.json"))
            try Data(try EvaluationPlot.png(e, title: "k-step rollout accuracy on \(e.sessions.count) held-out sessions"))
                .write(to: URL(fileURLWithPath: out + "/eval.png"))
        } catch { throw CLIFailure("\(out): \(error)") }
        print("wrote \(out)/eval.json and \(out)/eval.png")
    }
}

struct DreamCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dream",
        abstract: "Roll a bench's tasks forward inside a model, with no machine in the loop.",
        discussion: """
        Every return is the model's, with its probability; nothing is observed and no host is called. The guard \
        decides each step as it would (an action that would need an approval is dreamed as approved, and says \
        so). Each step prints the predicted returns, the change the model expects the action to make and the \
        panel frame it draws. Everything is marked DREAM and goes to --out (dream.jsonl, dream-NNNN.png, \
        dream-audit.jsonl), never into a run folder.
        """)

    @ArgumentParser.Argument(help: "The bench whose tasks are dreamed.") var plan: String = SupervisorOptions.defaults.bench
    @Option(help: "The model (worldos train).") var model: String = ".worldos/model.json"
    @Option(help: "Only this context's tasks.") var context: String?
    @Option(help: "Only the task of this name.") var task: String?
    @Option(help: "Macro steps to dream.") var steps: Int = 8
    @Option(help: "The guard policy.") var policy: String = SupervisorOptions.defaults.policy
    @Option(help: "Device profiles.") var profiles: String = SupervisorOptions.defaults.profiles
    @Option(help: "Where the dream goes.") var out: String = ".worldos/dream"

    func run() throws {
        var options = Dream.Options(bench: plan)
        (options.policy, options.profiles, options.out, options.steps, options.context, options.task) = (policy, profiles, out, steps, context, task)
        let predictor: LearnedPredictor
        do { predictor = LearnedPredictor(try Model.read(from: model)) } catch { throw CLIFailure("\(error)") }
        do {
            _ = try Dream.run(options, model: predictor) { step in
                let r = step.report
                guard let context = r.context, let outcome = r.outcome else {
                    print("DREAM step \(r.step): no context ready; panel \(step.frame)")
                    return
                }
                print("DREAM step \(r.step): \(context) runs \(outcome.proposal.task); panel \(step.frame)")
                for s in outcome.steps {
                    let call = s.call?.description ?? s.step.description
                    switch s.status {
                    case .performed(let result):
                        let label = s.call.map { OutcomeLabel.of($0, result) } ?? "?"
                        print("DREAM   \(call) -> \(label) (p \(String(format: "%.2f", s.probability ?? 0)))"
                              + (s.decision.map { $0.rule.hasPrefix("dream:") ? "  [\($0.rule)]" : "" } ?? ""))
                    case .denied: print("DREAM   \(call) -> NOT RUN: \(s.decision?.description ?? "")")
                    case .skipped(let why): print("DREAM   \(call) skipped: \(why)")
                    case .invalid(let why): print("DREAM   \(call) invalid: \(why)")
                    }
                }
                print("DREAM   expected change: " + (step.expected.isEmpty ? "nothing" : step.expected.sorted().joined(separator: " ")))
            }
        } catch { throw CLIFailure("\(error)") }
        print("DREAM: \(steps) steps dreamed in \(out) (dream.jsonl, every transition mode latent); nothing reached the machine")
    }
}

/// A progress bar on stderr: redrawn in place on a terminal, a line each otherwise.
func progressBar(_ done: Int, _ all: Int, _ unit: String) {
    let width = 30, filled = width * done / max(all, 1)
    let bar = "[" + String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled) + "] \(done)/\(all) \(unit)"
    FileHandle.standardError.write(Data(((isatty(2) != 0) ? "\r" + bar + (done == all ? "\n" : "") : bar + "\n").utf8))
}
