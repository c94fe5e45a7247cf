import DataEngine
import Foundation
import Journal
import LoopCore
import MCAP
import Renderer
import StateGraph
import Supervisor

/// Recording: micro-step records per second into MCAP (zstd chunks) on one core, beside the
/// same records appended one write each (the JSON-lines way); and the bytes a transition costs
/// with an idle panel (frame unchanged: no image) and a busy one (a new PNG every step).
func recordingBenchmark() throws {
    let dir = NSTemporaryDirectory() + "worldos-recording-bench-\(getpid())"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let count = 1_000_000
    // A micro-step record as the trace carries it: call, decision, return.
    func record(_ i: Int) -> [UInt8] {
        Array(#"{"call":{"args":{"count":128,"fd":\#(i % 1000)},"op":"read"},"decision":{"allow":{"rule":"Policies/default.yaml:21"}},"index":\#(i % 4),"status":{"performed":{"_0":{"value":{"_0":\#(i % 129),"fields":{}}}}}}"#.utf8)
    }
    let records = (0..<1000).map(record)
    let writer = try MCAPWriter(path: dir + "/steps.mcap")
    let channel = try writer.addChannel(topic: "/worldos/step", messageEncoding: "json", schema: 0)
    let mcapMs = try milliseconds {
        for i in 0..<count {
            writer.write(channel: channel, sequence: UInt32(i), logTime: UInt64(i), publishTime: UInt64(i), data: records[i % 1000])
            if writer.pendingBytes >= 1 << 20 { try writer.flushChunk() }
        }
        try writer.close()
    }
    let size = (try? FileManager.default.attributesOfItem(atPath: dir + "/steps.mcap")[.size] as? Int) ?? 0
    let fd = open(dir + "/steps.jsonl", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    let linesMs = milliseconds {
        for i in 0..<count { _ = (records[i % 1000] + [10]).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } }
    }
    close(fd)
    let linesSize = (try? FileManager.default.attributesOfItem(atPath: dir + "/steps.jsonl")[.size] as? Int) ?? 0
    let perSecond = Double(count) / (mcapMs / 1000)
    print("recording")
    print(String(format: "  1M micro-step records into MCAP (zstd):   %6.0f ms, %4.2f M records/s, %5.1f MB on disk (goal ≥ 0.5 M/s: %@)",
                 mcapMs, perSecond / 1e6, Double(size) / 1e6, perSecond >= 500_000 ? "met" : "NOT MET"))
    print(String(format: "  the same appended one write each (JSONL): %6.0f ms, %4.2f M records/s, %5.1f MB (MCAP / JSONL time %.2f)",
                 linesMs, Double(count) / (linesMs / 1000) / 1e6, Double(linesSize) / 1e6, mcapMs / linesMs))

    // Bytes per transition: 200 transitions with the panel unchanged, then 200 redrawn each step.
    let width = 1280, height = 800
    var pixels = [UInt32](repeating: 0x202830, count: width * height)
    let png = dir + "/panel.png"
    func transition(_ step: Int, frame: String?) -> Transition {
        Transition(step: step, mode: .real, time: Instant(nanoseconds: UInt64(step) * 500_000_000), observedNodes: 430, racedEntries: 0,
                   surprise: nil, frameHash: String(repeating: "ab", count: 32), framePNG: frame, stateDelta: GraphDelta(), context: "telemetry",
                   outcome: nil, nodeCount: 435)
    }
    var sizes: [Int] = []
    for busy in [false, true] {
        let out = dir + (busy ? "/busy" : "/idle")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let recorder = MCAPRecorder(folder: RunFolder(out))
        for step in 0..<200 {
            if busy {
                // A clock and a counter change, as on a live panel.
                for y in 20..<40 { for x in 0..<300 { pixels[y * width + x] = UInt32(truncatingIfNeeded: (x * 7 + step * 13) & 0xFFFFFF) } }
                try PNGSink.write(Frame(width: width, height: height, pixels: pixels, semantics: [], step: step), to: png)
            }
            try recorder.record(transition(step, frame: busy ? png : nil))
        }
        try recorder.finish()
        sizes.append((try? FileManager.default.attributesOfItem(atPath: out + "/trace-0001.mcap")[.size] as? Int) ?? 0)
    }
    print(String(format: "  bytes per transition: idle panel %5.0f B, busy panel %6.0f B (a new 1280×800 PNG each step, a 300×20 area changing)",
                 Double(sizes[0]) / 200, Double(sizes[1]) / 200))
}

/// The loop's slowdown with recording on: the real supervisor on this machine, steps timed with
/// its recorders (trace.jsonl and MCAP) and with a recorder that keeps nothing, alternating.
func recordingOverheadBenchmark() throws {
    struct Nothing: Recording { mutating func record(_ transition: Transition) throws {} }
    let dir = NSTemporaryDirectory() + "worldos-overhead-bench-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var options = SupervisorOptions()
    options.out = dir
    options.redaction = dir + "/none.yaml"
    var session = try Supervisor.start(options)
    let recording = session.loop.recorder
    for _ in 0..<3 { try session.loop.step() }  // warm: the first full scans
    // Pairs of steps, one with recording and one without, in alternating order so drift cancels;
    // the median of each pair's own ratio, so a slow moment (or a full rescan) that lands on one
    // pair does not decide the answer. A step is ~60 ms of mostly rendering on a noisy machine.
    var on: [Double] = [], off: [Double] = [], ratios: [Double] = []
    for pair in 0..<60 {
        var times = (on: 0.0, off: 0.0)
        for recordingFirst in pair % 2 == 0 ? [true, false] : [false, true] {
            session.loop.recorder = recordingFirst ? recording : Nothing()
            let t = try milliseconds { try session.loop.step() }
            if recordingFirst { times.on = t } else { times.off = t }
        }
        on.append(times.on)
        off.append(times.off)
        ratios.append(times.on / times.off)
    }
    session.loop.recorder = recording
    try session.loop.recorder.finish()
    let ratio = median(ratios)
    print(String(format: "  loop step with recording on %6.1f ms, off %6.1f ms (medians of 60 pairs): %+.1f%% (median pair; goal ≤ 5%%: %@)",
                 median(on), median(off), (ratio - 1) * 100, ratio <= 1.05 ? "met" : "NOT MET"))
}
