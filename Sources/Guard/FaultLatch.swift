import Foundation
import Journal
import LoopCore

/// A latched fault: once the supervisor loses a device (or anything else it cannot vouch for),
/// nothing physical runs until a person acknowledges it with `worldos ack`, even across a
/// restart. The state is a file in the run folder (`fault.json`), out of every context's reach.
/// The supervisor alone writes the audit log: `worldos ack` marks the fault acknowledged, and
/// the running (or next) supervisor records that and clears it.
public final class FaultLatch {
    public struct Fault: Codable, Equatable, Sendable {
        public var reason: String
        public var since: Date
        public var acknowledgedBy: String?
    }

    public let path: String
    private let audit: AuditLog?
    private let policyHash: String
    /// The fault in force, if any.
    public private(set) var current: Fault?
    /// Run once when a fault is latched: whatever holds actuators makes them safe.
    public var onLatch: [() -> Void] = []

    public init(folder: RunFolder, audit: AuditLog?, policyHash: String = "") {
        path = folder.fault
        self.audit = audit
        self.policyHash = policyHash
        current = Self.load(path)
    }

    /// Latch a fault, unless one is in force already (the first cause is the one to see).
    /// Returns whether this call latched it.
    @discardableResult
    public func latch(_ reason: String, at now: Instant) throws -> Bool {
        guard current == nil else { return false }
        let fault = Fault(reason: reason, since: Date(), acknowledgedBy: nil)
        try Self.save(fault, path)
        current = fault
        onLatch.forEach { $0() }
        try audit?.append(AuditRecord(time: now.nanoseconds, policy: policyHash, event: "fault", mode: "", context: "supervisor",
                                      call: "latch", reason: reason))
        return true
    }

    /// Take in an acknowledgement made by `worldos ack` since the last look; returns the fault
    /// it cleared.
    @discardableResult
    public func refresh(at now: Instant) throws -> Fault? {
        let found = Self.load(path)
        guard let fault = found, let person = fault.acknowledgedBy else {
            current = found
            return nil
        }
        try audit?.append(AuditRecord(time: now.nanoseconds, policy: policyHash, event: "fault-acknowledged", mode: "", context: "supervisor",
                                      call: "ack", reason: "\(fault.reason) (latched \(fault.since)), acknowledged by \(person)"))
        try FileManager.default.removeItem(atPath: path)
        current = nil
        return fault
    }

    /// Mark the fault in `folder` acknowledged by a person (`worldos ack`).
    public static func acknowledge(folder: RunFolder, by person: String) throws -> Fault {
        let path = folder.fault
        guard var fault = load(path) else { throw FaultLatchError("no fault is latched in \(folder); nothing to acknowledge") }
        guard fault.acknowledgedBy == nil else { throw FaultLatchError("the fault in \(folder) is already acknowledged by \(fault.acknowledgedBy!); the supervisor clears it on its next step") }
        fault.acknowledgedBy = person
        try save(fault, path)
        return fault
    }

    private static func load(_ path: String) -> Fault? {
        // A fault file that cannot be read still halts: the guard does not guess it away.
        do { return try JSONRecordFile.read(Fault.self, from: path) } catch {
            return Fault(reason: "\(path) cannot be read as a fault record", since: Date(), acknowledgedBy: nil)
        }
    }

    private static func save(_ fault: Fault, _ path: String) throws {
        try JSONRecordFile.write(fault, to: path)
    }
}

public struct FaultLatchError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
