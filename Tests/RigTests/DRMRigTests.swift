import DevicePorts
import Foundation
import HostAdapter
import LoopCore
import Renderer
import StateGraph
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
        let frame = PanelRenderer(width: display.mode.width, height: display.mode.height, mode: .real)
            .render(Posterior(step: 7, graph: graph, surprise: Surprise(), observedAt: nil), at: Instant(nanoseconds: 0))
        try display.present(frame)
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
