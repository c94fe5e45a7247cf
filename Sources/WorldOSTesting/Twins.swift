import LoopCore
import StateGraph

/// A clock tests move by hand. Nothing in a test sleeps.
public final class ManualClock: WorldClock, @unchecked Sendable {
    private var current: Instant
    public init(start: Instant = Instant(nanoseconds: 1_000_000_000)) { current = start }
    public func now() -> Instant { current }
    public func advance(by d: Duration) { current = current + d }
}

/// An ordered log of which stage ran, shared by the twins of one loop.
public final class StageLog: @unchecked Sendable {
    public private(set) var entries: [String] = []
    public init() {}
    public func append(_ e: String) { entries.append(e) }
}

/// Observer twin: returns the observations it is given, in turn.
public struct ScriptedObserver: Observing {
    public var script: [Observation]
    public let log: StageLog
    public private(set) var calls = 0
    public init(_ script: [Observation], log: StageLog) { self.script = script; self.log = log }
    public mutating func observe(at now: Instant) throws -> Observation {
        log.append("observe")
        calls += 1
        guard !script.isEmpty else { return Observation(time: now, scope: [], nodes: [], edges: [], supervisor: nil) }
        var o = script.removeFirst()
        o.time = now
        return o
    }
}

/// Estimator twin: wraps a real estimator and logs each call with the step and node count.
public struct LoggingEstimator<Inner: Estimating>: Estimating {
    public let inner: Inner
    public let log: StageLog
    public init(_ inner: Inner, log: StageLog) { self.inner = inner; self.log = log }
    public func prior(from memory: Graph, step: Int, at now: Instant) -> Prior {
        log.append("prior")
        return inner.prior(from: memory, step: step, at: now)
    }
    public func posterior(from prior: consuming Prior, observation: Observation?, at now: Instant) throws -> Posterior {
        let p = try inner.posterior(from: prior, observation: observation, at: now)
        log.append("posterior:\(p.step):\(p.graph.nodeCount)")
        return p
    }
    public func fold(_ outcome: ActionOutcome?, into posterior: Posterior, at now: Instant) -> Graph {
        log.append("fold")
        return inner.fold(outcome, into: posterior, at: now)
    }
}

/// Renderer twin: records which posterior each frame was drawn from.
public struct RecordingRenderer: Rendering {
    public let log: StageLog
    public init(log: StageLog) { self.log = log }
    public mutating func render(_ posterior: Posterior, at now: Instant) -> Frame {
        log.append("render:\(posterior.step):\(posterior.graph.nodeCount)")
        let pixels = [UInt32(truncatingIfNeeded: posterior.graph.nodeCount)]
        // One element per process, so the semantics tree changes as the observations do.
        let semantics = posterior.graph.nodes(ofKind: .process).sorted { $0.id.rawValue < $1.id.rawValue }.enumerated().map { i, node in
            Frame.Semantic(role: "process", label: node.id.rawValue, node: node.id, x: 0, y: i, width: 1, height: 1)
        }
        return Frame(width: 1, height: 1, pixels: pixels, semantics: semantics, step: posterior.step)
    }
}

/// Frame sink twin: keeps the frames in memory.
public final class MemoryFrameSink: FrameSink {
    public private(set) var frames: [Frame] = []
    public init() {}
    public func emit(_ frame: Frame) throws -> String? { frames.append(frame); return nil }
}

/// Scheduler twin: always the same context.
public struct FixedScheduler: Scheduling {
    public let context: String?
    public init(_ context: String?) { self.context = context }
    public mutating func pick(from posterior: Posterior, at now: Instant) -> String? { context }
}

/// Proposer twin: the same proposal every time.
public struct FixedProposer: Proposing {
    public let steps: [MicroStep]
    public init(_ steps: [MicroStep]) { self.steps = steps }
    public mutating func propose(for context: String, posterior: Posterior, at now: Instant) -> Proposal? {
        Proposal(context: context, task: "fixed", steps: steps)
    }
}

/// Guard twin: allows or denies by a closure, and logs every decision.
public struct ClosureGuard: Guarding {
    public let allow: @Sendable (ResolvedCall) -> Bool
    public let log: StageLog
    public init(log: StageLog, allow: @escaping @Sendable (ResolvedCall) -> Bool) { self.log = log; self.allow = allow }
    public mutating func decide(_ call: ResolvedCall, context: Node, held: Holdings, at now: Instant) -> Decision {
        let ok = allow(call)
        log.append("guard:\(call.op.rawValue):\(ok ? "allow" : "deny")")
        return ok ? .allow(rule: "twin") : .deny(rule: "twin", reason: "denied by the test")
    }
    public mutating func recordOutcome(_ call: ResolvedCall, context: String, result: CallResult, at now: Instant) {}
}

/// Host adapter twin: records every call it receives and answers from a closure.
public final class SpyHost: Effecting {
    public private(set) var calls: [ResolvedCall] = []
    public let answer: (ResolvedCall) -> CallResult
    public let log: StageLog?
    public init(log: StageLog? = nil, answer: @escaping (ResolvedCall) -> CallResult = { _ in .value(0) }) {
        self.log = log
        self.answer = answer
    }
    public func perform(_ call: ResolvedCall) -> CallResult {
        calls.append(call)
        log?.append("host:\(call.op.rawValue)")
        return answer(call)
    }
}

/// Recorder twin: keeps transitions in memory.
public final class MemoryRecorder: Recording {
    public private(set) var transitions: [Transition] = []
    public init() {}
    public func record(_ transition: Transition) throws { transitions.append(transition) }
}

/// Executor twin: performs every step literally with no references, for stage-order tests.
public struct LiteralExecutor: Executing {
    public init() {}
    public mutating func execute(_ proposal: Proposal, context: Node, held: Holdings, guard policy: inout any Guarding,
                                 effector: inout any Effecting, shadow: (any Effecting)?, at now: Instant) -> ActionOutcome {
        let steps = proposal.steps.enumerated().map { i, step -> StepOutcome in
            let call = ResolvedCall(step.op, step.args.compactMapValues { a in
                switch a { case .int(let v): .int(v); case .string(let s): .string(s); case .result: nil }
            })
            let d = policy.decide(call, context: context, held: held, at: now)
            guard d.isAllowed else { return StepOutcome(index: i, step: step, call: call, decision: d, status: .denied) }
            return StepOutcome(index: i, step: step, call: call, decision: d, status: .performed(effector.perform(call)))
        }
        return ActionOutcome(proposal: proposal, steps: steps)
    }
}
