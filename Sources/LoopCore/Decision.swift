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
    /// A learned predictor's probability of the return that happened (filtered mode) or of the
    /// return it dreamed (latent mode); nil without one.
    public var probability: Double?

    public init(index: Int, step: MicroStep, call: ResolvedCall?, decision: Decision?, status: Status, predicted: CallResult? = nil,
                probability: Double? = nil) {
        self.index = index
        self.step = step
        self.call = call
        self.decision = decision
        self.status = status
        self.predicted = predicted
        self.probability = probability
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
    /// Steps whose predicted return is of another class than the real one (filtered mode; see
    /// ``outcomeClass(_:_:)``): a predictor is not expected to know descriptor numbers or file contents.
    public var predictionMisses: Int {
        steps.filter { s in
            guard let predicted = s.predicted, let real = s.result, let call = s.call else { return false }
            return outcomeClass(call, predicted) != outcomeClass(call, real)
        }.count
    }
}

/// What a micro-step returned, as a class: the value class (`ok`, or the errno by name), with
/// the byte count as a bucket against what was asked (`ok:full`, `ok:short`, `ok:eof`), a
/// device's reply class (`scpi-ok`, `scpi-error`; a reply that never came is the host's
/// `EIO`), and a reaped child's exit (`ok:exit=1`). What the outcome predictor predicts.
public func outcomeClass(_ call: ResolvedCall, _ result: CallResult) -> String {
    guard case .value(let value, let data, let fields) = result else {
        if case .failure(let e) = result { return errnoName(e) }
        return "ok"
    }
    switch call.op {
    case .act:
        return fields["scpi-error"] != nil ? "scpi-error" : "scpi-ok"
    case .read, .pread, .recvfrom:
        let got = Int64(data?.count ?? Int(max(value, 0)))
        return got == 0 ? "ok:eof" : got >= (call.int(.count) ?? 0) ? "ok:full" : "ok:short"
    case .write, .pwrite, .sendto:
        let asked = Int64(call.string(.data)?.utf8.count ?? 0)
        return value >= asked ? "ok:full" : value == 0 ? "ok:none" : "ok:short"
    case .usbTransfer:
        let asked = call.int(.length) ?? Int64((call.string(.data)?.count ?? 0) / 2)
        return value == 0 ? "ok:none" : value >= asked ? "ok:full" : "ok:short"
    case .waitpid:
        if let code = fields["exit-code"] { return "ok:exit=\(code)" }
        if let signal = fields["signal"] { return "ok:signal=\(signal)" }
        return value == 0 ? "ok:running" : "ok"
    case .gpioGet:
        return "ok:=\(value)"
    case .poll:
        return value == 0 ? "ok:timeout" : "ok:ready"
    default:
        return "ok"
    }
}

/// The values a predictor makes up for returns no machine gave: descriptors from 1000, processes
/// from 100000, mappings from 1, so none can be mistaken for a real one of this process.
public struct SyntheticValues: Sendable {
    private var nextFD: Int64 = 1000
    private var nextPID: Int64 = 100_000
    private var nextMap: Int64 = 1
    public init() {}

    public mutating func process() -> Int64 { defer { nextPID += 1 }; return nextPID }
    public mutating func mapping() -> Int64 { defer { nextMap += 1 }; return nextMap }

    /// What an operation that makes descriptors returns (a pipe: its write end in `write-fd`);
    /// nil for any other.
    public mutating func descriptors(for op: MicroOp) -> CallResult? {
        func next() -> Int64 { defer { nextFD += 1 }; return nextFD }
        switch op {
        case .open, .openat, .socket, .accept, .timer, .inotify: return .value(next())
        case .pipe:
            let read = next()
            return .value(read, fields: ["write-fd": next()])
        default: return nil
        }
    }
}
