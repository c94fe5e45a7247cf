import Foundation
import JSONWriter
import LoopCore
import StateGraph
import XCTest

/// The project's JSON writer gives the bytes `JSONEncoder` gives (sorted keys, slashes as they
/// are) for every graph value, including the awkward ones; and a sink gets it all, in pieces.
final class JSONWriterTests: XCTestCase {
    private let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    private func ours(_ value: some JSONWritable) -> String {
        var json = JSONWriter()
        value.write(json: &json)
        return String(decoding: json.bytes, as: UTF8.self)
    }

    private func theirs(_ value: some Encodable) throws -> String {
        String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// Text no encoder gets right by accident: quotes, backslashes, slashes, every control
    /// character, DEL, a line separator, accents, an emoji, the empty string.
    private let awkward = ["", "plain", "a\"b", "back\\slash", "/dev/ttyUSB0", "tab\there", "line\nbreak", "cr\r", "\u{8}\u{c}",
                           String((0..<32).map { Character(Unicode.Scalar(UInt8($0))) }), "del\u{7f}", "sep\u{2028}", "é", "😀 emoji",
                           "socket:[123]", "key=\"v\""]
    private let doubles: [Double] = [0, -0.0, 1, -1, 0.1, 1.5, 100, 1e15, 1e16, 1e20, 1e-7, 123456789.125, 0.30000000000000004,
                                     .greatestFiniteMagnitude, .leastNonzeroMagnitude, -2.5e-300]

    func testEveryValueKind_isWrittenAsJSONEncoderWritesIt() throws {
        for s in awkward {
            XCTAssertEqual(ours(AttributeValue.string(s)), try theirs(AttributeValue.string(s)), "string \(s.debugDescription)")
            XCTAssertEqual(ours(NodeID(s)), try theirs(NodeID(s)))
        }
        for d in doubles { XCTAssertEqual(ours(AttributeValue.double(d)), try theirs(AttributeValue.double(d)), "double \(d)") }
        for i in [Int64.min, -1, 0, 7, 1_000_000, Int64.max] { XCTAssertEqual(ours(AttributeValue.int(i)), try theirs(AttributeValue.int(i))) }
        for b in [true, false] { XCTAssertEqual(ours(AttributeValue.bool(b)), try theirs(AttributeValue.bool(b))) }
    }

    func testRandomNodesEdgesDeltasAndSnapshots_matchJSONEncoderByteForByte() throws {
        var rng = SeededRandom(seed: 7)
        func pick<T>(_ xs: [T]) -> T { xs[Int.random(in: 0..<xs.count, using: &rng)] }
        func node() -> Node {
            var attributes = Attributes()
            // Keys in any order, some set twice: the writer sorts what the node holds.
            for _ in 0..<Int.random(in: 0..<9, using: &rng) {
                let key = pick(["fd", "target", "pid", "comm", "a", "B", "_x", "detail.source", "z", "é"])
                attributes[key] = pick([.string(pick(awkward)), .int(Int64.random(in: -5...1 << 40, using: &rng)),
                                        .double(pick(doubles)), .bool(Bool.random(using: &rng))])
            }
            let context = Bool.random(using: &rng)
            return Node(id: NodeID(pick(awkward) + String(Int.random(in: 0..<50, using: &rng))), kind: pick(NodeKind.allCases),
                        partition: context ? .context(pick(["bench", "sampler"])) : .kernel, observability: pick(Observability.allCases),
                        projected: Bool.random(using: &rng), capabilities: context ? Set([pick(awkward), "open /dev/*"]) : [],
                        attributes: attributes)
        }
        func edge() -> Edge { Edge(NodeID(pick(awkward)), pick(EdgeKind.allCases), NodeID(pick(awkward))) }
        for round in 0..<200 {
            let n = node(), e = edge()
            XCTAssertEqual(ours(n), try theirs(n), "round \(round)")
            XCTAssertEqual(ours(e), try theirs(e))
            let delta = GraphDelta((0..<Int.random(in: 0..<6, using: &rng)).map { _ in
                pick([.addNode(node()), .updateNode(node()), .removeNode(NodeID(pick(awkward))), .addEdge(edge()), .removeEdge(edge())])
            })
            XCTAssertEqual(ours(delta), try theirs(delta), "round \(round)")
            let snapshot = GraphSnapshot(nodes: (0..<Int.random(in: 0..<20, using: &rng)).map { _ in node() },
                                         edges: (0..<Int.random(in: 0..<20, using: &rng)).map { _ in edge() })
            XCTAssertEqual(String(decoding: snapshot.jsonData(lines: false), as: UTF8.self), try theirs(snapshot), "round \(round)")
            // A node or edge a line is the same document.
            XCTAssertEqual(try GraphSnapshot.decode(snapshot.jsonData(lines: true)), snapshot)
        }
    }

    func testASink_getsTheWholeTextInPieces_andItsErrorStops() throws {
        let snapshot = GraphSnapshot(nodes: (0..<500).map { Node(id: NodeID("process:\($0)@1"), kind: .process, attributes: ["pid": .int(Int64($0))]) },
                                     edges: (1..<500).map { Edge(NodeID("process:0@1"), .parentOf, NodeID("process:\($0)@1")) })
        var pieces: [[UInt8]] = []
        var json = JSONWriter(chunk: 1024) { pieces.append($0) }
        snapshot.write(json: &json, lines: true)
        try json.finish()
        XCTAssertGreaterThan(pieces.count, 10, "handed on as it was written, not at the end")
        XCTAssertTrue(pieces.dropLast().allSatisfy { $0.count >= 1024 && $0.count < 1024 + 256 })
        XCTAssertEqual(pieces.flatMap { $0 }, Array(snapshot.jsonData(lines: true)))
        // The two-thread writer gives the same bytes.
        var together: [UInt8] = []
        try snapshot.write(lines: true) { together += $0 }
        XCTAssertEqual(together, Array(snapshot.jsonData(lines: true)))

        struct Full: Error {}
        var calls = 0
        var failing = JSONWriter(chunk: 64) { _ in calls += 1; throw Full() }
        snapshot.write(json: &failing, lines: false)
        XCTAssertThrowsError(try failing.finish()) { XCTAssertTrue($0 is Full) }
        XCTAssertEqual(calls, 1, "nothing more is handed to a sink that failed")
        XCTAssertThrowsError(try snapshot.write(lines: false) { _ in throw Full() })
    }
}
