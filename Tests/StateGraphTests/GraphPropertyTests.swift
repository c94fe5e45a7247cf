import LoopCore
import StateGraph
import WorldOSTesting
import XCTest

/// Random sequences of deltas, valid and invalid, never break the graph's invariants; a refused
/// delta changes nothing; and diff(a, b) applied to a always gives b.
final class GraphPropertyTests: XCTestCase {
    struct Generator {
        var rng: SeededRandom
        let contexts = ["a", "b", "c"]

        mutating func pick<T>(_ xs: [T]) -> T { xs[Int.random(in: 0..<xs.count, using: &rng)] }

        mutating func partition() -> Partition {
            Bool.random(using: &rng) ? .kernel : .context(pick(contexts))
        }

        /// A change that may or may not be valid for `graph`.
        mutating func change(for graph: Graph) -> GraphChange {
            let ids = Array(graph.nodes.keys)
            let roll = Int.random(in: 0..<100, using: &rng)
            switch roll {
            case 0..<8:
                let name = pick(contexts)
                return .addNode(Node(id: .context(name), kind: .executionContext, partition: .context(name),
                                     capabilities: Bool.random(using: &rng) ? ["cap-\(name)"] : []))
            case 8..<40:
                let kind = pick([NodeKind.process, .fileDescriptor, .file, .socket, .widget, .pendingEvent])
                let obs = pick(Observability.allCases)
                return .addNode(Node(id: NodeID("n\(Int.random(in: 0..<60, using: &rng))"), kind: kind, partition: partition(),
                                     observability: obs, projected: Int.random(in: 0..<4, using: &rng) == 0,
                                     attributes: ["v": .int(Int64.random(in: 0..<5, using: &rng))]))
            case 40..<52:
                guard var n = ids.isEmpty ? nil : graph[pick(ids)] else { return .removeNode(NodeID("none")) }
                n["v"] = .int(Int64.random(in: 0..<5, using: &rng))
                n.observability = pick(Observability.allCases)
                n.projected = Bool.random(using: &rng)
                if Int.random(in: 0..<10, using: &rng) == 0 { n.kind = .socket }
                return .updateNode(n)
            case 52..<64:
                return .removeNode(ids.isEmpty ? NodeID("none") : pick(ids))
            case 64..<94:
                guard ids.count > 1 else { return .removeNode(NodeID("none")) }
                return .addEdge(Edge(pick(ids), pick(EdgeKind.allCases), pick(ids)))
            default:
                let edges = graph.allEdges
                return .removeEdge(edges.isEmpty ? Edge(.kernel, .owns, .kernel) : pick(edges))
            }
        }
    }

    func testRandomDeltaSequences_neverBreakInvariants() {
        for seed in UInt64(1)...60 {
            var gen = Generator(rng: SeededRandom(seed: seed))
            var graph = Graph()
            for step in 0..<150 {
                let size = Int.random(in: 1...4, using: &gen.rng)
                var delta = GraphDelta()
                var scratch = graph
                for _ in 0..<size {
                    let c = gen.change(for: scratch)
                    delta.append(c)
                    try? scratch.apply(c)
                }
                let before = graph
                do {
                    try graph.apply(delta)
                } catch {
                    XCTAssertEqual(graph, before, "seed \(seed) step \(step): a refused delta changed the graph")
                }
                let problems = graph.invariantViolations()
                XCTAssertEqual(problems, [], "seed \(seed) step \(step): \(problems)")
                if !problems.isEmpty { return }
            }
        }
    }

    func testDiffBetweenRandomGraphs_appliedToTheFirst_givesTheSecond() throws {
        for seed in UInt64(100)...160 {
            var gen = Generator(rng: SeededRandom(seed: seed))
            var a = Graph()
            for _ in 0..<80 { try? a.apply(gen.change(for: a)) }
            var b = a
            for _ in 0..<60 { try? b.apply(gen.change(for: b)) }
            let delta = a.snapshot().diff(to: b.snapshot())
            var patched = a
            do {
                try patched.apply(delta)
            } catch {
                XCTFail("seed \(seed): diff did not apply: \(error)")
                continue
            }
            XCTAssertEqual(patched, b, "seed \(seed)")
            XCTAssertEqual(patched.snapshot(), b.snapshot(), "seed \(seed)")
            XCTAssertTrue(b.snapshot().diff(to: b.snapshot()).isEmpty)
            // The graphs' own indexes (edges in insertion order, nothing sorted) give the same
            // delta as their sorted snapshots; a graph rebuilt with its edges in another order
            // is no different.
            XCTAssertEqual(a.diff(to: b), delta, "seed \(seed)")
            // Looking only where the two differ (and, for a node that changed kind, at what
            // points at it) finds the same delta.
            var touched = Set<NodeID>()
            for id in Set(a.nodes.keys).union(b.nodes.keys) {
                if a[id] != b[id] { touched.insert(id) }
                if let x = a[id], let y = b[id], x.kind != y.kind || x.partition != y.partition {
                    touched.formUnion(a.edges(to: id).map(\.from))
                }
                if Set(a.edges(from: id)) != Set(b.edges(from: id)) { touched.insert(id) }
            }
            XCTAssertEqual(a.draft.diff(to: b.draft, touching: touched), delta, "seed \(seed)")
            XCTAssertTrue(b.diff(to: b).isEmpty)
            XCTAssertTrue(try Graph(snapshot: b.snapshot()).diff(to: b).isEmpty, "seed \(seed)")
        }
    }

    /// Between graphs built apart (no shared history, hence no shared storage), the graph
    /// diff still turns one into the other.
    func testGraphDiffBetweenUnrelatedGraphs_appliedToTheFirst_givesTheSecond() throws {
        for seed in UInt64(300)...340 {
            var gen = Generator(rng: SeededRandom(seed: seed))
            var a = Graph(), b = Graph()
            for _ in 0..<100 {
                try? a.apply(gen.change(for: a))
                try? b.apply(gen.change(for: b))
            }
            var patched = a
            do {
                try patched.apply(a.diff(to: b))
            } catch {
                XCTFail("seed \(seed): diff did not apply: \(error)")
                continue
            }
            XCTAssertEqual(patched, b, "seed \(seed)")
            XCTAssertEqual(a.diff(to: b), a.snapshot().diff(to: b.snapshot()), "seed \(seed)")
        }
    }

    func testGraphRebuiltFromItsSnapshot_equalsTheOriginal() throws {
        for seed in UInt64(200)...230 {
            var gen = Generator(rng: SeededRandom(seed: seed))
            var g = Graph()
            for _ in 0..<120 { try? g.apply(gen.change(for: g)) }
            XCTAssertEqual(try Graph(snapshot: GraphSnapshot.decode(g.snapshot().jsonData())), g, "seed \(seed)")
        }
    }
}
