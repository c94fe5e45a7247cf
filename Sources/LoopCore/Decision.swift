/// The guard's verdict on one resolved micro-step: one of four.
public enum Decision: Hashable, Codable, Sendable, CustomStringConvertible {
    case allow(rule: String)
    /// Refused by a rule (a policy line, default-deny, capability, path normalization).
    case deny(rule: String, reason: String)
    /// Irreversible: it waits for an approval bound to exactly this action, target, parameters
    /// and context (`request` names the pending approval).
    case needsApproval(request: String, reason: String)
    /// The guard cannot tell what this would touch (ambiguous or changed identity, stale
    /// observation, too much surprise): it refuses rather than guesses.
    case refuseUncertain(reason: String)

    public var isAllowed: Bool { if case .allow = self { true } else { false } }

    /// The verdict's name, as the audit log records it.
    public var verdict: String {
        switch self {
        case .allow: "allow"
        case .deny: "deny"
        case .needsApproval: "needs-approval"
        case .refuseUncertain: "refuse-uncertain"
        }
    }

    /// The rule (or approval request) it cites, and why — for logs and panels.
    public var rule: String {
        switch self {
        case .allow(let rule), .deny(let rule, _): rule
        case .needsApproval(let request, _): "approval \(request)"
        case .refuseUncertain: "refuse-uncertain"
        }
    }

    public var reason: String? {
        switch self {
        case .allow: nil
        case .deny(_, let reason), .needsApproval(_, let reason), .refuseUncertain(let reason): reason
        }
    }

    public var description: String { "\(verdict) (\(rule))" + (reason.map { ": \($0)" } ?? "") }
}

/// What happened to one micro-step of a trace.
public struct StepOutcome: Hashable, Codable, Sendable {
    public enum Status: Hashable, Codable, Sendable {
        /// Performed (really, or predicted in latent mode).
        case performed(CallResult)
        /// The guard refused it; nothing reached the host.
        case denied
        /// Not attempted: an earlier step it depends on failed or was denied.
        case skipped(reason: String)
        /// Its arguments could not be resolved (a reference to a later step, a type mismatch).
        case invalid(reason: String)
    }
    public var index: Int
    public var step: MicroStep
    public var call: ResolvedCall?
    public var decision: Decision?
    public var status: Status
    /// In filtered mode: what the outcome predictor expected, to compare with what happened.
    public var predicted: CallResult?

    public init(index: Int, step: MicroStep, call: ResolvedCall?, decision: Decision?, status: Status, predicted: CallResult? = nil) {
        self.index = index
        self.step = step
        self.call = call
        self.decision = decision
        self.status = status
        self.predicted = predicted
    }

    public var result: CallResult? { if case .performed(let r) = status { r } else { nil } }
}

/// The outcome of one quantum: the proposal and what became of each of its steps.
public struct ActionOutcome: Hashable, Codable, Sendable {
    public var proposal: Proposal
    public var steps: [StepOutcome]
    public init(proposal: Proposal, steps: [StepOutcome]) {
        self.proposal = proposal
        self.steps = steps
    }
    public var deniedCount: Int { steps.filter { $0.status == .denied }.count }
    /// Steps whose predicted return differed from the real one (filtered mode).
    public var predictionMisses: Int {
        steps.filter { s in s.predicted != nil && s.result != nil && !sameShape(s.predicted!, s.result!) }.count
    }
}

/// Two returns agree when both succeeded with the same value, or both failed with the same errno.
/// Side data is compared by length only: a predictor is not expected to know file contents.
public func sameShape(_ a: CallResult, _ b: CallResult) -> Bool {
    switch (a, b) {
    case (.value(let x, let dx, _), .value(let y, let dy, _)): x == y && dx?.count == dy?.count
    case (.failure(let x), .failure(let y)): x == y
    default: false
    }
}
