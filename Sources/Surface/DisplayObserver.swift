import DevicePorts
import LoopCore
import StateGraph

/// The screen as graph nodes: its connector (with the mode shown) and the CRTC scanning out to
/// it (with the framebuffer on screen and how the page flips went), so the display's state is
/// in the trace beside everything else. With no screen (none yet, or one unplugged) the scope
/// is empty: a screen that goes away is a transition of the graph.
public struct DisplayObserver: Observing {
    private let screen: Screen

    public init(_ screen: Screen) { self.screen = screen }

    public static func connector(_ state: DisplayState) -> NodeID { NodeID("display:\(state.device)/\(state.connector)") }

    public func observe(at now: Instant) throws -> Observation {
        guard let s = screen.display?.state else {
            return Observation(time: now, scope: [.displayConnector, .crtc], nodes: [], edges: [], supervisor: nil)
        }
        let connector = Self.connector(s)
        let crtc = NodeID("crtc:\(s.device)/\(s.crtc)")
        let nodes = [
            Node(id: connector, kind: .displayConnector, projected: true, attributes: [
                "device": .string(s.device), "driver": .string(s.driver), "connector": .string(s.connector),
                "mode": .string(s.mode.description), "width": .int(Int64(s.mode.width)), "height": .int(Int64(s.mode.height)),
            ]),
            Node(id: crtc, kind: .crtc, observability: .background, attributes: [
                "id": .int(Int64(s.crtc)), "framebuffer": .int(Int64(s.framebuffer)), "presented": .int(Int64(s.presented)),
                "flips": .int(Int64(s.flips)), "superseded": .int(Int64(s.superseded)), "flip-pending": .bool(s.flipPending),
            ]),
        ]
        return Observation(time: now, scope: [.displayConnector, .crtc], nodes: nodes, edges: [Edge(crtc, .attachedTo, connector)],
                           supervisor: nil)
    }
}
