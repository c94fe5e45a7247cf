import Foundation
import LoopCore
import StateGraph

/// One action a plan could take, exactly: the device as the plan names it, the profile action,
/// and its parameters with numbers in the guard's one spelling.
public struct PlanCall: Hashable, Sendable, CustomStringConvertible {
    public var device: String
    public var action: String
    public var params: [String: String]

    public init(device: String, action: String, params: [String: String]) {
        (self.device, self.action) = (device, action)
        self.params = params.mapValues { Double($0).map(PolicyGuard.spell) ?? $0 }
    }

    /// `params` as an act step carries them: `key=value,…`, sorted.
    public var paramText: String { params.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",") }
    public var description: String { "\(action)" + (params.isEmpty ? "" : " \(paramText)") + " on \(device)" }

    /// The act micro-step that takes it.
    public var step: MicroStep {
        MicroStep(.act, ["device": .string(device), "action": .string(action), "params": .string(paramText)])
    }
}

/// What the guard is shown of a plan before it starts: its name and content hash, every action
/// it could take (its sets, every point of its scans, its cleanup), and those actions' ranges
/// as a person reads them (`psu.set_voltage on bench-bridge` → `volts 0…5, 11 values`).
public struct PlanSummary: Sendable, Equatable {
    public var name: String
    public var hash: String
    public var calls: [PlanCall]
    public var ranges: [String: String]
    public init(name: String, hash: String, calls: [PlanCall], ranges: [String: String]) {
        (self.name, self.hash, self.calls, self.ranges) = (name, hash, calls, ranges)
    }
}

/// The guard's preflight of a whole plan.
public struct PlanCheck: Sendable {
    /// Actions the guard would refuse whatever a person said: the plan cannot start.
    public var refusals: [String]
    /// The approval that covers its irreversible steps, once given (`approval ID by WHO`), or
    /// nil when none of its steps needs one.
    public var grant: String?
    /// The request waiting for a person, when one is needed and not yet given.
    public var waiting: (id: String, reason: String)?
}

/// The plans running now, one per context at most: what each was approved to do, and the one
/// step it is proposing. The guard lets a plan's irreversible step through on the plan's
/// approval only when it is exactly that step, one of the actions shown at preflight, proposed
/// by the plan itself (not a request made as the same context meanwhile).
public final class PlanBoard: @unchecked Sendable {
    public struct Running: Sendable {
        public var id: String
        public var name: String
        public var calls: Set<PlanCall>
        public var grant: String?
        public var pending: PlanCall?
    }

    private let lock = NSLock()
    private var running: [String: Running] = [:]
    public init() {}

    public func start(context: String, id: String, summary: PlanSummary, grant: String?) {
        locked { running[context] = Running(id: id, name: summary.name, calls: Set(summary.calls), grant: grant) }
    }

    public func finish(context: String) { locked { running[context] = nil } }

    /// The plan of `context` proposes `call` now (nil: it proposes nothing of its own).
    public func propose(_ call: PlanCall?, context: String) { locked { running[context]?.pending = call } }

    public func plan(of context: String) -> Running? { locked { running[context] } }

    /// The plan approval that covers `call` in `context`, as a rule to cite.
    func cover(_ call: ResolvedCall, context: String) -> String? {
        guard call.op == .act, let device = call.string(.device), let action = call.string(.action) else { return nil }
        let asked = PlanCall(device: device, action: action, params: call.actionParameters.pairs)
        return locked {
            guard let plan = running[context], let grant = plan.grant, plan.pending == asked, plan.calls.contains(asked) else { return nil }
            return "plan \(plan.name) \(plan.id) (\(grant))"
        }
    }

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }
}

extension PolicyGuard {
    /// Decide every action `plan` could take as `context`, as the guard would decide it now but
    /// touching nothing (no approval asked for or used, no rate spent, the picture's age not
    /// held against it: each step is decided again, fully, when it runs); and when some need an
    /// approval, find or ask for the one approval bound to the plan's hash, actions and ranges
    /// and the devices' identities. Audited as one `plan-preflight` record.
    public func preflight(_ plan: PlanSummary, id: String, context: String, at now: Instant) -> PlanCheck {
        var dry = self
        dry.dryRun = true
        var refusals: [String] = [], irreversible: [PlanCall] = []
        for call in plan.calls {
            let resolved = ResolvedCall(.act, ["device": .string(call.device), "action": .string(call.action), "params": .string(call.paramText)])
            switch dry.evaluate(resolved, context: context, held: Holdings(descriptors: [])) {
            case .allow: break
            case .needsApproval: irreversible.append(call)
            case let other: refusals.append("\(call): \(other.verdict) (\(other.rule))" + (other.reason.map { ": \($0)" } ?? ""))
            }
        }
        var check = PlanCheck(refusals: refusals)
        if refusals.isEmpty, !irreversible.isEmpty {
            check = planApproval(plan, irreversible: irreversible, context: context)
        }
        let verdict = !check.refusals.isEmpty ? "deny" : check.waiting != nil ? "needs-approval" : "allow"
        // On the record before anything runs: a plan that cannot be audited does not start (and
        // a restarted supervisor reads an approval a preflight used as used).
        do {
            try audit.append(AuditRecord(time: now.nanoseconds, policy: policy.contentHash, event: "plan-preflight", mode: mode.rawValue,
                                          context: context, call: "plan \(plan.name) \(id) sha256:\(plan.hash) (\(plan.calls.count) actions)",
                                          decision: verdict, rule: check.grant ?? check.waiting.map { "needs approval \($0.id)" } ?? (refusals.isEmpty ? "preflight" : "preflight refused"),
                                          reason: refusals.isEmpty ? check.waiting?.reason : refusals.joined(separator: "; ")))
        } catch {
            return PlanCheck(refusals: ["the audit log cannot be written (\(error)); refusing"])
        }
        return check
    }

    /// The one approval a plan's irreversible steps rest on: bound to the context, the plan's
    /// name and hash, every action's range and the identities of the devices it acts on.
    private func planApproval(_ plan: PlanSummary, irreversible: [PlanCall], context: String) -> PlanCheck {
        guard let approvals else {
            return PlanCheck(refusals: ["plan \(plan.name) has irreversible steps and this supervisor takes no approvals"])
        }
        let devices = Set(plan.calls.map(\.device)).sorted()
        var ids: [String] = [], paths: [String] = []
        for device in devices {
            guard let target = approvalTarget(device) else {
                return PlanCheck(refusals: ["the identity of \(device) is not known; a plan's approval names its devices, not paths"])
            }
            ids.append(target.id)
            paths.append(target.path)
        }
        var params = plan.ranges
        params["plan-sha256"] = plan.hash
        let binding = ApprovalBinding(context: context, action: "plan \(plan.name)", device: ids.joined(separator: ","), path: paths.joined(separator: ","), params: params)
        let steps = Set(irreversible.map(\.action)).sorted().joined(separator: ", ")
        switch PolicyGuard.ask(approvals, binding, approvers: devices.map(approvers).max() ?? 1,
                               risk: "irreversible-physical (plan \(plan.name): \(steps))", dream: nil) {
        case .approved(let rule): return PlanCheck(refusals: [], grant: rule)
        case .waiting(let request):
            return PlanCheck(refusals: [], waiting: (request.id, "plan \(plan.name) takes irreversible steps (\(steps)) on \(ids.joined(separator: ", ")); "
                                                           + "one approval covers them, bound to the plan's hash and ranges"))
        case .refused(let rule, let reason): return PlanCheck(refusals: [rule == "approval-forged" ? "\(rule): \(reason)" : reason])
        }
    }
}
