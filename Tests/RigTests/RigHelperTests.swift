import Foundation
import XCTest

/// The rig's own helpers: what they do, and how they refuse what they cannot do.
final class RigHelperTests: XCTestCase {
    func testScreendump_writesAPPMOfTheWholeDisplay() throws {
        try Rig.require(.display)
        let name = "helper-\(UUID().uuidString).ppm"
        XCTAssertEqual(try Rig.request("screendump \(name)"), name)
        let image = try PPM(path: "\(Rig.results)/\(name)")
        XCTAssertEqual([image.width, image.height], [1280, 800])
    }

    func testMalformedOrUnknownRequests_areRefusedWithTheReason_andTheHelperKeepsServing() throws {
        try Rig.require(.usb)
        XCTAssertThrowsError(try Rig.request("teleport now")) { XCTAssertTrue("\($0)".contains("unknown command teleport"), "\($0)") }
        XCTAssertThrowsError(try Rig.request("usb-unplug toaster0")) { XCTAssertTrue("\($0)".contains("unknown device toaster0"), "\($0)") }
        XCTAssertThrowsError(try Rig.request("ftdi-send nothex")) { XCTAssertTrue("\($0)".contains("host refused"), "\($0)") }
        XCTAssertThrowsError(try Rig.request("ftdi-recv")) { XCTAssertTrue("\($0)".contains("host refused"), "\($0)") }
        XCTAssertEqual(try Rig.request("ftdi-clear"), "", "still serving after four bad requests")
    }

    func testPPMReader_rejectsMalformedImages() throws {
        let path = NSTemporaryDirectory() + "bad-\(UUID().uuidString).ppm"
        defer { unlink(path) }
        for bad in ["", "P6\n", "P5\n2 2\n255\n0000", "P6\n2 2\n65535\n", "P6\n2 2\n255\nabc"] {
            try Data(bad.utf8).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try PPM(path: path), bad.debugDescription)
        }
        try Data("P6\n# comment\n1 1\n255\n\u{1}\u{2}\u{3}".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try PPM(path: path).pixels, [0x010203])
    }
}
