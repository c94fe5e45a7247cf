import LoopCore
import StateGraph

/// Several observers as one observation bundle: scopes, nodes and edges joined, races summed.
public struct CompositeObserver: Observing {
    public var parts: [any Observing]

    public init(_ parts: [any Observing]) { self.parts = parts }

    public mutating func observe(at now: Instant) throws -> Observation {
        var merged = Observation(time: now, scope: [], nodes: [], edges: [], supervisor: nil)
        for i in parts.indices {
            let o = try parts[i].observe(at: now)
            merged.scope.formUnion(o.scope)
            merged.nodes += o.nodes
            merged.edges += o.edges
            merged.supervisor = merged.supervisor ?? o.supervisor
            merged.raced += o.raced
            merged.events += o.events
        }
        return merged
    }
}
