@_exported import Digest
import StateGraph

/// The three modes of one loop (DESIGN.md).
public enum Mode: String, Codable, CaseIterable, Sendable {
    /// Observations and outcomes come from the machine.
    case real
    /// As real, and each step also predicts every return and reports the gap (the learning signal).
    case filtered
    /// Dreaming: no observer, no host calls; outcomes come from the predictor. Never a real result.
    case latent
}

/// Something that happened asynchronously: a kernel uevent, a device node appearing, a process
/// exiting, a signal. It becomes a pending-event node in the step that observed it.
public struct ObservedEvent: Hashable, Codable, Sendable {
    /// uevent, device-node, process, signal.
    public var source: String
    /// add, remove, bind, exit, create, delete, SIGHUP, ...
    public var action: String
    /// What it happened to: a devpath, a /dev name, a pid, a signal number.
    public var subject: String
    public var time: Instant
    public var details: [String: String]

    public init(source: String, action: String, subject: String, time: Instant, details: [String: String] = [:]) {
        self.source = source
        self.action = action
        self.subject = subject
        self.time = time
        self.details = details
    }
}

/// One observation bundle: what the observer saw of the kernel partition at `time`.
public struct Observation: Sendable {
    public var time: Instant
    /// The node kinds this observation covers completely: in the posterior, the kernel
    /// partition's nodes of these kinds are exactly the observed ones.
    public var scope: Set<NodeKind>
    /// The nodes, as the observers gave them: one list per observer, so a bundle of a large
    /// list and a few small ones copies none of them. `nodes` joins them.
    public var nodeParts: [[Node]]
    public var edgeParts: [[Edge]]
    public var nodes: [Node] {
        get { nodeParts.count == 1 ? nodeParts[0] : Array(nodeParts.joined()) }
        set { nodeParts = [newValue] }
    }
    public var edges: [Edge] {
        get { edgeParts.count == 1 ? edgeParts[0] : Array(edgeParts.joined()) }
        set { edgeParts = [newValue] }
    }
    public var nodeCount: Int { nodeParts.reduce(0) { $0 + $1.count } }
    /// The supervisor's own process, so its contexts' descriptors can be checked against it.
    public var supervisor: NodeID?
    /// Entries that vanished or could not be read mid-observation (a process that exited
    /// between readdir and read). Normal on a live machine; counted, never fatal.
    public var raced: Int
    /// Asynchronous events that arrived since the last observation, in arrival order.
    public var events: [ObservedEvent]
    /// Which observation this is, when its observer numbers them (see ``change``).
    public var stamp: ObservationStamp?
    /// What differs from the same observer's observation `change.since`, when the observer
    /// can tell: with it, an estimator that integrated that observation looks only here.
    public var change: ObservationChange?

    public init(time: Instant, scope: Set<NodeKind>, nodes: [Node], edges: [Edge], supervisor: NodeID?, raced: Int = 0,
                events: [ObservedEvent] = [], stamp: ObservationStamp? = nil, change: ObservationChange? = nil) {
        self.time = time
        self.scope = scope
        nodeParts = [nodes]
        edgeParts = [edges]
        self.supervisor = supervisor
        self.raced = raced
        self.events = events
        self.stamp = stamp
        self.change = change
    }
}

/// An observation's identity: its observer (a number drawn when the observer was made) and
/// its place in that observer's sequence.
public struct ObservationStamp: Hashable, Sendable {
    public var observer: UInt64
    public var sequence: UInt64
    public init(observer: UInt64, sequence: UInt64) {
        self.observer = observer
        self.sequence = sequence
    }
    /// A new observer's number.
    public static func newObserver() -> UInt64 { UInt64.random(in: 1...UInt64.max) }
}

/// What one observation's nodes and edges differ by from an earlier one of the same observer:
/// nodes that appeared or changed (as they are now; possibly some unchanged among them), nodes
/// that went, edges that appeared and edges that went. Applied to the earlier observation's
/// nodes and edges it gives this one's (no identity is both removed and given).
public struct ObservationChange: Sendable {
    public var since: ObservationStamp
    public var nodes: [Node]
    public var removed: [NodeID]
    public var addedEdges: [Edge]
    public var removedEdges: [Edge]
    public init(since: ObservationStamp, nodes: [Node] = [], removed: [NodeID] = [], addedEdges: [Edge] = [], removedEdges: [Edge] = []) {
        self.since = since
        self.nodes = nodes
        self.removed = removed
        self.addedEdges = addedEdges
        self.removedEdges = removedEdges
    }
    public var isEmpty: Bool { nodes.isEmpty && removed.isEmpty && addedEdges.isEmpty && removedEdges.isEmpty }

    /// The change between two observations' nodes and edges, found by comparing them whole:
    /// for an observer of a few hundred nodes that keeps no record of what it changed.
    public static func between(_ old: (nodes: [Node], edges: [Edge]), _ new: (nodes: [Node], edges: [Edge]), since: ObservationStamp) -> ObservationChange {
        var before = [NodeID: Node](minimumCapacity: old.nodes.count)
        for n in old.nodes { before[n.id] = n }
        var change = ObservationChange(since: since)
        var seen = Set<NodeID>(minimumCapacity: new.nodes.count)
        for n in new.nodes {
            seen.insert(n.id)
            if before[n.id] != n { change.nodes.append(n) }
        }
        change.removed = old.nodes.map(\.id).filter { !seen.contains($0) }
        let (was, now) = (Set(old.edges), Set(new.edges))
        change.addedEdges = new.edges.filter { !was.contains($0) }
        change.removedEdges = old.edges.filter { !now.contains($0) }
        return change
    }
}

/// How far the prior was from the posterior, over the observed scope.
public struct Surprise: Hashable, Codable, Sendable {
    /// In the prior, not observed.
    public var missing: Int
    /// Observed, not in the prior.
    public var unexpected: Int
    /// In both, but with different contents.
    public var changed: Int
    /// Against a learned model of what the machine usually does after such a step (filtered
    /// mode with a model): nil without one.
    public var learned: LearnedSurprise?
    public init(missing: Int = 0, unexpected: Int = 0, changed: Int = 0, learned: LearnedSurprise? = nil) {
        self.missing = missing
        self.unexpected = unexpected
        self.changed = changed
        self.learned = learned
    }
    /// How many nodes the prior got wrong.
    public var wrongNodes: Int { missing + unexpected + changed }
}

/// How far what an observation changed was from what a learned dynamics model expected after
/// the step before: the information (bits) of the change under the model, and the kinds of
/// change it gave little chance that happened, or a good chance that did not.
public struct LearnedSurprise: Hashable, Codable, Sendable {
    public var bits: Double
    /// `+process` (nodes of a kind added), `-fd` (removed), `~sensor/heater-temperature`
    /// (changed), `+edge:owns`: each with the probability the model gave it happening.
    public var unexpected: [String: Double]
    public var missing: [String: Double]
    /// The context whose action the expectation followed (nil: no action the step before).
    public var after: String?
    public init(bits: Double, unexpected: [String: Double] = [:], missing: [String: Double] = [:], after: String? = nil) {
        (self.bits, self.unexpected, self.missing, self.after) = (bits, unexpected, missing, after)
    }
}

/// The prediction of the graph before this step's observation.
public struct Prior: Sendable {
    public var step: Int
    public var graph: Graph
    /// What the prior was made from, when the loop knows: the last posterior, the observation
    /// it integrated, and what changed since (the fold, the prior's prediction). An estimator
    /// given an observation's change since that one looks only at those and the change.
    public var basis: PriorBasis?
    public init(step: Int, graph: Graph, basis: PriorBasis? = nil) {
        self.step = step
        self.graph = graph
        self.basis = basis
    }
}

/// The posterior a prior came from, as far as what has been done to it since: which
/// identities were edited, and what the posterior held for them.
public struct PriorBasis: Sendable {
    /// The observation the posterior integrated: its observed scope is exactly that one's.
    public var integrated: ObservationStamp
    /// Identities whose node or outgoing edges changed between the posterior and the prior.
    public var edited: Set<NodeID>
    /// The posterior's nodes and outgoing edges of the edited identities (absent: none).
    public var was: [NodeID: Node]
    public var wasEdges: [NodeID: [Edge]]
    public init(integrated: ObservationStamp, edited: Set<NodeID>, in posterior: Graph) {
        self.integrated = integrated
        self.edited = []
        was = [:]
        wasEdges = [:]
        add(edited, from: posterior)
    }

    /// More identities edited since, as they were then (in the graph they were edited from).
    public mutating func add(_ more: Set<NodeID>, from graph: Graph) {
        for id in more where edited.insert(id).inserted {
            was[id] = graph[id]
            let edges = graph.edges(from: id)
            if !edges.isEmpty { wasEdges[id] = edges }
        }
    }
}

/// A posterior that could not be made, and the prior's graph, unchanged, handed back by an
/// estimator that owned it.
public struct PosteriorFailure: Error, CustomStringConvertible {
    public var prior: Graph
    public var underlying: any Error
    public init(prior: Graph, underlying: any Error) {
        self.prior = prior
        self.underlying = underlying
    }
    public var description: String { "\(underlying)" }
}

/// The corrected state of step `step`: the only thing the renderer, scheduler and guard see.
public struct Posterior: Sendable {
    public var step: Int
    public var graph: Graph
    /// nil in latent mode, where there is nothing to be surprised by.
    public var surprise: Surprise?
    public var observedAt: Instant?
    /// The supervisor's own process node, when it was observed.
    public var supervisor: NodeID?
    /// The delta the estimator applied to the prior's graph, as a diff gives it (nil: the loop
    /// diffs the two graphs itself).
    public var change: GraphDelta?
    /// The observation this posterior's observed scope now equals, if it was stamped.
    public var integrated: ObservationStamp?
    public init(step: Int, graph: Graph, surprise: Surprise?, observedAt: Instant?, supervisor: NodeID? = nil,
                change: GraphDelta? = nil, integrated: ObservationStamp? = nil) {
        self.step = step
        self.graph = graph
        self.surprise = surprise
        self.observedAt = observedAt
        self.supervisor = supervisor
        self.change = change
        self.integrated = integrated
    }
}

/// A rectangle of pixels: `x, y` its top-left corner.
public struct PixelRect: Hashable, Codable, Sendable, CustomStringConvertible {
    public var x: Int, y: Int, width: Int, height: Int
    public init(x: Int, y: Int, width: Int, height: Int) {
        (self.x, self.y, self.width, self.height) = (x, y, width, height)
    }
    public var isEmpty: Bool { width <= 0 || height <= 0 }
    public var area: Int { isEmpty ? 0 : width * height }
    public var maxX: Int { x + width }
    public var maxY: Int { y + height }
    public func contains(x px: Int, y py: Int) -> Bool { px >= x && px < maxX && py >= y && py < maxY }
    public func intersection(_ o: PixelRect) -> PixelRect {
        let x0 = max(x, o.x), y0 = max(y, o.y)
        return PixelRect(x: x0, y: y0, width: max(0, min(maxX, o.maxX) - x0), height: max(0, min(maxY, o.maxY) - y0))
    }
    public func intersects(_ o: PixelRect) -> Bool { !intersection(o).isEmpty }
    public func union(_ o: PixelRect) -> PixelRect {
        if isEmpty { return o }
        if o.isEmpty { return self }
        let x0 = min(x, o.x), y0 = min(y, o.y)
        return PixelRect(x: x0, y: y0, width: max(maxX, o.maxX) - x0, height: max(maxY, o.maxY) - y0)
    }
    public var description: String { "\(width)x\(height)+\(x)+\(y)" }
}

/// A rendered panel: XRGB8888 pixels and the semantics tree beside them.
public struct Frame: Sendable {
    /// One element of the panel as a person or a program sees it: what it is (`role`), what it
    /// says (`label`, and `value` where it shows one), the node it stands for, where it is, and —
    /// for what can be pressed — its `actions` and, when the viewer may not take them, why
    /// (`disabled`, naming the rule). Input is hit-tested against these, not against pixels.
    public struct Semantic: Hashable, Codable, Sendable {
        public var role: String
        public var label: String
        public var node: NodeID?
        public var x: Int, y: Int, width: Int, height: Int
        public var value: String?
        public var actions: [String]?
        /// Why the actions cannot be taken now (nil: they can).
        public var disabled: String?
        public init(role: String, label: String, node: NodeID?, x: Int, y: Int, width: Int, height: Int,
                    value: String? = nil, actions: [String]? = nil, disabled: String? = nil) {
            self.role = role
            self.label = label
            self.node = node
            self.x = x
            self.y = y
            self.width = width
            self.height = height
            self.value = value
            self.actions = actions
            self.disabled = disabled
        }
        public var bounds: PixelRect { PixelRect(x: x, y: y, width: width, height: height) }
        public var enabled: Bool { disabled == nil }
    }
    public let width: Int
    public let height: Int
    /// Row-major, 0x00RRGGBB (little-endian in memory, as XRGB8888 scanout expects).
    public let pixels: [UInt32]
    public let semantics: [Semantic]
    /// The step of the posterior this frame was drawn from.
    public let step: Int
    /// The frame's identity, computed once: SHA-256 of what drew it (its renderer's draw list,
    /// where there is one — equal draw lists draw equal pixels, and a few kilobytes are hashed
    /// instead of megabytes each step), else of the pixels as little-endian bytes.
    public let hash: String
    /// What changed since the renderer's previous frame (nil: take it all): a screen that holds
    /// the previous frame copies only these.
    public let damage: [PixelRect]?

    public init(width: Int, height: Int, pixels: [UInt32], semantics: [Semantic], step: Int, drawList: [UInt8]? = nil,
                damage: [PixelRect]? = nil) {
        self.width = width
        self.height = height
        self.pixels = pixels
        self.semantics = semantics
        self.step = step
        self.damage = damage
        hash = drawList.map { SHA256.hex($0) } ?? pixels.withUnsafeBytes { SHA256.hex(UnsafeRawBufferPointer($0).bindMemory(to: UInt8.self)) }
    }
}

// MARK: The stages. Each has one real implementation and one test twin.

extension Estimating {
    public var ownsPrior: Bool { false }
}

/// Turns the machine into an observation bundle.
public protocol Observing {
    mutating func observe(at now: Instant) throws -> Observation
}

/// Predicts (prior), corrects from observation (posterior), and folds outcomes into memory.
public protocol Estimating {
    func prior(from memory: Graph, step: Int, at now: Instant) -> Prior
    /// With an observation: correct the prior from it. Without (latent mode): the prior stands.
    func posterior(from prior: consuming Prior, observation: Observation?, at now: Instant) throws -> Posterior
    /// Whether the posterior is the prior's graph edited in place, when the caller lets go of
    /// it (the loop then holds no other copy of its memory while the posterior is made). Such
    /// an estimator always sets the posterior's `change`, and on failure throws
    /// ``PosteriorFailure`` with the prior's graph unchanged.
    var ownsPrior: Bool { get }
    /// The state after this step's action: the posterior with the outcome's effects applied.
    func fold(_ outcome: ActionOutcome?, into posterior: Posterior, at now: Instant) -> Graph
}

/// Draws the panel from a posterior. Takes a `Posterior`, never a prior or a raw graph.
public protocol Rendering {
    mutating func render(_ posterior: Posterior, at now: Instant) -> Frame
}

/// Picks which execution context gets the next quantum.
public protocol Scheduling {
    mutating func pick(from posterior: Posterior, at now: Instant) -> String?
    /// When the next context is due, if the run loop should wake for it rather than wait out
    /// its own interval (a controller's next release); nil: keep the interval.
    func nextDue() -> Instant?
}

extension Scheduling {
    public func nextDue() -> Instant? { nil }
}

/// Proposes a trace of micro-steps for a context. Learned later; scripted from the bench now.
public protocol Proposing {
    mutating func propose(for context: String, posterior: Posterior, at now: Instant) -> Proposal?
}

/// A stage that keeps something people should see about nodes (a controller's setpoint and
/// output on its context, a period's jitter, the loop's cadence on the kernel root): written
/// onto those nodes after the step, so it is in the graph, the trace and the panel.
public protocol DescribingNodes {
    func nodeAttributes() -> [NodeID: Attributes]
}

/// Decides every resolved micro-step, and audits each decision and each outcome.
public protocol Guarding {
    /// `held` is what this context holds (created earlier in this trace or before).
    mutating func decide(_ call: ResolvedCall, context: Node, held: Holdings, at now: Instant) -> Decision
    /// Record what an allowed call returned.
    mutating func recordOutcome(_ call: ResolvedCall, context: String, result: CallResult, at now: Instant)
    /// The picture this step's decisions rest on, before any of them: when the machine was last
    /// observed and how surprised the estimator was.
    mutating func look(at posterior: Posterior, now: Instant)
    /// A learned predictor gave what an allowed call returned this probability (filtered mode).
    mutating func notePrediction(_ call: ResolvedCall, context: String, result: CallResult, probability: Double, at now: Instant)
}

extension Guarding {
    public mutating func look(at posterior: Posterior, now: Instant) {}
    public mutating func notePrediction(_ call: ResolvedCall, context: String, result: CallResult, probability: Double, at now: Instant) {}
}

/// Performs a resolved call: the host adapter for real, a predictor in latent mode.
public protocol Effecting {
    mutating func perform(_ call: ResolvedCall) -> CallResult
}

/// A learned outcome predictor (the host's stand-in while dreaming, its shadow in filtered
/// mode), told what each proposal is and what each call it predicted returned.
public protocol Predicting: AnyObject, Effecting {
    /// A proposal starts: what its calls are predicted from (its context, no earlier returns).
    func begin(_ proposal: Proposal)
    /// What the call last predicted returned: `real` when the machine returned it (filtered
    /// mode: the model also learns from it), not when it is the model's own dream. Returns the
    /// probability the prediction gave that return.
    func observe(_ result: CallResult, of call: ResolvedCall, real: Bool) -> Double
}

/// A learned model of what an observation changes after a step (the dynamics model).
public protocol Anticipating: AnyObject {
    /// How surprising `observed` (what this step's observation changed against the fold of the
    /// step before) is after `outcome` (the step before's action; nil: none).
    func surprise(of observed: GraphDelta, after outcome: ActionOutcome?) -> LearnedSurprise
}

/// Unrolls a proposal into micro-steps, asking the guard before each one.
public protocol Executing {
    mutating func execute(_ proposal: Proposal, context: Node, held: Holdings, guard: inout any Guarding,
                          effector: inout any Effecting, shadow: (any Effecting)?, at now: Instant) -> ActionOutcome
}

/// Appends aligned transitions to the trace.
public protocol Recording {
    mutating func record(_ transition: Transition) throws
    /// Complete what is being written: the supervisor is stopping.
    mutating func finish() throws
}

extension Recording {
    public mutating func finish() throws {}
}

/// One aligned transition: what was seen, drawn, decided, done and returned, and what the state became.
public struct Transition: Codable, Sendable {
    public var step: Int
    public var mode: Mode
    public var time: Instant
    public var observedNodes: Int?
    public var racedEntries: Int?
    public var surprise: Surprise?
    public var frameHash: String
    public var framePNG: String?
    /// What the state after the action differs by from the posterior it started from.
    public var stateDelta: GraphDelta
    public var context: String?
    public var outcome: ActionOutcome?
    public var nodeCount: Int
    /// Asynchronous events observed at the start of this step.
    public var events: [ObservedEvent]
    /// What the estimator predicted would change since the last step (memory → prior).
    public var priorDelta: GraphDelta?
    /// What this step's observation changed (memory → posterior): with the state delta, the
    /// graph of every step can be rebuilt from the first.
    public var observationDelta: GraphDelta?
    /// The supervisor's own process node in this step's posterior (the panel marks it).
    public var supervisor: NodeID?
    /// The context the scheduler picked, whether or not it proposed anything (`context` is set
    /// only when an action followed).
    public var picked: String?
    /// The panel's semantics tree against the previous frame's: elements that appeared and that
    /// went (nil when none did).
    public var semanticsAdded: [Frame.Semantic]?
    public var semanticsRemoved: [Frame.Semantic]?

    public init(step: Int, mode: Mode, time: Instant, observedNodes: Int?, racedEntries: Int?, surprise: Surprise?,
                frameHash: String, framePNG: String?, stateDelta: GraphDelta, context: String?, outcome: ActionOutcome?, nodeCount: Int,
                events: [ObservedEvent] = [], priorDelta: GraphDelta? = nil, observationDelta: GraphDelta? = nil,
                supervisor: NodeID? = nil, picked: String? = nil, semanticsAdded: [Frame.Semantic]? = nil,
                semanticsRemoved: [Frame.Semantic]? = nil) {
        self.step = step
        self.mode = mode
        self.time = time
        self.observedNodes = observedNodes
        self.racedEntries = racedEntries
        self.surprise = surprise
        self.frameHash = frameHash
        self.framePNG = framePNG
        self.stateDelta = stateDelta
        self.context = context
        self.outcome = outcome
        self.nodeCount = nodeCount
        self.events = events
        self.priorDelta = priorDelta
        self.observationDelta = observationDelta
        self.supervisor = supervisor
        self.picked = picked
        self.semanticsAdded = semanticsAdded
        self.semanticsRemoved = semanticsRemoved
    }
}
