import Foundation
import StateGraph
import XCTest

final class GraphTests: XCTestCase {
    let init1 = NodeID.process(pid: 100, startTime: 5000)

    func process(_ pid: Int32, start: UInt64) -> Node {
        Node(id: .process(pid: pid, startTime: start), kind: .process, attributes: ["pid": .int(Int64(pid))])
    }
    func context(_ name: String, caps: Set<String> = []) -> Node {
        Node(id: .context(name), kind: .executionContext, partition: .context(name), capabilities: caps)
    }

    func testIdentity_whenPidIsReusedWithNewStartTime_isANewNode() throws {
        var g = Graph()
        try g.apply(.addNode(process(100, start: 5000)))
        try g.apply(.addNode(process(100, start: 9000)))
        XCTAssertEqual(g.nodes(ofKind: .process).count, 2)
        XCTAssertNotEqual(NodeID.process(pid: 100, startTime: 5000), NodeID.process(pid: 100, startTime: 9000))
        XCTAssertThrowsError(try g.apply(.addNode(process(100, start: 5000)))) {
            XCTAssertEqual($0 as? GraphError, .duplicateNode(init1))
        }
    }

    func testEdge_joiningTwoContextsDirectly_isRejected_butThroughTheKernelIsAllowed() throws {
        var g = Graph()
        let file = Node(id: .object(.file, "/tmp/x"), kind: .file)
        let fdA = Node(id: NodeID("fd:a"), kind: .fileDescriptor, partition: .context("a"))
        let fdB = Node(id: NodeID("fd:b"), kind: .fileDescriptor, partition: .context("b"))
        try g.apply(GraphDelta([.addNode(context("a")), .addNode(context("b")), .addNode(file), .addNode(fdA), .addNode(fdB)]))
        let direct = Edge(fdA.id, .waitsOn, fdB.id)
        XCTAssertThrowsError(try g.apply(.addEdge(direct))) {
            XCTAssertEqual($0 as? GraphError, .crossContextEdge(direct, .context("a"), .context("b")))
        }
        try g.apply(GraphDelta([.addEdge(Edge(fdA.id, .opened, file.id)), .addEdge(Edge(fdB.id, .opened, file.id))]))
        XCTAssertEqual(g.edges(to: file.id).count, 2)
    }

    func testNode_inAContextPartitionWithoutItsContext_isRejected() {
        var g = Graph()
        let orphan = Node(id: NodeID("fd:x"), kind: .fileDescriptor, partition: .context("ghost"))
        XCTAssertThrowsError(try g.apply(.addNode(orphan))) {
            XCTAssertEqual($0 as? GraphError, .unknownContext(orphan.id, .context("ghost")))
        }
    }

    func testRemovingAContext_removesItsWholePartitionAndOwnedSubgraph() throws {
        var g = Graph()
        let fd = Node(id: NodeID("fd:a#3"), kind: .fileDescriptor, partition: .context("a"))
        let widget = Node(id: .widget("a-status"), kind: .widget, partition: .context("a"))
        let event = Node(id: .pendingEvent("a-timer"), kind: .pendingEvent, partition: .context("a"))
        let file = Node(id: .object(.file, "/etc/hostname"), kind: .file)
        try g.apply(GraphDelta([.addNode(context("a")), .addNode(fd), .addNode(widget), .addNode(event), .addNode(file),
                                .addEdge(Edge(.context("a"), .owns, fd.id)), .addEdge(Edge(fd.id, .owns, widget.id)),
                                .addEdge(Edge(fd.id, .opened, file.id))]))
        try g.apply(.removeNode(.context("a")))
        XCTAssertFalse(g.contains(fd.id))
        XCTAssertFalse(g.contains(widget.id))
        XCTAssertFalse(g.contains(event.id), "an unowned member of the partition goes with its context")
        XCTAssertTrue(g.contains(file.id), "kernel nodes stay")
        XCTAssertEqual(g.edgeCount, 0)
        XCTAssertEqual(g.invariantViolations(), [])
    }

    func testRemovingAProcess_removesItsDescriptorsButNotTheFilesTheyOpened() throws {
        var g = Graph()
        let p = process(7, start: 1)
        let fd = Node(id: .fileDescriptor(owner: p.id, fd: 3), kind: .fileDescriptor)
        let file = Node(id: .object(.file, "/dev/null"), kind: .file)
        try g.apply(GraphDelta([.addNode(p), .addNode(fd), .addNode(file), .addEdge(Edge(p.id, .owns, fd.id)), .addEdge(Edge(fd.id, .opened, file.id))]))
        try g.apply(.removeNode(p.id))
        XCTAssertEqual(Set(g.nodes.keys), [.kernel, file.id])
        XCTAssertEqual(g.edges(to: file.id), [])
    }

    /// A node that keeps its identity but changes kind is removed and added again; removal
    /// takes its edges, so the diff adds back the ones it still has, in and out — even where
    /// the lists holding them are equal in both graphs.
    func testDiff_ofANodeWhoseKindChanged_putsBackItsEdges() throws {
        let p = process(7, start: 1)
        let fd = Node(id: .fileDescriptor(owner: p.id, fd: 3), kind: .fileDescriptor)
        let file = Node(id: .object(.file, "/dev/null"), kind: .file)
        var a = Graph(), b = Graph()
        try a.apply(GraphDelta([.addNode(p), .addNode(fd), .addNode(file), .addEdge(Edge(p.id, .owns, fd.id)), .addEdge(Edge(fd.id, .opened, file.id))]))
        var socket = fd
        socket.kind = .socket
        try b.apply(GraphDelta([.addNode(p), .addNode(socket), .addNode(file), .addEdge(Edge(p.id, .owns, fd.id)), .addEdge(Edge(fd.id, .opened, file.id))]))
        for delta in [a.diff(to: b), a.snapshot().diff(to: b.snapshot())] {
            var patched = a
            try patched.apply(delta)
            XCTAssertEqual(patched, b)
            XCTAssertEqual(patched[fd.id]?.kind, .socket)
            XCTAssertEqual(patched.edgeCount, 2)
        }
    }

    func testDelta_thatFailsPartway_leavesTheGraphUnchanged() throws {
        var g = Graph()
        try g.apply(GraphDelta([.addNode(process(1, start: 1)), .addNode(context("a"))]))
        let before = g
        let bad = GraphDelta([.addNode(process(2, start: 2)), .removeNode(.process(pid: 1, startTime: 1)),
                              .addEdge(Edge(.process(pid: 2, startTime: 2), .owns, NodeID("missing")))])
        XCTAssertThrowsError(try g.apply(bad)) { XCTAssertEqual($0 as? GraphError, .unknownNode(NodeID("missing"))) }
        XCTAssertEqual(g, before)
        XCTAssertEqual(g.invariantViolations(), [])
    }

    func testOwnership_secondOwnerAndCyclesAndCrossPartition_areRejected() throws {
        var g = Graph()
        let a = process(1, start: 1), b = process(2, start: 2), c = process(3, start: 3)
        try g.apply(GraphDelta([.addNode(a), .addNode(b), .addNode(c), .addNode(context("x")),
                                .addEdge(Edge(a.id, .owns, b.id)), .addEdge(Edge(b.id, .owns, c.id))]))
        XCTAssertThrowsError(try g.apply(.addEdge(Edge(a.id, .owns, c.id)))) {
            XCTAssertEqual($0 as? GraphError, .secondOwner(Edge(a.id, .owns, c.id), existing: b.id))
        }
        XCTAssertThrowsError(try g.apply(.addEdge(Edge(c.id, .owns, a.id)))) {
            XCTAssertEqual($0 as? GraphError, .ownershipCycle(Edge(c.id, .owns, a.id)))
        }
        XCTAssertThrowsError(try g.apply(.addEdge(Edge(.context("x"), .owns, a.id)))) {
            XCTAssertEqual($0 as? GraphError, .ownershipAcrossPartitions(Edge(.context("x"), .owns, a.id)))
        }
        // Partition roots are never owned, so no removal can cascade into the kernel or a context.
        XCTAssertThrowsError(try g.apply(.addEdge(Edge(a.id, .owns, .kernel)))) {
            XCTAssertEqual($0 as? GraphError, .unownableRoot(Edge(a.id, .owns, .kernel)))
        }
        XCTAssertThrowsError(try g.apply(.removeNode(.kernel))) { XCTAssertEqual($0 as? GraphError, .removingKernel) }
    }

    func testCapabilitiesProjectionAndPendingEvents_areFirstClass() throws {
        var g = Graph()
        var shown = process(1, start: 1)
        shown.projected = true
        let hiddenButProjected = Node(id: .widget("w"), kind: .widget, observability: .hidden, projected: true)
        XCTAssertThrowsError(try g.apply(.addNode(hiddenButProjected))) {
            XCTAssertEqual($0 as? GraphError, .hiddenButProjected(hiddenButProjected.id))
        }
        let labelled = Node(id: .widget("w"), kind: .widget, capabilities: ["open"])
        XCTAssertThrowsError(try g.apply(.addNode(labelled))) {
            XCTAssertEqual($0 as? GraphError, .capabilitiesOnNonContext(labelled.id))
        }
        let timer = Node(id: .pendingEvent("timer"), kind: .pendingEvent, attributes: ["due": .int(5)])
        try g.apply(GraphDelta([.addNode(shown), .addNode(process(2, start: 2)), .addNode(context("a", caps: ["read /proc/**"])), .addNode(timer)]))
        XCTAssertEqual(g.uiProjection.map(\.id), [shown.id])
        XCTAssertEqual(g.pendingEvents.map(\.id), [timer.id])
        XCTAssertEqual(g.contexts.first?.capabilities, ["read /proc/**"])
    }

    func testUpdate_cannotChangeKindOrPartition() throws {
        var g = Graph()
        let p = process(1, start: 1)
        try g.apply(GraphDelta([.addNode(p), .addNode(context("a"))]))
        var asFile = p
        asFile.kind = .file
        XCTAssertThrowsError(try g.apply(.updateNode(asFile))) { XCTAssertEqual($0 as? GraphError, .kindChanged(p.id, from: .process, to: .file)) }
        var moved = p
        moved.partition = .context("a")
        XCTAssertThrowsError(try g.apply(.updateNode(moved))) { XCTAssertEqual($0 as? GraphError, .partitionChanged(p.id, from: .kernel, to: .context("a"))) }
    }

    func testSnapshot_roundTripsThroughJSON_andRebuildsAnEqualGraph() throws {
        var g = Graph()
        let p = process(1, start: 1)
        let fd = Node(id: .fileDescriptor(owner: p.id, fd: 0), kind: .fileDescriptor, attributes: ["fd": .int(0), "target": .string("/dev/null")])
        try g.apply(GraphDelta([.addNode(p), .addNode(fd), .addEdge(Edge(p.id, .owns, fd.id)), .addNode(context("a", caps: ["x"]))]))
        let data = try g.snapshot().jsonData()
        let decoded = try GraphSnapshot.decode(data)
        XCTAssertEqual(decoded, g.snapshot())
        XCTAssertEqual(try Graph(snapshot: decoded), g)
        XCTAssertEqual(try decoded.jsonData(), data, "equal snapshots give byte-equal JSON")
    }

    func testSnapshotJSON_malformed_failsWithTheReason() {
        let badPartition = #"{"nodes":[{"id":"x","kind":"file","partition":"nowhere","observability":"visible"}],"edges":[]}"#
        XCTAssertThrowsError(try GraphSnapshot.decode(Data(badPartition.utf8))) { error in
            XCTAssertTrue("\(error)".contains("nowhere"), "\(error)")
        }
        let badKind = #"{"nodes":[{"id":"x","kind":"toaster","partition":"kernel","observability":"visible"}],"edges":[]}"#
        XCTAssertThrowsError(try GraphSnapshot.decode(Data(badKind.utf8)))
        let badOp = #"[{"op":"explode","id":"x"}]"#
        XCTAssertThrowsError(try JSONDecoder().decode(GraphDelta.self, from: Data(badOp.utf8))) { error in
            XCTAssertTrue("\(error)".contains("explode"), "\(error)")
        }
        // A snapshot that decodes but breaks an invariant is refused when rebuilt.
        let cross = GraphSnapshot(nodes: [context("a"), context("b")], edges: [Edge(.context("a"), .waitsOn, .context("b"))])
        XCTAssertThrowsError(try Graph(snapshot: cross))
    }
}

/// A node's attributes: pairs, equal and hashed alike in any order, written as a dictionary is.
final class AttributesTests: XCTestCase {
    func testOrderDoesNotMatter_aLaterKeyReplaces_andNilRemoves() {
        let a: Attributes = ["fd": .int(3), "target": .string("/dev/null"), "type": .string("char-device")]
        var b: Attributes = ["type": .string("char-device"), "fd": .int(3)]
        XCTAssertNotEqual(a, b)
        b["target"] = .string("/dev/null")
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.hashValue, b.hashValue)
        XCTAssertEqual(Set([a, b]).count, 1)
        b["fd"] = .double(3)  // a whole double is its integer, as in a trace read back
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.hashValue, b.hashValue)
        b["fd"] = .int(4)
        XCTAssertNotEqual(a, b)
        b["fd"] = nil
        XCTAssertEqual(b.count, 2)
        XCTAssertNil(b["fd"])
        XCTAssertNotEqual(a, b)
        let twice: Attributes = ["k": .int(1), "k": .int(2)]
        XCTAssertEqual(twice.count, 1)
        XCTAssertEqual(twice["k"], .int(2))
    }

    func testJSON_isTheDictionarysText_andReadsBack() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let attributes: Attributes = ["z": .string("last"), "a": .int(1), "m": .bool(true), "d": .double(0.5)]
        let asDictionary: [String: AttributeValue] = ["z": .string("last"), "a": .int(1), "m": .bool(true), "d": .double(0.5)]
        let text = try encoder.encode(attributes)
        XCTAssertEqual(String(decoding: text, as: UTF8.self), String(decoding: try encoder.encode(asDictionary), as: UTF8.self))
        XCTAssertEqual(try JSONDecoder().decode(Attributes.self, from: text), attributes)
        XCTAssertThrowsError(try JSONDecoder().decode(Attributes.self, from: Data("[1, 2]".utf8)), "an array is no attributes")
        XCTAssertThrowsError(try JSONDecoder().decode(Attributes.self, from: Data(#"{"a": [1]}"#.utf8)), "a value must be a scalar")
    }
}

/// Ids are written in one allocation; their text is what the design map names them.
final class NodeIDTextTests: XCTestCase {
    func testIDs_readAsTheirParts() {
        let p = NodeID.process(pid: 4242, startTime: 18_446_744_073_709_551_615)
        XCTAssertEqual(p.rawValue, "process:4242@18446744073709551615")
        XCTAssertEqual(NodeID.process(pid: 0, startTime: 0).rawValue, "process:0@0")
        XCTAssertEqual(NodeID.fileDescriptor(owner: p, fd: 10).rawValue, "fd:process:4242@18446744073709551615#10")
        XCTAssertEqual(NodeID.fileDescriptor(owner: NodeID(""), fd: -1).rawValue, "fd:#-1")
        XCTAssertEqual(NodeID.anonymousInode(owner: NodeID("process:1@2"), fd: 7).rawValue, "anon:process:1@2#7")
        XCTAssertEqual(NodeID.object("socket:", 99).rawValue, "socket:99")
        XCTAssertEqual(NodeID.object("file:", 2049, 0).rawValue, "file:2049:0")
        XCTAssertEqual(NodeID.object("device:c:", 1, 3).rawValue, "device:c:1:3")
        // A long owner (not a small string) and a Unicode one.
        let owner = NodeID(String(repeating: "x", count: 40) + "é")
        XCTAssertEqual(NodeID.fileDescriptor(owner: owner, fd: 123).rawValue, "fd:" + owner.rawValue + "#123")
    }
}
