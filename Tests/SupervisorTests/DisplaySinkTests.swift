import DevicePorts
import Foundation
import Glibc
import LoopCore
import PNGCodec
import Renderer
import StateGraph
import Surface
import WorldOSTesting
import XCTest

/// The panel's frame sink on a screen (the fake, sibling of DRMDisplay, which the rig tests on
/// bochs-drm): frames go to the screen without waiting for a flip, the newest waits while one is
/// pending, a failing screen is let go and said once while the PNG goes on, and the screen is
/// given back at the end.
final class DisplaySinkTests: XCTestCase {
    func frame(_ step: Int, width: Int = 800, height: Int = 480) throws -> Frame {
        var graph = Graph()
        try graph.apply(GraphDelta([.addNode(Node(id: .context("c"), kind: .executionContext, partition: .context("c"), projected: true,
                                                  attributes: ["priority": .int(1)]))]))
        return try PanelRenderer.frame(of: Posterior(step: step, graph: graph, surprise: Surprise(), observedAt: nil), width: width, height: height, mode: .real)
    }

    func testFrames_reachTheScreenWithoutWaiting_theNewestWhileAFlipIsPending() throws {
        let path = try temporaryDirectory("display-sink") + "/panel.png"
        let screen = FakeDisplay(width: 800, height: 480)
        var sink = DisplaySink(png: PNGSink(path: path), screen: Screen(screen))
        let frames = try (0..<4).map { try frame($0) }
        _ = try sink.emit(frames[0])   // the first sets the CRTC: on screen at once
        _ = try sink.emit(frames[1])   // a flip to it, pending
        _ = try sink.emit(frames[2])   // waits for that flip…
        _ = try sink.emit(frames[3])   // …and is replaced by this one
        XCTAssertEqual(screen.shown, [frames[0].pixels, frames[1].pixels])
        XCTAssertEqual(screen.state.superseded, 1)
        XCTAssertNil(try sink.emit(frames[3]), "an unchanged frame is not sent again")
        screen.vblank()
        sink.service()
        XCTAssertEqual(screen.shown.last, frames[3].pixels, "the newest frame is flipped to when the pending flip completes")
        XCTAssertEqual(screen.state.flips, 1)
        try sink.finish()
        XCTAssertTrue(screen.restored, "the screen is given back at the end")
        XCTAssertEqual(try PNG.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))).width, 800, "the PNG is written too")
    }

    func testAFailingScreen_isLetGo_saidOnce_andThePNGGoesOn() throws {
        let path = try temporaryDirectory("display-lost") + "/panel.png"
        let screen = FakeDisplay(width: 800, height: 480)
        var sink = DisplaySink(png: PNGSink(path: path), screen: Screen(screen))
        _ = try sink.emit(try frame(0))
        screen.failNext = DeviceError(device: "/dev/dri/fake", errno: ENODEV, action: "request a page flip")
        XCTAssertNotNil(try sink.emit(try frame(1)), "the PNG is still written")
        XCTAssertTrue(screen.restored)
        XCTAssertNil(sink.display)
        let said = try XCTUnwrap(sink.takeLost())
        XCTAssertTrue(said.contains("/dev/dri/fake") && said.contains("panel.png"), said)
        XCTAssertNil(sink.takeLost(), "said once")
        XCTAssertNotNil(try sink.emit(try frame(2)))
        try sink.finish()
    }

    func testTheScreen_isInTheGraph_connectorAndCRTC() throws {
        let screen = FakeDisplay(width: 800, height: 480)
        try screen.present(pixels: [UInt32](repeating: 0, count: 800 * 480), width: 800, height: 480, damage: nil)
        let held = Screen(screen)
        let o = try DisplayObserver(held).observe(at: Instant(nanoseconds: 0))
        let connector = try XCTUnwrap(o.nodes.first { $0.kind == .displayConnector })
        XCTAssertEqual(connector["mode"], .string("800x480@60"))
        XCTAssertEqual(connector["connector"], .string("Virtual-1"))
        let crtc = try XCTUnwrap(o.nodes.first { $0.kind == .crtc })
        XCTAssertEqual(crtc["framebuffer"], .int(40))
        XCTAssertEqual(o.edges.first?.to, connector.id)
        let framebuffer = try XCTUnwrap(o.nodes.first { $0.kind == .framebuffer }, "the framebuffer on screen is a node")
        XCTAssertEqual(framebuffer["id"], .int(40))
        XCTAssertTrue(o.edges.contains(Edge(framebuffer.id, .attachedTo, crtc.id)), "on the CRTC (the fake has no planes)")
        held.drop()
        let gone = try DisplayObserver(held).observe(at: Instant(nanoseconds: 1))
        XCTAssertTrue(gone.nodes.isEmpty && gone.scope.contains(.displayConnector), "a screen let go leaves the graph")
    }

    /// One changed reading: the buffers are given only its damage, and what is on screen is still
    /// exactly the newest frame (each buffer catches up on what it missed, superseded frames too).
    func testDamage_onlyIsCopied_andTheScreenIsStillTheNewestFrame() throws {
        let path = try temporaryDirectory("display-damage") + "/panel.png"
        let fake = FakeDisplay(width: 800, height: 480)
        var sink = DisplaySink(png: PNGSink(path: path), screen: Screen(fake))
        var panel = try PanelRenderer(width: 800, height: 480, mode: .real)
        func step(_ i: Int, _ celsius: Double) throws -> Frame {
            panel.render(try SamplePanel.posterior(step: i, temperature: celsius), at: Instant(nanoseconds: UInt64(i)))
        }
        let first = try step(0, 21.5)
        _ = try sink.emit(first)
        XCTAssertEqual(fake.state.copied, 800 * 480, "the first frame is copied whole")
        var last = first
        for (i, celsius) in [22.0, 22.5, 23.0, 23.5, 24.0].enumerated() {
            last = try step(i + 1, celsius)
            let damage = try XCTUnwrap(last.damage)
            let drawnNow = !fake.state.flipPending
            _ = try sink.emit(last)
            if i == 0 {
                XCTAssertEqual(fake.state.copied, 800 * 480, "the second buffer has held nothing yet: it is given the whole frame, once")
            } else if drawnNow {
                XCTAssertLessThan(fake.state.copied, 800 * 480 / 4, "step \(i + 1): the damage (\(damage)) only")
            }
            // Step 3's flip is not done before step 4: step 4 waits, and its buffer catches up
            // on the damage of every frame it missed.
            if i != 2 { fake.vblank(); sink.service() }
        }
        fake.vblank(); sink.service()
        let same = fake.screen == last.pixels
        XCTAssertTrue(same, "what is on screen is exactly the newest frame")
        try sink.finish()
    }

    /// No screen at the start: looked for again on a hotplug event, or once a second, and only
    /// opened when something is attached; the first frame then goes to it whole.
    func testAScreenAttachedLater_isFoundAndDrivenWhole() throws {
        final class Bench: @unchecked Sendable { var attached = false; var opened = 0; let fake = FakeDisplay(width: 800, height: 480) }
        let bench = Bench()
        let screen = Screen(finding: { bench.opened += 1; return bench.attached ? (bench.fake, "display: fake") : (nil, "display: nothing attached") },
                            attached: { bench.attached })
        XCTAssertNil(screen.display)
        XCTAssertNil(screen.reprobe(hotplug: true), "nothing attached: not opened")
        bench.attached = true
        XCTAssertNil(screen.reprobe(hotplug: false), "no event and not a second since the last look: not yet")
        XCTAssertEqual(bench.opened, 1, "only the first look opened anything")
        XCTAssertEqual(screen.reprobe(hotplug: true)?.note, "display: fake")
        XCTAssertNil(screen.reprobe(hotplug: true), "driven: not looked for again")
        // The run went on without a screen until now: the renderer's frames are damage of ones never shown.
        var panel = try PanelRenderer(width: 800, height: 480, mode: .real)
        var sink = DisplaySink(png: PNGSink(path: try temporaryDirectory("display-later") + "/panel.png"), screen: Screen(nil))
        _ = try sink.emit(panel.render(SamplePanel.posterior(step: 1), at: Instant(nanoseconds: 0)))
        let unchanged = panel.render(SamplePanel.posterior(step: 1), at: Instant(nanoseconds: 1))
        XCTAssertEqual(unchanged.damage, [])
        sink = DisplaySink(png: sink.png, screen: screen)
        XCTAssertNil(try sink.emit(unchanged), "the PNG has it already…")
        XCTAssertTrue(bench.fake.screen == unchanged.pixels, "…and the screen just attached gets it whole")
        try sink.finish()
    }

    func testDisplayModes_parseOrAreRefused() {
        XCTAssertEqual(DisplayMode.parse("800x480").map { [$0.width, $0.height, $0.refresh ?? -1] }, [800, 480, -1])
        XCTAssertEqual(DisplayMode.parse("1920x1080@60").map { [$0.width, $0.height, $0.refresh ?? -1] }, [1920, 1080, 60])
        for bad in ["", "x", "800", "800x", "x480", "800x480@", "800x480@0", "0x480", "-1x5", "800X480", "800x480@60@1", "ax480"] {
            XCTAssertNil(DisplayMode.parse(bad), bad)
        }
    }
}
