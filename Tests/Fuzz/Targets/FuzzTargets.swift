import Benches
import Control
import DataEngine
import DevicePorts
import Devices
import Foundation
import Guard
import HostAdapter
import Journal
import Learning
import LoopCore
import MCAP
import Supervisor

/// The parsers people and machines feed the supervisor, as fuzz targets: each takes any bytes
/// and must return (an error is fine) without crashing, hanging or reading out of bounds.
/// `make fuzz` runs each under libFuzzer with AddressSanitizer (Tests/Fuzz/run); the committed
/// corpora (Tests/Fuzz/corpus/TARGET) are also replayed by `make test` (FuzzCorpusTests).
public enum FuzzTargets {
    public static let names = ["policy", "profile", "bench", "redaction-rules", "scpi", "mcap", "mcap-repair",
                               "trace-json", "approval-json", "audit-log", "redactor", "evdev", "model", "macro-library",
                               "plan", "plan-json", "measurement"]

    /// A scratch file for the targets that read files, in memory when /dev/shm is there.
    static let scratch: String = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        return base + "/worldos-fuzz-\(getpid())"
    }()

    /// The shipped redaction rules, which the redactor target applies.
    static let shipped: Redaction = {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../../Policies/redaction.yaml").standardized.path
        var rules = (try? Redaction.load(file: file)) ?? Redaction()
        rules.salt = Array(repeating: 7, count: 32)
        return rules
    }()

    static func file(_ bytes: [UInt8]) -> String {
        let path = scratch
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    /// Feed one input to one target. Unknown names are a programming error of the caller.
    public static func run(_ name: String, _ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        switch name {
        case "policy": _ = try? Policy.parse(text, file: "fuzz.yaml")
        case "profile": _ = try? DeviceProfile.parse(text, file: "fuzz.yaml")
        case "bench": _ = try? Bench.parse(text, file: "fuzz.yaml")
        case "redaction-rules": _ = try? Redaction.parse(text, file: "fuzz.yaml")
        case "scpi":
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) { _ = try? SCPIError(parsing: String(line)) }
        case "mcap":
            guard let reader = try? MCAPReader(path: file(bytes)) else { return }
            _ = reader.messages.count
            _ = reader.channels.count
        case "mcap-repair":
            let path = file(bytes)
            if (try? MCAPWriter.repair(path: path)) != nil { _ = try? MCAPReader(path: path) }
        case "trace-json":
            _ = try? JSONDecoder().decode(Transition.self, from: Data(bytes))
            _ = try? TraceWriter.read(path: file(bytes))
        case "approval-json":
            _ = try? JSONRecordFile.read(Approval.self, from: file(bytes))
        case "audit-log":
            let path = file(bytes)
            _ = AuditLog.verify(path: path)
            _ = AuditLog.records(path: path)
            _ = AuditLog.unfinishedApprovedActions(path: path)
        case "redactor":
            _ = shipped.apply(toJSON: Data(bytes))
        case "evdev":
            // Whatever a device sends, in whatever pieces reads return it: only points on the screen.
            var touch = EvdevDecoder(axes: EvdevDecoder.Axes(x: 0...32767, y: -100...100))
            var keys = EvdevDecoder(axes: nil)
            let cut = bytes.first.map { Int($0) % 48 + 1 } ?? 1
            var rest = bytes[...]
            while !rest.isEmpty {
                for gesture in touch.feed(rest.prefix(cut)) + keys.feed(rest.prefix(cut)) {
                    if case .touch(let a, let b) = gesture {
                        precondition([a.x, a.y, b.x, b.y].allSatisfy { (0...1).contains($0) }, "a touch off the screen: \(gesture)")
                    }
                }
                rest = rest.dropFirst(cut)
            }
        case "model":
            // A model that loads is used: a prediction and a preview from whatever it holds.
            guard let model = try? Model.read(from: file(bytes)) else { return }
            let predictor = LearnedPredictor(model)
            predictor.begin(Proposal(context: "fuzz", task: "t", steps: []))
            let call = ResolvedCall(.read, ["fd": .int(3), "count": .int(16)])
            _ = predictor.observe(predictor.perform(call), of: call, real: false)
            _ = predictor.preview(ResolvedCall(.act, ["device": .string("d"), "action": .string("a")]), context: "fuzz")
        case "macro-library":
            _ = try? MacroLibrary.load(file: file(bytes))
        case "plan":
            // A plan that parses is summarised for the guard, as the runner does before it starts.
            guard let plan = try? Plan.parse(text, file: "fuzz.yaml") else { return }
            precondition(plan.steps.count <= Plan.maximumSteps && plan.steps.count == plan.locations.count)
            _ = plan.summary.ranges.count
        case "plan-json":
            // What the run folder's plans/ holds: submissions, commands and statuses.
            let path = file(bytes)
            _ = try? JSONRecordFile.read(PlanSubmission.self, from: path)
            _ = try? JSONRecordFile.read(PlanCommand.self, from: path)
            _ = try? JSONRecordFile.read(PlanStatus.self, from: path)
        case "measurement":
            if let m = try? Measurement(json: bytes) { precondition((try? Measurement(json: m.json)) == m, "a measurement reads back as written") }
        default:
            fatalError("no fuzz target \(name); the targets are \(names.joined(separator: ", "))")
        }
    }
}
