import StateGraph

/// Writes a frame somewhere people can see it (a PNG file, later a DRM plane). Returns where, if
/// it wrote anything: an unchanged frame is not written again.
public protocol FrameSink {
    mutating func emit(_ frame: Frame) throws -> String?
    /// Everything emitted is where people can see it: the supervisor is stopping.
    mutating func finish() throws
}

extension FrameSink {
    public mutating func finish() throws {}
}

/// Where the encoding of a frame handed to an encoder stands, for a recorder that takes the
/// encoded bytes beside its transition.
public enum FrameEncoding: Equatable, Sendable {
    case ready([UInt8])
    /// Not encoded yet: ask again later (or wait).
    case pending
    /// Never handed over, let go, skipped under overload, or it could not be encoded.
    case unavailable
}

/// What one macro step did, stage by stage, for `worldos step` and the run log.
public struct StepReport: Sendable {
    public var step: Int
    public var mode: Mode
    public var priorNodes: Int
    public var observedNodes: Int?
    public var observationError: String?
    public var events: [ObservedEvent] = []
    public var surprise: Surprise?
    public var posteriorNodes: Int
    public var frameHash: String
    public var framePNG: String?
    public var context: String?
    public var outcome: ActionOutcome?
    public var nextNodes: Int

    public init(step: Int, mode: Mode, priorNodes: Int = 0, observedNodes: Int? = nil, observationError: String? = nil,
                events: [ObservedEvent] = [], surprise: Surprise? = nil, posteriorNodes: Int = 0, frameHash: String = "",
                framePNG: String? = nil, context: String? = nil, outcome: ActionOutcome? = nil, nextNodes: Int = 0) {
        (self.step, self.mode, self.priorNodes, self.observedNodes, self.observationError) = (step, mode, priorNodes, observedNodes, observationError)
        (self.events, self.surprise, self.posteriorNodes, self.frameHash, self.framePNG) = (events, surprise, posteriorNodes, frameHash, framePNG)
        (self.context, self.outcome, self.nextNodes) = (context, outcome, nextNodes)
    }

    /// One line per stage, in the order they ran.
    public var lines: [String] {
        var out: [String] = []
        out.append("step \(step) [\(mode.rawValue)]")
        out.append("  prior:     \(priorNodes) nodes predicted")
        if let error = observationError {
            out.append("  observe:   FAILED (\(error)); the prior stands for this step")
        } else if let observed = observedNodes {
            out.append("  observe:   \(observed) nodes from /proc and /sys" + (events.isEmpty ? "" : ", \(events.count) events"))
            for e in events.prefix(8) { out.append("    event:   \(e.source) \(e.action) \(e.subject)") }
        } else {
            out.append("  observe:   skipped (latent: no machine in the loop)")
        }
        if let s = surprise {
            out.append("  posterior: \(posteriorNodes) nodes; prior wrong on \(s.wrongNodes) (missing \(s.missing), unexpected \(s.unexpected), changed \(s.changed))")
        } else {
            out.append("  posterior: \(posteriorNodes) nodes (prior taken as is)")
        }
        out.append("  render:    frame \(frameHash.prefix(12))" + (framePNG.map { " -> \($0)" } ?? " (unchanged, not rewritten)"))
        guard let context, let outcome else {
            out.append("  schedule:  no context ready")
            out.append("  fold:      \(nextNodes) nodes")
            return out
        }
        out.append("  schedule:  \(context) (task \(outcome.proposal.task))")
        for s in outcome.steps {
            let call = s.call.map(\.description) ?? s.step.description
            let decision = s.decision.map { " guard: \($0)" } ?? ""
            let result: String = switch s.status {
            case .performed(let r): "-> \(r)" + (s.predicted.map { " (predicted \($0))" } ?? "")
            case .denied: "-> NOT RUN"
            case .skipped(let why): "skipped: \(why)"
            case .invalid(let why): "invalid: \(why)"
            }
            out.append("  act [\(s.index)]:   \(call)\(decision) \(result)")
        }
        if mode == .filtered { out.append("  gap:       \(outcome.predictionMisses) of \(outcome.steps.count) returns mispredicted") }
        out.append("  fold:      \(nextNodes) nodes")
        return out
    }
}

/// The supervisor loop: one macro step is
/// prior → posterior → render → schedule → guard → execute → fold the outcome into memory.
public struct SupervisorLoop {
    public let mode: Mode
    public let clock: any WorldClock
    public var observer: any Observing
    public var estimator: any Estimating
    public var renderer: any Rendering
    public var frameSink: any FrameSink
    public var scheduler: any Scheduling
    public var proposer: any Proposing
    public var policyGuard: any Guarding
    public var executor: any Executing
    /// The host adapter: real syscalls. Never called in latent mode.
    public var host: any Effecting
    /// The outcome predictor: stands in for the host in latent mode, shadows it in filtered mode.
    public var predictor: any Effecting
    public var recorder: any Recording
    /// The state after the last step: what the next prior predicts from.
    public private(set) var memory: Graph
    public private(set) var stepCount = 0
    /// The last frame's semantics tree, which the next transition records changes against.
    public private(set) var lastSemantics: [Frame.Semantic] = []
    /// The last posterior, the observation it integrated and what the fold changed since: what
    /// the next prior is made from (see ``PriorBasis``).
    private var basis: PriorBasis?
    /// The last step's action (nil: none), which a dynamics model's expectation follows.
    private var lastOutcome: ActionOutcome?
    /// What memory holds while an estimator owns the prior (see ``Estimating/ownsPrior``).
    private static let placeholder = Graph()

    public init(mode: Mode, clock: any WorldClock, initial: Graph, observer: any Observing, estimator: any Estimating,
                renderer: any Rendering, frameSink: any FrameSink, scheduler: any Scheduling, proposer: any Proposing,
                policyGuard: any Guarding, executor: any Executing, host: any Effecting, predictor: any Effecting,
                recorder: any Recording) {
        self.mode = mode
        self.clock = clock
        self.memory = initial
        self.observer = observer
        self.estimator = estimator
        self.renderer = renderer
        self.frameSink = frameSink
        self.scheduler = scheduler
        self.proposer = proposer
        self.policyGuard = policyGuard
        self.executor = executor
        self.host = host
        self.predictor = predictor
        self.recorder = recorder
    }

    /// Complete what the frame sink and the recorder are writing: the supervisor is stopping.
    /// Both are completed; the first failure is thrown.
    public mutating func finish() throws {
        var failure: (any Error)?
        do { try frameSink.finish() } catch { failure = error }
        do { try recorder.finish() } catch { failure = failure ?? error }
        if let failure { throw failure }
    }

    /// Run one macro step. Throws only when the trace cannot be written; a failed observation
    /// is reported and the step goes on from the prior.
    @discardableResult
    public mutating func step() throws -> StepReport {
        let index = stepCount
        let now = clock.now()
        // Held as an optional so it can be handed over (moved, not copied) to the estimator.
        var prior: Prior? = estimator.prior(from: memory, step: index, at: now)
        if var basis, let predicted = prior!.graph.changed(since: memory) {
            basis.add(predicted, from: memory)
            prior!.basis = basis
        }
        let priorNodes = prior!.graph.nodeCount
        // What the estimator predicted would change (memory → prior).
        let priorDelta = memory.diff(to: prior!.graph)

        var observation: Observation?
        var observationError: String?
        if mode != .latent {
            do { observation = try observer.observe(at: now) } catch { observationError = "\(error)" }
        }
        // An estimator that owns the prior makes the posterior by editing the prior's graph in
        // place: memory lets go of it meanwhile, or the first edit would copy every node.
        let releasing = estimator.ownsPrior && priorDelta.isEmpty
        if releasing { memory = Self.placeholder }
        var posterior: Posterior
        do {
            posterior = try estimator.posterior(from: prior.take()!, observation: observation, at: now)
        } catch let failure as PosteriorFailure {
            memory = failure.prior
            throw failure.underlying
        }
        // What this step's observation changed (memory → posterior). When the prior predicted no
        // change, it is what the estimator applied: no second diff of the whole graph.
        let observationDelta = priorDelta.isEmpty ? posterior.change ?? memory.diff(to: posterior.graph) : memory.diff(to: posterior.graph)
        // Filtered, with a learned dynamics model: that change against what the machine usually
        // does after the step before's action.
        if mode == .filtered, observation != nil, let dynamics = predictor as? any Anticipating, posterior.surprise != nil {
            posterior.surprise?.learned = dynamics.surprise(of: observationDelta, after: lastOutcome)
        }

        let frame = renderer.render(posterior, at: now)
        let png = try frameSink.emit(frame)

        var outcome: ActionOutcome?
        // The guard looks every step, whether or not a context acts: its safety checks run on
        // every observation.
        policyGuard.look(at: posterior, now: now)
        let chosen = scheduler.pick(from: posterior, at: now)
        if let chosen, let contextNode = posterior.graph[.context(chosen)],
           let proposal = proposer.propose(for: chosen, posterior: posterior, at: now) {
            let held = holdings(of: chosen, in: posterior.graph)
            let shadow: (any Effecting)? = mode == .filtered ? predictor : nil
            if mode == .latent {
                outcome = executor.execute(proposal, context: contextNode, held: held, guard: &policyGuard,
                                           effector: &predictor, shadow: nil, at: now)
            } else {
                outcome = executor.execute(proposal, context: contextNode, held: held, guard: &policyGuard,
                                           effector: &host, shadow: shadow, at: now)
            }
        }

        var next = estimator.fold(outcome, into: posterior, at: now)
        describeNodes(in: &next)
        let (seenBefore, seenNow) = (Set(lastSemantics), Set(frame.semantics))
        let appeared = frame.semantics.filter { !seenBefore.contains($0) }, went = lastSemantics.filter { !seenNow.contains($0) }
        lastSemantics = frame.semantics
        let delta = posterior.graph.diff(to: next)
        try recorder.record(Transition(
            step: index, mode: mode, time: now, observedNodes: observation?.nodeCount, racedEntries: observation?.raced,
            surprise: posterior.surprise, frameHash: frame.hash, framePNG: png, stateDelta: delta,
            context: outcome == nil ? nil : chosen, outcome: outcome, nodeCount: next.nodeCount,
            events: observation?.events ?? [], priorDelta: priorDelta, observationDelta: observationDelta,
            supervisor: posterior.supervisor, picked: chosen,
            semanticsAdded: appeared.isEmpty ? nil : appeared, semanticsRemoved: went.isEmpty ? nil : went))
        memory = next
        lastOutcome = outcome
        basis = posterior.integrated.flatMap { stamp in
            next.changed(since: posterior.graph).map { PriorBasis(integrated: stamp, edited: $0, in: posterior.graph) }
        }
        stepCount += 1
        return StepReport(step: index, mode: mode, priorNodes: priorNodes, observedNodes: observation?.nodeCount,
                          observationError: observationError, events: observation?.events ?? [], surprise: posterior.surprise,
                          posteriorNodes: posterior.graph.nodeCount, frameHash: frame.hash, framePNG: png,
                          context: outcome == nil ? nil : chosen, outcome: outcome, nextNodes: next.nodeCount)
    }
}

extension SupervisorLoop {
    /// What the scheduler and the proposer keep about nodes, onto them.
    func describeNodes(in graph: inout Graph) {
        var merged: [NodeID: Attributes] = [:]
        for stage in [scheduler as Any, proposer as Any] {
            guard let describing = stage as? any DescribingNodes else { continue }
            for (id, attributes) in describing.nodeAttributes() {
                for (key, value) in attributes { merged[id, default: Attributes()][key] = value }
            }
        }
        var delta = GraphDelta()
        for (id, attributes) in merged.sorted(by: { $0.key < $1.key }) {
            guard var node = graph[id] else { continue }
            let before = node
            for (key, value) in attributes { node[key] = value }
            if node != before { delta.append(.updateNode(node)) }
        }
        // Only the nodes' attributes change: this cannot fail.
        try? graph.apply(delta)
    }
}

/// What a context holds, from the graph: its descriptor nodes, the processes it is parent of,
/// and the mappings its node lists.
public func holdings(of context: String, in graph: Graph) -> Holdings {
    let id = NodeID.context(context)
    let descriptors = Set(graph.members(of: .context(context)).filter { $0.kind == .fileDescriptor }.compactMap { $0["fd"]?.intValue })
    let processes = Set(graph.edges(from: id).filter { $0.kind == .parentOf }.compactMap { graph[$0.to]?["pid"]?.intValue })
    let mappings = Set((graph[id]?["mappings"]?.stringValue ?? "").split(separator: ",").compactMap { Int64($0) })
    return Holdings(descriptors: descriptors, processes: processes, mappings: mappings)
}
