// The state graph's speed against its own references: applying a 1,000-node delta to a
// 100,000-node graph versus building that graph from scratch, and finding that delta again
// (what the loop records each step) from the graphs' own indexes versus from sorted snapshots.
import Foundation
import StateGraph


private let processes = 10_000
private let fdsPerProcess = 9
private let sharedFiles = 1_000


/// 100,000 nodes: 10,000 processes with 9 descriptors each, and 1,000 files they open.
func buildDelta() -> GraphDelta {
    var d = GraphDelta()
    d.changes.reserveCapacity(300_000)
    for f in 0..<sharedFiles {
        d.append(.addNode(Node(id: .object(.file, "/dev/bench\(f)"), kind: .file, observability: .background)))
    }
    for p in 0..<processes {
        let pid = NodeID.process(pid: Int32(p + 1), startTime: UInt64(p))
        d.append(.addNode(Node(id: pid, kind: .process, projected: true, attributes: ["pid": .int(Int64(p + 1)), "comm": .string("proc\(p)")])))
        if p > 0 { d.append(.addEdge(Edge(.process(pid: Int32(p / 2 + 1), startTime: UInt64(p / 2)), .parentOf, pid))) }
        for fd in 0..<fdsPerProcess {
            let id = NodeID.fileDescriptor(owner: pid, fd: Int32(fd))
            d.append(.addNode(Node(id: id, kind: .fileDescriptor, observability: .background, attributes: ["fd": .int(Int64(fd))])))
            d.append(.addEdge(Edge(pid, .owns, id)))
            d.append(.addEdge(Edge(id, .opened, .object(.file, "/dev/bench\((p * fdsPerProcess + fd) % sharedFiles)"))))
        }
    }
    return d
}

/// A 1,000-node delta and its inverse: 500 new descriptors, 300 updated processes, 200 removed descriptors.
func changeDeltas(on graph: Graph) -> (GraphDelta, GraphDelta) {
    var forward = GraphDelta(), backward = GraphDelta()
    for i in 0..<500 {
        let owner = NodeID.process(pid: Int32(i * 17 % processes + 1), startTime: UInt64(i * 17 % processes))
        let id = NodeID.fileDescriptor(owner: owner, fd: Int32(100 + i))
        forward.append(.addNode(Node(id: id, kind: .fileDescriptor, observability: .background, attributes: ["fd": .int(Int64(100 + i))])))
        forward.append(.addEdge(Edge(owner, .owns, id)))
        backward.append(.removeNode(id))
    }
    for i in 0..<300 {
        let id = NodeID.process(pid: Int32(i * 31 % processes + 1), startTime: UInt64(i * 31 % processes))
        var node = graph[id]!
        backward.append(.updateNode(node))
        node["state"] = .string("R")
        forward.append(.updateNode(node))
    }
    for i in 0..<200 {
        let owner = NodeID.process(pid: Int32(i * 43 % processes + 1), startTime: UInt64(i * 43 % processes))
        let id = NodeID.fileDescriptor(owner: owner, fd: 8)
        forward.append(.removeNode(id))
        backward.append(.addNode(graph[id]!))
        for e in graph.edges(to: id) + graph.edges(from: id) { backward.append(.addEdge(e)) }
    }
    return (forward, backward)
}


/// The benchmark's 100,000-node graph.
func benchGraph() throws -> Graph {
    var g = Graph()
    try g.apply(buildDelta())
    return g
}

func graphBenchmark() throws {
    let build = buildDelta()
    var builds: [Double] = []
    var graph = Graph()
    for _ in 0..<5 {
        var g = Graph()
        builds.append(try milliseconds { try g.apply(build) })
        graph = g
    }
    precondition(graph.nodeCount == 1 + sharedFiles + processes * (1 + fdsPerProcess))

    let (forward, backward) = changeDeltas(on: graph)
    var applies: [Double] = []
    for _ in 0..<21 {
        applies.append(try milliseconds { try graph.apply(forward) })
        try graph.apply(backward)
    }
    precondition(graph.invariantViolations().isEmpty)

    var changed = graph
    try changed.apply(forward)
    var diffs: [Double] = [], snapshotDiffs: [Double] = []
    var found = GraphDelta(), reference = GraphDelta()
    for _ in 0..<5 {
        diffs.append(milliseconds { found = graph.diff(to: changed) })
        snapshotDiffs.append(milliseconds { reference = graph.snapshot().diff(to: changed.snapshot()) })
    }
    precondition(found == reference && found.changes.count >= 1_000)

    let b = median(builds), a = median(applies)
    print("state graph (\(graph.nodeCount) nodes, \(graph.edgeCount) edges)")
    print(String(format: "  build from scratch (reference):       %8.2f ms  (median of %d)", b, builds.count))
    print(String(format: "  apply a 1,000-node delta:              %8.3f ms  (median of %d)", a, applies.count))
    print(String(format: "  ratio apply / build:                   %8.4f  (the delta costs 1/%.0f of a rebuild)", a / b, b / a))
    let d = median(diffs), s = median(snapshotDiffs)
    print(String(format: "  diff of sorted snapshots (reference):  %8.2f ms  (median of %d)", s, snapshotDiffs.count))
    print(String(format: "  diff of the graphs' indexes:           %8.2f ms  (median of %d; %d changes, equal to the reference's)", d, diffs.count, found.changes.count))
    print(String(format: "  ratio graph diff / snapshot diff:      %8.4f", d / s))
    try snapshotJSONBenchmark(graph.snapshot())
}

/// A snapshot's JSON through the project's writer against Foundation's JSONEncoder, the same
/// bytes (checked).
func snapshotJSONBenchmark(_ snapshot: GraphSnapshot) throws {
    var ours: [Double] = [], theirs: [Double] = []
    var a = Data(), b = Data()
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    for _ in 0..<5 {
        ours.append(milliseconds { a = snapshot.jsonData(lines: false) })
        theirs.append(try milliseconds { b = try encoder.encode(snapshot) })
    }
    precondition(a == b, "the writer's text differs from JSONEncoder's")
    let o = median(ours), t = median(theirs)
    print("snapshot JSON (\(snapshot.nodes.count) nodes, \(snapshot.edges.count) edges, \(a.count / 1024) KiB)")
    print(String(format: "  JSONEncoder, sorted keys (reference):  %8.2f ms  (median of %d)", t, theirs.count))
    print(String(format: "  JSONWriter, the same bytes:            %8.2f ms  (median of %d)", o, ours.count))
    print(String(format: "  ratio writer / JSONEncoder:            %8.4f", o / t))
}
