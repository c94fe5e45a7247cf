import Foundation
import LoopCore
import PNGCodec
import Renderer
import StateGraph
import WorldOSTesting
import XCTest

/// The panel drawn from fixed graphs at the two ends of the sizes it supports — a 7-inch 800×480
/// panel and a 1920×1080 screen — compared pixel-exact with the checked-in PNGs, and its
/// semantics tree with the JSON beside them. An intended change regenerates them all with
/// `make goldens` (then look at the pictures before committing them).
final class PanelGoldenTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden").path
    static var regenerate: Bool { ProcessInfo.processInfo.environment["WORLDOS_REGENERATE_GOLDEN"] == "1" }

    static let cases: [(name: String, posterior: Posterior)] = [
        ("bench", SamplePanel.posterior()),
        ("confirm", SamplePanel.posterior(armed: "approve:\(SamplePanel.approval)")),
        ("no-operator", SamplePanel.posterior(operator: nil, focus: "reject:\(SamplePanel.approval)")),
        ("fault", SamplePanel.posterior(fault: "lost bench-bridge SIM-0001 on /dev/ttyUSB0: no reply to *IDN? within 1000 ms")),
    ]

    func testPanel_matchesTheGoldenImagesAndSemantics_atBothSizes() throws {
        for (w, h) in [(800, 480), (1920, 1080)] {
            for (name, posterior) in Self.cases {
                var renderer = try PanelRenderer(width: w, height: h, mode: .real)
                let frame = renderer.render(posterior, at: Instant(nanoseconds: 0))
                let base = "\(Self.folder)/panel-\(name)-\(w)x\(h)"
                let semantics = Self.json(frame.semantics)
                if Self.regenerate {
                    try PNGSink.write(frame, to: base + ".png")
                    try Data(semantics.utf8).write(to: URL(fileURLWithPath: base + ".semantics.json"))
                    continue
                }
                let png = try XCTUnwrap(FileManager.default.contents(atPath: base + ".png"), "\(base).png is missing: make goldens")
                let golden = try PNG.decode([UInt8](png))
                XCTAssertEqual([golden.width, golden.height], [w, h])
                let expectedPixels = golden.pixels.withUnsafeBufferPointer { rgb in
                    (0..<(w * h)).map { (i: Int) -> UInt32 in
                        let (r, g, b) = (UInt32(rgb[3 * i]), UInt32(rgb[3 * i + 1]), UInt32(rgb[3 * i + 2]))
                        return r << 16 | g << 8 | b
                    }
                }
                let differing = frame.pixels == expectedPixels ? 0 : zip(frame.pixels, expectedPixels).lazy.filter { $0 != $1 }.count
                XCTAssertEqual(differing, 0, "\(name) at \(w)x\(h) differs from \(base).png in \(differing) pixels; if intended, make goldens")
                let expected = try String(contentsOfFile: base + ".semantics.json", encoding: .utf8)
                XCTAssertEqual(semantics, expected, "\(name) at \(w)x\(h): semantics tree differs from \(base).semantics.json")
            }
        }
    }

    /// What the goldens show, asserted: the approval's buttons act and are enabled for the seat's
    /// operator; without one they are disabled and say why; a pending confirmation moves the
    /// confirm away from where APPROVE was, so a double tap cannot approve.
    func testTheGoldenCases_showRightsAndTheTwoStepConfirm() throws {
        var r = try PanelRenderer(width: 800, height: 480, mode: .real)
        let id = SamplePanel.approval
        let normal = r.render(SamplePanel.posterior(), at: Instant(nanoseconds: 0)).semantics
        let approve = try XCTUnwrap(normal.first { $0.value == "approve:\(id)" })
        XCTAssertTrue(approve.enabled)
        XCTAssertEqual(approve.actions, ["press"])
        let none = r.render(SamplePanel.posterior(operator: nil), at: Instant(nanoseconds: 0)).semantics
        let disabled = try XCTUnwrap(none.first { $0.value == "approve:\(id)" })
        XCTAssertFalse(disabled.enabled)
        XCTAssertTrue(disabled.disabled?.contains("--panel-operator") == true, "\(disabled.disabled ?? "")")
        XCTAssertTrue(none.contains { $0.role == "reason" && $0.label.contains("no operator at this seat") }, "the reason is on the screen")
        let armed = r.render(SamplePanel.posterior(armed: "approve:\(id)"), at: Instant(nanoseconds: 0)).semantics
        let confirm = try XCTUnwrap(armed.first { $0.value == "confirm-approve:\(id)" })
        XCTAssertFalse(confirm.bounds.intersects(approve.bounds), "the confirmation is not where APPROVE was")
        XCTAssertNil(armed.first { $0.value == "approve:\(id)" })
        XCTAssertNotNil(armed.first { $0.value == "cancel:\(id)" && $0.bounds.intersects(approve.bounds) }, "a second tap there cancels")
    }

    static func json(_ semantics: [Frame.Semantic]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return semantics.map { String(decoding: (try? encoder.encode($0)) ?? Data(), as: UTF8.self) }.joined(separator: "\n") + "\n"
    }
}
