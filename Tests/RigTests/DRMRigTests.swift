import CDRM
import DevicePorts
import Foundation
import Glibc
import HostAdapter
import LoopCore
import Renderer
import StateGraph
import Supervisor
import WorldOSTesting
import XCTest

/// Our DRM code against the real bochs-drm driver, checked from outside the guest: QEMU's own
/// screendump of the scanout must equal the frame we drew, pixel for pixel.
final class DRMRigTests: XCTestCase {
    override func setUpWithError() throws { try Rig.require(.display) }

    func testDisplay_findsTheVirtualConnectorAndItsPreferredMode() throws {
        let display = try DRMDisplay()
        XCTAssertEqual(display.driver, "bochs-drm")
        XCTAssertEqual(display.connectorName, "Virtual-1")
        XCTAssertEqual(display.mode.width, 1280)
        XCTAssertEqual(display.mode.height, 800)
    }

    func testPanelFrame_scannedOut_isReadBackPixelExact() throws {
        let display = try DRMDisplay()
        var graph = Graph()
        try graph.apply(GraphDelta([
            .addNode(Node(id: .process(pid: 1, startTime: 1), kind: .process, projected: true,
                          attributes: ["pid": .int(1), "comm": .string("init"), "state": .string("S"), "fds": .int(3)])),
            .addNode(Node(id: .context("rig"), kind: .executionContext, partition: .context("rig"), projected: true,
                          attributes: ["priority": .int(1), "last-result": .string("denied"),
                                       "last-denial": .string("open(path: \"/dev/gpiochip0\"): not in policy [rig.yaml:1]")])),
        ]))
        let frame = try PanelRenderer.frame(of: Posterior(step: 7, graph: graph, surprise: Surprise(), observedAt: nil),
                                            width: display.mode.width, height: display.mode.height, mode: .real)
        try display.present(pixels: frame.pixels, width: frame.width, height: frame.height, damage: nil)
        // Take the screendump while we still hold the CRTC.
        let name = "scanout-\(UUID().uuidString).ppm"
        try Rig.request("screendump \(name)")
        let image = try PPM(path: "\(Rig.results)/\(name)")
        XCTAssertEqual(image.width, frame.width)
        XCTAssertEqual(image.height, frame.height)
        var different = 0
        for i in 0..<frame.pixels.count where image.pixels[i] != frame.pixels[i] & 0x00FF_FFFF { different += 1 }
        XCTAssertEqual(different, 0, "\(different) of \(frame.pixels.count) pixels differ between what we drew and what QEMU scanned out")
        XCTAssertGreaterThan(Set(frame.pixels).count, 3, "the frame has content, so equality means something")
    }
}

/// Double-buffered page flips on bochs-drm: presenting never waits for a vertical blank (the
/// newest frame waits while a flip is pending), the flip's completion is read from the DRM
/// descriptor, the CRTC scans out the buffer flipped to last, and the screen is given back as
/// it was.
final class DRMFlipRigTests: XCTestCase {
    override func setUpWithError() throws { try Rig.require(.display) }

    func frames(_ count: Int, width: Int, height: Int) throws -> [Frame] {
        var graph = Graph()
        try graph.apply(GraphDelta([.addNode(Node(id: .context("rig"), kind: .executionContext, partition: .context("rig"), projected: true,
                                                  attributes: ["priority": .int(1)]))]))
        var renderer = try PanelRenderer(width: width, height: height, mode: .real)
        return (0..<count).map { renderer.render(Posterior(step: $0, graph: graph, surprise: Surprise(), observedAt: nil), at: Instant(nanoseconds: 0)) }
    }

    /// Until no flip is pending (or 2 s): poll the descriptor, take what completed.
    func settle(_ display: DRMDisplay) throws {
        let deadline = Date().addingTimeInterval(2)
        while display.state.flipPending, Date() < deadline {
            var p = pollfd(fd: display.descriptor, events: Int16(POLLIN), revents: 0)
            _ = poll(&p, 1, 100)
            try display.service()
        }
    }

    /// What each CRTC of the card scans out now, read with libdrm itself (no master needed).
    func scanout() throws -> [UInt32: UInt32] {
        let fd = open("/dev/dri/card0", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw RigError("cannot open /dev/dri/card0") }
        defer { close(fd) }
        let resources = try XCTUnwrap(drmModeGetResources(fd))
        defer { drmModeFreeResources(resources) }
        var out: [UInt32: UInt32] = [:]
        for i in 0..<Int(resources.pointee.count_crtcs) {
            guard let crtc = drmModeGetCrtc(fd, resources.pointee.crtcs[i]) else { continue }
            out[crtc.pointee.crtc_id] = crtc.pointee.buffer_id
            drmModeFreeCrtc(crtc)
        }
        return out
    }

    func testPresent_neverWaitsForAFlip_theNewestIsShown_andTheScreenIsGivenBack() throws {
        let before = try scanout()
        let display = try DRMDisplay(path: "/dev/dri/card0")
        let f = try frames(4, width: display.mode.width, height: display.mode.height)
        for frame in f { try display.present(pixels: frame.pixels, width: frame.width, height: frame.height, damage: nil) }
        XCTAssertTrue(display.state.flipPending, "the second frame's flip was requested, not waited for")
        XCTAssertEqual(display.state.superseded, 1, "the third waited and the fourth replaced it")
        try settle(display)
        XCTAssertFalse(display.state.flipPending, "the flips completed and were read from the descriptor")
        XCTAssertEqual(display.state.flips, 2)
        // The kernel scans out the buffer the last flip went to, and QEMU shows the newest frame.
        XCTAssertEqual(try scanout()[display.state.crtc], display.state.framebuffer)
        XCTAssertNotEqual(display.state.plane, 0, "the primary plane that scans it out is found (a graph node)")
        let name = "flipped-\(UUID().uuidString).ppm"
        try Rig.request("screendump \(name)")
        let shown = try PPM(path: "\(Rig.results)/\(name)")
        var different = 0
        for i in 0..<f[3].pixels.count where shown.pixels[i] != f[3].pixels[i] & 0x00FF_FFFF { different += 1 }
        XCTAssertEqual(different, 0, "the newest frame is on screen, pixel for pixel")
        // Flips for a second, a new frame whenever none is pending: they complete at the
        // display's pace, the presenting side never blocked.
        let start = Date()
        var i = 0
        while Date().timeIntervalSince(start) < 1 {
            if !display.state.flipPending {
                try display.present(pixels: f[i % 4].pixels, width: f[0].width, height: f[0].height, damage: nil)
                i += 1
            }
            var p = pollfd(fd: display.descriptor, events: Int16(POLLIN), revents: 0)
            _ = poll(&p, 1, 50)
            try display.service()
        }
        print("rig: \(display.state.flips) flips in 1 s on \(display.connectorName) \(display.mode)")
        XCTAssertGreaterThan(display.state.flips, 10)
        try settle(display)
        XCTAssertNotEqual(try scanout()[display.state.crtc], before[display.state.crtc], "ours is on screen")
        display.restore()
        XCTAssertEqual(try scanout(), before, "the CRTCs scan out what they did before")
    }

    /// Frames whose damage is one changed reading are copied into the buffers as that damage
    /// only, and QEMU still scans out the newest frame pixel for pixel (each buffer caught up on
    /// what it missed, a superseded frame's damage too).
    func testDamageOnly_isCopied_andTheScreenIsTheNewestFrame() throws {
        let display = try DRMDisplay(path: "/dev/dri/card0")
        defer { display.restore() }
        var renderer = try PanelRenderer(width: display.mode.width, height: display.mode.height, mode: .real)
        var last: Frame?
        for (i, celsius) in [21.0, 21.5, 22.0, 22.5, 23.0, 23.5, 24.0].enumerated() {
            let frame = renderer.render(SamplePanel.posterior(step: 9, temperature: celsius), at: Instant(nanoseconds: UInt64(i)))
            let drawnNow = !display.state.flipPending
            try display.present(pixels: frame.pixels, width: frame.width, height: frame.height, damage: i == 0 ? nil : frame.damage)
            if i >= 2 && drawnNow {
                XCTAssertLessThan(display.state.copied, frame.width * frame.height / 4, "frame \(i): only the damage \(frame.damage ?? []) is copied")
            }
            if i != 4 { try settle(display) }   // frame 5 waits for frame 4's flip; 6 supersedes it
            last = frame
        }
        try settle(display)
        let name = "damage-\(UUID().uuidString).ppm"
        try Rig.request("screendump \(name)")
        let shown = try PPM(path: "\(Rig.results)/\(name)")
        let frame = try XCTUnwrap(last)
        var different = 0
        for i in 0..<frame.pixels.count where shown.pixels[i] != frame.pixels[i] & 0x00FF_FFFF { different += 1 }
        XCTAssertEqual(different, 0, "the newest frame is on screen, pixel for pixel, though only damage was copied")
    }

    /// While the supervisor drives the card, it is the supervisor's: a context whose policy
    /// allows opening /dev/dri/* is refused it (device-owned), so nothing takes master from the
    /// panel or draws over it.
    func testWhileTheSupervisorDrivesTheCard_aContextCannotOpenIt() throws {
        let out = NSTemporaryDirectory() + "rig-owned-\(getpid())"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: out) }
        try "version: 1\ncontexts:\n  rogue:\n    interval-ms: 0\n    tasks:\n      grab:\n        - open: { path: /dev/dri/card0, mode: readwrite }\n"
            .write(toFile: out + "/bench.yaml", atomically: false, encoding: .utf8)
        try "version: 1\ncontexts:\n  rogue:\n    allow:\n      - op: open\n        path: /dev/dri/*\n      - op: close\n"
            .write(toFile: out + "/policy.yaml", atomically: false, encoding: .utf8)
        var options = SupervisorOptions()
        (options.out, options.bench, options.policy) = (out + "/run", out + "/bench.yaml", out + "/policy.yaml")
        (options.profiles, options.redaction, options.keys) = (out + "/no-profiles", out + "/no-redaction.yaml", out + "/keys")
        options.display = "/dev/dri/card0"
        var session = try Supervisor.start(options)
        XCTAssertTrue(session.notes.contains { $0.hasPrefix("display: /dev/dri/card0 Virtual-1") }, "\(session.notes)")
        let open = try XCTUnwrap(try session.loop.step().outcome?.steps.first)
        XCTAssertEqual(open.status, .denied)
        XCTAssertEqual(open.decision?.rule, "device-owned")
        XCTAssertTrue(open.decision?.reason?.contains("display:Virtual-1") == true, "\(String(describing: open.decision))")
        try session.loop.finish()
    }

    /// `worldos run --display /dev/dri/card0` scans the panel out and gives the screen back.
    func testWorldOSRun_drivesTheDisplay_andSaysSo() throws {
        let out = NSTemporaryDirectory() + "rig-run-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let before = try scanout()
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let log = out + "/run.log"
        let pid = try Rig.spawnWorldOS(["run", "--display", "/dev/dri/card0", "--steps", "3", "--interval-ms", "100", "--out", out + "/run"], log: log)
        let status = Rig.wait(pid, seconds: 120)
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("display: /dev/dri/card0 Virtual-1 1280x800"), output)
        XCTAssertTrue(output.contains("step 2:"), output)
        XCTAssertEqual(try scanout(), before, "the screen is given back when the run ends")
    }
}

/// A binary PPM (P6, 8-bit), as QEMU's screendump writes it.
struct PPM {
    var width: Int
    var height: Int
    /// 0x00RRGGBB, row-major.
    var pixels: [UInt32]

    init(path: String) throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var fields: [String] = []
        var i = 0
        while fields.count < 4 {
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
            if i < bytes.count, bytes[i] == UInt8(ascii: "#") { while i < bytes.count, bytes[i] != 0x0A { i += 1 }; continue }
            let start = i
            while i < bytes.count, !(bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09) { i += 1 }
            guard i > start else { throw RigError("\(path): truncated PPM header") }
            fields.append(String(decoding: bytes[start..<i], as: UTF8.self))
        }
        i += 1
        guard fields[0] == "P6", let w = Int(fields[1]), let h = Int(fields[2]), fields[3] == "255" else {
            throw RigError("\(path): not an 8-bit P6 PPM: \(fields)")
        }
        guard bytes.count - i >= w * h * 3 else { throw RigError("\(path): \(bytes.count - i) bytes of pixels for \(w)x\(h)") }
        width = w
        height = h
        pixels = (0..<(w * h)).map { p in
            UInt32(bytes[i + 3 * p]) << 16 | UInt32(bytes[i + 3 * p + 1]) << 8 | UInt32(bytes[i + 3 * p + 2])
        }
    }
}
