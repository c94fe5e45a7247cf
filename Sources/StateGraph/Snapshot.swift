import Foundation
import JSONWriter

/// A graph frozen as plain data, in identity order, for JSON and for diffing.
public struct GraphSnapshot: Codable, Equatable, Sendable {
    public var nodes: [Node]
    public var edges: [Edge]

    public init(nodes: [Node], edges: [Edge]) {
        self.nodes = nodes.sorted { $0.id < $1.id }
        self.edges = edges.sorted()
    }

    /// Nodes and edges already in identity order (not checked).
    public init(ordered nodes: [Node], edges: [Edge]) {
        self.nodes = nodes
        self.edges = edges
    }

    /// JSON with sorted keys, so equal snapshots give byte-equal files; `lines`: a node or edge
    /// a line (see ``write(json:lines:)``).
    public func jsonData(lines: Bool = true) -> Data {
        var json = JSONWriter(reserving: 128 * (nodes.count + edges.count) + 64)
        write(json: &json, lines: lines)
        return Data(json.bytes)
    }

    public static func decode(_ data: Data) throws -> GraphSnapshot {
        try JSONDecoder().decode(GraphSnapshot.self, from: data)
    }

    /// The delta that turns `self` into `other`: applying it to a graph equal to `self` gives
    /// a graph equal to `other`. See ``GraphDraft/diff(to:)``.
    public func diff(to other: GraphSnapshot) -> GraphDelta {
        GraphDraft(self).diff(to: GraphDraft(other))
    }
}

/// A graph's nodes by identity and edges by source, as plain indexes: a copy of a graph's that
/// costs nothing until edited (``Graph/draft``), edited freely (no invariant is checked until
/// the delta is applied), and diffed against what it came from by hashing — the graph stays
/// unsorted, and lists the two share are skipped whole.
public struct GraphDraft: Sendable {
    public var nodes: [NodeID: Node]
    /// Edges by source. A source with no edges may be absent or hold an empty list.
    public var outgoing: [NodeID: [Edge]]

    public init(nodes: [NodeID: Node] = [:], outgoing: [NodeID: [Edge]] = [:]) {
        self.nodes = nodes
        self.outgoing = outgoing
    }

    public init(_ snapshot: GraphSnapshot) {
        nodes = Dictionary(snapshot.nodes.map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
        outgoing = Dictionary(grouping: snapshot.edges, by: \.from)
    }

    public mutating func remove(_ edge: Edge) { outgoing[edge.from]?.removeAll { $0 == edge } }

    /// The delta that turns a graph equal to `self` into one equal to `other`.
    ///
    /// Order matters because removal cascades along `owns`: vanished edges with a surviving
    /// endpoint go first (so a surviving child is not taken with its removed owner), then only
    /// the topmost removed nodes, then additions, updates and new edges — each group in
    /// identity order, so equal inputs give equal deltas.
    public func diff(to other: GraphDraft) -> GraphDelta {
        var ids = Set(nodes.keys)
        ids.formUnion(other.nodes.keys)
        ids.formUnion(outgoing.keys)
        ids.formUnion(other.outgoing.keys)
        return GraphDraft.delta(from: self, to: other, touching: ids)
    }

    /// The same delta, found by looking only at `ids`: their nodes, and the edge lists of which
    /// they are the source. For an editor that knows everything it changed is among them — a
    /// node it replaced with one of another kind brings the sources of the edges into it.
    public func diff(to other: GraphDraft, touching ids: Set<NodeID>) -> GraphDelta { GraphDraft.delta(from: self, to: other, touching: ids) }

    /// The delta between any two versions read by identity, looking only at `ids`.
    static func delta<A: GraphIndexes, B: GraphIndexes>(from mine: A, to other: B, touching ids: Set<NodeID>) -> GraphDelta {
        // A node whose kind or partition changed is removed and added again.
        var removed = Set<NodeID>()
        var added: [Node] = [], updated: [Node] = []
        for id in ids {
            guard let node = other.node(id) else {
                if mine.node(id) != nil { removed.insert(id) }
                continue
            }
            guard let before = mine.node(id) else {
                added.append(node)
                continue
            }
            if before.kind != node.kind || before.partition != node.partition {
                removed.insert(id)
                added.append(node)
            } else if before != node {
                updated.append(node)
            }
        }
        var vanished: [Edge] = [], appeared: [Edge] = []
        for id in ids {
            let (theirs, had) = (other.edgeList(from: id), mine.edgeList(from: id))
            if !had.isEmpty, had != theirs {
                let kept = Set(theirs)
                for edge in had where !kept.contains(edge) && !(removed.contains(edge.from) && removed.contains(edge.to)) { vanished.append(edge) }
            }
            // Edges of a removed node are taken with it, so the ones that stay are added again.
            guard !theirs.isEmpty else { continue }
            let fromRemoved = removed.contains(id)
            if had == theirs {
                if !removed.isEmpty {
                    for edge in theirs where fromRemoved || removed.contains(edge.to) { appeared.append(edge) }
                }
                continue
            }
            let before = Set(had)
            for edge in theirs where !before.contains(edge) || fromRemoved || removed.contains(edge.to) { appeared.append(edge) }
        }

        var delta = GraphDelta()
        for edge in vanished.sorted() { delta.append(.removeEdge(edge)) }
        var ownedByRemoved: Set<NodeID> = []
        for id in removed {
            for edge in mine.edgeList(from: id) where edge.kind == .owns && removed.contains(edge.to) { ownedByRemoved.insert(edge.to) }
        }
        // A removed context takes its partition with it, owned or not.
        let removedContexts = Set(removed.compactMap { id -> String? in
            guard let n = mine.node(id), n.kind == .executionContext, case .context(let name) = n.partition else { return nil }
            return name
        })
        for id in removed.sorted() where !ownedByRemoved.contains(id) {
            if let n = mine.node(id), n.kind != .executionContext, case .context(let name) = n.partition, removedContexts.contains(name) { continue }
            delta.append(.removeNode(id))
        }
        // Contexts before their members, owners before what they own.
        for node in added.sorted(by: contextsFirst) { delta.append(.addNode(node)) }
        for node in updated.sorted(by: { $0.id < $1.id }) { delta.append(.updateNode(node)) }
        for edge in appeared.sorted() { delta.append(.addEdge(edge)) }
        return delta
    }
}

/// A graph read by identity: what a delta between two versions looks at.
public protocol GraphIndexes {
    func node(_ id: NodeID) -> Node?
    /// The edges from `id` (none: empty).
    func edgeList(from id: NodeID) -> [Edge]
}

extension GraphDraft: GraphIndexes {
    public func node(_ id: NodeID) -> Node? { nodes[id] }
    public func edgeList(from id: NodeID) -> [Edge] { outgoing[id] ?? [] }
}

extension Graph: GraphIndexes {
    public func node(_ id: NodeID) -> Node? { self[id] }
    public func edgeList(from id: NodeID) -> [Edge] { edges(from: id) }
}

/// Edits to a graph kept beside it, not in it: nodes set or removed, edge lists replaced, read
/// over the graph by ``node(_:in:)`` and ``edges(from:in:)``; ``delta(from:touching:)`` is the
/// delta that makes the graph so. Unlike a ``GraphDraft`` nothing of the graph is copied, so the
/// graph, held once, is changed in place when the delta is applied.
public struct GraphEdits: Sendable {
    /// nil: removed.
    public private(set) var nodes: [NodeID: Node?] = [:]
    public private(set) var outgoing: [NodeID: [Edge]] = [:]

    public init() {}

    public func node(_ id: NodeID, in graph: Graph) -> Node? {
        if let edited = nodes[id] { return edited }
        return graph[id]
    }
    public func edges(from id: NodeID, in graph: Graph) -> [Edge] { outgoing[id] ?? graph.edges(from: id) }

    public mutating func set(_ node: Node) { nodes[node.id] = .some(node) }
    /// The node goes, and its edges with it.
    public mutating func remove(_ id: NodeID) {
        nodes[id] = .some(nil)
        outgoing[id] = []
    }
    public mutating func setEdges(_ edges: [Edge], from id: NodeID) { outgoing[id] = edges }

    /// The delta from `graph` to `graph` as edited, looking only at `touched` (which holds
    /// every identity edited, and the sources of edges into a node replaced by one of another kind).
    public func delta(from graph: Graph, touching touched: Set<NodeID>) -> GraphDelta {
        GraphDraft.delta(from: graph, to: View(graph: graph, edits: self), touching: touched)
    }

    private struct View: GraphIndexes {
        let graph: Graph
        let edits: GraphEdits
        func node(_ id: NodeID) -> Node? { edits.node(id, in: graph) }
        func edgeList(from id: NodeID) -> [Edge] { edits.edges(from: id, in: graph) }
    }
}

/// Contexts before their members (a member needs its context), then identity order.
func contextsFirst(_ a: Node, _ b: Node) -> Bool {
    let ka = a.kind == .executionContext ? 0 : 1, kb = b.kind == .executionContext ? 0 : 1
    return (ka, a.id) < (kb, b.id)
}

extension Graph {
    /// The delta that turns this graph into `other`, without sorting either.
    public func diff(to other: Graph) -> GraphDelta {
        if let touched = other.changed(since: self) { return touched.isEmpty ? GraphDelta() : draft.diff(to: other.draft, touching: touched) }
        return draft.diff(to: other.draft)
    }

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
