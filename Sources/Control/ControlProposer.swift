import Guard
import LoopCore
import StateGraph

/// Proposes each controller context's step: while no setpoint is in force, the controller asks
/// for its bench's first setpoint (an action like any other, which waits for an approval when it
/// raises); with one, it reads its input off the posterior, runs its law and writes its
/// actuator — one `act` micro-step the guard decides against the envelope, as every write.
public struct ControlProposer: DescribingNodes {
    public let board: ControlBoard
    private let specs: [String: ControllerSpec]
    private var laws: [String: ControlLaw]
    private var lastStep: [String: Instant] = [:]
    private var lastAsked: [String: Instant] = [:]
    /// The setpoint each law last followed: a new one, or none, starts the law afresh.
    private var followed: [String: Double] = [:]
    private var shown: [String: Attributes] = [:]
    /// How often a controller asks again for its first setpoint while it waits for an approval.
    public static let askAgain = Duration.seconds(2)

    /// `specs` by the context each runs as.
    public init(specs: [String: ControllerSpec], board: ControlBoard) {
        self.specs = specs
        self.board = board
        laws = specs.mapValues(\.law)
    }

    public func controls(_ context: String) -> Bool { specs[context] != nil }

    public mutating func propose(for context: String, posterior: Posterior, at now: Instant) -> Proposal? {
        guard let spec = specs[context] else { return nil }
        let envelope = spec.envelope
        let reading = envelope.reading(in: posterior.graph)
        var shows: Attributes = ["controller": .string("\(spec.name) (\(spec.law.kind))")]
        if let reading { shows["reading"] = .double(reading) }
        defer { shown[context] = shows }
        guard let setpoint = board.setpoint(of: spec.name) else {
            laws[context]?.reset()
            followed[context] = nil
            lastStep[context] = nil
            shows["setpoint"] = .string("none in force")
            guard let initial = spec.initialSetpoint else { return nil }
            if let asked = lastAsked[context], now.duration(since: asked) < Self.askAgain { return nil }
            lastAsked[context] = now
            return Proposal(context: context, task: "setpoint", steps: [
                MicroStep(.act, ["device": .string(envelope.deviceName), "action": .string(envelope.setpointAction),
                                 "params": .string("value=\(PolicyGuard.spell(initial))")]),
            ])
        }
        shows["setpoint"] = .double(setpoint.value)
        if followed[context] != setpoint.value {
            if followed[context] != nil { laws[context]?.reset() }
            followed[context] = setpoint.value
        }
        // No reading, no write: the guard's stale check decides what that means.
        guard let reading else { return nil }
        let dt = lastStep[context].map { now.duration(since: $0) / .seconds(1) }
        lastStep[context] = now
        var value = laws[context]!.output(reading: reading, setpoint: setpoint.value, dt: dt)
        if spec.wholeOutput { value = value.rounded() }
        value = min(max(value, spec.outputRange.lowerBound), spec.outputRange.upperBound)
        shows["output"] = .double(value)
        return Proposal(context: context, task: "control", steps: [
            MicroStep(.act, ["device": .string(envelope.device), "action": .string(envelope.action),
                             "params": .string("\(envelope.parameter)=\(PolicyGuard.spell(value))")]),
        ])
    }

    /// The attributes it keeps on its contexts' nodes (a replay serves them from the recording).
    public static let describedKeys: Set<String> = ["controller", "setpoint", "reading", "output"]

    public func nodeAttributes() -> [NodeID: Attributes] { Dictionary(uniqueKeysWithValues: shown.map { (NodeID.context($0.key), $0.value) }) }
}
