/// Why the graph refused a change. The graph is unchanged after any of these.
public enum GraphError: Error, Equatable, Sendable, CustomStringConvertible {
    case duplicateNode(NodeID)
    case unknownNode(NodeID)
    case kindChanged(NodeID, from: NodeKind, to: NodeKind)
    case partitionChanged(NodeID, from: Partition, to: Partition)
    case unknownContext(NodeID, Partition)
    case contextOutsideOwnPartition(NodeID, Partition)
    case crossContextEdge(Edge, Partition, Partition)
    case duplicateEdge(Edge)
    case unknownEdge(Edge)
    case secondOwner(Edge, existing: NodeID)
    case ownershipCycle(Edge)
    case ownershipAcrossPartitions(Edge)
    case unownableRoot(Edge)
    case hiddenButProjected(NodeID)
    case capabilitiesOnNonContext(NodeID)
    case removingKernel
    case malformedPartition(String)

    public var description: String {
        switch self {
        case .duplicateNode(let id): "node \(id) already exists; use an update instead of an add"
        case .unknownNode(let id): "node \(id) does not exist"
        case .kindChanged(let id, let a, let b): "node \(id) cannot change kind from \(a.rawValue) to \(b.rawValue); remove it and add a new node"
        case .partitionChanged(let id, let a, let b): "node \(id) cannot move from partition \(a) to \(b); remove it and add a new node"
        case .unknownContext(let id, let p): "node \(id) names partition \(p), but no execution context owns that partition; add the context first"
        case .contextOutsideOwnPartition(let id, let p): "execution context \(id) must live in its own partition, not \(p)"
        case .crossContextEdge(let e, let a, let b): "edge \(e) would join \(a) to \(b) directly; cross-context relations go through a kernel node"
        case .duplicateEdge(let e): "edge \(e) already exists"
        case .unknownEdge(let e): "edge \(e) does not exist"
        case .secondOwner(let e, let owner): "edge \(e) would give \(e.to) a second owner (it is owned by \(owner)); remove that ownership first"
        case .ownershipCycle(let e): "edge \(e) would make an ownership cycle"
        case .unownableRoot(let e): "edge \(e) would own \(e.to), which is the root of a partition; the kernel and execution contexts are never owned"
        case .ownershipAcrossPartitions(let e): "edge \(e) would own across partitions; a node is owned only within its own partition"
        case .hiddenButProjected(let id): "node \(id) is hidden, so it cannot be in the UI-projected subset"
        case .capabilitiesOnNonContext(let id): "node \(id) is not an execution context; only contexts carry capability labels"
        case .removingKernel: "the kernel node is the root of the kernel partition and cannot be removed"
        case .malformedPartition(let s): "\"\(s)\" is not a partition; write \"kernel\" or \"context:NAME\""
        }
    }
}
