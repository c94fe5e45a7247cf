import Foundation
import Glibc
import Journal
import LoopCore

/// What an approval is bound to: exactly this action, with these parameters, on this device
/// (its identity — profile and serial number — not the path, which another device may take),
/// for this execution context.
public struct ApprovalBinding: Hashable, Codable, Sendable {
    public var context: String
    public var action: String
    /// `profile:serial`.
    public var device: String
    /// Where the device was when asked, for the person approving.
    public var path: String
    /// Parameters, normalized (`relay=0`).
    public var params: [String: String]

    public init(context: String, action: String, device: String, path: String, params: [String: String]) {
        self.context = context
        self.action = action
        self.device = device
        self.path = path
        self.params = params
    }

    /// SHA-256 over everything but the path.
    public var digest: String {
        let canonical = ([context, action, device] + params.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }).joined(separator: "\n")
        return SHA256.hex(Array(canonical.utf8))
    }
}

public struct Approval: Codable, Equatable, Sendable {
    /// `abandoned`: made by a supervisor that has since restarted; nobody waits on it.
    public enum State: String, Codable, Sendable { case pending, approved, rejected, used, abandoned }
    public var id: String
    public var binding: ApprovalBinding
    public var digest: String
    public var state: State
    public var requestedAt: Date
    public var expiresAt: Date
    public var decidedBy: String?
    public var usedAt: Date?
    /// How many different people must approve (the device profile's `approvers`), and who has.
    public var required: Int? = nil
    public var approvedBy: [String]? = nil
    /// The action's risk class, as the guard found it when it asked.
    public var risk: String? = nil
    /// What a learned model dreamed the action would do, beside the guard's checks (nil: the
    /// supervisor runs without a model). Advice for the person approving, never part of the
    /// binding: an approval is of the action, whatever was dreamed of it.
    public var dream: ApprovalDream? = nil

    public init(id: String, binding: ApprovalBinding, digest: String, state: State, requestedAt: Date, expiresAt: Date,
                decidedBy: String? = nil, usedAt: Date? = nil, required: Int? = nil, approvedBy: [String]? = nil) {
        self.id = id
        self.binding = binding
        self.digest = digest
        self.state = state
        self.requestedAt = requestedAt
        self.expiresAt = expiresAt
        self.decidedBy = decidedBy
        self.usedAt = usedAt
        self.required = required
        self.approvedBy = approvedBy
    }
}

/// A model's preview of an action waiting for approval: DREAMED, not observed.
public struct ApprovalDream: Codable, Equatable, Sendable {
    public struct Return: Codable, Equatable, Sendable {
        /// The return's class (`scpi-ok`, `EIO`, …) and the model's probability of it.
        public var label: String
        public var probability: Double
        public init(label: String, probability: Double) { (self.label, self.probability) = (label, probability) }
    }
    /// The most likely returns, most likely first.
    public var returns: [Return]
    /// The device readings the model expects after the action (the mean seen after it).
    public var readings: [String: Double]
    /// The probability of the most likely return.
    public var confidence: Double
    /// The model file it came from.
    public var model: String

    public init(returns: [Return], readings: [String: Double], model: String) {
        self.returns = returns
        self.readings = readings
        confidence = returns.first?.probability ?? 0
        self.model = model
    }

    /// One line for people: `DREAM (model m.json, confidence 0.97): scpi-ok 97%, EIO 2%; after: relay-1 1`.
    public var summary: String {
        let returns = self.returns.map { "\($0.label) \(Int(($0.probability * 100).rounded()))%" }.joined(separator: ", ")
        let after = readings.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%g", $0.value))" }.joined(separator: ", ")
        return "DREAM (model \(model), confidence \(String(format: "%.2f", confidence))): \(returns)" + (after.isEmpty ? "" : "; after: \(after)")
    }
}

public struct ApprovalError: Error, CustomStringConvertible, Equatable {
    public var description: String
    init(_ d: String) { description = d }
}

/// A request file claims an approval the supervisor never minted: someone else wrote it.
public struct ApprovalForged: Error, CustomStringConvertible {
    public var id: String
    public var description: String {
        "request \(id) says it is approved, but the supervisor recorded no approval of it in the audit log "
            + "(the file was written by someone else); refusing, and asking anew"
    }
}

/// Approvals, minted by the supervisor alone. A request is a file in one directory (the view
/// `worldos approvals` lists); a person answers it by leaving an *answer* file in `answers/`
/// (what `worldos approve` does), and the supervisor, on its next ask, takes the answer, knows
/// who gave it from the file's owner (``Approver``), records the approval in the audit chain
/// and only then counts it. What a request file says is never believed: an approval is usable
/// only if this supervisor minted it (or minted it before a restart, as the audit log records),
/// and a file claiming one that was not minted is refused as forged.
///
/// An approval is single-use, expires, and matches only its exact binding. Request ids are 64
/// random bits; requests made before a restart are abandoned (the action asks again).
public final class ApprovalStore: @unchecked Sendable {
    public let directory: String
    /// How long a request stays answerable, and an approval usable.
    public let lifetime: TimeInterval
    private let audit: AuditLog?
    private let policyHash: String
    private let lock = NSLock()
    /// Requests this store made and has not seen answered, used or expired.
    private var requested: [String: Approval] = [:]
    /// Approvals minted (recorded in the audit log): by request id.
    private var minted: [String: Minted] = [:]

    struct Minted {
        var digest: String
        var expiresAt: Date
        var used: Bool
    }

    public var answersDirectory: String { directory + "/answers" }

    /// The supervisor's store. `audit`: where approvals are recorded (and found again after a
    /// restart); nil keeps them in memory only (a replay's scratch store, unit tests).
    public init(directory: String, lifetime: TimeInterval = 600, audit: AuditLog? = nil, policyHash: String = "") throws {
        self.directory = directory
        self.lifetime = lifetime
        self.audit = audit
        self.policyHash = policyHash
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory + "/answers", withIntermediateDirectories: true)
        // Anyone may leave an answer (its owner is who answered) but not list or read others'.
        chmod(directory, 0o755)
        chmod(directory + "/answers", 0o1733)
        if let audit { minted = Self.mintedApprovals(in: audit.path) }
        // Requests of an earlier run are not answerable: nobody here asked for them.
        for var stale in Self.read(directory: directory) where stale.state == .pending {
            stale.state = .abandoned
            try? save(stale)
        }
    }

    /// The request files of a run folder, oldest first (what `worldos approvals` shows).
    public static func read(directory: String) -> [Approval] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasSuffix(".json") }
            .compactMap { try? JSONRecordFile.read(Approval.self, from: "\(directory)/\($0)") }
            .sorted { $0.requestedAt < $1.requestedAt }
    }

    public func all() -> [Approval] { Self.read(directory: directory) }

    public func pending(now: Date = Date()) -> [Approval] { all().filter { $0.state == .pending && $0.expiresAt > now } }

    /// The requests this store made that still wait, as it knows them (not as files say).
    public func waiting(now: Date = Date()) -> [Approval] {
        lock.lock()
        defer { lock.unlock() }
        return requested.values.filter { $0.state == .pending && $0.expiresAt > now }.sorted { $0.requestedAt < $1.requestedAt }
    }

    /// The open request for this binding, or a new one.
    public func request(_ binding: ApprovalBinding, approvers: Int = 1, risk: String? = nil, dream: ApprovalDream? = nil, now: Date = Date()) throws -> Approval {
        collectAnswers(now: now)
        lock.lock()
        defer { lock.unlock() }
        if let open = requested.values.first(where: { $0.digest == binding.digest && $0.state == .pending && $0.expiresAt > now }) { return open }
        let id = String(format: "%016llx", UInt64.random(in: .min ... .max))
        var approval = Approval(id: id, binding: binding, digest: binding.digest, state: .pending, requestedAt: now,
                                expiresAt: now.addingTimeInterval(lifetime), decidedBy: nil, usedAt: nil,
                                required: approvers > 1 ? approvers : nil)
        approval.risk = risk
        approval.dream = dream
        try save(approval)
        requested[id] = approval
        return approval
    }

    /// Mint an approval of a pending request this store made, from an established identity:
    /// recorded in the audit log before it counts. With the two-person rule, each approval must
    /// come from someone (a normalized name) who has not given one.
    public func approve(_ id: String, by person: Approver, now: Date = Date()) throws -> Approval {
        try decide(id, approve: true, by: person, now: now)
    }

    public func reject(_ id: String, by person: Approver, now: Date = Date()) throws -> Approval {
        try decide(id, approve: false, by: person, now: now)
    }

    private func decide(_ id: String, approve: Bool, by person: Approver, now: Date) throws -> Approval {
        lock.lock()
        defer { lock.unlock() }
        guard var approval = requested[id] else {
            let known = Self.read(directory: directory).first { $0.id == id }
            guard let known else { throw ApprovalError("no approval request \(id); list them with worldos approvals") }
            if known.state == .pending || known.state == .abandoned {
                throw ApprovalError("request \(id) is not one this supervisor is waiting on (made before a restart, or not by it); the action will ask again")
            }
            throw ApprovalError("request \(id) is already \(known.state.rawValue)")
        }
        guard approval.state == .pending else { throw ApprovalError("request \(id) is already \(approval.state.rawValue)") }
        guard approval.expiresAt > now else { throw ApprovalError("request \(id) expired at \(approval.expiresAt); the action will ask again") }
        var people = approval.approvedBy ?? []
        if approve {
            guard !people.contains(person.name) else {
                throw ApprovalError("\(person.name) has already approved request \(id); it needs \(approval.required ?? 1) different people")
            }
            people.append(person.name)
        }
        let complete = approve && people.count >= (approval.required ?? 1)
        let params = approval.binding.params.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        do {
            try audit?.append(AuditRecord(time: SystemClock().now().nanoseconds, policy: policyHash, event: "approval", mode: "",
                                          context: approval.binding.context,
                                          call: "\(approval.binding.action)(\(params)) on \(approval.binding.device)",
                                          decision: approve ? "approved" : "rejected", rule: "request \(id)", reason: "by \(person)",
                                          result: "digest=\(approval.digest) expires=\(Int(approval.expiresAt.timeIntervalSince1970)) "
                                              + "approvals=\(people.count)/\(approval.required ?? 1)"))
        } catch {
            throw ApprovalError("the approval of \(id) cannot be recorded in the audit log (\(error)); it does not count")
        }
        if approve {
            approval.approvedBy = approval.required == nil ? nil : people
            if complete {
                approval.state = .approved
                approval.decidedBy = people.joined(separator: " and ")
                minted[id] = Minted(digest: approval.digest, expiresAt: approval.expiresAt, used: false)
            }
        } else {
            approval.state = .rejected
            approval.decidedBy = person.name
        }
        requested[id] = approval.state == .pending ? approval : nil
        try save(approval)
        return approval
    }

    /// Use a minted approval for this exact binding, once: approved, not expired, same digest.
    /// A request file that claims an approval nobody minted throws ``ApprovalForged``.
    public func consume(_ binding: ApprovalBinding, now: Date = Date()) throws -> Approval? {
        collectAnswers(now: now)
        lock.lock()
        defer { lock.unlock() }
        if let (id, _) = minted.first(where: { $0.value.digest == binding.digest && !$0.value.used && $0.value.expiresAt > now }) {
            minted[id]?.used = true
            var approval = Self.read(directory: directory).first { $0.id == id }
                ?? Approval(id: id, binding: binding, digest: binding.digest, state: .approved, requestedAt: now, expiresAt: minted[id]!.expiresAt)
            approval.state = .used
            approval.usedAt = now
            try save(approval)
            return approval
        }
        if var claim = Self.read(directory: directory).first(where: { $0.digest == binding.digest && $0.state == .approved && $0.expiresAt > now }) {
            // Kept as evidence, no longer claiming anything: the next ask opens a new request.
            claim.state = .rejected
            claim.decidedBy = "the supervisor: no approval of it was minted (forged)"
            try save(claim)
            throw ApprovalForged(id: claim.id)
        }
        return nil
    }

    // MARK: answers

    /// Leave an answer to request `id` in a run folder's approvals (what `worldos approve` and
    /// `reject` do): the running supervisor takes it at its next ask. Checks what the request
    /// file says first, to tell the person at once when it cannot count.
    @discardableResult
    public static func answer(_ id: String, approve: Bool, label: String?, directory: String, now: Date = Date()) throws -> Approval {
        guard id.count == 16, id.allSatisfy(\.isHexDigit), let request = read(directory: directory).first(where: { $0.id == id }) else {
            throw ApprovalError("no approval request \(id); list them with worldos approvals")
        }
        switch request.state {
        case .pending: break
        case .abandoned: throw ApprovalError("request \(id) was made before the supervisor restarted and is not answerable; the action will ask again")
        default: throw ApprovalError("request \(id) is already \(request.state.rawValue)")
        }
        guard request.expiresAt > now else { throw ApprovalError("request \(id) expired at \(request.expiresAt); the action will ask again") }
        let answer = Answer(id: id, approve: approve, label: label, sudoUser: getuid() == 0 ? ProcessInfo.processInfo.environment["SUDO_USER"] : nil)
        let path = "\(directory)/answers/\(id).\(String(format: "%016llx", UInt64.random(in: .min ... .max))).json"
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ApprovalError("cannot leave an answer in \(directory)/answers: \(String(cString: strerror(errno)))") }
        defer { Glibc.close(fd) }
        let bytes = Array((try JSONEncoder().encode(answer)))
        guard Glibc.write(fd, bytes, bytes.count) == bytes.count, fsync(fd) == 0 else {
            throw ApprovalError("cannot write the answer \(path): \(String(cString: strerror(errno)))")
        }
        return request
    }

    struct Answer: Codable {
        var id: String
        var approve: Bool
        var label: String?
        var sudoUser: String?
    }

    /// Take every answer left since the last look: each is counted as its file's owner, minted
    /// (or refused, which is audited too) and removed.
    public func collectAnswers(now: Date = Date()) {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: answersDirectory)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
        for name in names {
            let path = answersDirectory + "/" + name
            defer { unlink(path) }
            let fd = Glibc.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
            guard fd >= 0 else { refused(name, "cannot be opened as a plain file"); continue }
            defer { Glibc.close(fd) }
            var info = stat()
            guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_nlink == 1, info.st_size <= 4096 else {
                refused(name, "is not a plain file of its own (a link, or too large)")
                continue
            }
            var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
            guard Glibc.read(fd, &bytes, bytes.count) == bytes.count, let answer = try? JSONDecoder().decode(Answer.self, from: Data(bytes)),
                  name.hasPrefix(answer.id + ".") else {
                refused(name, "cannot be read as an answer")
                continue
            }
            let person = Approver.owner(uid: info.st_uid, sudoUser: answer.sudoUser, label: answer.label)
            do { _ = try decide(answer.id, approve: answer.approve, by: person, now: now) } catch {
                refused(name, "by \(person): \(error)")
            }
        }
    }

    private func refused(_ answer: String, _ why: String) {
        try? audit?.append(AuditRecord(time: SystemClock().now().nanoseconds, policy: policyHash, event: "approval-refused", mode: "",
                                       context: "supervisor", call: "answer \(answer)", reason: why))
    }

    /// Approvals the audit log says were minted complete, and whether a decision used them.
    static func mintedApprovals(in path: String) -> [String: Minted] {
        var found: [String: Minted] = [:]
        for record in AuditLog.records(path: path) {
            if record.event == "approval", record.decision == "approved", let rule = record.rule, rule.hasPrefix("request "),
               let fields = record.result.map(Self.fields), let digest = fields["digest"], let expires = fields["expires"].flatMap(Double.init),
               let count = fields["approvals"]?.split(separator: "/").compactMap({ Int($0) }), count.count == 2, count[0] >= count[1] {
                found[String(rule.dropFirst("request ".count))] = Minted(digest: digest, expiresAt: Date(timeIntervalSince1970: expires), used: false)
            } else if record.event == "decision" || record.event == "plan-preflight", record.decision == "allow", let rule = record.rule, rule.hasPrefix("approval ") {
                // Used by a decision, or by a plan's preflight (which the plan's steps then rest on).
                let id = rule.dropFirst("approval ".count).prefix { $0 != " " }
                found[String(id)]?.used = true
            }
        }
        return found
    }

    static func fields(_ text: String) -> [String: String] {
        Dictionary(text.split(separator: " ").compactMap { part -> (String, String)? in
            let kv = part.split(separator: "=", maxSplits: 1)
            return kv.count == 2 ? (String(kv[0]), String(kv[1])) : nil
        }, uniquingKeysWith: { a, _ in a })
    }

    private func save(_ approval: Approval) throws {
        do { try JSONRecordFile.write(approval, to: "\(directory)/\(approval.id).json") } catch {
            throw ApprovalError("cannot store approval \(approval.id): \(error.message)")
        }
        chmod("\(directory)/\(approval.id).json", 0o644)
    }
}
