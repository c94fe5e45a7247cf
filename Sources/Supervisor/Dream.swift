import Benches
import DataEngine
import Devices
import Estimator
import Executor
import Foundation
import Guard
import HostAdapter
import Learning
import LoopCore
import Renderer
import Scheduler
import StateGraph

/// A dream: a bench's tasks rolled forward inside a learned model, with no machine in the loop.
/// The loop runs in latent mode — no observer, no host: every return is the model's — through
/// the real guard (in latent mode, auditing into the dream's own folder), scheduler, renderer
/// and fold; names are resolved on the file system as a real step's are (read only), so the
/// guard decides on the objects a real run would touch. Nothing of it is the machine's: its trace is `dream.jsonl` (every transition mode
/// latent), its panel frames `dream-NNNN.png`, its audit log `dream-audit.jsonl`, all in a
/// folder of its own; no run folder, approval store or device is opened.
public enum Dream {
    public struct Options: Sendable {
        public var bench: String
        public var policy: String = SupervisorOptions.defaults.policy
        public var profiles: String = SupervisorOptions.defaults.profiles
        public var out: String = ".worldos/dream"
        public var steps = 8
        /// Only these contexts' tasks (nil: all), and of them only the task of this name.
        public var context: String?
        public var task: String?
        public init(bench: String) { self.bench = bench }
    }

    /// One dreamed step: what the loop reported, and what the model expects the step's action to
    /// change in the machine.
    public struct Step {
        public var report: StepReport
        public var expected: Set<String>
        public var frame: String
    }

    /// Dream `options.steps` steps; `host` is what the loop would call for a real return, which
    /// a dream never does (a test passes one that fails on any call).
    public static func run(_ options: Options, model: LearnedPredictor, host: any Effecting = NoHost(),
                           each: (Step) -> Void = { _ in }) throws -> [Step] {
        var bench: Bench
        let policy: Policy, catalog: DeviceCatalog
        do {
            bench = try Bench.load(file: options.bench)
            policy = try Policy.load(file: options.policy)
            catalog = try DeviceCatalog.load(directory: options.profiles)
        } catch { throw SupervisorError(message: "\(error)") }
        bench.contexts = bench.contexts.filter { c in options.context.map { $0 == c.name } ?? true }
        if let task = options.task {
            for i in bench.contexts.indices { bench.contexts[i].tasks = bench.contexts[i].tasks.filter { $0.name == task } }
        }
        guard bench.contexts.contains(where: { !$0.tasks.isEmpty }) else {
            throw SupervisorError(message: "\(options.bench): no task to dream"
                                  + (options.task.map { " named \($0)" } ?? "") + (options.context.map { " in context \($0)" } ?? ""))
        }
        try FileManager.default.createDirectory(atPath: options.out, withIntermediateDirectories: true)
        let audit = try AuditLog(path: options.out + "/dream-audit.jsonl")
        var inner = PolicyGuard(policy: policy, audit: audit, mode: .latent,
                                risk: { device, action in catalog.profile(named: device)?.actions[action]?.risk.rawValue },
                                identity: { device in ("\(device):dream", "(dream)") })
        // The bench's controllers dream under their envelopes, as they run.
        let controls = ControlBoard(bench.controllers.values.sorted { $0.name < $1.name }.map(\.envelope))
        inner.controls = controls
        let frames = DreamFrames(folder: options.out)
        var loop = SupervisorLoop(
            mode: .latent, clock: DreamClock(), initial: try Supervisor.initialGraph(bench: bench, policy: policy),
            observer: NoObserver(), estimator: LiveEstimator(), renderer: try PanelRenderer(mode: .latent),
            frameSink: frames, scheduler: ContextScheduler(), proposer: ScriptedProposer(bench: bench, board: controls),
            policyGuard: DreamGuard(inner: inner), executor: TraceExecutor(names: LinuxNames()), host: host, predictor: model,
            recorder: try TraceWriter(path: options.out + "/dream.jsonl"))
        var steps: [Step] = []
        for _ in 0..<options.steps {
            let report = try loop.step()
            let step = Step(report: report, expected: model.model.expectedChange(after: report.outcome),
                            frame: options.out + String(format: "/dream-%04d.png", report.step))
            each(step)
            steps.append(step)
        }
        try loop.finish()
        return steps
    }

    /// A dream's clock: a second a step, from zero.
    final class DreamClock: WorldClock, @unchecked Sendable {
        private var t: UInt64 = 0
        func now() -> Instant {
            defer { t += 1_000_000_000 }
            return Instant(nanoseconds: t)
        }
    }

    struct NoObserver: Observing {
        func observe(at now: Instant) throws -> Observation {
            throw SupervisorError(message: "a dream observes nothing")
        }
    }

    /// Every frame of the dream, one PNG a step.
    struct DreamFrames: FrameSink {
        let folder: String
        var step = 0
        mutating func emit(_ frame: Frame) throws -> String? {
            defer { step += 1 }
            let path = folder + String(format: "/dream-%04d.png", step)
            try PNGSink.write(frame, to: path)
            return path
        }
    }

    /// The guard of a dream: the real policy's decision, except that an action needing an
    /// approval is dreamed as if approved (and says so) — a dream is what would happen, and
    /// nothing of it reaches a machine.
    struct DreamGuard: Guarding {
        var inner: PolicyGuard
        mutating func decide(_ call: ResolvedCall, context: Node, held: Holdings, at now: Instant) -> Decision {
            switch inner.decide(call, context: context, held: held, at: now) {
            case .needsApproval(_, let reason): .allow(rule: "dream: would need an approval (\(reason))")
            case .deny(let rule, let reason) where rule == "approval-required": .allow(rule: "dream: would need an approval (\(reason))")
            case let decision: decision
            }
        }
        mutating func recordOutcome(_ call: ResolvedCall, context: String, result: CallResult, at now: Instant) {
            inner.recordOutcome(call, context: context, result: result, at: now)
        }
    }
}

/// The host of a loop that must never reach one: every call fails with ENOSYS and is counted.
public final class NoHost: Effecting, @unchecked Sendable {
    public private(set) var calls = 0
    public init() {}
    public func perform(_ call: ResolvedCall) -> CallResult {
        calls += 1
        return .failure(errno: ENOSYS)
    }
}
