import Config
import DataEngine
import Foundation
import LoopCore
import PNGCodec
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
        // Decode (the codec is held to libpng's own reading in PNGCodecTests) and compare pixel by pixel.
        let image = try PNG.decode(redacted)
        XCTAssertEqual([image.width, image.height], [width, height])
        let rgb = image.pixels
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
        XCTAssertEqual(message("colors: []\n"), "r.yaml:2:1: document: unknown key \"colors\" (expected one of: version, fields, paths, frame-regions, reads-of)")
        XCTAssertEqual(message("fields: {}\n"), "accepted")
    }

    /// Random JSON — nested objects and arrays, escapes, non-ASCII, paths, pretty-printed or
    /// not, slashes escaped or not — through the rules: the output parses, every `drop` field
    /// is gone, every `hash` field holds one hash per distinct value, every string naming a
    /// protected path has lost it, and everything else is what went in.
    func testRandomJSON_comesOutWithExactlyTheRulesApplied() throws {
        let r = try redaction("fields:\n  cmdline: hash\n  data: drop\npaths:\n  - /secret/**\n")
        let strings = ["plain", "with \"quotes\"", "tab\tand\nnewline", "caf\u{E9}", "\u{1F600} emoji", "/secret/a b", "file:/secret/x.txt",
                       "/public/y", "ctl\u{1}", "back\\slash", "open(path: /secret/k)", ""]
        var rng = SeededRandom(seed: 7)
        func value(_ depth: Int) -> Any {
            switch Int.random(in: 0..<(depth > 3 ? 3 : 6), using: &rng) {
            case 0: return strings.randomElement(using: &rng)!
            case 1: return Int.random(in: -1000...1000, using: &rng)
            case 2: return [true, false, 2.5, NSNull()].randomElement(using: &rng)!
            case 3: return (0..<Int.random(in: 0...3, using: &rng)).map { _ in value(depth + 1) }
            default:
                var object: [String: Any] = [:]
                for _ in 0..<Int.random(in: 0...4, using: &rng) {
                    object[["cmdline", "data", "id", "args", "path", "n\u{E9}"].randomElement(using: &rng)!] = value(depth + 1)
                }
                return object
            }
        }
        var hashes: [String: String] = [:]
        func check(_ input: Any, _ output: Any, _ trail: String) {
            switch input {
            case let object as [String: Any]:
                guard let out = output as? [String: Any] else { return XCTFail("\(trail): not an object") }
                for (key, member) in object {
                    switch key {
                    case "data": XCTAssertNil(out[key], "\(trail).data kept")
                    case "cmdline":
                        guard let text = member as? String else { XCTAssertNil(out[key], "\(trail).cmdline: not a string, kept"); continue }
                        guard let hashed = out[key] as? String, hashed.hasPrefix("sha256:") else { XCTFail("\(trail).cmdline not hashed"); continue }
                        XCTAssertEqual(hashes[text, default: hashed], hashed, "one value, one hash")
                        hashes[text] = hashed
                    default:
                        guard let o = out[key] else { XCTFail("\(trail).\(key) lost"); continue }
                        check(member, o, trail + "." + key)
                    }
                }
                XCTAssertEqual(Set(out.keys), Set(object.keys).subtracting(["data"]).filter { $0 != "cmdline" || object[$0] is String })
            case let array as [Any]:
                guard let out = output as? [Any], out.count == array.count else { return XCTFail("\(trail): array changed shape") }
                for (k, pair) in zip(array, out).enumerated() { check(pair.0, pair.1, "\(trail)[\(k)]") }
            case let text as String:
                guard let out = output as? String else { return XCTFail("\(trail): not a string") }
                if text.contains("/secret/") {
                    XCTAssertFalse(out.contains("/secret"), trail)
                    XCTAssertTrue(out.contains("sha256:"), trail)
                } else {
                    XCTAssertEqual(out, text, trail)
                }
            default:
                XCTAssertEqual("\(output)", "\(input)", trail)
            }
        }
        for round in 0..<300 {
            let tree: [String: Any] = ["root": value(0), "cmdline": strings.randomElement(using: &rng)!]
            var options: JSONSerialization.WritingOptions = [.sortedKeys]
            if Bool.random(using: &rng) { options.insert(.prettyPrinted) }
            if Bool.random(using: &rng) { options.insert(.withoutEscapingSlashes) }
            let text = try JSONSerialization.data(withJSONObject: tree, options: options)
            let out = r.apply(toJSON: text)
            guard let parsed = try? JSONSerialization.jsonObject(with: out) else {
                XCTFail("round \(round): not JSON: \(String(decoding: out, as: UTF8.self))")
                continue
            }
            check(try JSONSerialization.jsonObject(with: text), parsed, "round \(round)")
            XCTAssertFalse(out.contains(UInt8(ascii: "\n")), "compact")
        }
    }

    func testMalformedJSON_givesNothingRatherThanSomethingUnredacted() throws {
        let r = try redaction("fields:\n  cmdline: hash\n")
        for bad in [#"{"cmdline":"sleep 30""#, #"{"cmdline":"sleep 30"} x"#, #"{"cmdline":"a\qb"}"#, "{\"cmdline\":\"a\u{1}b\"}",
                    #"{cmdline:"a"}"#, #"{"a":[1,2}"#, #"{"a":}"#, #"{"a":"\u12"}"#, "", "   "] {
            XCTAssertEqual(r.apply(toJSON: Data(bad.utf8)), Data(), bad)
        }
        XCTAssertEqual(json(r, #" { "n" : [ 1 , {"x" : null} ] , "t" : true } "#), #"{"n":[1,{"x":null}],"t":true}"#)
    }
}
