import Foundation
import LoopCore
import Renderer
import StateGraph
import XCTest

final class RendererTests: XCTestCase {
    func posterior() throws -> Posterior {
        var g = Graph()
        let me = NodeID.process(pid: 42, startTime: 1)
        try g.apply(GraphDelta([
            .addNode(Node(id: me, kind: .process, projected: true, attributes: ["pid": .int(42), "comm": .string("worldos"), "state": .string("R"), "fds": .int(4)])),
            .addNode(Node(id: .process(pid: 7, startTime: 1), kind: .process, projected: true, attributes: ["pid": .int(7), "comm": .string("init")])),
            .addNode(Node(id: .process(pid: 8, startTime: 1), kind: .process, projected: false, attributes: ["pid": .int(8), "comm": .string("hidden-from-panel")])),
            .addNode(Node(id: .context("maint"), kind: .executionContext, partition: .context("maint"), projected: true,
                          attributes: ["priority": .int(5), "last-task": .string("read-shadow"), "last-result": .string("denied"),
                                       "last-denial": .string("open(path: \"/etc/shadow\"): no [p.yaml:3]")])),
        ]))
        return Posterior(step: 3, graph: g, surprise: Surprise(missing: 1), observedAt: nil, supervisor: me)
    }

    func testPanel_showsTheProjectedSubset_withADenialAndThisSupervisor() throws {
        let frame = PanelRenderer(width: 1000, height: 400, mode: .real).render(try posterior(), at: Instant(nanoseconds: 0))
        XCTAssertEqual(frame.step, 3)
        XCTAssertEqual(frame.semantics.filter { $0.role == "process" }.map(\.node), [.process(pid: 7, startTime: 1), .process(pid: 42, startTime: 1)])
        XCTAssertFalse(frame.semantics.contains { $0.label.contains("hidden-from-panel") })
        XCTAssertTrue(frame.semantics.contains { $0.role == "denial" && $0.label.contains("REFUSED open(path: \"/etc/shadow\")") })
        XCTAssertTrue(frame.semantics.contains { $0.role == "process" && $0.label.hasSuffix("worldos   <- this supervisor") })
        XCTAssertEqual(frame.semantics.first?.label, "WorldOS  step 3  mode real  nodes 5  edges 0  prior wrong on 1")
        // Ink where the semantics say text is, in the denial colour on the denial row.
        let denial = frame.semantics.first { $0.role == "denial" }!
        let row = frame.pixels[(denial.y * frame.width)..<((denial.y + denial.height) * frame.width)]
        XCTAssertTrue(row.contains(0xff5a5a))
    }

    func testALatchedFault_isARedBannerAboveEverythingElse() throws {
        var p = try posterior()
        let renderer = PanelRenderer(width: 1000, height: 400, mode: .real)
        XCTAssertFalse(renderer.render(p, at: Instant(nanoseconds: 0)).semantics.contains { $0.role == "fault" })
        try p.graph.apply(GraphDelta([.addNode(Node(id: NodeID("instrument:bench-bridge:SIM-1"), kind: .instrument, projected: true,
                                                    attributes: ["status": .string("lost"), "fault": .string("lost bench-bridge SIM-1 on /dev/ttyUSB0")]))]))
        let frame = renderer.render(p, at: Instant(nanoseconds: 0))
        let banner = frame.semantics.filter { $0.role == "fault" }
        XCTAssertEqual(banner.map(\.label), ["HALTED (latched fault): lost bench-bridge SIM-1 on /dev/ttyUSB0",
                                             "  nothing physical runs until a person checks the bench and runs worldos ack"])
        XCTAssertEqual(frame.semantics.firstIndex { $0.role == "fault" }, 1, "right under the header")
        let row = frame.pixels[(banner[0].y * frame.width)..<((banner[0].y + banner[0].height) * frame.width)]
        XCTAssertTrue(row.contains(0xff5a5a), "in the denial colour")
    }

    func testEqualPosteriors_giveEqualFrames_andAChangeChangesTheHash() throws {
        let r = PanelRenderer(width: 320, height: 200, mode: .real)
        var p = try posterior()
        let a = r.render(p, at: Instant(nanoseconds: 0)), b = r.render(p, at: Instant(nanoseconds: 99))
        XCTAssertEqual(a.hash, b.hash)
        p.step = 4
        XCTAssertNotEqual(r.render(p, at: Instant(nanoseconds: 0)).hash, a.hash)
    }

    func testPNGSink_writesAValidPNG_onlyWhenTheFrameChanges() throws {
        let path = NSTemporaryDirectory() + "worldos-panel-\(UUID().uuidString).png"
        defer { unlink(path) }
        let r = PanelRenderer(width: 320, height: 200, mode: .real)
        var sink = PNGSink(path: path)
        let frame = r.render(try posterior(), at: Instant(nanoseconds: 0))
        XCTAssertEqual(try sink.emit(frame), path)
        try sink.finish()
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertEqual(Array(bytes.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        XCTAssertEqual(Array(bytes[16..<24]), [0, 0, 1, 64, 0, 0, 0, 200], "IHDR says 320×200")
        XCTAssertEqual(sink.encoder.png(hash: frame.hash, wait: false), .ready(bytes), "the encoder hands the recorder the bytes it wrote")
        XCTAssertNil(try sink.emit(frame), "an unchanged frame is not written again")
        XCTAssertThrowsError(try PNGSink.write(frame, to: "/nonexistent-dir/panel.png"))
        // Written on the encoder's thread: a frame that could not be written is said by the
        // next emit, or by finish.
        var broken = PNGSink(path: "/nonexistent-dir/panel.png")
        XCTAssertNotNil(try broken.emit(frame))
        XCTAssertThrowsError(try broken.finish()) { XCTAssertTrue("\($0)".contains("/nonexistent-dir/panel.png"), "\($0)") }
        XCTAssertEqual(broken.encoder.png(hash: frame.hash, wait: true), .unavailable)
    }

    /// Frames handed over faster than they encode: the loop is never held up (a frame is
    /// pending, not waited for), at most `backlog` wait — the oldest waiting is skipped — and the
    /// newest is always encoded and on disk.
    func testPNGEncoder_underOverload_skipsTheOldestWaiting_andKeepsTheNewest() throws {
        let path = NSTemporaryDirectory() + "worldos-backlog-\(UUID().uuidString).png"
        defer { unlink(path) }
        let encoder = PNGEncoder(backlog: 2)
        let r = PanelRenderer(width: 1280, height: 800, mode: .real)
        var p = try posterior()
        var frames: [Frame] = []
        for step in 0..<12 {
            p.step = step
            frames.append(r.render(p, at: Instant(nanoseconds: 0)))
        }
        for frame in frames { encoder.encode(frame, to: path) }
        XCTAssertEqual(encoder.png(hash: frames.last!.hash, wait: false), .pending, "handing over did not wait for the encoding")
        guard case .ready(let last) = encoder.png(hash: frames.last!.hash, wait: true) else { return XCTFail("the newest frame is encoded") }
        XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))), last, "the file is the newest frame")
        XCTAssertGreaterThanOrEqual(encoder.skipped, 8, "twelve frames, at most one encoding and two waiting at a time")
        let states = frames.suffix(8).map { encoder.png(hash: $0.hash, wait: true) }
        XCTAssertTrue(states.contains(.unavailable), "skipped frames are unavailable, not waited for forever")
        try encoder.drain()
    }

    /// A frame is known by what drew it: equal draw lists, equal hashes (and equal pixels);
    /// one more character drawn, another hash.
    func testFrameHash_isTheDrawListsHash() throws {
        var a = Canvas(width: 64, height: 32, background: 0), b = Canvas(width: 64, height: 32, background: 0)
        a.text("ok", x: 1, y: 1, color: 0xffffff)
        b.text("ok", x: 1, y: 1, color: 0xffffff)
        let fa = Frame(width: 64, height: 32, pixels: a.pixels, semantics: [], step: 0, drawList: a.drawList)
        let fb = Frame(width: 64, height: 32, pixels: b.pixels, semantics: [], step: 1, drawList: b.drawList)
        XCTAssertEqual(fa.hash, fb.hash)
        XCTAssertEqual(fa.pixels, fb.pixels)
        b.text("!", x: 20, y: 1, color: 0xffffff)
        XCTAssertNotEqual(Frame(width: 64, height: 32, pixels: b.pixels, semantics: [], step: 1, drawList: b.drawList).hash, fa.hash)
        var c = Canvas(width: 64, height: 32, background: 0)
        c.text("ok", x: 1, y: 1, color: 0xff0000)
        XCTAssertNotEqual(c.drawList, a.drawList, "the colour is part of what was drawn")
    }
}

final class DigestTests: XCTestCase {
    func testSHA256_matchesTheStandardVectors() {
        XCTAssertEqual(SHA256.hex([UInt8]()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hex([UInt8](repeating: 0x61, count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testSHA256_incrementalUpdates_equalOneShot() {
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        var h = SHA256()
        for chunk in stride(from: 0, to: data.count, by: 37) { h.update(data[chunk..<min(chunk + 37, data.count)]) }
        XCTAssertEqual(h.finish().map { String(format: "%02x", $0) }.joined(), SHA256.hex(data))
    }
}
