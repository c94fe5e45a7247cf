import LoopCore
import StateGraph
import Renderer

/// The seat as graph nodes: the panel's surface (its operator, focus and what is armed, which
/// the renderer draws from) and each input device attached to it, so a device plugged in or
/// pulled out is a transition of the graph, in the trace like any other.
public struct PanelObserver: Observing {
    private let seat: PanelSeat

    public init(_ seat: PanelSeat) { self.seat = seat }

    public static func input(_ path: String) -> NodeID { NodeID("input:\(path)") }

    public func observe(at now: Instant) throws -> Observation {
        seat.refresh()
        let (name, focus, armed) = seat.state(at: now)
        var surface: Attributes = [:]
        if let name { surface["operator"] = .string(name) }
        if let focus { surface["focus"] = .string(focus) }
        if let armed { surface["armed"] = .string(armed) }
        var nodes = [Node(id: PanelRenderer.surfaceNode, kind: .surface, projected: true, attributes: surface)]
        var edges: [Edge] = []
        for device in seat.devices {
            var attributes: Attributes = ["path": .string(device.path), "name": .string(device.name),
                                          "capabilities": .string(device.capabilities.joined(separator: ","))]
            if let note = device.note { attributes["note"] = .string(note) }
            let id = Self.input(device.path)
            nodes.append(Node(id: id, kind: .inputDevice, projected: true, attributes: attributes))
            edges.append(Edge(id, .attachedTo, PanelRenderer.surfaceNode))
        }
        return Observation(time: now, scope: [.surface, .inputDevice], nodes: nodes, edges: edges, supervisor: nil)
    }
}
