import Foundation
import LoopCore
import StateGraph

/// The approvals waiting for a person, as nodes of the graph's UI partition (one `approval` node
/// each: action, parameters, device identity and path, risk class, the context that asked, until
/// when): the supervisor's own approval store asked every step (its memory, not the request
/// files, which anyone could write), so the panel shows what waits now — a request used,
/// rejected or expired is gone from the next observation.
public struct ApprovalObserver: Observing {
    public let store: ApprovalStore
    public init(store: ApprovalStore) { self.store = store }

    public func observe(at now: Instant) throws -> Observation {
        let wall = Date()
        let clock = ISO8601DateFormatter()
        clock.formatOptions = [.withTime, .withColonSeparatorInTime, .withTimeZone]
        let nodes = store.waiting(now: wall).map { a in
            var attributes: Attributes = [
                "action": .string(a.binding.action), "device": .string(a.binding.device), "path": .string(a.binding.path),
                "params": .string(a.binding.params.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")),
                "context": .string(a.binding.context), "until": .string(clock.string(from: a.expiresAt)),
                "risk": .string(a.risk ?? "irreversible"),
            ]
            if let required = a.required {
                attributes["approvals"] = .string("\(a.approvedBy?.count ?? 0) of \(required)")
                attributes["approved-by"] = .string((a.approvedBy ?? []).joined(separator: ","))
            }
            if let dream = a.dream { attributes["dream"] = .string(dream.summary) }
            return Node(id: NodeID("approval:\(a.id)"), kind: .approval, projected: true, attributes: attributes)
        }
        return Observation(time: now, scope: [.approval], nodes: nodes, edges: [], supervisor: nil, raced: 0, events: [])
    }
}
