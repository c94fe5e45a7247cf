import Foundation

/// A graph frozen as plain data, in identity order, for JSON and for diffing.
public struct GraphSnapshot: Codable, Equatable, Sendable {
    public var nodes: [Node]
    public var edges: [Edge]

    public init(nodes: [Node], edges: [Edge]) {
        self.nodes = nodes.sorted { $0.id < $1.id }
        self.edges = edges.sorted()
    }

    /// JSON with sorted keys, so equal snapshots give byte-equal files.
    public func jsonData(pretty: Bool = true) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    public static func decode(_ data: Data) throws -> GraphSnapshot {
        try JSONDecoder().decode(GraphSnapshot.self, from: data)
    }

    /// The delta that turns `self` into `other`: applying it to a graph equal to `self` gives
    /// a graph equal to `other`.
    ///
    /// Order matters because removal cascades along `owns`: vanished edges with a surviving
    /// endpoint go first (so a surviving child is not taken with its removed owner), then only
    /// the topmost removed nodes, then additions, updates and new edges.
    public func diff(to other: GraphSnapshot) -> GraphDelta {
        let old = Dictionary(uniqueKeysWithValues: nodes.map { ($0.id, $0) })
        let new = Dictionary(uniqueKeysWithValues: other.nodes.map { ($0.id, $0) })
        let oldEdges = Set(edges), newEdges = Set(other.edges)
        let removed = Set(old.keys.filter { new[$0] == nil || new[$0]!.kind != old[$0]!.kind || new[$0]!.partition != old[$0]!.partition })
        var delta = GraphDelta()
        for edge in edges where !newEdges.contains(edge) {
            if !(removed.contains(edge.from) && removed.contains(edge.to)) { delta.append(.removeEdge(edge)) }
        }
        var ownerInRemoved: Set<NodeID> = []
        for edge in edges where edge.kind == .owns && removed.contains(edge.from) && removed.contains(edge.to) {
            ownerInRemoved.insert(edge.to)
        }
        // A removed context takes its partition with it, owned or not.
        let removedContexts = Set(removed.compactMap { id -> String? in
            guard let n = old[id], n.kind == .executionContext, case .context(let name) = n.partition else { return nil }
            return name
        })
        for id in removed.sorted() where !ownerInRemoved.contains(id) {
            if let n = old[id], n.kind != .executionContext, case .context(let name) = n.partition, removedContexts.contains(name) { continue }
            delta.append(.removeNode(id))
        }
        // Contexts before their members, owners before what they own.
        let added = other.nodes.filter { removed.contains($0.id) || old[$0.id] == nil }
        for node in added.sorted(by: contextsFirst) {
            delta.append(.addNode(node))
        }
        for node in other.nodes where !removed.contains(node.id) {
            if let before = old[node.id], before != node { delta.append(.updateNode(node)) }
        }
        for edge in other.edges where !oldEdges.contains(edge) || removed.contains(edge.from) || removed.contains(edge.to) {
            delta.append(.addEdge(edge))
        }
        return delta
    }
}

/// Contexts before their members (a member needs its context), then identity order.
func contextsFirst(_ a: Node, _ b: Node) -> Bool {
    let ka = a.kind == .executionContext ? 0 : 1, kb = b.kind == .executionContext ? 0 : 1
    return (ka, a.id) < (kb, b.id)
}

extension Graph {
    public func snapshot() -> GraphSnapshot {
        GraphSnapshot(nodes: Array(nodes.values), edges: allEdges)
    }

    /// Rebuild a graph from a snapshot, checking every invariant on the way in.
    public init(snapshot: GraphSnapshot) throws(GraphError) {
        self.init()
        var delta = GraphDelta()
        for node in snapshot.nodes.sorted(by: contextsFirst) {
            if node.id == NodeID.kernel { delta.append(.updateNode(node)) } else { delta.append(.addNode(node)) }
        }
        for edge in snapshot.edges { delta.append(.addEdge(edge)) }
        try apply(delta)
    }
}

extension GraphChange: Codable {
    private enum CodingKeys: String, CodingKey { case op, node, id, edge }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch try c.decode(String.self, forKey: .op) {
        case "add-node": self = .addNode(try c.decode(Node.self, forKey: .node))
        case "update-node": self = .updateNode(try c.decode(Node.self, forKey: .node))
        case "remove-node": self = .removeNode(try c.decode(NodeID.self, forKey: .id))
        case "add-edge": self = .addEdge(try c.decode(Edge.self, forKey: .edge))
        case "remove-edge": self = .removeEdge(try c.decode(Edge.self, forKey: .edge))
        case let other:
            throw DecodingError.dataCorruptedError(forKey: .op, in: c, debugDescription:
                "unknown graph change \"\(other)\"; expected add-node, update-node, remove-node, add-edge or remove-edge")
        }
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .addNode(let n): try c.encode("add-node", forKey: .op); try c.encode(n, forKey: .node)
        case .updateNode(let n): try c.encode("update-node", forKey: .op); try c.encode(n, forKey: .node)
        case .removeNode(let id): try c.encode("remove-node", forKey: .op); try c.encode(id, forKey: .id)
        case .addEdge(let e): try c.encode("add-edge", forKey: .op); try c.encode(e, forKey: .edge)
        case .removeEdge(let e): try c.encode("remove-edge", forKey: .op); try c.encode(e, forKey: .edge)
        }
    }
}

extension GraphDelta: Codable {
    public init(from decoder: any Decoder) throws { changes = try [GraphChange](from: decoder) }
    public func encode(to encoder: any Encoder) throws { try changes.encode(to: encoder) }
}
