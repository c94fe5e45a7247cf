import Foundation
import LoopCore
import Renderer
import StateGraph
import Typeface
import WorldOSTesting
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
        var renderer = try PanelRenderer(width: 1000, height: 400, mode: .real)
        let frame = renderer.render(try posterior(), at: Instant(nanoseconds: 0))
        XCTAssertEqual(frame.step, 3)
        XCTAssertEqual(frame.semantics.filter { $0.role == "process" }.map(\.node), [.process(pid: 42, startTime: 1), .process(pid: 7, startTime: 1)],
                       "the busiest first: running before sleeping")
        XCTAssertFalse(frame.semantics.contains { $0.label.contains("hidden-from-panel") })
        XCTAssertTrue(frame.semantics.contains { $0.role == "denial" && $0.label.contains("REFUSED open(path: \"/etc/shadow\")") })
        XCTAssertTrue(frame.semantics.contains { $0.role == "process" && $0.label.hasSuffix("worldos   <- this supervisor") })
        XCTAssertEqual(frame.semantics.first?.label, "WorldOS  step 3  real  5 nodes  0 edges  prior wrong on 1")
        XCTAssertEqual(frame.semantics.first?.value, "no operator at this seat")
        // Ink where the semantics say text is, in the denial colour on the denial row.
        let denial = frame.semantics.first { $0.role == "denial" }!
        let row = frame.pixels[(denial.y * frame.width)..<((denial.y + denial.height) * frame.width)]
        XCTAssertTrue(row.contains(0xff5a5a))
    }

    func testAnApprovalsDream_isShownUnderIt_andADreamsPanelSaysSo() throws {
        var p = try posterior()
        try p.graph.apply(GraphDelta([.addNode(Node(id: NodeID("approval:00000000000000aa"), kind: .approval, projected: true, attributes: [
            "action": .string("relay.energise"), "device": .string("bench-bridge:SIM-1"), "context": .string("op"), "risk": .string("irreversible-physical"),
            "dream": .string("DREAM (model m.json, confidence 0.97): scpi-ok 97%, EIO 3%"),
        ]))]))
        var renderer = try PanelRenderer(width: 1000, height: 400, mode: .real)
        let frame = renderer.render(p, at: Instant(nanoseconds: 0))
        XCTAssertEqual(frame.semantics.filter { $0.role == "approval-dream" }.map(\.label), ["DREAM (model m.json, confidence 0.97): scpi-ok 97%, EIO 3%"])
        var dreaming = try PanelRenderer(width: 1000, height: 400, mode: .latent)
        XCTAssertTrue(dreaming.render(p, at: Instant(nanoseconds: 0)).semantics.first?.label.contains("DREAM (latent): not the machine") == true)
    }

    func testALatchedFault_isARedBannerAboveEverythingElse() throws {
        var p = try posterior()
        var renderer = try PanelRenderer(width: 1000, height: 400, mode: .real)
        XCTAssertFalse(renderer.render(p, at: Instant(nanoseconds: 0)).semantics.contains { $0.role == "fault" })
        try p.graph.apply(GraphDelta([.addNode(Node(id: NodeID("instrument:bench-bridge:SIM-1"), kind: .instrument, projected: true,
                                                    attributes: ["status": .string("lost"), "fault": .string("lost bench-bridge SIM-1 on /dev/ttyUSB0")]))]))
        let frame = renderer.render(p, at: Instant(nanoseconds: 0))
        let banner = frame.semantics.filter { $0.role == "fault" }
        XCTAssertEqual(banner.map(\.label), ["HALTED (latched fault): lost bench-bridge SIM-1 on /dev/ttyUSB0"])
        XCTAssertEqual(frame.semantics.firstIndex { $0.role == "fault" }, 1, "right under the header")
        XCTAssertEqual(banner[0].width, frame.width, "across the screen")
        let row = frame.pixels[(banner[0].y * frame.width)..<((banner[0].y + banner[0].height) * frame.width)]
        XCTAssertTrue(row.contains(0x5c1f1f), "on the fault colour")
    }

    func testEqualPosteriors_giveEqualFrames_andAChangeChangesTheHash() throws {
        var r = try PanelRenderer(width: 800, height: 480, mode: .real)
        var p = try posterior()
        let a = r.render(p, at: Instant(nanoseconds: 0)), b = r.render(p, at: Instant(nanoseconds: 99))
        XCTAssertEqual(a.hash, b.hash)
        XCTAssertEqual(b.damage, [], "nothing changed, nothing to copy")
        p.step = 4
        XCTAssertNotEqual(r.render(p, at: Instant(nanoseconds: 0)).hash, a.hash)
    }

    /// The retained scene: one reading changed redraws only its cell, and the pixels equal a
    /// frame drawn whole from the same posterior — at both sizes, through a run of changes.
    func testDamage_isOnlyTheChangedReading_andThePixelsEqualAWholeFrame() throws {
        for (w, h) in [(800, 480), (1920, 1080)] {
            var retained = try PanelRenderer(width: w, height: h, mode: .real)
            let first = retained.render(SamplePanel.posterior(temperature: 25.5), at: Instant(nanoseconds: 0))
            XCTAssertNil(first.damage, "the first frame is drawn whole")
            for (i, t) in [26.0, 80.25, 79.5, 25.5].enumerated() {
                let next = retained.render(SamplePanel.posterior(temperature: t), at: Instant(nanoseconds: 0))
                var whole = try PanelRenderer(width: w, height: h, mode: .real)
                let reference = whole.render(SamplePanel.posterior(temperature: t), at: Instant(nanoseconds: 0))
                XCTAssertEqual(next.hash, reference.hash)
                XCTAssertTrue(next.pixels == reference.pixels, "\(w)x\(h) change \(i): the retained frame equals a whole one")
                let cell = try XCTUnwrap(next.semantics.first { $0.node == SamplePanel.temperature })
                let damage = try XCTUnwrap(next.damage)
                XCTAssertEqual(damage.count, 1, "\(w)x\(h): one rectangle")
                XCTAssertTrue(damage[0].intersects(cell.bounds))
                XCTAssertLessThanOrEqual(damage[0].area, cell.bounds.area * 2, "\(w)x\(h): about the cell, not the screen (\(damage[0]))")
            }
        }
    }

    func testSceneEncoding_isWhatDrawsThePixels() {
        var a = Scene(width: 64, height: 32, background: 0)
        a.widgets = [Widget(bounds: PixelRect(x: 0, y: 0, width: 64, height: 20), runs: [TextRun("ok", x: 1, baseline: 14, color: 0xffffff, size: 15)])]
        var b = a
        XCTAssertEqual(a.encoded(), b.encoded())
        b.widgets[0].runs[0].color = 0xff0000
        XCTAssertNotEqual(a.encoded(), b.encoded(), "the colour is part of what was drawn")
        b = a
        b.widgets[0].runs[0].text = "ok!"
        XCTAssertNotEqual(a.encoded(), b.encoded())
        b = a
        b.widgets[0].semantic = .init(role: "x", label: "y", node: nil, x: 0, y: 0, width: 1, height: 1)
        XCTAssertEqual(a.encoded(), b.encoded(), "what a widget means is not what it draws")
    }

    func testText_isAntiAliased_throughTheTrueTypeFace() throws {
        var canvas = Canvas(width: 80, height: 30, background: 0)
        let face = try Typeface.named()
        canvas.text("Ag", x: 2, baseline: 22, color: 0xffffff, size: 20, face: face, clip: canvas.bounds)
        let levels = Set(canvas.pixels.map { $0 & 0xff })
        XCTAssertTrue(levels.contains(0) && levels.contains(255), "ink and background")
        XCTAssertGreaterThan(levels.count, 20, "and the grey levels of anti-aliased edges between them")
        var clipped = Canvas(width: 80, height: 30, background: 0)
        clipped.text("Ag", x: 2, baseline: 22, color: 0xffffff, size: 20, face: face, clip: PixelRect(x: 0, y: 0, width: 12, height: 30))
        XCTAssertTrue((0..<30).allSatisfy { y in (12..<80).allSatisfy { clipped.pixels[y * 80 + $0] == 0 } }, "nothing drawn outside the clip")
        XCTAssertThrowsError(try Typeface(path: "/nonexistent/font.ttf")) { XCTAssertTrue("\($0)".contains("fonts-dejavu-core"), "\($0)") }
        let notAFont = NSTemporaryDirectory() + "worldos-not-a-font-\(UUID().uuidString).ttf"
        try Data("not a font".utf8).write(to: URL(fileURLWithPath: notAFont))
        defer { unlink(notAFont) }
        XCTAssertThrowsError(try Typeface(path: notAFont)) { XCTAssertTrue("\($0)".contains(notAFont), "\($0)") }
    }

    func testPNGSink_writesAValidPNG_onlyWhenTheFrameChanges() throws {
        let path = NSTemporaryDirectory() + "worldos-panel-\(UUID().uuidString).png"
        defer { unlink(path) }
        var r = try PanelRenderer(width: 320, height: 200, mode: .real)
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
        var r = try PanelRenderer(width: 1280, height: 800, mode: .real)
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
