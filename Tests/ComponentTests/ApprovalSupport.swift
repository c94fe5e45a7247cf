import Foundation
import Guard

extension ApprovalStore {
    /// Mint as the supervisor would from an established identity named `name`.
    func approve(_ id: String, by name: String, now: Date = Date()) throws -> Approval { try approve(id, by: Approver(name), now: now) }
    func reject(_ id: String, by name: String, now: Date = Date()) throws -> Approval { try reject(id, by: Approver(name), now: now) }
}
