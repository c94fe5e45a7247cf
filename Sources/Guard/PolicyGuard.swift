import Foundation
import LoopCore
import StateGraph
import SystemCalls

/// The deterministic guard: decides each resolved micro-step by the policy (the order of checks
/// is on ``evaluate(_:context:held:)``), and audits every decision (fsync'd before an allowed
/// call runs) and every outcome. If the audit log cannot be written, the guard denies: nothing
/// runs unrecorded.
public struct PolicyGuard: Guarding {
    public let policy: Policy
    public let audit: AuditLog
    public let mode: Mode
    /// The risk class of a device action (from the device profiles), or nil if unknown.
    public let risk: @Sendable (_ device: String, _ action: String) -> String?
    /// A device's identity (`profile:serial`) and where it is now, or nil if unknown.
    public let identity: @Sendable (_ device: String) -> (id: String, path: String)?
    /// Where approvals for irreversible actions are asked for and found. nil: they are refused.
    public let approvals: ApprovalStore?
    /// Paths no context may touch (the run folder: audit log, approvals, trace).
    public let protectedPaths: [String]
    /// How many different people must approve an irreversible action on a device (its profile's
    /// `approvers`; the two-person rule is 2).
    public let approvers: @Sendable (_ device: String) -> Int
    /// While a fault is latched, nothing physical runs (device actions, GPIO sets, USB transfers).
    public let fault: FaultLatch?
    /// The device a device profile has matched and the supervisor holds, by device number (the
    /// `rdev` of its node): `bench-bridge:SIM-0001 (profile bench-bridge)`. A raw open of any node
    /// of it is denied (`device-owned`): the profile's actions are its only door.
    public let owner: @Sendable (_ deviceNumber: UInt64) -> DeviceOwner?
    /// For a raw device step (`gpio-set`, `usb-transfer`, `usb-control`) on hardware a profile
    /// declares: that device's identity, where it is, and the profile's highest risk class. Such
    /// a step carries that class: irreversible means an approval bound to the step.
    public let stepRisk: @Sendable (_ call: ResolvedCall) -> (device: String, path: String, risk: String)?
    /// Objects the policy denies by a literal path, per context, found when the guard was made
    /// (by `objectAt`: the live file system, or for a replay the identities its recording saw):
    /// another name for one of them (a hard link, a bind mount) is denied by the same rule.
    private let deniedObjects: [String: [FileObjectKey: (rule: Int, path: String)]]
    /// The run folder's objects at start (its files, and the folder), which no name reaches.
    private let protectedObjects: [FileObjectKey: String]
    /// A learned model's preview of an action, which a request for its approval carries (nil:
    /// the supervisor runs without a model).
    public var dream: (@Sendable (_ call: ResolvedCall, _ context: String) -> ApprovalDream?)?
    /// The bench's controllers: their setpoints (actions of their own, with a risk by direction),
    /// and the safety envelopes of the actuators they drive, checked every step (nil: none).
    public var controls: ControlBoard?
    /// The plans running now: a plan's approved step runs on the plan's approval.
    public var plans: PlanBoard?
    /// Deciding as a preflight does: no approval asked for or used, the picture's age not held
    /// against a step (see ``preflight(_:id:context:at:)``).
    var dryRun = false
    /// The rule of the last allowed decision, which a setpoint it allowed rests on.
    private var openRule: String?
    /// The wall clock that time-window rules are read against (a test sets its own).
    public var wallClock: @Sendable () -> Date = { Date() }
    /// Set when an audit write failed; reported by the supervisor.
    public private(set) var auditFailure: String?
    /// The seq of the last allowed decision: its outcome record closes it.
    private var openIntent: Int?
    /// The steps that move something in the world: held back by a latched fault or an uncertain picture.
    static func isPhysical(_ op: MicroOp) -> Bool {
        switch op {
        case .act, .gpioSet, .usbTransfer, .usbControl: true
        default: false
        }
    }
    /// `protectedPaths`, each with a `/` after it: what a path under one starts with.
    private let protectedPrefixes: [String]
    /// When each rate-limited rule last allowed, per context and rule location.
    private var allowedAt: [String: [Instant]] = [:]
    /// What this step's decisions rest on (see ``look(at:now:)``); nil outside a loop.
    private var picture: (lastObserved: Instant?, surprise: Surprise?, now: Instant)?
    /// Contexts whose next physical action needs an approval, and which prediction failed: a
    /// return the learned model found unlikely, or an observation it found surprising after
    /// the context's action (the policy's `min-outcome-probability`, `max-learned-surprise-bits`).
    public private(set) var escalated: [String: String] = [:]

    public init(policy: Policy, audit: AuditLog, mode: Mode, risk: @escaping @Sendable (String, String) -> String? = { _, _ in nil },
                identity: @escaping @Sendable (String) -> (id: String, path: String)? = { _ in nil },
                approvals: ApprovalStore? = nil, approvers: @escaping @Sendable (String) -> Int = { _ in 1 },
                protectedPaths: [String] = [], fault: FaultLatch? = nil,
                owner: @escaping @Sendable (UInt64) -> DeviceOwner? = { _ in nil },
                stepRisk: @escaping @Sendable (ResolvedCall) -> (device: String, path: String, risk: String)? = { _ in nil },
                objectAt: (String) -> FileObject? = FileObject.at) {
        self.policy = policy
        self.audit = audit
        self.mode = mode
        self.risk = risk
        self.identity = identity
        self.approvals = approvals
        self.protectedPaths = protectedPaths.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        protectedPrefixes = self.protectedPaths.map { $0 + "/" }
        self.fault = fault
        self.approvers = approvers
        self.owner = owner
        self.stepRisk = stepRisk
        deniedObjects = policy.contexts.mapValues { rules in
            var found: [FileObjectKey: (Int, String)] = [:]
            for (n, rule) in rules.rules.enumerated() where rule.effect == .deny {
                for pattern in rule.paths ?? [] where pattern.isLiteral {
                    if let object = objectAt(pattern.description), found[FileObjectKey(object)] == nil { found[FileObjectKey(object)] = (n, pattern.description) }
                }
            }
            return found
        }
        protectedObjects = Self.objects(under: self.protectedPaths, objectAt: objectAt)
    }

    /// Every object under the protected folders (three levels down), keyed by identity.
    static func objects(under roots: [String], objectAt: (String) -> FileObject?) -> [FileObjectKey: String] {
        var found: [FileObjectKey: String] = [:]
        func visit(_ path: String, depth: Int) {
            guard let object = objectAt(path) else { return }
            found[FileObjectKey(object)] = path
            guard object.isDirectory, depth < 3, let names = try? FileManager.default.contentsOfDirectory(atPath: path) else { return }
            for name in names { visit(path + "/" + name, depth: depth + 1) }
        }
        for root in roots { visit(root, depth: 0) }
        return found
    }

    /// The decision alone, without auditing or rate accounting (``decide`` does both). Order: a
    /// policy for the context; no latched fault and a picture good enough, for a physical step;
    /// normalized paths outside the protected run folder; only what the context holds; an act
    /// on an attached device; the policy's rules (deny first) and an allow rule's parameter
    /// limits; and for an irreversible action, an approval.
    public func evaluate(_ call: ResolvedCall, context: String, held: Holdings) -> Decision {
        guard let rules = policy.contexts[context] else {
            return .deny(rule: "default-deny", reason: "context \(context) has no policy in \(policy.file)")
        }
        if Self.isPhysical(call.op), let latched = fault?.current {
            return .deny(rule: "latched-fault", reason: "halted by a fault since \(latched.since): \(latched.reason); "
                         + "nothing physical runs until a person checks the bench and runs worldos ack")
        }
        if let doubt = doubt(about: call) { return .refuseUncertain(reason: doubt) }
        var segments: [[UInt8]]?
        var rawChannel: DeviceOwner?
        if let path = call.path {
            guard let parts = normalizedSegments(path) else {
                return .deny(rule: "path-normalization", reason: "path \"\(path)\" is not absolute and normalized")
            }
            // A normalized path is its own canonical spelling, so prefixes compare directly.
            if let root = zip(protectedPaths, protectedPrefixes).first(where: { path == $0 || path.hasPrefix($1) })?.0 {
                return .deny(rule: "protected", reason: "\(path) is under the supervisor's own records (\(root)); no context touches them")
            }
            segments = parts
            if let object = call.object.flatMap(FileObject.identity).map(FileObjectKey.init) {
                if let root = protectedObjects[object] {
                    return .deny(rule: "protected", reason: "\(path) is \(root) under another name, one of the supervisor's own records; no context touches them")
                }
                if let (n, denied) = deniedObjects[context]?[object], denied != path, let literal = normalizedSegments(denied) {
                    var spelled = call
                    spelled[.path] = .string(denied)
                    let rule = rules.rules[n]
                    if rule.matches(spelled, segments: literal, facts: Policy.CallFacts(deviceIdentity: nil, localTime: Self.localTime(wallClock()))) {
                        return .deny(rule: rule.location, reason: "\(path) is \(denied) under another name: " + (rule.reason ?? "denied by policy"))
                    }
                }
            }
            if let number = call.deviceNumber, let holder = owner(number) {
                guard holder.rawChannel else {
                    return .deny(rule: "device-owned", reason: "\(path) is a node of \(holder.description); the supervisor holds it and only the profile's actions reach it")
                }
                rawChannel = holder
            }
        }
        if let reason = held.refusal(for: call, context: context) {
            return .deny(rule: "capability", reason: reason)
        }
        var risky: (device: String, action: String, risk: String, target: (id: String, path: String)?)?
        if call.op == .act, let device = call.string(.device), let action = call.string(.action), let envelope = controls?.envelope(device: device) {
            guard action == envelope.setpointAction else {
                return .refuseUncertain(reason: "controller \(envelope.controller) offers \(envelope.setpointAction), not \(action)")
            }
            if let why = controls?.refusal(of: call, envelope: envelope) { return .deny(rule: "safety setpoints", reason: why) }
            guard let target = approvalTarget(device) else {
                return .refuseUncertain(reason: "controller \(envelope.controller)'s actuator \(envelope.device) is not attached; its setpoint binds to it")
            }
            let level = controls?.risk(of: call) ?? envelope.raiseRisk
            if Self.needsApproval(level) { risky = (device, action, level + " (raising the setpoint)", target) }
        } else if call.op == .act, let device = call.string(.device), let action = call.string(.action) {
            guard let level = risk(device, action) else {
                return .refuseUncertain(reason: "no attached device \(device) offers \(action); the guard does not guess")
            }
            if let tripped = maximumOutput(call, device: device, action: action) { return tripped }
            if Self.needsApproval(level) { risky = (device, action, level, nil) }
        } else if Self.isPhysical(call.op), let declared = stepRisk(call), Self.needsApproval(declared.risk) {
            risky = (declared.device, call.op.rawValue, declared.risk, (declared.device, declared.path))
        } else if let raw = rawChannel, Self.needsApproval(raw.risk) {
            // A raw channel the profile declares: as risky as the most risky of its actions.
            risky = (raw.device, "raw-\(call.op.rawValue)", raw.risk, (raw.device, raw.path))
        }
        let facts = Policy.CallFacts(deviceIdentity: call.op == .act ? call.string(.device).flatMap { identity($0)?.id } : nil,
                                     localTime: rules.timed ? Self.localTime(wallClock()) : (weekday: 0, minute: 0))
        guard let n = rules.firstMatch(call, segments: segments, facts: facts) else {
            return .deny(rule: "default-deny", reason: "no rule of context \(context) allows \(call.op.rawValue)" + (call.path.map { " of \($0)" } ?? "")
                         + (call.asWritten.map { " (written \($0); rules are matched against the name an object resolves to)" } ?? ""))
        }
        let rule = rules.rules[n]
        let verdict: Decision = rule.effect == .deny ? .deny(rule: rule.location, reason: rule.reason ?? "denied by policy") : .allow(rule: rule.location)
        if rule.effect == .allow, let limits = rule.limits {
            let params = Self.parameters(call)
            for (name, range) in limits.sorted(by: { $0.key < $1.key }) {
                guard let text = params[name] else {
                    return .deny(rule: rule.location, reason: "\(name) must be given: the policy limits it to \(range.lowerBound)...\(range.upperBound)")
                }
                guard let v = Double(text), range.contains(v) else {
                    return .deny(rule: rule.location, reason: "\(name)=\(text) is outside \(range.lowerBound)...\(range.upperBound), the policy's limit")
                }
            }
        }
        if verdict.isAllowed, risky == nil, Self.isPhysical(call.op), let why = escalated[context] {
            // A prediction failed in this context: its next physical action waits for a person,
            // bound like an irreversible one. An action of risk class observe is not held back.
            let device = call.string(.device) ?? call.string(.chip) ?? "?"
            if call.op == .act, risk(device, call.string(.action) ?? "") == "observe" { return verdict }
            return approval(for: call, context: context, device: device, action: call.string(.action) ?? call.op.rawValue,
                            risk: "escalated to approval: \(why)", target: stepRisk(call).map { ($0.device, $0.path) })
        }
        guard verdict.isAllowed, let risky else { return verdict }
        if escalated[context] == nil, let covered = controllerCover(call, context: context) ?? plans?.cover(call, context: context) { return .allow(rule: covered) }
        return approval(for: call, context: context, device: risky.device, action: risky.action,
                        risk: risky.risk + (escalated[context].map { "; and escalated: \($0)" } ?? ""), target: risky.target)
    }

    /// A write of a controlled actuator's output above its envelope's maximum, from any context:
    /// denied, and (in ``decide``) a latched fault.
    private func maximumOutput(_ call: ResolvedCall, device: String, action: String) -> Decision? {
        guard let controls else { return nil }
        for envelope in controls.envelopes(device: device, identity: { identity($0)?.id }) where envelope.action == action {
            let text = call.actionParameters.pairs[envelope.parameter] ?? ""
            guard let value = Double(text), value <= envelope.maximumOutput else {
                return .deny(rule: "safety max-output", reason: "controller \(envelope.controller): \(action) \(envelope.parameter)=\(text) "
                             + "is above the maximum output \(envelope.maximumOutput) its bench declares")
            }
        }
        return nil
    }

    /// The controller whose setpoint in force covers this write: its own context writing its
    /// own actuator, within the envelope (checked before). The setpoint's approval is the one
    /// the write rests on; without a setpoint in force, it needs its own.
    private func controllerCover(_ call: ResolvedCall, context: String) -> String? {
        guard let controls, call.op == .act, let device = call.string(.device), let action = call.string(.action) else { return nil }
        for envelope in controls.envelopes(device: device, identity: { identity($0)?.id }) where envelope.action == action && envelope.context == context {
            if let setpoint = controls.setpoint(of: envelope.controller) {
                return "controller \(envelope.controller) at setpoint \(Self.spell(setpoint.value)) (\(setpoint.grant))"
            }
        }
        return nil
    }

    /// A number in one spelling: 80 as `80`, 2.5 as `2.5`.
    public static func spell(_ v: Double) -> String { v.rounded() == v && abs(v) < 1e15 ? String(Int64(v)) : String(v) }

    static func needsApproval(_ risk: String) -> Bool { risk == "irreversible-physical" || risk == "destructive-host" }

    /// Weekday (0 Sunday) and minute of the day, in the machine's local time zone.
    static func localTime(_ date: Date) -> (weekday: Int, minute: Int) {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        localtime_r(&seconds, &parts)
        return (Int(parts.tm_wday), Int(parts.tm_hour) * 60 + Int(parts.tm_min))
    }

    /// An action's parameters with numbers in one spelling (`relay=0.0` is `relay=0`), so an
    /// approval binds the value, not how it was written.
    static func parameters(_ call: ResolvedCall) -> [String: String] {
        guard call.op == .act else {
            // A raw device step is bound by all its arguments (line and value, endpoint and data).
            return call.args.filter { $0.key != "device" }.mapValues { v in v.int.map(String.init) ?? v.string ?? "" }
        }
        return call.actionParameters.pairs.mapValues { text in Double(text).map(spell) ?? text }
    }

    /// A rate-limited rule allows at most `count` times in any `seconds` window, per context.
    private mutating func withinRate(_ decision: Decision, context: String, at now: Instant) -> Decision {
        guard case .allow(let location) = decision,
              let rate = policy.contexts[context]?.rates[location] else { return decision }
        let key = context + " " + location
        let window = Duration.seconds(rate.seconds)
        var recent = (allowedAt[key] ?? []).filter { now.duration(since: $0) < window }
        guard recent.count < rate.count else {
            let wait = window - now.duration(since: recent[0])
            allowedAt[key] = recent
            return .deny(rule: location, reason: "rate limit \(rate) reached for context \(context); the next is allowed in \(wait.components.seconds + 1) s")
        }
        recent.append(now)
        allowedAt[key] = recent
        return decision
    }

    public mutating func look(at posterior: Posterior, now: Instant) {
        picture = (posterior.observedAt ?? picture?.lastObserved, posterior.surprise, now)
        if let controls, let tripped = controls.violation(in: posterior.graph, observedAt: posterior.observedAt, now: now) {
            latch("safety \(tripped.check) (controller \(tripped.envelope.controller)): \(tripped.detail)", at: now)
        }
        if let limit = policy.maxLearnedSurprise, let learned = posterior.surprise?.learned, learned.bits > limit, let context = learned.after {
            let odd = learned.unexpected.sorted { $0.key < $1.key }.map { "\($0.key) (p \(String(format: "%.2f", $0.value)))" }
                + learned.missing.sorted { $0.key < $1.key }.map { "no \($0.key) (p \(String(format: "%.2f", $0.value)))" }
            escalated[context] = "the machine did not do what it usually does after \(context)'s action: \(String(format: "%.1f", learned.bits)) bits "
                + "of surprise (the policy allows \(String(format: "%g", limit)))" + (odd.isEmpty ? "" : ": " + odd.joined(separator: ", "))
        }
    }

    public mutating func notePrediction(_ call: ResolvedCall, context: String, result: CallResult, probability: Double, at now: Instant) {
        guard let least = policy.minOutcomeProbability, probability < least else { return }
        escalated[context] = "the model gave \(call.op.rawValue)'s return \(result) probability \(String(format: "%.3f", probability)) "
            + "(the policy wants at least \(String(format: "%g", least))): \(call)"
    }

    /// Why a physical step should not run on the picture this step has: no recent observation,
    /// or one the estimator could not predict. Dreams (latent mode) touch nothing and are not held back.
    private func doubt(about call: ResolvedCall) -> String? {
        guard mode != .latent, !dryRun, let picture, Self.isPhysical(call.op) else { return nil }
        guard let seen = picture.lastObserved else {
            return "the machine has not been observed yet; the guard does not act on a picture it has not checked"
        }
        let age = picture.now.duration(since: seen)
        if age > policy.maxObservationAge {
            let ms = { (d: Duration) in d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000 }
            return "the last observation is \(ms(age)) ms old (the policy allows \(ms(policy.maxObservationAge)) ms); the guard does not act on a stale picture"
        }
        if let limit = policy.maxSurprise, let surprise = picture.surprise, surprise.wrongNodes > limit {
            return "the estimator's prediction was wrong on \(surprise.wrongNodes) nodes this step (the policy allows \(limit)); the guard does not act on a picture it could not predict"
        }
        return nil
    }

    /// An irreversible action runs only on an approval bound to this exact action, device
    /// identity, parameters and context; otherwise it waits on a request a person can answer.
    private func approval(for call: ResolvedCall, context: String, device: String, action: String, risk: String,
                          target known: (id: String, path: String)?) -> Decision {
        guard let approvals else {
            return .deny(rule: "approval-required", reason: "\(action) on \(device) is \(risk) and this supervisor takes no approvals")
        }
        if dryRun { return .needsApproval(request: "", reason: "\(action) on \(device) is \(risk)") }
        guard let target = known ?? identity(device) else {
            return .refuseUncertain(reason: "the identity of \(device) is not known; an approval must name the device, not a path")
        }
        let binding = ApprovalBinding(context: context, action: action, device: target.id, path: target.path, params: Self.parameters(call))
        switch Self.ask(approvals, binding, approvers: approvers(device), risk: risk, dream: dream?(call, context)) {
        case .approved(let rule): return .allow(rule: rule)
        case .waiting(let request):
            let people = request.required.map { ", and needs \($0) different people to approve it" + (request.approvedBy.map { " (\($0.count) so far)" } ?? "") } ?? ""
            return .needsApproval(request: request.id, reason: "\(action) on \(target.id) (\(target.path)) is \(risk)\(people)")
        case .refused(let rule, let reason): return .deny(rule: rule, reason: reason)
        }
    }

    /// What an irreversible step or a plan gets from the approval store for `binding`: an
    /// approval minted for it (used now, once), or the request waiting for a person.
    enum Asked {
        case approved(rule: String)
        case waiting(Approval)
        case refused(rule: String, reason: String)
    }

    static func ask(_ store: ApprovalStore, _ binding: ApprovalBinding, approvers: Int, risk: String, dream: ApprovalDream?) -> Asked {
        do {
            if let used = try store.consume(binding) { return .approved(rule: "approval \(used.id) by \(used.decidedBy ?? "?")") }
            return .waiting(try store.request(binding, approvers: approvers, risk: risk, dream: dream))
        } catch let forged as ApprovalForged {
            return .refused(rule: "approval-forged", reason: forged.description)
        } catch {
            return .refused(rule: "approval-required", reason: "approvals cannot be read or written (\(error)); refusing")
        }
    }

    /// What an approval names a device by: its identity, or for a controller (`controller:NAME`)
    /// the controller on the identity of the actuator it drives. Nil: not attached.
    func approvalTarget(_ device: String) -> (id: String, path: String)? {
        guard let envelope = controls?.envelope(device: device) else { return identity(device) }
        return identity(envelope.device).map { ("\(device) on \($0.id)", $0.path) }
    }

    public mutating func decide(_ call: ResolvedCall, context: Node, held: Holdings, at now: Instant) -> Decision {
        guard case .context(let name) = context.partition else {
            return .deny(rule: "default-deny", reason: "\(context.id) is not an execution context")
        }
        let decision = withinRate(evaluate(call, context: name, held: held), context: name, at: now)
        // An escalation ends with the approval it asked for.
        if escalated[name] != nil, Self.isPhysical(call.op), case .allow(let rule) = decision, rule.hasPrefix("approval ") { escalated[name] = nil }
        let (verdict, rule, reason) = (decision.verdict, decision.rule, decision.reason)
        do {
            let record = try audit.append(AuditRecord(time: now.nanoseconds, policy: policy.contentHash, event: "decision",
                                                      mode: mode.rawValue, context: name, call: call.description, decision: verdict,
                                                      rule: rule, reason: reason))
            openIntent = decision.isAllowed ? record.seq : nil
            openRule = decision.isAllowed ? rule : nil
        } catch {
            auditFailure = "\(error)"
            return .deny(rule: "audit", reason: "the audit log cannot be written (\(error)); refusing")
        }
        if rule.hasPrefix("safety max-output"), let reason { latch("safety max-output (\(name) asked \(call)): \(reason)", at: now) }
        return decision
    }

    /// A safety check tripped: latch the fault (its holders drive the safe state); a latch
    /// that cannot be recorded is reported like any audit failure.
    private mutating func latch(_ reason: String, at now: Instant) {
        do { try fault?.latch(reason, at: now) } catch { auditFailure = "\(error)" }
    }

    public mutating func recordOutcome(_ call: ResolvedCall, context: String, result: CallResult, at now: Instant) {
        do {
            try audit.append(AuditRecord(time: now.nanoseconds, policy: policy.contentHash, event: "outcome",
                                         mode: mode.rawValue, context: context, call: call.description, result: result.description,
                                         decisionSeq: openIntent))
            openIntent = nil
        } catch {
            auditFailure = "\(error)"
        }
        noteControl(call, context: context, result: result, at: now)
        openRule = nil
    }

    /// A replay takes a person's part from the recording: the step about to run rests on
    /// `rule` (an approval a person gave), as a setpoint it sets will.
    public mutating func restsOn(_ rule: String) { openRule = rule }

    /// What a performed step means to the controllers: a setpoint taken (resting on the rule
    /// that allowed it), or an actuator's output written.
    private func noteControl(_ call: ResolvedCall, context: String, result: CallResult, at now: Instant) {
        guard let controls, call.op == .act, let value = result.value, value >= 0,
              let device = call.string(.device), let action = call.string(.action) else { return }
        let pairs = call.actionParameters.pairs
        if let envelope = controls.envelope(device: device), action == envelope.setpointAction, let v = pairs["value"].flatMap(Double.init) {
            controls.apply(controller: envelope.controller, value: v, grant: openRule ?? "?")
            return
        }
        for envelope in controls.envelopes(device: device, identity: { identity($0)?.id }) {
            if action == envelope.action {
                controls.noteOutput(controller: envelope.controller, value: pairs[envelope.parameter].flatMap(Double.init) ?? 0, at: now)
            } else if action.split(separator: ".").first == envelope.action.split(separator: ".").first {
                // Another action of the same actuator (heater.off for heater.set_power) leaves it off.
                controls.noteOutput(controller: envelope.controller, value: 0, at: now)
            }
        }
    }
}

/// A file object's identity (device and inode) as a dictionary key.
struct FileObjectKey: Hashable, Sendable {
    var device: UInt64
    var inode: UInt64
    init(_ object: FileObject) { (device, inode) = (object.device, object.inode) }
    init(_ identity: (device: UInt64, inode: UInt64)) { (device, inode) = identity }
}

/// The attached device a device node belongs to, as its profile declares it.
public struct DeviceOwner: Sendable, CustomStringConvertible {
    /// `profile:serial` (or `profile:gpiochipN`).
    public var device: String
    public var path: String
    public var profile: String
    /// The profile declares a raw channel (`raw-channel: true`): opening the node is allowed by
    /// the policy's rules, and carries ``risk``.
    public var rawChannel: Bool
    /// The profile's highest risk class.
    public var risk: String

    public init(device: String, path: String, profile: String, rawChannel: Bool, risk: String) {
        (self.device, self.path, self.profile, self.rawChannel, self.risk) = (device, path, profile, rawChannel, risk)
    }

    public var description: String { "\(device) (profile \(profile), on \(path))" }
}
