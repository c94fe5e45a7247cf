import LoopCore
import StateGraph

/// The deterministic guard of the walking skeleton: decides each resolved micro-step by the
/// policy, and audits every decision (fsync'd before an allowed call runs) and every outcome.
///
/// Order of checks: the context must have a policy; paths must be absolute and normalized
/// (openat included: the guard does not resolve a path relative to a directory descriptor);
/// a call may use only descriptors, children and mappings the context holds; deny rules, then allow rules;
/// otherwise deny. If the audit log cannot be written, the guard denies: nothing runs unrecorded.
public struct PolicyGuard: Guarding {
    public let policy: Policy
    public let audit: AuditLog
    public let mode: Mode
    /// The risk class of a device action (from the device profiles), or nil if unknown.
    public let risk: @Sendable (_ device: String, _ action: String) -> String?
    /// Set when an audit write failed; reported by the supervisor.
    public private(set) var auditFailure: String?

    public init(policy: Policy, audit: AuditLog, mode: Mode, risk: @escaping @Sendable (String, String) -> String? = { _, _ in nil }) {
        self.policy = policy
        self.audit = audit
        self.mode = mode
        self.risk = risk
    }

    /// The decision alone, without auditing.
    public func evaluate(_ call: ResolvedCall, context: String, held: Holdings) -> Decision {
        guard let rules = policy.contexts[context]?.rules else {
            return .deny(rule: "default-deny", reason: "context \(context) has no policy in \(policy.file)")
        }
        if let path = call.path, normalizedSegments(path) == nil {
            return .deny(rule: "path-normalization", reason: "path \"\(path)\" is not absolute and normalized")
        }
        if let reason = held.refusal(for: call, context: context) {
            return .deny(rule: "capability", reason: reason)
        }
        if call.op == .act, let device = call.args["device"]?.string, let action = call.args["action"]?.string {
            switch risk(device, action) {
            case nil:
                return .deny(rule: "refuse-uncertain", reason: "no attached device \(device) offers \(action); the guard does not guess")
            case "irreversible-physical", "destructive-host":
                return .deny(rule: "approval-required", reason: "\(action) on \(device) is \(risk(device, action)!): it needs an approval bound to this action, target and parameters, and none is given")
            default: break
            }
        }
        for rule in rules where rule.matches(call) {
            switch rule.effect {
            case .deny: return .deny(rule: rule.location, reason: rule.reason ?? "denied by policy")
            case .allow: return .allow(rule: rule.location)
            }
        }
        return .deny(rule: "default-deny", reason: "no rule of context \(context) allows \(call.op.rawValue)"
                     + (call.path.map { " of \($0)" } ?? ""))
    }

    public mutating func decide(_ call: ResolvedCall, context: Node, held: Holdings, at now: Instant) -> Decision {
        guard case .context(let name) = context.partition else {
            return .deny(rule: "default-deny", reason: "\(context.id) is not an execution context")
        }
        let decision = evaluate(call, context: name, held: held)
        let (verdict, rule, reason): (String, String, String?) = switch decision {
        case .allow(let rule): ("allow", rule, nil)
        case .deny(let rule, let reason): ("deny", rule, reason)
        }
        do {
            try audit.append(AuditRecord(time: now.nanoseconds, policy: policy.contentHash, event: "decision",
                                         mode: mode.rawValue, context: name, call: call.description, decision: verdict,
                                         rule: rule, reason: reason))
        } catch {
            auditFailure = "\(error)"
            return .deny(rule: "audit", reason: "the audit log cannot be written (\(error)); refusing")
        }
        return decision
    }

    public mutating func recordOutcome(_ call: ResolvedCall, context: String, result: CallResult, at now: Instant) {
        do {
            try audit.append(AuditRecord(time: now.nanoseconds, policy: policy.contentHash, event: "outcome",
                                         mode: mode.rawValue, context: context, call: call.description, result: result.description))
        } catch {
            auditFailure = "\(error)"
        }
    }
}
