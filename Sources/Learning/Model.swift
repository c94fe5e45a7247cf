import DataEngine
import Digest
import Foundation
import Journal
import LoopCore
import StateGraph

/// A trained model, as its file holds it: the outcome predictor's counts, the dynamics model,
/// the typical bytes a read returns (what a dream reads), and the traces it was made from —
/// each with its SHA-256, and whether it was held out for evaluation.
public struct Model: Codable, Equatable, Sendable {
    public static let schema = "worldos-model/1"
    public var schema = Model.schema
    public var seed: UInt64
    /// The share of sessions held out of training, for `worldos eval`.
    public var holdout: Double
    public var sources: [Source]
    var outcomes = CountModel(levels: 5)
    var dynamics = DynamicsModel()
    /// `op|target` → the bytes such a call most often returned (UTF-8 text only, at most 64).
    var payloads: [String: String] = [:]

    public struct Source: Codable, Equatable, Sendable {
        /// The trace file, relative to the folder trained from.
        public var trace: String
        public var sha256: String
        public var transitions: Int
        public var heldOut: Bool
    }

    public var trainedOn: [Source] { sources.filter { !$0.heldOut } }

    /// The kinds of change (`+fd`, `~sensor/relay-0`) the dynamics model expects the next
    /// observation to show after this step's action (nil: no action).
    public func expectedChange(after outcome: ActionOutcome?) -> Set<String> { dynamics.predicted(after: outcome) }

    /// The model's file, as JSON with sorted keys (training twice gives the same bytes).
    public func write(to path: String) throws {
        var data = try AppendOnlyFile.encoder().encode(self)
        data.append(UInt8(ascii: "\n"))
        guard FileManager.default.createFile(atPath: path, contents: data) else {
            throw ModelError(path: path, message: "cannot be written (\(String(cString: strerror(errno))))")
        }
    }

    /// A model file, refused with what is wrong with it: not there, cut short or not JSON, or
    /// of another schema.
    public static func read(from path: String) throws -> Model {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError(path: path, message: "cannot be read (\(String(cString: strerror(errno))))")
        }
        struct Header: Decodable { var schema: String? }
        let header: Header
        do { header = try JSONDecoder().decode(Header.self, from: data) } catch {
            throw ModelError(path: path, message: "is not a complete model file (\(data.count) bytes that are not one JSON object: "
                             + "cut short, or not a model); train it again with `worldos train`")
        }
        guard let schema = header.schema else {
            throw ModelError(path: path, message: "has no \"schema\": it is not a WorldOS model file")
        }
        guard schema == Model.schema else {
            throw ModelError(path: path, message: "is a model of schema \(schema); this worldos reads \(Model.schema): train it again with `worldos train`")
        }
        do { return try JSONDecoder().decode(Model.self, from: data) } catch {
            throw ModelError(path: path, message: "does not hold a \(Model.schema) model (\(Self.describe(error))); train it again with `worldos train`")
        }
    }

    static func describe(_ error: any Error) -> String {
        guard let e = error as? DecodingError else { return "\(error)" }
        switch e {
        case .keyNotFound(let key, let c): return "no \"\((c.codingPath + [key]).map(\.stringValue).joined(separator: "."))\""
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c):
            return "field \"\(c.codingPath.map(\.stringValue).joined(separator: "."))\": \(c.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}

public struct ModelError: Error, CustomStringConvertible, Equatable {
    public var path: String
    public var message: String
    public var description: String { "model \(path) \(message)" }
}

/// One recorded session (a run folder's trace): what a model trains on and is evaluated on.
public struct TraceSession: Sendable {
    public var name: String
    public var sha256: String
    public var transitions: [Transition]

    public init(name: String, sha256: String, transitions: [Transition]) {
        (self.name, self.sha256, self.transitions) = (name, sha256, transitions)
    }

    /// Every trace.jsonl under `path` (or the file itself), in name order.
    public static func all(at path: String) throws -> [TraceSession] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ModelError(path: path, message: "is not there: name a trace.jsonl or a folder of runs (worldos generate makes one)")
        }
        var files: [(name: String, path: String)] = []
        if isDirectory.boolValue {
            let root = URL(fileURLWithPath: path).standardizedFileURL.path
            let walker = FileManager.default.enumerator(atPath: root)
            while let relative = walker?.nextObject() as? String {
                if relative == "trace.jsonl" || relative.hasSuffix("/trace.jsonl") { files.append((relative, root + "/" + relative)) }
            }
        } else {
            files = [(URL(fileURLWithPath: path).lastPathComponent, path)]
        }
        guard !files.isEmpty else { throw ModelError(path: path, message: "holds no trace.jsonl: nothing to learn from") }
        return try files.sorted { $0.name < $1.name }.map { file in
            guard let bytes = FileManager.default.contents(atPath: file.path) else { throw ModelError(path: file.path, message: "cannot be read") }
            return TraceSession(name: file.name, sha256: SHA256.hex(bytes), transitions: try TraceWriter.read(path: file.path))
        }
    }

    /// Whether the seed holds this session out of training: by its name's hash, never by step.
    public static func isHeldOut(_ name: String, seed: UInt64, share: Double) -> Bool {
        var h = SHA256()
        h.update(Array("\(seed) \(name)".utf8))
        let bytes = h.finish()
        let x = bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return Double(x) / Double(UInt64.max) < share
    }

    /// Every performed call of the session in order, with the features it is predicted from.
    func calls(_ visit: (_ features: [String], _ call: ResolvedCall, _ result: CallResult, _ label: String, _ context: String) -> Void) {
        var states: [String: SessionState] = [:]
        for t in transitions {
            guard let outcome = t.outcome else { continue }
            let context = outcome.proposal.context
            var state = states[context] ?? SessionState()
            state.previous = "start"
            for s in outcome.steps {
                guard let call = s.call, let result = s.result else { continue }
                let label = OutcomeLabel.of(call, result)
                visit(state.features(call, context: context), call, result, label, context)
                state.record(call, result, label: label)
            }
            states[context] = state
        }
    }
}

/// Training: counts from every session not held out, in name order.
public enum Trainer {
    public static func train(_ sessions: [TraceSession], seed: UInt64 = 1, holdout: Double = 0.2,
                             progress: (Int, Int) -> Void = { _, _ in }) -> Model {
        var model = Model(seed: seed, holdout: holdout, sources: [])
        var payloads: [String: [String: Int]] = [:]
        for (i, session) in sessions.enumerated() {
            let held = TraceSession.isHeldOut(session.name, seed: seed, share: holdout)
            model.sources.append(Model.Source(trace: session.name, sha256: session.sha256, transitions: session.transitions.count, heldOut: held))
            defer { progress(i + 1, sessions.count) }
            guard !held else { continue }
            session.calls { features, call, result, label, _ in
                model.outcomes.add(features, label)
                if let data = result.data, !data.isEmpty, let text = String(validating: data.prefix(64), as: UTF8.self) {
                    payloads[features[2], default: [:]][text, default: 0] += 1
                }
            }
            for (t, next) in zip(session.transitions, session.transitions.dropFirst()) {
                model.dynamics.add(after: t.outcome, observed: next.observationDelta ?? GraphDelta())
            }
        }
        model.payloads = payloads.mapValues { counts in counts.max { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key }!.key }
        return model
    }
}
