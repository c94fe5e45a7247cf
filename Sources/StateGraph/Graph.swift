import Synchronization

/// One change to the graph.
public enum GraphChange: Hashable, Sendable {
    case addNode(Node)
    /// Replace a node's mutable fields (observability, projection, capabilities, attributes).
    case updateNode(Node)
    /// Remove a node and its whole owned subgraph; removing an execution context removes its partition.
    case removeNode(NodeID)
    case addEdge(Edge)
    case removeEdge(Edge)
}

/// A batch of changes applied atomically: either all of them hold, or the graph is unchanged.
public struct GraphDelta: Hashable, Sendable {
    public var changes: [GraphChange]
    public init(_ changes: [GraphChange] = []) { self.changes = changes }
    public var isEmpty: Bool { changes.isEmpty }
    public mutating func append(_ change: GraphChange) { changes.append(change) }
}

/// The explicit graph of everything on the machine.
///
/// Invariants kept by every mutation (and checked from scratch by ``invariantViolations()``):
/// every edge joins existing nodes; no edge joins two different execution contexts; `owns`
/// edges form a forest inside one partition; every context partition has its context node; a
/// hidden node is never projected; only contexts carry capability labels.
public struct Graph: Sendable, Equatable {
    public private(set) var nodes: [NodeID: Node] = [:]
    private var outgoing: [NodeID: [Edge]] = [:]
    private var incoming: [NodeID: [Edge]] = [:]
    private var owners: [NodeID: NodeID] = [:]
    private var contextMembers: [String: Set<NodeID>] = [:]
    /// Every node's identity by kind, and the projected ones: what the scheduler and the panel
    /// ask for each step, found without a look at every node.
    private var byKind: [NodeKind: Set<NodeID>] = [:]
    private var projectedIDs: Set<NodeID> = []
    public private(set) var edgeCount = 0
    /// What the last `apply` changed: the revision it started from, and the identities whose
    /// node or outgoing edges it changed — so a diff against that revision looks only there.
    private var lastChange: (from: UInt64, touched: Set<NodeID>)?
    /// Stamped afresh by every change, from a counter no two graphs share: two graphs with the
    /// same stamp are copies of one another, so a diff between them is empty without a look.
    private(set) var revision = Graph.nextRevision()

    private static let revisions = Atomic<UInt64>(0)
    private static func nextRevision() -> UInt64 { revisions.add(1, ordering: .relaxed).newValue }

    /// A graph holding only the kernel root node.
    public init() {
        rawInsert(Graph.kernelRoot)
    }

    /// The node every graph starts from.
    public static let kernelRoot = Node(id: .kernel, kind: .kernel, partition: .kernel, observability: .background)

    public var nodeCount: Int { nodes.count }
    public subscript(id: NodeID) -> Node? { nodes[id] }
    public func contains(_ id: NodeID) -> Bool { nodes[id] != nil }
    public func contains(_ edge: Edge) -> Bool { outgoing[edge.from]?.contains(edge) ?? false }
    public func edges(from id: NodeID) -> [Edge] { outgoing[id] ?? [] }
    public func edges(to id: NodeID) -> [Edge] { incoming[id] ?? [] }
    public func owner(of id: NodeID) -> NodeID? { owners[id] }
    public func owned(by id: NodeID) -> [NodeID] {
        (outgoing[id] ?? []).lazy.filter { $0.kind == .owns }.map(\.to).sorted()
    }
    public var allEdges: [Edge] { outgoing.values.flatMap { $0 } }
    /// The graph's nodes and edges as indexes to edit and diff; shares storage until edited.
    public var draft: GraphDraft { GraphDraft(nodes: nodes, outgoing: outgoing) }

    /// Nodes of one kind, in identity order.
    public func nodes(ofKind kind: NodeKind) -> [Node] {
        (byKind[kind] ?? []).compactMap { nodes[$0] }.sorted { $0.id < $1.id }
    }
    /// How many nodes of one kind there are.
    public func count(ofKind kind: NodeKind) -> Int { byKind[kind]?.count ?? 0 }

    /// The identities whose node or outgoing edges changed since `earlier`, when this graph is
    /// `earlier` with one delta applied (nil otherwise: ask ``diff(to:)``).
    public func changed(since earlier: Graph) -> Set<NodeID>? {
        if earlier.revision == revision { return [] }
        guard let change = lastChange, change.from == earlier.revision else { return nil }
        return change.touched
    }
    /// Execution contexts, in identity order.
    public var contexts: [Node] { nodes(ofKind: .executionContext) }
    /// Pending asynchronous events (timers, signals, callbacks, device edges in flight).
    public var pendingEvents: [Node] { nodes(ofKind: .pendingEvent) }
    /// The UI-projected subset: what the surface currently shows, in identity order.
    public var uiProjection: [Node] {
        projectedIDs.compactMap { nodes[$0] }.sorted { $0.id < $1.id }
    }
    /// The context partitions that have members besides their context node.
    public var contextPartitions: [Partition] { contextMembers.filter { !$0.value.isEmpty }.keys.sorted().map { .context($0) } }
    /// Every node in one partition.
    public func members(of partition: Partition) -> [Node] {
        switch partition {
        case .kernel: nodes.values.filter { $0.partition == .kernel }.sorted { $0.id < $1.id }
        case .context(let name): (contextMembers[name] ?? []).compactMap { nodes[$0] }.sorted { $0.id < $1.id }
        }
    }

    // MARK: Applying changes

    /// Apply a delta atomically. On error the graph is exactly as it was and the error says
    /// which change was refused and why.
    public mutating func apply(_ delta: GraphDelta) throws(GraphError) {
        var undo: [Undo] = []
        undo.reserveCapacity(delta.changes.count)
        do {
            for change in delta.changes { try apply(change, undo: &undo) }
            if !delta.isEmpty {
                var touched = Set<NodeID>(minimumCapacity: undo.count)
                for step in undo {
                    switch step {
                    case .unAdd(let id): touched.insert(id)
                    case .restore(let node), .reAdd(let node): touched.insert(node.id)
                    case .unAddEdge(let edge), .reAddEdge(let edge): touched.insert(edge.from)
                    }
                }
                lastChange = (revision, touched)
                revision = Graph.nextRevision()
            }
        } catch {
            for step in undo.reversed() { revert(step) }
            throw error
        }
    }

    public mutating func apply(_ change: GraphChange) throws(GraphError) {
        try apply(GraphDelta([change]))
    }

    private enum Undo {
        case unAdd(NodeID)
        case restore(Node)
        case reAdd(Node)
        case unAddEdge(Edge)
        case reAddEdge(Edge)
    }

    private mutating func apply(_ change: GraphChange, undo: inout [Undo]) throws(GraphError) {
        switch change {
        case .addNode(let node):
            guard nodes[node.id] == nil else { throw .duplicateNode(node.id) }
            try validate(node)
            rawInsert(node)
            undo.append(.unAdd(node.id))
        case .updateNode(let node):
            guard let old = nodes[node.id] else { throw .unknownNode(node.id) }
            guard old.kind == node.kind else { throw .kindChanged(node.id, from: old.kind, to: node.kind) }
            guard old.partition == node.partition else {
                throw .partitionChanged(node.id, from: old.partition, to: node.partition)
            }
            try validate(node)
            nodes[node.id] = node
            if node.projected != old.projected {
                if node.projected { projectedIDs.insert(node.id) } else { projectedIDs.remove(node.id) }
            }
            undo.append(.restore(old))
        case .removeNode(let id):
            guard id != .kernel else { throw .removingKernel }
            guard nodes[id] != nil else { throw .unknownNode(id) }
            let doomed = removalSet(of: id)
            for victim in doomed {
                for edge in (outgoing[victim] ?? []) + (incoming[victim] ?? []) where contains(edge) {
                    rawRemove(edge)
                    undo.append(.reAddEdge(edge))
                }
            }
            for victim in doomed {
                let node = nodes[victim]!
                rawDelete(node)
                undo.append(.reAdd(node))
            }
        case .addEdge(let edge):
            guard let a = nodes[edge.from] else { throw .unknownNode(edge.from) }
            guard let b = nodes[edge.to] else { throw .unknownNode(edge.to) }
            if case .context = a.partition, case .context = b.partition, a.partition != b.partition {
                throw .crossContextEdge(edge, a.partition, b.partition)
            }
            guard !contains(edge) else { throw .duplicateEdge(edge) }
            if edge.kind == .owns {
                guard b.kind != .kernel, b.kind != .executionContext else { throw .unownableRoot(edge) }
                guard a.partition == b.partition else { throw .ownershipAcrossPartitions(edge) }
                if let existing = owners[edge.to] { throw .secondOwner(edge, existing: existing) }
                var cursor: NodeID? = edge.from
                while let c = cursor {
                    if c == edge.to { throw .ownershipCycle(edge) }
                    cursor = owners[c]
                }
            }
            rawInsert(edge)
            undo.append(.unAddEdge(edge))
        case .removeEdge(let edge):
            guard contains(edge) else { throw .unknownEdge(edge) }
            rawRemove(edge)
            undo.append(.reAddEdge(edge))
        }
    }

    private func validate(_ node: Node) throws(GraphError) {
        if node.kind == .executionContext {
            guard case .context(let name) = node.partition, node.id == .context(name) else {
                throw .contextOutsideOwnPartition(node.id, node.partition)
            }
        } else {
            if !node.capabilities.isEmpty { throw .capabilitiesOnNonContext(node.id) }
            if case .context(let name) = node.partition, nodes[.context(name)] == nil {
                throw .unknownContext(node.id, node.partition)
            }
            if node.kind == .kernel, node.id != .kernel || node.partition != .kernel { throw .duplicateNode(node.id) }
        }
        if node.observability == .hidden && node.projected { throw .hiddenButProjected(node.id) }
    }

    /// The node, everything it owns transitively, and — for a context — its whole partition.
    private func removalSet(of id: NodeID) -> [NodeID] {
        var seen: Set<NodeID> = [id]
        var order: [NodeID] = [id]
        var stack: [NodeID] = [id]
        if let node = nodes[id], node.kind == .executionContext, case .context(let name) = node.partition {
            for member in contextMembers[name] ?? [] where seen.insert(member).inserted {
                order.append(member)
                stack.append(member)
            }
        }
        while let top = stack.popLast() {
            for edge in outgoing[top] ?? [] where edge.kind == .owns && seen.insert(edge.to).inserted {
                order.append(edge.to)
                stack.append(edge.to)
            }
        }
        return order
    }

    private mutating func revert(_ step: Undo) {
        switch step {
        case .unAdd(let id): rawDelete(nodes[id]!)
        case .restore(let node):
            nodes[node.id] = node
            if node.projected { projectedIDs.insert(node.id) } else { projectedIDs.remove(node.id) }
        case .reAdd(let node): rawInsert(node)
        case .unAddEdge(let edge): rawRemove(edge)
        case .reAddEdge(let edge): rawInsert(edge)
        }
    }

    private mutating func rawInsert(_ node: Node) {
        nodes[node.id] = node
        byKind[node.kind, default: []].insert(node.id)
        if node.projected { projectedIDs.insert(node.id) }
        if case .context(let name) = node.partition, node.kind != .executionContext {
            contextMembers[name, default: []].insert(node.id)
        }
    }

    private mutating func rawDelete(_ node: Node) {
        nodes[node.id] = nil
        byKind[node.kind]?.remove(node.id)
        projectedIDs.remove(node.id)
        outgoing[node.id] = nil
        incoming[node.id] = nil
        if case .context(let name) = node.partition {
            if node.kind == .executionContext { contextMembers[name] = nil }
            else { contextMembers[name]?.remove(node.id) }
        }
    }

    private mutating func rawInsert(_ edge: Edge) {
        outgoing[edge.from, default: []].append(edge)
        incoming[edge.to, default: []].append(edge)
        if edge.kind == .owns { owners[edge.to] = edge.from }
        edgeCount += 1
    }

    private mutating func rawRemove(_ edge: Edge) {
        outgoing[edge.from]?.removeAll { $0 == edge }
        incoming[edge.to]?.removeAll { $0 == edge }
        if outgoing[edge.from]?.isEmpty == true { outgoing[edge.from] = nil }
        if incoming[edge.to]?.isEmpty == true { incoming[edge.to] = nil }
        if edge.kind == .owns { owners[edge.to] = nil }
        edgeCount -= 1
    }

    public static func == (a: Graph, b: Graph) -> Bool {
        a.nodes == b.nodes && Set(a.allEdges) == Set(b.allEdges)
    }

    // MARK: Checking

    /// Every broken invariant, checked from scratch rather than trusted from the indexes.
    /// Empty for every graph reachable through ``apply(_:)``.
    public func invariantViolations() -> [String] {
        var problems: [String] = []
        guard nodes[.kernel]?.kind == .kernel else { return ["the kernel root node is missing"] }
        let edges = allEdges
        if Set(edges).count != edges.count { problems.append("duplicate edges in the adjacency index") }
        if edges.count != edgeCount { problems.append("edge count \(edgeCount) but \(edges.count) edges indexed") }
        let incomingAll = incoming.values.flatMap { $0 }
        if Set(incomingAll) != Set(edges) { problems.append("incoming and outgoing indexes disagree") }
        var ownerOf: [NodeID: NodeID] = [:]
        for e in edges {
            guard let a = nodes[e.from], let b = nodes[e.to] else { problems.append("edge \(e) has a missing endpoint"); continue }
            if case .context = a.partition, case .context = b.partition, a.partition != b.partition {
                problems.append("edge \(e) joins two contexts")
            }
            if e.kind == .owns {
                if b.kind == .kernel || b.kind == .executionContext { problems.append("edge \(e) owns a partition root") }
                if a.partition != b.partition { problems.append("edge \(e) owns across partitions") }
                if ownerOf[e.to] != nil { problems.append("node \(e.to) has two owners") }
                ownerOf[e.to] = e.from
            }
        }
        if ownerOf != owners { problems.append("owner index disagrees with owns edges") }
        for start in ownerOf.keys {
            var seen: Set<NodeID> = [start]
            var cursor = ownerOf[start]
            while let c = cursor {
                if !seen.insert(c).inserted { problems.append("ownership cycle through \(start)"); break }
                cursor = ownerOf[c]
            }
        }
        var members: [String: Set<NodeID>] = [:]
        for node in nodes.values {
            if node.observability == .hidden && node.projected { problems.append("node \(node.id) hidden but projected") }
            if node.kind != .executionContext && !node.capabilities.isEmpty { problems.append("node \(node.id) carries capabilities") }
            if case .context(let name) = node.partition {
                if node.kind == .executionContext {
                    if node.id != .context(name) { problems.append("context \(node.id) outside its partition") }
                } else {
                    members[name, default: []].insert(node.id)
                    if nodes[.context(name)] == nil { problems.append("node \(node.id) in partition of missing context \(name)") }
                }
            }
        }
        if members != contextMembers.filter({ !$0.value.isEmpty }) { problems.append("partition index disagrees with nodes") }
        if Dictionary(grouping: nodes.values, by: \.kind).mapValues({ Set($0.map(\.id)) }) != byKind.filter({ !$0.value.isEmpty }) {
            problems.append("kind index disagrees with nodes")
        }
        if Set(nodes.values.filter(\.projected).map(\.id)) != projectedIDs { problems.append("projection index disagrees with nodes") }
        return problems
    }
}
