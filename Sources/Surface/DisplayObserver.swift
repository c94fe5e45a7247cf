import DevicePorts
import LoopCore
import StateGraph

/// The screen as graph nodes: its connector (with the mode shown), the CRTC scanning out to it
/// (how the page flips went), the plane that does, and the framebuffer on screen — so the
/// display's state is in the trace beside everything else. With no screen (none yet, or one unplugged) the scope
/// is empty: a screen that goes away is a transition of the graph.
public struct DisplayObserver: Observing {
    private let screen: Screen

    public init(_ screen: Screen) { self.screen = screen }

    public static func connector(_ state: DisplayState) -> NodeID { NodeID("display:\(state.device)/\(state.connector)") }

    public func observe(at now: Instant) throws -> Observation {
        guard let s = screen.display?.state else {
            return Observation(time: now, scope: [.displayConnector, .crtc, .plane, .framebuffer], nodes: [], edges: [], supervisor: nil)
        }
        let connector = Self.connector(s)
        let crtc = NodeID("crtc:\(s.device)/\(s.crtc)")
        var nodes = [
            Node(id: connector, kind: .displayConnector, projected: true, attributes: [
                "device": .string(s.device), "driver": .string(s.driver), "connector": .string(s.connector),
                "mode": .string(s.mode.description), "width": .int(Int64(s.mode.width)), "height": .int(Int64(s.mode.height)),
            ]),
            Node(id: crtc, kind: .crtc, observability: .background, attributes: [
                "id": .int(Int64(s.crtc)), "framebuffer": .int(Int64(s.framebuffer)), "presented": .int(Int64(s.presented)),
                "flips": .int(Int64(s.flips)), "superseded": .int(Int64(s.superseded)), "flip-pending": .bool(s.flipPending),
            ]),
        ]
        var edges = [Edge(crtc, .attachedTo, connector)]
        if s.plane != 0 {
            let plane = NodeID("plane:\(s.device)/\(s.plane)")
            nodes.append(Node(id: plane, kind: .plane, observability: .background, attributes: ["id": .int(Int64(s.plane)), "role": .string("primary")]))
            edges.append(Edge(plane, .attachedTo, crtc))
        }
        if s.framebuffer != 0 {
            // The framebuffer on screen changes with every flip: one node, its id an attribute.
            let framebuffer = NodeID("framebuffer:\(s.device)/\(s.connector)")
            nodes.append(Node(id: framebuffer, kind: .framebuffer, observability: .background, attributes: [
                "id": .int(Int64(s.framebuffer)), "width": .int(Int64(s.mode.width)), "height": .int(Int64(s.mode.height)), "format": .string("XR24"),
            ]))
            edges.append(Edge(framebuffer, .attachedTo, s.plane != 0 ? NodeID("plane:\(s.device)/\(s.plane)") : crtc))
        }
        return Observation(time: now, scope: [.displayConnector, .crtc, .plane, .framebuffer], nodes: nodes, edges: edges, supervisor: nil)
    }
}
