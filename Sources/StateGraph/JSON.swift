import Dispatch
import JSONWriter

// The graph's values through the project's JSON writer: the same text their `Codable`
// conformances give under `JSONEncoder` with sorted keys (a test holds the two together), at a
// fraction of the cost — no intermediate tree of values, no key sorting at run time but the
// attributes'.

extension NodeID: JSONWritable {
    public func write(json: inout JSONWriter) { json.string(rawValue) }
}

extension AttributeValue: JSONWritable {
    public func write(json: inout JSONWriter) {
        switch self {
        case .int(let v): json.int(v)
        case .double(let v): json.double(v)
        case .string(let v): json.string(v)
        case .bool(let v): json.bool(v)
        }
    }
}

extension Attributes: JSONWritable {
    /// Members in key order: a node has a dozen pairs at most, set in its observer's order, so
    /// their places are put in order by insertion, without a copy of the pairs.
    public func write(json: inout JSONWriter) {
        json.beginObject()
        let pairs = self.pairs
        withUnsafeTemporaryAllocation(of: Int.self, capacity: pairs.count) { order in
            for i in 0..<pairs.count {
                var j = i
                while j > 0, pairs[i].0 < pairs[order[j - 1]].0 {
                    order[j] = order[j - 1]
                    j -= 1
                }
                order[j] = i
            }
            for i in order {
                json.key(pairs[i].0)
                pairs[i].1.write(json: &json)
            }
        }
        json.endObject()
    }
}

extension Node: JSONWritable {
    public func write(json: inout JSONWriter) {
        json.beginObject()
        if !attributes.isEmpty { json.key("attributes"); attributes.write(json: &json) }
        if !capabilities.isEmpty { json.key("capabilities"); json.array(capabilities.sorted()) }
        json.key("id"); json.string(id.rawValue)
        json.key("kind"); json.string(kind.rawValue)
        json.key("observability"); json.string(observability.rawValue)
        json.key("partition"); json.string(partition.description)
        if projected { json.key("projected"); json.bool(true) }
        json.endObject()
    }
}

extension Edge: JSONWritable {
    public func write(json: inout JSONWriter) {
        json.beginObject()
        json.key("from"); json.string(from.rawValue)
        json.key("kind"); json.string(kind.rawValue)
        json.key("to"); json.string(to.rawValue)
        json.endObject()
    }
}

extension GraphChange: JSONWritable {
    public func write(json: inout JSONWriter) {
        json.beginObject()
        switch self {
        case .addNode(let n): json.key("node"); n.write(json: &json); json.key("op"); json.string("add-node")
        case .updateNode(let n): json.key("node"); n.write(json: &json); json.key("op"); json.string("update-node")
        case .removeNode(let id): json.key("id"); json.string(id.rawValue); json.key("op"); json.string("remove-node")
        case .addEdge(let e): json.key("edge"); e.write(json: &json); json.key("op"); json.string("add-edge")
        case .removeEdge(let e): json.key("edge"); e.write(json: &json); json.key("op"); json.string("remove-edge")
        }
        json.endObject()
    }
}

extension GraphDelta: JSONWritable {
    public func write(json: inout JSONWriter) { json.array(changes) }
}

extension GraphSnapshot: JSONWritable {
    /// Compact, on one line.
    public func write(json: inout JSONWriter) { write(json: &json, lines: false) }

    /// `lines`: each node and edge on a line of its own (still one JSON document), for a person
    /// or `grep` to read; otherwise all on one line.
    public func write(json: inout JSONWriter, lines: Bool) {
        GraphSnapshot.write(nodes: nodes, edges: edges, json: &json, lines: lines)
    }

    /// The same text handed to `sink` in pieces, the nodes' part written on a second thread
    /// while this one writes the edges' and hands them on (a 10,000-node snapshot is half the
    /// time of `worldos graph --json`).
    public func write(lines: Bool, sink: @escaping ([UInt8]) throws -> Void) throws {
        var nodesPart = JSONWriter(reserving: 160 * nodes.count + 64)
        var json = JSONWriter(sink: sink)
        let (nodes, edges) = (self.nodes, self.edges)
        withUnsafeMutablePointer(to: &nodesPart) { nodesPart in
            withUnsafeMutablePointer(to: &json) { json in
                let parts = WriterPair(nodes: nodesPart, json: json)
                DispatchQueue.concurrentPerform(iterations: 2) { half in
                    if half == 1 {
                        GraphSnapshot.writeArray(nodes, json: &parts.nodes.pointee, lines: lines)
                    } else {
                        parts.json.pointee.beginObject()
                        parts.json.pointee.key("edges")
                        GraphSnapshot.writeArray(edges, json: &parts.json.pointee, lines: lines)
                        parts.json.pointee.key("nodes")
                    }
                }
            }
        }
        json.raw(nodesPart.bytes)
        json.endObject()
        try json.finish()
    }

    /// The two writers the two threads write, each its own.
    private struct WriterPair: @unchecked Sendable {
        let nodes: UnsafeMutablePointer<JSONWriter>
        let json: UnsafeMutablePointer<JSONWriter>
    }

    private static func writeArray<C: Collection>(_ values: C, json: inout JSONWriter, lines: Bool) where C.Element: JSONWritable {
        json.beginArray()
        for value in values {
            if lines { json.memberOnNewLine() }
            value.write(json: &json)
        }
        if lines && !values.isEmpty { json.newline() }
        json.endArray()
    }

    /// A snapshot's text from nodes and edges already in identity order, without making one.
    public static func write(nodes: some Collection<Node>, edges: some Collection<Edge>, json: inout JSONWriter, lines: Bool) {
        json.beginObject()
        json.key("edges")
        writeArray(edges, json: &json, lines: lines)
        json.key("nodes")
        writeArray(nodes, json: &json, lines: lines)
        json.endObject()
    }
}
