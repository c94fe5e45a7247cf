import Foundation
import JSONWriter
import Journal
import LoopCore
import MCAP

/// Records each transition into MCAP files in the run folder (`trace-0001.mcap`, …): the
/// transition itself as JSON on `/worldos/transition`, and the panel frame, when it changed, as
/// a PNG on `/worldos/panel` (a `foxglove.CompressedImage`, so Foxglove shows it as an image).
///
/// Messages gather in a chunk that is written when it holds `chunkBytes` or spans
/// `chunkDuration` of loop time, so a crash loses at most that much; a file is closed and the
/// next begun when it reaches `fileBytes` or spans `fileDuration`, or when a client asks
/// (``TraceControl``), which can also mark a moment on `/worldos/mark`.
public final class MCAPRecorder: JSONRecording {
    public struct Limits: Sendable {
        public var chunkBytes = 1 << 20
        public var chunkDuration: Duration = .seconds(1)
        public var fileBytes: UInt64 = 256 << 20
        public var fileDuration: Duration = .seconds(3600)
        public init() {}
    }

    /// Where its files go: the run folder's `trace-NNNN.mcap`, numbered on from the last there.
    public let folder: RunFolder
    public let limits: Limits
    /// Applied to each transition and frame before it is written.
    public let redaction: Redaction
    private var writer: MCAPWriter?
    private var transitionChannel: UInt16 = 0
    private var panelChannel: UInt16 = 0
    private var markChannel: UInt16 = 0
    /// `/worldos/measurement`, added to a file with its first measurement.
    private var measurementChannel: UInt16?
    private var sequence: UInt32 = 0
    private var fileStart: UInt64 = 0
    private var chunkStart: UInt64?
    /// Every file this recorder has begun, oldest first.
    public private(set) var files: [String] = []

    /// The PNG of the frame with a hash, from whoever encodes them (the panel's encoder, on a
    /// thread of its own), waited for or not: a frame is recorded at a later transition, once it
    /// is encoded (never holding the loop up), or at `finish`, which waits. Without it, the file
    /// a transition names is read at once.
    private let frames: (@Sendable (_ hash: String, _ wait: Bool) -> FrameEncoding)?
    /// Frames of earlier transitions not recorded yet, oldest first: time, sequence and hash.
    private var pendingFrames: [(time: UInt64, sequence: UInt32, hash: String)] = []

    /// Clients' requests for a new file or a mark, taken at each transition.
    private let control: TraceControl?
    /// Plans' measurements, taken at each transition onto `/worldos/measurement`.
    private let measurements: MeasurementLog?

    public init(folder: RunFolder, limits: Limits = Limits(), redaction: Redaction = Redaction(),
                frames: (@Sendable (_ hash: String, _ wait: Bool) -> FrameEncoding)? = nil, control: TraceControl? = nil,
                measurements: MeasurementLog? = nil) {
        self.measurements = measurements
        self.folder = folder
        self.limits = limits
        self.redaction = redaction
        self.frames = frames
        self.control = control
    }

    public func record(_ transition: Transition, json: Data) throws {
        let time = transition.time.nanoseconds
        let commands = control?.take() ?? []
        do {
            try record(transition, json: json, time: time, newFile: commands.contains { if case .newFile = $0.command { true } else { false } })
        } catch {
            for (id, _) in commands { control?.finished(id, .failure(.init(description: "the trace could not be written: \(error)"))) }
            throw error
        }
        // Each command lands beside this transition: a new file begins with it, a mark follows it.
        let file = URL(fileURLWithPath: files.last ?? "").lastPathComponent
        for (id, command) in commands {
            if case .mark(let label, let by) = command, let w = writer {
                var mark = JSONWriter()
                mark.beginObject()
                mark.key("label"); mark.string(redaction.redactPaths(in: label))
                mark.key("by"); mark.string(by)
                mark.key("step"); mark.int(transition.step)
                mark.endObject()
                w.write(channel: markChannel, sequence: sequence, logTime: time, publishTime: time, data: mark.bytes)
            }
            control?.finished(id, .success(TraceControl.Done(file: file, step: transition.step, time: time)))
        }
        try recordMeasurements()
    }

    /// The measurements plans took since the last transition, written through (a plan's
    /// results are not left in a chunk a crash would lose).
    private func recordMeasurements() throws {
        guard let taken = measurements?.take(), !taken.isEmpty, let w = writer else { return }
        let channel: UInt16
        if let c = measurementChannel { channel = c } else {
            let schema = try w.addSchema(name: "worldos.Measurement", encoding: "jsonschema", data: Array(Measurement.schema.utf8))
            channel = try w.addChannel(topic: "/worldos/measurement", messageEncoding: "json", schema: schema)
            measurementChannel = channel
        }
        for m in taken {
            sequence &+= 1
            w.write(channel: channel, sequence: sequence, logTime: m.time, publishTime: m.time, data: m.json)
        }
        try w.flushChunk()
        chunkStart = nil
    }

    private func record(_ transition: Transition, json: Data, time: UInt64, newFile: Bool) throws {
        recordFrames(waiting: newFile)
        if let w = writer, newFile || w.position >= limits.fileBytes || time - fileStart >= Self.nanoseconds(limits.fileDuration) {
            try w.close()
            writer = nil
        }
        let w = try writer ?? open(at: time)
        sequence &+= 1
        w.write(channel: transitionChannel, sequence: sequence, logTime: time, publishTime: time,
                data: Array(json))
        if let png = transition.framePNG {
            if frames != nil {
                pendingFrames.append((time, sequence, transition.frameHash))
            } else if let file = FileManager.default.contents(atPath: png) {
                recordFrame([UInt8](file), time: time, sequence: sequence)
            }
        }
        chunkStart = chunkStart ?? time
        if w.pendingBytes >= limits.chunkBytes || time - chunkStart! >= Self.nanoseconds(limits.chunkDuration) {
            try w.flushChunk()
            chunkStart = nil
        }
    }

    /// The earlier transitions' frames that are encoded, in order, into the file that holds
    /// their transitions (with `waiting`, all of them); one still encoding and those after it
    /// wait for the next transition. A frame the encoder skipped or could not encode is not
    /// recorded; its transition still names its hash.
    private func recordFrames(waiting: Bool) {
        guard let frames else { return }
        while let (time, sequence, hash) = pendingFrames.first {
            switch frames(hash, waiting) {
            case .pending: return
            case .ready(let bytes): recordFrame(bytes, time: time, sequence: sequence)
            case .unavailable: break
            }
            pendingFrames.removeFirst()
        }
    }

    private func recordFrame(_ png: [UInt8], time: UInt64, sequence: UInt32) {
        guard let w = writer else { return }
        let bytes = Data(redaction.apply(toPNG: png))
        let image = #"{"data":"\#(bytes.base64EncodedString())","format":"png","frame_id":"panel","timestamp":{"nsec":\#(time % 1_000_000_000),"sec":\#(time / 1_000_000_000)}}"#
        w.write(channel: panelChannel, sequence: sequence, logTime: time, publishTime: time, data: Array(image.utf8))
    }

    /// Write the last frame, the last chunk and the summary: the file is complete.
    public func finish() throws {
        recordFrames(waiting: true)
        try writer?.close()
        writer = nil
    }

    private func open(at time: UInt64) throws -> MCAPWriter {
        let path = folder.nextMCAPTrace()
        let w = try MCAPWriter(path: path, profile: "worldos")
        let transitionSchema = try w.addSchema(name: "worldos.Transition", encoding: "jsonschema", data: Array(Self.transitionSchema.utf8))
        transitionChannel = try w.addChannel(topic: "/worldos/transition", messageEncoding: "json", schema: transitionSchema)
        let imageSchema = try w.addSchema(name: "foxglove.CompressedImage", encoding: "jsonschema", data: Array(Self.compressedImageSchema.utf8))
        panelChannel = try w.addChannel(topic: "/worldos/panel", messageEncoding: "json", schema: imageSchema)
        let markSchema = try w.addSchema(name: "worldos.Mark", encoding: "jsonschema", data: Array(Self.markSchema.utf8))
        markChannel = try w.addChannel(topic: "/worldos/mark", messageEncoding: "json", schema: markSchema)
        measurementChannel = nil
        writer = w
        fileStart = time
        chunkStart = nil
        files.append(path)
        return w
    }

    static func nanoseconds(_ d: Duration) -> UInt64 {
        UInt64(d.components.seconds) * 1_000_000_000 + UInt64(d.components.attoseconds / 1_000_000_000)
    }

    static let transitionSchema = #"""
    {"title":"worldos.Transition","description":"One macro step: observation, frame, decision, micro-steps with returns, events, state delta","type":"object","properties":{"step":{"type":"integer"},"mode":{"type":"string"},"time":{"type":"object"},"frameHash":{"type":"string"},"framePNG":{"type":"string"},"context":{"type":"string"},"outcome":{"type":"object"},"events":{"type":"array"},"stateDelta":{"type":"object"},"surprise":{"type":"object"},"nodeCount":{"type":"integer"}},"required":["step","mode","time","frameHash","nodeCount"]}
    """#

    static let markSchema = #"""
    {"title":"worldos.Mark","description":"A moment a client marked while recording (worldos trace mark, POST /api/v1/trace/marks)","type":"object","properties":{"label":{"type":"string"},"by":{"type":"string"},"step":{"type":"integer"}},"required":["label","by","step"]}
    """#

    /// Foxglove's CompressedImage, JSON-encoded (bytes as base64).
    static let compressedImageSchema = #"""
    {"title":"foxglove.CompressedImage","description":"A compressed image","type":"object","properties":{"timestamp":{"type":"object","title":"time","properties":{"sec":{"type":"integer","minimum":0},"nsec":{"type":"integer","minimum":0,"maximum":999999999}}},"frame_id":{"type":"string"},"data":{"type":"string","contentEncoding":"base64"},"format":{"type":"string"}}}
    """#
}

/// Several recorders fed the same transitions (the JSON-lines trace and the MCAP files).
/// A recorder of a transition's JSON as `AppendOnlyFile.encoder()` writes it (made by
/// ``TransitionJSON``), redacted by its rules: a ``RecorderSet`` encodes a transition once, and redacts it once per set of rules.
public protocol JSONRecording: AnyObject, Recording {
    var redaction: Redaction { get }
    /// Record `transition`, whose JSON with this recorder's redaction applied is `json`.
    func record(_ transition: Transition, json: Data) throws
}

extension JSONRecording {
    /// Recording alone: encode the transition and apply this recorder's redaction.
    public func record(_ transition: Transition) throws {
        try record(transition, json: redaction.apply(toJSON: TransitionJSON.encode(redaction.scrubbingReads(transition))))
    }
}

public struct RecorderSet: Recording {
    public var members: [any Recording]
    public init(_ members: [any Recording]) { self.members = members }

    public mutating func record(_ transition: Transition) throws {
        var encoded: [(readsOf: [[[UInt8]]], json: Data)] = []
        var redacted: [(rules: Redaction, json: Data)] = []
        for i in members.indices {
            guard let recorder = members[i] as? any JSONRecording else {
                try members[i].record(transition)
                continue
            }
            let rules = recorder.redaction
            let plain = try encoded.first(where: { $0.readsOf == rules.readsOf })?.json ?? TransitionJSON.encode(rules.scrubbingReads(transition))
            if !encoded.contains(where: { $0.readsOf == rules.readsOf }) { encoded.append((rules.readsOf, plain)) }
            if let done = redacted.first(where: { $0.rules == recorder.redaction }) {
                try recorder.record(transition, json: done.json)
            } else {
                let out = recorder.redaction.apply(toJSON: plain)
                redacted.append((recorder.redaction, out))
                try recorder.record(transition, json: out)
            }
        }
    }

    public mutating func finish() throws {
        for i in members.indices { try members[i].finish() }
    }
}
