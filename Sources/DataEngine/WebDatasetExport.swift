import Foundation
import LoopCore
import MCAP

/// `worldos export`: recorded transitions as WebDataset shards — plain tar files, one sample per
/// transition (`NNNNNNNNN.json`, the transition; `NNNNNNNNN.png`, the panel as it was at that
/// step), the layout PyTorch and `webdataset` loaders stream without unpacking. Tar is written
/// here (ustar headers, fixed times and owners, so an export is byte-for-byte reproducible);
/// nothing beyond the trace is needed.
public struct WebDatasetExport {
    public struct Summary: Sendable, Equatable {
        public var samples: Int
        public var shards: [String]
        public var framesMissing: Int
    }

    public struct Failure: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// One sample: the transition's JSON and the panel it was taken on.
    struct Sample {
        var key: String
        var json: [UInt8]
        var png: [UInt8]?
        /// Which run, trace file and step the sample is: `KEY.source.json`.
        var source: [UInt8]
    }

    /// A sample's key names its run (a short hash of the run folder's absolute path, which
    /// `source.json` spells out), its trace file and its step, so samples of many traces and
    /// runs stay apart: `run-3f2a9c1e_trace-0001_step-000000042`.
    public static func key(run: String, trace: String, step: Int) -> String {
        let tag = SHA256.hex(Array(run.utf8)).prefix(8)
        let stem = URL(fileURLWithPath: trace).deletingPathExtension().lastPathComponent.map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "-" }
        return "run-\(tag)_\(String(stem))_step-" + String(format: "%09d", step)
    }

    /// Export every transition of `traces` (MCAP files from `worldos run`) into `directory`,
    /// `perShard` samples to a shard.
    public static func export(traces: [String], to directory: String, perShard: Int = 1000) throws -> Summary {
        guard perShard > 0 else { throw Failure(message: "--per-shard must be at least 1") }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var samples: [Sample] = []
        var missing = 0
        for path in traces {
            let reader = try MCAPReader(path: path)
            guard let transitions = reader.channels.values.first(where: { $0.topic == "/worldos/transition" }) else {
                throw Failure(message: "\(path) has no /worldos/transition channel; is it a worldos trace?")
            }
            let panel = reader.channels.values.first { $0.topic == "/worldos/panel" }
            // The panel shown at each step: the last frame recorded at or before its time (a
            // step's own frame is written just after its transition, at the same time).
            let frames = try reader.messages.filter { $0.channel == panel?.id }.map { ($0.logTime, try png(in: $0.data, path: path)) }
            var next = 0
            var frame: [UInt8]?
            let absolute = URL(fileURLWithPath: path).standardizedFileURL
            let run = absolute.deletingLastPathComponent().path, trace = absolute.lastPathComponent
            for (n, message) in reader.messages.filter({ $0.channel == transitions.id }).enumerated() {
                while next < frames.count, frames[next].0 <= message.logTime { frame = frames[next].1; next += 1 }
                if frame == nil { missing += 1 }
                let step = Self.step(in: message.data) ?? n
                let source = try JSONSerialization.data(withJSONObject: ["run": run, "trace": trace, "step": step], options: [.sortedKeys])
                samples.append(Sample(key: Self.key(run: run, trace: trace, step: step), json: message.data, png: frame, source: Array(source)))
            }
        }
        var shards: [String] = []
        for (n, start) in stride(from: 0, to: samples.count, by: perShard).enumerated() {
            let name = directory + "/" + String(format: "shard-%06d.tar", n)
            var tar = TarWriter()
            for sample in samples[start..<min(start + perShard, samples.count)] {
                tar.add(sample.key + ".json", sample.json)
                if let png = sample.png { tar.add(sample.key + ".png", png) }
                tar.add(sample.key + ".source.json", sample.source)
            }
            guard FileManager.default.createFile(atPath: name, contents: Data(tar.finish())) else {
                throw Failure(message: "cannot write \(name)")
            }
            shards.append(name)
        }
        return Summary(samples: samples.count, shards: shards, framesMissing: missing)
    }

    /// The `step` of a transition's JSON.
    static func step(in json: [UInt8]) -> Int? {
        ((try? JSONSerialization.jsonObject(with: Data(json))) as? [String: Any])?["step"] as? Int
    }

    /// The PNG bytes of a `foxglove.CompressedImage` message.
    static func png(in message: [UInt8], path: String) throws -> [UInt8] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(message)) as? [String: Any],
              let text = object["data"] as? String, let bytes = Data(base64Encoded: text) else {
            throw Failure(message: "\(path): a /worldos/panel message is not a compressed image")
        }
        return [UInt8](bytes)
    }
}

/// A tar archive in memory: ustar headers, 512-byte blocks, two zero blocks at the end.
struct TarWriter {
    private(set) var bytes: [UInt8] = []

    mutating func add(_ name: String, _ content: [UInt8]) {
        var header = [UInt8](repeating: 0, count: 512)
        func put(_ text: String, at offset: Int, width: Int) {
            for (i, b) in text.utf8.prefix(width).enumerated() { header[offset + i] = b }
        }
        func octal(_ value: Int, at offset: Int, width: Int) {
            put(String(repeating: "0", count: max(0, width - 1 - String(value, radix: 8).count)) + String(value, radix: 8), at: offset, width: width - 1)
        }
        put(name, at: 0, width: 100)
        octal(0o644, at: 100, width: 8)
        octal(0, at: 108, width: 8)    // uid
        octal(0, at: 116, width: 8)    // gid
        octal(content.count, at: 124, width: 12)
        octal(0, at: 136, width: 12)   // mtime: fixed, so exports are reproducible
        header[156] = UInt8(ascii: "0")
        put("ustar", at: 257, width: 6)
        put("00", at: 263, width: 2)
        for i in 148..<156 { header[i] = UInt8(ascii: " ") }
        let sum = header.reduce(0) { $0 + Int($1) }
        octal(sum, at: 148, width: 7)   // six digits, NUL, space
        header[154] = 0
        header[155] = UInt8(ascii: " ")
        bytes += header
        bytes += content
        bytes += [UInt8](repeating: 0, count: (512 - content.count % 512) % 512)
    }

    mutating func finish() -> [UInt8] {
        bytes += [UInt8](repeating: 0, count: 1024)
        return bytes
    }
}
