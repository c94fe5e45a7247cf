import CPNG
import Config
import DataEngine
import Foundation
import LoopCore
import Renderer
import XCTest

final class RedactionTests: XCTestCase {
    func redaction(_ body: String) throws -> Redaction {
        var r = try Redaction.parse("version: 1\n" + body, file: "r.yaml")
        r.salt = Array("a fixed salt for the test........".utf8)
        return r
    }

    func json(_ r: Redaction, _ text: String) -> String {
        String(decoding: r.apply(toJSON: Data(text.utf8)), as: UTF8.self)
    }

    func testFields_areDroppedOrHashedWhereverTheyAre() throws {
        let r = try redaction("fields:\n  cmdline: hash\n  data: drop\n  environ: hash\n")
        let out = json(r, #"{"a":{"cmdline":"sleep 30","n":1},"list":[{"data":[1,2,3],"keep":"x"}],"environ":{"HOME":"/root"}}"#)
        let hashed = r.apply(toJSON: Data(#"{"cmdline":"sleep 30"}"#.utf8))
        XCTAssertFalse(out.contains("sleep 30"))
        XCTAssertFalse(out.contains("[1,2,3]"))
        XCTAssertFalse(out.contains("environ"), "hash of something that is not a string drops it")
        XCTAssertTrue(out.contains(#""keep":"x""#))
        XCTAssertTrue(out.contains(String(decoding: hashed, as: UTF8.self).dropFirst(#"{"cmdline":"#.count).dropLast()),
                      "the same value, the same hash: \(out)")
        var other = r
        other.salt = Array("another salt....................".utf8)
        XCTAssertNotEqual(other.apply(toJSON: Data(#"{"cmdline":"sleep 30"}"#.utf8)), hashed, "the salt is in the hash")
    }

    func testPaths_areHashedInsideAnyString() throws {
        let r = try redaction("paths:\n  - /home/**\n  - /etc/shadow\n")
        let out = json(r, #"{"id":"file:/home/ann/notes.txt","call":"open(path: /etc/shadow)","args":{"path":"/etc/hostname"},"x":"/homely"}"#)
        XCTAssertFalse(out.contains("/home/ann"), out)
        XCTAssertFalse(out.contains("/etc/shadow"), out)
        XCTAssertTrue(out.contains("/etc/hostname"), out)
        XCTAssertTrue(out.contains("/homely"), "a pattern matches whole segments: \(out)")
        XCTAssertTrue(out.contains("file:sha256:"), out)
    }

    func testFrameRegions_arePaintedBlack_andNothingElseChanges() throws {
        let width = 64, height = 32
        let pixels = (0..<(width * height)).map { UInt32(0x102030 + $0 % 200) }
        let path = NSTemporaryDirectory() + "redaction-\(getpid()).png"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try PNGSink.write(Frame(width: width, height: height, pixels: pixels, semantics: [], step: 0), to: path)
        let r = try redaction("frame-regions:\n  - { x: 10, y: 5, width: 20, height: 8 }\n  - { x: 60, y: 30, width: 50, height: 50 }\n")
        let redacted = r.apply(toPNG: [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
        // Decode with libpng and compare pixel by pixel.
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        XCTAssertNotEqual(redacted.withUnsafeBytes { png_image_begin_read_from_memory(&image, $0.baseAddress, $0.count) }, 0)
        image.format = UInt32(PNG_FORMAT_RGB)
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        XCTAssertNotEqual(rgb.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }, 0)
        for y in 0..<height {
            for x in 0..<width {
                let inside = (10..<30).contains(x) && (5..<13).contains(y) || x >= 60 && y >= 30
                let p = pixels[y * width + x]
                let expected: [UInt8] = inside ? [0, 0, 0] : [UInt8(p >> 16 & 0xFF), UInt8(p >> 8 & 0xFF), UInt8(p & 0xFF)]
                XCTAssertEqual(Array(rgb[(3 * (y * width + x))..<(3 * (y * width + x) + 3)]), expected, "pixel \(x),\(y)")
            }
        }
    }

    func testMalformedRules_areRejectedNamingTheLine() {
        func message(_ body: String) -> String {
            do { _ = try Redaction.parse("version: 1\n" + body, file: "r.yaml"); return "accepted" } catch { return "\(error)" }
        }
        XCTAssertEqual(message("fields:\n  cmdline: shred\n"), "r.yaml:3:12: fields.cmdline: unknown action \"shred\" (use drop or hash)")
        XCTAssertEqual(message("paths:\n  - home/**\n"), "r.yaml:3:5: paths[0]: path pattern \"home/**\" must be absolute and normalized (such as /home/**)")
        XCTAssertEqual(message("paths:\n  - /home/../etc\n"), "r.yaml:3:5: paths[0]: path pattern \"/home/../etc\" must be absolute and normalized (such as /home/**)")
        XCTAssertEqual(message("frame-regions:\n  - { x: 1, y: 2, width: 3 }\n"), "r.yaml:3:5: frame-regions[0]: missing required key \"height\"")
        XCTAssertEqual(message("frame-regions:\n  - { x: -1, y: 2, width: 3, height: 4 }\n"), "r.yaml:3:10: frame-regions[0].x: -1 is out of range (use 0...100000)")
        XCTAssertEqual(message("colors: []\n"), "r.yaml:2:1: document: unknown key \"colors\" (expected one of: version, fields, paths, frame-regions)")
        XCTAssertEqual(message("fields: {}\n"), "accepted")
    }
}
