import Foundation
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
    public enum State: String, Codable, Sendable { case pending, approved, rejected, used }
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
}

public struct ApprovalError: Error, CustomStringConvertible, Equatable {
    public var description: String
    init(_ d: String) { description = d }
}

/// Approvals as files in one directory (0700), one per request, replaced atomically. The
/// supervisor opens requests and consumes approvals; a person approves or rejects them with the
/// CLI. An approval is single-use, expires, and matches only its exact binding. Request ids are
/// 64 random bits: a context cannot guess one, and no context can write this directory (the
/// guard protects the run folder).
public final class ApprovalStore {
    public let directory: String
    /// How long a request stays answerable, and an approval usable.
    public let lifetime: TimeInterval

    public init(directory: String, lifetime: TimeInterval = 600) throws {
        self.directory = directory
        self.lifetime = lifetime
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }

    public func all() -> [Approval] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasSuffix(".json") }.compactMap { load(String($0.dropLast(5))) }.sorted { $0.requestedAt < $1.requestedAt }
    }

    public func pending(now: Date = Date()) -> [Approval] { all().filter { $0.state == .pending && $0.expiresAt > now } }

    /// The open request for this binding, or a new one.
    public func request(_ binding: ApprovalBinding, approvers: Int = 1, now: Date = Date()) throws -> Approval {
        if let open = all().first(where: { $0.digest == binding.digest && $0.state == .pending && $0.expiresAt > now }) { return open }
        let id = String(format: "%016llx", UInt64.random(in: .min ... .max))
        let approval = Approval(id: id, binding: binding, digest: binding.digest, state: .pending, requestedAt: now,
                                expiresAt: now.addingTimeInterval(lifetime), decidedBy: nil, usedAt: nil,
                                required: approvers > 1 ? approvers : nil)
        try save(approval)
        return approval
    }

    /// A person approves a pending request.
    public func approve(_ id: String, by person: String, now: Date = Date()) throws -> Approval {
        try decide(id, .approved, by: person, now: now)
    }

    public func reject(_ id: String, by person: String, now: Date = Date()) throws -> Approval {
        try decide(id, .rejected, by: person, now: now)
    }

    private func decide(_ id: String, _ state: Approval.State, by person: String, now: Date) throws -> Approval {
        guard id.count == 16, id.allSatisfy(\.isHexDigit), var approval = load(id) else {
            throw ApprovalError("no approval request \(id); list them with worldos approvals")
        }
        guard approval.state == .pending else { throw ApprovalError("request \(id) is already \(approval.state.rawValue)") }
        guard approval.expiresAt > now else { throw ApprovalError("request \(id) expired at \(approval.expiresAt); the action will ask again") }
        if state == .approved, let required = approval.required {
            // The two-person rule: each approval must come from someone who has not given one.
            guard !(approval.approvedBy ?? []).contains(person) else {
                throw ApprovalError("\(person) has already approved request \(id); it needs \(required) different people")
            }
            let people = (approval.approvedBy ?? []) + [person]
            approval.approvedBy = people
            if people.count >= required {
                approval.state = .approved
                approval.decidedBy = people.joined(separator: " and ")
            }
        } else {
            approval.state = state
            approval.decidedBy = person
        }
        try save(approval)
        return approval
    }

    /// Use an approval for this exact binding, once: approved, not expired, same digest.
    public func consume(_ binding: ApprovalBinding, now: Date = Date()) throws -> Approval? {
        guard var approval = all().first(where: { $0.digest == binding.digest && $0.state == .approved && $0.expiresAt > now }) else { return nil }
        approval.state = .used
        approval.usedAt = now
        try save(approval)
        return approval
    }

    private func load(_ id: String) -> Approval? {
        try? JSONRecordFile.read(Approval.self, from: "\(directory)/\(id).json")
    }

    private func save(_ approval: Approval) throws {
        do { try JSONRecordFile.write(approval, to: "\(directory)/\(approval.id).json") } catch {
            throw ApprovalError("cannot store approval \(approval.id): \(error.message)")
        }
    }
}
