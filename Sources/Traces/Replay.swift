import Attached
import Benches
import Control
import DataEngine
import Devices
import Estimator
import Executor
import Foundation
import Guard
import Journal
import LoopCore
import MCAP
import Renderer
import Scheduler
import StateGraph
import Supervisor
import SystemCalls

/// `worldos replay`: the real core — estimator fold, renderer, scheduler, guard, executor — run
/// against a recorded trace instead of the machine. What came from outside the core is served
/// from the trace: each step's observation (as the recorded graph delta, with its surprise and
/// the supervisor's own node), the proposal the context made, every device and syscall return,
/// and approvals a person gave. Everything the core decides is compared with the recording:
/// the frame hash, the chosen context, each micro-step's resolved call, decision and status,
/// and the state the action left.
///
/// Not served, so a recording that depended on them differs and says so: a latched fault
/// (kept in the run folder, not the trace) and paths under the recording's own run folder.
public enum Replay {
    public struct Report: Sendable {
        public var steps: Int
        public var mismatches: [String]
    }

    public struct Failure: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// The transitions of a trace: an MCAP file (`/worldos/transition`) or a JSON-lines trace.
    public static func transitions(from path: String) throws -> [Transition] {
        guard path.hasSuffix(".mcap") else { return try TraceWriter.read(path: path) }
        let reader = try MCAPReader(path: path)
        guard let channel = reader.channels.values.first(where: { $0.topic == "/worldos/transition" }) else {
            throw Failure(message: "\(path) has no /worldos/transition channel; is it a worldos trace?")
        }
        let decoder = JSONDecoder()
        return try reader.messages.filter { $0.channel == channel.id }.enumerated().map { i, m in
            do { return try decoder.decode(Transition.self, from: Data(m.data)) } catch {
                throw Failure(message: "\(path): transition \(i + 1) cannot be read: \(error)")
            }
        }
    }

    /// Replay `recorded` with the bench, policy and device profiles of `options` (the ones the
    /// recording ran under); nothing touches the machine. The guard's audit and approvals go
    /// to a scratch folder.
    public static func run(_ recorded: [Transition], options: SupervisorOptions) throws -> Report {
        guard let first = recorded.first else { throw Failure(message: "the trace holds no transitions") }
        let bench = try Bench.load(file: options.bench)
        // Decisions cite the policy as the recording spelled its path (Policies/default.yaml:17):
        // read this policy under that name, so an unchanged rule cites the same location.
        let name = URL(fileURLWithPath: options.policy).lastPathComponent
        let spelled = recorded.lazy.flatMap { $0.outcome?.steps.compactMap(\.decision?.rule) ?? [] }
            .compactMap { rule -> String? in
                guard let colon = rule.lastIndex(of: ":"), Int(rule[rule.index(after: colon)...]) != nil else { return nil }
                let file = String(rule[..<colon])
                return URL(fileURLWithPath: file).lastPathComponent == name ? file : nil
            }.first
        guard let text = FileManager.default.contents(atPath: options.policy) else {
            throw Failure(message: "cannot read the policy \(options.policy)")
        }
        let policy = try Policy.parse(String(decoding: text, as: UTF8.self), file: spelled ?? options.policy)
        let catalog = try DeviceCatalog.load(directory: options.profiles)
        let scratch = NSTemporaryDirectory() + "worldos-replay-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }

        let script = ReplayScript(recorded)
        for context in bench.contexts {
            if context.controller != nil { script.described[.context(context.name)] = ControlProposer.describedKeys }
            if context.runsPlans { script.described[.context(context.name)] = PlanRunner.describedKeys }
        }
        let devices = GraphDevices(catalog: catalog)
        var policyGuard = PolicyGuard(policy: policy, audit: try AuditLog(path: RunFolder(scratch).audit), mode: first.mode,
                                      risk: { device, action in devices.find(device).flatMap { $0.profile.actions[action]?.risk.rawValue } },
                                      identity: { device in devices.find(device).map { ($0.id, $0.path) } },
                                      approvals: try ApprovalStore(directory: RunFolder(scratch).approvals),
                                      approvers: { device in devices.find(device)?.profile.approvers ?? 1 },
                                      objectAt: recordedObjects(recorded))
        // The controllers' setpoints and envelopes, as the recording's guard held them.
        policyGuard.controls = ControlBoard(bench.controllers.values.sorted { $0.name < $1.name }.map(\.envelope))
        var loop = SupervisorLoop(
            mode: first.mode, clock: script, initial: try Supervisor.initialGraph(bench: bench, policy: policy),
            observer: script, estimator: ReplayEstimator(script: script, devices: devices), renderer: try PanelRenderer(mode: first.mode),
            frameSink: DiscardingFrameSink(), scheduler: ContextScheduler(), proposer: script,
            policyGuard: ReplayGuard(inner: policyGuard, script: script), executor: TraceExecutor(names: script), host: script,
            predictor: TrivialPredictor(), recorder: ComparingRecorder(script: script))
        for _ in recorded { try loop.step() }
        return Report(steps: recorded.count, mismatches: script.mismatches)
    }

    /// What each name reached when the trace was recorded, from its resolved calls: the guard
    /// of a replay knows a denied file's identity as the recording saw it, never as this
    /// machine's file system has it now (a rewritten /etc/gshadow may hold /etc/shadow's old
    /// inode). A denied file the recording never named has no identity here, so only its own
    /// name matches its rule.
    static func recordedObjects(_ recorded: [Transition]) -> (String) -> FileObject? {
        var seen: [String: FileObject] = [:]
        for call in recorded.lazy.flatMap({ $0.outcome?.steps.compactMap(\.call) ?? [] }) {
            guard let argument = call.nameArgument, let name = call.string(argument), let object = call.object,
                  let identity = FileObject.identity(object) else { continue }
            seen[name] = FileObject(device: identity.device, inode: identity.inode, type: 0)
        }
        return { seen[$0] }
    }
}

/// The recording, served step by step, and what differed from it.
final class ReplayScript: WorldClock, Observing, Proposing, Effecting, NameResolving, DescribingNodes, @unchecked Sendable {
    let recorded: [Transition]
    /// What the bench's proposers keep on their contexts' nodes (a controller's setpoint and
    /// output, a plan and its state): an input from outside the core, like the proposal, served
    /// from the recording's state change.
    var described: [NodeID: Set<String>] = [:]
    private(set) var index = 0
    var mismatches: [String] = []
    /// The memory this step's prior came from: the recorded observation delta applies to it.
    var memory = Graph()
    /// The recorded micro-steps of this step not yet served (performed ones, in order).
    private var pendingReturns: [StepOutcome] = []
    private var pendingDecisions: [StepOutcome] = []

    init(_ recorded: [Transition]) { self.recorded = recorded }

    var current: Transition { recorded[min(index, recorded.count - 1)] }

    func differ(_ what: String) { mismatches.append("step \(current.step): \(what)") }

    func now() -> Instant { current.time }

    func observe(at now: Instant) throws -> Observation {
        guard current.observedNodes != nil else { throw Replay.Failure(message: "the recorded observation failed") }
        return Observation(time: now, scope: [], nodes: [], edges: [], supervisor: current.supervisor, raced: current.racedEntries ?? 0,
                           events: current.events)
    }

    func nodeAttributes() -> [NodeID: Attributes] {
        var served: [NodeID: Attributes] = [:]
        for change in current.stateDelta.changes {
            guard case .updateNode(let node) = change, let keys = described[node.id] else { continue }
            var attributes = Attributes()
            for key in keys { if let value = node[key] { attributes[key] = value } }
            served[node.id] = attributes
        }
        return served
    }

    func propose(for context: String, posterior: Posterior, at now: Instant) -> Proposal? {
        guard current.picked == context else {
            differ("the scheduler chose \(context), the recording \(current.picked ?? "no context")")
            return nil
        }
        guard let outcome = current.outcome else { return nil }
        pendingReturns = outcome.steps.filter { if case .performed = $0.status { true } else { false } }
        pendingDecisions = outcome.steps.filter { $0.decision != nil }
        return outcome.proposal
    }

    /// The recorded decision of the next decided call, if it was on the same call.
    func recordedDecision(for call: ResolvedCall) -> Decision? {
        guard !pendingDecisions.isEmpty else { return nil }
        let step = pendingDecisions.removeFirst()
        return step.call == call ? step.decision : nil
    }

    /// The name the recording resolved the next decided call's name to, and the object found
    /// there: resolving it again would read this machine's files.
    func resolve(_ call: ResolvedCall) -> ResolvedCall {
        guard let argument = call.nameArgument, let next = pendingDecisions.first?.call, next.op == call.op,
              (next.asWritten ?? next.string(argument)) == call.string(argument) else { return call }
        var served = call
        for parameter in [argument, .asWritten, .object, .deviceNumber] { served[parameter] = next[parameter] }
        return served
    }

    func perform(_ call: ResolvedCall) -> CallResult {
        guard !pendingReturns.isEmpty else {
            differ("\(call) ran, but the recording ran no more calls")
            return .failure(errno: EIO)
        }
        let step = pendingReturns.removeFirst()
        if step.call != call { differ("the call was \(call), the recording's \(step.call.map(\.description) ?? "none")") }
        guard case .performed(let result) = step.status else { return .failure(errno: EIO) }
        return result
    }

    func advance() {
        index += 1
        pendingReturns = []
        pendingDecisions = []
    }
}

/// Posteriors from the recorded observation deltas; the real estimator folds the outcomes.
struct ReplayEstimator: Estimating {
    let script: ReplayScript
    let devices: GraphDevices
    let live = LiveEstimator()

    func prior(from memory: Graph, step: Int, at now: Instant) -> Prior {
        // The posterior is rebuilt from the memory the prior came from.
        script.memory = memory
        return live.prior(from: memory, step: step, at: now)
    }

    func posterior(from prior: consuming Prior, observation: Observation?, at now: Instant) throws -> Posterior {
        var graph = script.memory
        let recorded = script.current
        if let delta = recorded.observationDelta { try graph.apply(delta) }
        devices.attached(in: graph)
        return Posterior(step: prior.step, graph: graph, surprise: recorded.surprise, observedAt: observation?.time,
                         supervisor: recorded.supervisor)
    }

    func fold(_ outcome: ActionOutcome?, into posterior: Posterior, at now: Instant) -> Graph {
        live.fold(outcome, into: posterior, at: now)
    }
}

/// The devices attached at this step, as the graph's instrument nodes name them.
final class GraphDevices: @unchecked Sendable {
    let catalog: DeviceCatalog
    private var entries: [AttachedDevices.Entry] = []

    init(catalog: DeviceCatalog) { self.catalog = catalog }

    func attached(in graph: Graph) {
        entries = graph.nodes(ofKind: .instrument).compactMap { node in
            guard let name = node["profile"]?.stringValue, let serial = node["serial"]?.stringValue,
                  let profile = catalog.profiles.first(where: { $0.name == name }) else { return nil }
            return AttachedDevices.Entry(id: "\(name):\(serial)", path: node["path"]?.stringValue ?? "", profile: profile)
        }
    }

    func find(_ device: String) -> AttachedDevices.Entry? { AttachedDevices(entries: entries).find(device) }
}

/// The real guard, except where a person's part is an input from outside the core, like the
/// proposal: an irreversible action a person approved in the recording (itself, or the plan it
/// is a step of) is allowed again, and a request for approval keeps the id the recording gave
/// it (ids are random).
struct ReplayGuard: Guarding {
    var inner: PolicyGuard
    let script: ReplayScript

    mutating func decide(_ call: ResolvedCall, context: Node, held: Holdings, at now: Instant) -> Decision {
        let decision = inner.decide(call, context: context, held: held, at: now)
        let recorded = script.recordedDecision(for: call)
        guard case .needsApproval(_, let reason) = decision else { return decision }
        switch recorded {
        case .allow(let rule)? where rule.hasPrefix("approval "):
            inner.restsOn(rule)
            return recorded!
        // A plan's step on the plan's approval: a person's word at the plan's start, not in the trace.
        case .allow(let rule)? where rule.hasPrefix("plan "): return recorded!
        case .needsApproval(let id, let same)? where same == reason: return .needsApproval(request: id, reason: reason)
        default: return decision
        }
    }

    mutating func recordOutcome(_ call: ResolvedCall, context: String, result: CallResult, at now: Instant) {
        inner.recordOutcome(call, context: context, result: result, at: now)
    }

    mutating func look(at posterior: Posterior, now: Instant) { inner.look(at: posterior, now: now) }
}

/// Compares each replayed transition with the recorded one, then moves the script on.
struct ComparingRecorder: Recording {
    let script: ReplayScript

    mutating func record(_ replayed: Transition) throws {
        let recorded = script.current
        if replayed.frameHash != recorded.frameHash { script.differ("frame \(replayed.frameHash.prefix(12)), recorded \(recorded.frameHash.prefix(12))") }
        if replayed.picked != recorded.picked { script.differ("picked \(replayed.picked ?? "none"), recorded \(recorded.picked ?? "none")") }
        else if replayed.context != recorded.context { script.differ("acted as \(replayed.context ?? "none"), recorded \(recorded.context ?? "none")") }
        let mine = replayed.outcome?.steps ?? [], theirs = recorded.outcome?.steps ?? []
        if mine.count != theirs.count { script.differ("\(mine.count) micro-steps, recorded \(theirs.count)") }
        for (a, b) in zip(mine, theirs) {
            if a.call != b.call { script.differ("micro-step \(a.index) call \(a.call.map(\.description) ?? "none"), recorded \(b.call.map(\.description) ?? "none")") }
            if !Self.same(a.decision, b.decision) {
                script.differ("micro-step \(a.index) decision \(a.decision.map(\.description) ?? "none"), recorded \(b.decision.map(\.description) ?? "none")")
            }
            if a.status != b.status { script.differ("micro-step \(a.index) status \(a.status), recorded \(b.status)") }
        }
        if replayed.semanticsAdded != recorded.semanticsAdded || replayed.semanticsRemoved != recorded.semanticsRemoved {
            script.differ("the panel's semantics tree changed differently")
        }
        if replayed.stateDelta != recorded.stateDelta { script.differ("the action left a different state (\(replayed.stateDelta.changes.count) changes, recorded \(recorded.stateDelta.changes.count))") }
        script.advance()
    }

    /// Equal decisions; an approval request is the same whatever its (random) id.
    static func same(_ a: Decision?, _ b: Decision?) -> Bool {
        if case .needsApproval(_, let x)? = a, case .needsApproval(_, let y)? = b { return x == y }
        return a == b
    }
}

struct DiscardingFrameSink: FrameSink {
    mutating func emit(_ frame: Frame) throws -> String? { nil }
}
