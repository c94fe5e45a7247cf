import Config
import Digest
import Foundation
import Journal
import LoopCore
import PNGCodec

/// Redaction rules (Policies/redaction.yaml), applied to every transition before anything of it
/// is written — the JSON-lines trace and the MCAP files alike:
///
/// - `fields: { NAME: drop | hash }`: every JSON member called NAME, wherever it is in the
///   transition (a node attribute, a call argument, a return's side data). `hash` replaces a
///   string with `sha256:` and 16 hex digits of a salted hash (the same value, the same hash,
///   within a run folder: records stay joinable); what is not a string is dropped.
/// - `paths: [pattern, …]`: every absolute path matching a pattern, wherever it appears in a
///   string (a node id such as `file:/home/ann/x`, an argument, a description), is replaced by
///   its hash.
/// - `frame-regions: [{x, y, width, height}, …]`: painted black in every recorded panel frame.
/// - `reads-of: [pattern, …]`: the bytes a read, pread, recvfrom or mmap returned from a
///   descriptor opened (in the same task) on a file matching a pattern are dropped: a
///   credential a policy lets a context read is used, not recorded.
public struct Redaction: Sendable, Equatable {
    public enum Action: String, Sendable { case drop, hash }
    public struct Region: Sendable, Equatable { public var x, y, width, height: Int }

    public var fields: [String: Action] = [:]
    public var paths: [[[UInt8]]] = []
    public var frameRegions: [Region] = []
    public var readsOf: [[[UInt8]]] = []
    /// Secret per run folder, so a hash cannot be reversed by hashing guesses.
    public var salt: [UInt8] = []

    public var isEmpty: Bool { fields.isEmpty && paths.isEmpty && frameRegions.isEmpty && readsOf.isEmpty }

    public init() {}

    public static func load(file: String) throws(ConfigError) -> Redaction {
        try parse(ConfigNode.load(file: file))
    }

    public static func parse(_ text: String, file: String) throws(ConfigError) -> Redaction {
        try parse(ConfigNode.parse(text, file: file))
    }

    static func parse(_ root: ConfigNode) throws(ConfigError) -> Redaction {
        var r = Redaction()
        for (key, value) in try root.mapping(allowed: ["version", "fields", "paths", "frame-regions", "reads-of"], required: ["version"]) {
            switch key {
            case "version": _ = try value.int(in: 1...1)
            case "fields":
                for (name, action) in try value.mappingPairs() {
                    let text = try action.string()
                    guard let a = Action(rawValue: text) else { throw action.error("unknown action \"\(text)\"", hint: "use drop or hash") }
                    r.fields[name] = a
                }
            case "paths", "reads-of":
                for pattern in try value.sequence() {
                    let text = try pattern.string()
                    let segments = text.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
                    guard text.hasPrefix("/"), !segments.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
                        throw pattern.error("path pattern \"\(text)\" must be absolute and normalized", hint: "such as /home/**")
                    }
                    if key == "paths" { r.paths.append(segments.map { Array($0.utf8) }) } else { r.readsOf.append(segments.map { Array($0.utf8) }) }
                }
            default:
                for entry in try value.sequence() {
                    var n: [String: Int] = [:]
                    for (k, v) in try entry.mapping(allowed: ["x", "y", "width", "height"], required: ["x", "y", "width", "height"]) {
                        n[k] = Int(try v.int(in: 0...100_000))
                    }
                    r.frameRegions.append(Region(x: n["x"]!, y: n["y"]!, width: n["width"]!, height: n["height"]!))
                }
            }
        }
        return r
    }

    /// The transition with the bytes read from `reads-of` files dropped (see the type's doc).
    /// Within one task: a descriptor opened in an earlier quantum is not followed.
    public func scrubbingReads(_ transition: Transition) -> Transition {
        guard !readsOf.isEmpty, var outcome = transition.outcome else { return transition }
        var secret: Set<Int64> = []
        var changed = false
        for i in outcome.steps.indices {
            let step = outcome.steps[i]
            guard let call = step.call, case .performed(let result) = step.status else { continue }
            switch call.op {
            case .open, .openat:
                guard let fd = result.value, let path = call.path else { continue }
                let segments = path.split(separator: "/").map { Array($0.utf8) }
                if readsOf.contains(where: { pathGlobMatches($0, segments) }) { secret.insert(fd) } else { secret.remove(fd) }
            case .read, .pread, .recvfrom, .mmap:
                guard let fd = call.fd, secret.contains(fd), case .value(let v, let data?, let fields) = result else { continue }
                outcome.steps[i].status = .performed(.value(v, data: nil, fields: fields.merging(["redacted-bytes": Int64(data.count)]) { a, _ in a }))
                changed = true
            case .close:
                if let fd = call.fd { secret.remove(fd) }
            default: continue
            }
        }
        guard changed else { return transition }
        var scrubbed = transition
        scrubbed.outcome = outcome
        return scrubbed
    }

    /// The salt kept in the run folder (made on first use, mode 0600).
    public static func salt(in folder: RunFolder) throws -> [UInt8] {
        let path = folder.redactionSalt
        if let data = FileManager.default.contents(atPath: path), data.count == 32 { return [UInt8](data) }
        var bytes = [UInt8](repeating: 0, count: 32)
        var g = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &g) }
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: 0o600]) else {
            throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path])
        }
        return bytes
    }

    func hash(_ text: String) -> String {
        "sha256:" + SHA256.hex(salt + Array(text.utf8)).prefix(16)
    }

    /// A transition's JSON with the rules applied, compact, members in the order the encoder
    /// wrote them (sorted). JSON that cannot be read gives empty data: nothing unredacted is
    /// written.
    public func apply(toJSON data: Data) -> Data {
        guard !fields.isEmpty || !paths.isEmpty else { return data }
        return JSONRedactor.redact([UInt8](data), with: self).map { Data($0) } ?? Data()
    }

    /// Every absolute path in `text` (a `/` at its start or after a space, `:`, `=`, `(`, `"`
    /// or `,`, running to the next such break) that a pattern matches, hashed.
    func redactPaths(in text: String) -> String {
        let breaks: Set<Character> = [" ", ":", "=", "(", ")", "\"", ",", "[", "]"]
        var out = ""
        var i = text.startIndex
        while i < text.endIndex {
            let atStart = i == text.startIndex || breaks.contains(text[text.index(before: i)])
            guard text[i] == "/", atStart else { out.append(text[i]); i = text.index(after: i); continue }
            var end = i
            while end < text.endIndex, !breaks.contains(text[end]) { end = text.index(after: end) }
            let path = String(text[i..<end])
            let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map { Array($0.utf8) }
            out += paths.contains { pathGlobMatches($0, segments) } ? hash(path) : path
            i = end
        }
        return out
    }

    /// A PNG with the frame regions painted black (the PNG itself when there are none; nothing
    /// when it cannot be read: a frame that cannot be redacted is not recorded).
    public func apply(toPNG png: [UInt8]) -> [UInt8] {
        guard !frameRegions.isEmpty else { return png }
        guard var image = try? PNG.decode(png) else { return [] }
        let (width, height) = (image.width, image.height)
        for r in frameRegions {
            for y in max(0, r.y)..<min(height, r.y + r.height) where r.x < width {
                let row = y * width * 3
                for x in max(0, r.x)..<min(width, r.x + r.width) {
                    image.pixels[row + 3 * x] = 0
                    image.pixels[row + 3 * x + 1] = 0
                    image.pixels[row + 3 * x + 2] = 0
                }
            }
        }
        return (try? PNG.encode(image)) ?? []
    }
}
