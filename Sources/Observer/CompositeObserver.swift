import LoopCore
import StateGraph

/// Several observers as one observation bundle: scopes, nodes and edges joined, races summed.
///
/// The bundle is stamped, and carries what changed since the last bundle when every part can
/// say: a part that reports its own change (the process observer) gives it; for a small part
/// that does not (telemetry, instruments, devices, approvals) it is found by comparing that
/// part's output with its last. The change is left out — and the estimator looks at the whole
/// observation — after a part failed, when a part's output is large and tells nothing, or when
/// the parts' nodes could overlap (a small part's node of a kind another part observes, or one
/// identity from two small parts).
public struct CompositeObserver: Observing {
    public var parts: [any Observing]
    private let observerID = ObservationStamp.newObserver()
    private var sequence: UInt64 = 0
    /// Each part's last observation, and whether the bundle before it is complete.
    private var last: [Observation?]
    private var lastStamp: ObservationStamp?
    /// Beyond this many nodes a part that keeps no record of its changes is not compared whole.
    static let comparedWhole = 4096

    public init(_ parts: [any Observing]) {
        self.parts = parts
        last = Array(repeating: nil, count: parts.count)
    }

    public mutating func observe(at now: Instant) throws -> Observation {
        sequence += 1
        let stamp = ObservationStamp(observer: observerID, sequence: sequence)
        var merged = Observation(time: now, scope: [], nodes: [], edges: [], supervisor: nil, stamp: stamp)
        merged.nodeParts = []
        merged.edgeParts = []
        var observed: [Observation] = []
        observed.reserveCapacity(parts.count)
        for i in parts.indices {
            do { observed.append(try parts[i].observe(at: now)) } catch {
                // What the parts said is no longer one bundle: the next one is looked at whole.
                last = Array(repeating: nil, count: parts.count)
                lastStamp = nil
                throw error
            }
        }
        for o in observed {
            merged.scope.formUnion(o.scope)
            merged.nodeParts += o.nodeParts
            merged.edgeParts += o.edgeParts
            merged.supervisor = merged.supervisor ?? o.supervisor
            merged.raced += o.raced
            merged.events += o.events
        }
        merged.change = lastStamp.flatMap { change(since: $0, observed) }
        last = observed
        lastStamp = stamp
        return merged
    }

    /// The parts' changes since their last observations, as one change since `since`.
    private func change(since: ObservationStamp, _ observed: [Observation]) -> ObservationChange? {
        var change = ObservationChange(since: since)
        var nativeScope = Set<NodeKind>(), compared: [Observation] = []
        for (o, previous) in zip(observed, last) {
            guard let previous else { return nil }
            if let own = o.change, let was = previous.stamp, own.since == was {
                nativeScope.formUnion(o.scope)
                change.nodes += own.nodes
                change.removed += own.removed
                change.addedEdges += own.addedEdges
                change.removedEdges += own.removedEdges
            } else {
                guard o.nodes.count + previous.nodes.count <= Self.comparedWhole else { return nil }
                let own = ObservationChange.between((previous.nodes, previous.edges), (o.nodes, o.edges), since: since)
                change.nodes += own.nodes
                change.removed += own.removed
                change.addedEdges += own.addedEdges
                change.removedEdges += own.removedEdges
                compared.append(o)
                compared.append(previous)
            }
        }
        // The compared parts' nodes are theirs alone: of no kind another part observes, and no
        // identity given by two of them.
        var ids = Set<NodeID>()
        for (i, o) in compared.enumerated() {
            for node in o.nodes {
                if nativeScope.contains(node.kind) { return nil }
                if i % 2 == 0, !ids.insert(node.id).inserted { return nil }
            }
        }
        return change
    }
}
