import Foundation
import LoopCore

/// The guard as the mediators of supervised programs ask it: the calls a program's seccomp
/// filter sends to the supervisor arrive on the mediator's thread, not at the loop's turn, so
/// this decides with the same policy rules (``PolicyGuard/evaluate(_:context:held:)``) and
/// appends to the same audit chain, under a lock.
///
/// A decision record is fsync'd before the call runs when the call touches a device node or a
/// descriptor of one (something physical); the records of ordinary file opens are written
/// before the call runs but fsync'd with the next synced record, or by the kernel: a program
/// can open thousands of files a second and an fsync costs ~0.2 ms. A supervisor crash loses
/// none of them (they are in the file); a power cut can lose the last few.
public final class ProgramGuard: @unchecked Sendable {
    private let lock = NSLock()
    private let rules: PolicyGuard
    private var tally: [String: ProgramActivity] = [:]
    public var policy: Policy { rules.policy }

    public init(policy: Policy, audit: AuditLog, mode: Mode, protectedPaths: [String], fault: FaultLatch? = nil,
                owner: @escaping @Sendable (UInt64) -> DeviceOwner? = { _ in nil }) {
        rules = PolicyGuard(policy: policy, audit: audit, mode: mode, protectedPaths: protectedPaths, fault: fault, owner: owner)
    }

    /// A supervised program ended: its cause goes into the same chain as its calls.
    public func recordExit(context: String, program: String, cause: String, at time: UInt64) throws {
        lock.lock()
        defer { lock.unlock() }
        tally[context, default: ProgramActivity()].ended = cause
        try rules.audit.append(AuditRecord(time: time, policy: rules.policy.contentHash, event: "program-exit", mode: rules.mode.rawValue,
                                           context: context, call: program, result: cause))
    }

    /// What each context's program has done so far, as this guard decided it.
    public func activity() -> [String: ProgramActivity] {
        lock.lock()
        defer { lock.unlock() }
        return tally
    }

    /// One decision for one mediated call. `checks` are what the call would do in the policy's
    /// terms (a rename is a write of both paths); the first that is not allowed decides, and a
    /// `fixed` decision (a call no program is ever allowed) is recorded as given. Anything but
    /// an allow is a refusal: a program's system call cannot wait for a person.
    public func decide(context: String, call: String, checks: [ResolvedCall], held: Holdings = Holdings(descriptors: []),
                       fixed: Decision? = nil, physical: Bool, at time: UInt64) -> Decision {
        lock.lock()
        defer { lock.unlock() }
        var decision = fixed ?? .deny(rule: "default-deny", reason: "nothing to check")
        if fixed == nil {
            for check in checks {
                decision = rules.evaluate(check, context: context, held: held)
                if !decision.isAllowed { break }
            }
        }
        do {
            try rules.audit.append(AuditRecord(time: time, policy: rules.policy.contentHash, event: "decision", mode: rules.mode.rawValue,
                                               context: context, call: call, decision: decision.verdict, rule: decision.rule,
                                               reason: decision.reason),
                                   sync: physical && decision.isAllowed)
        } catch {
            decision = .deny(rule: "audit", reason: "the audit log cannot be written (\(error)); refusing")
        }
        tally[context, default: ProgramActivity()].count(call, decision)
        return decision
    }
}

/// A supervised program's mediated calls as its guard decided them: how many, allowed and
/// refused, the last of each, and how the program ended (nil while it runs).
public struct ProgramActivity: Sendable, Equatable {
    public var calls = 0
    public var allowed = 0
    public var refused = 0
    public var lastCall: String?
    public var lastRefusal: String?
    public var ended: String?
    public init() {}

    mutating func count(_ call: String, _ decision: Decision) {
        calls += 1
        lastCall = call
        if decision.isAllowed {
            allowed += 1
        } else {
            refused += 1
            lastRefusal = "\(call): \(decision.reason ?? "") [\(decision.rule)]"
        }
    }
}
