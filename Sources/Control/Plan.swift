import Config
import Digest
import Foundation
import Guard

/// An experiment plan (`worldos plan run FILE`): steps over a bench's named actions and
/// readings, in the manner of Bluesky's plans. A plan is expanded when it is read — every
/// `scan` point and `repeat` round spelled out — so the guard sees every action it could take
/// before it starts, and a checkpoint is a place in one fixed sequence.
///
///     version: 1
///     plan: supply-scan
///     context: plan-runner            # the bench context that runs it (worldos plan run --context)
///     device: bench-bridge            # the device steps name unless they say otherwise
///     cleanup:                        # run on abort, on a failed step, and before the safe state
///       - set: { action: psu.output_off }
///     steps:
///       - set: { action: psu.output_on, params: { current-limit: 1 } }
///       - wait-until: { condition: "supply-output >= 1", timeout-s: 5 }
///       - checkpoint: powered
///       - scan: { action: psu.set_voltage, parameter: volts, from: 0, to: 5, step: 0.5, settle-ms: 200,
///                 measure: { name: iv, readings: [supply-voltage, supply-current] } }
///       - repeat: { times: 3, steps: [ { measure: { name: hold, readings: [supply-current] } } ] }
///       - measure: { name: final, readings: [supply-voltage] }
public struct Plan: Sendable, Equatable {
    /// One step of the expanded plan.
    public enum Step: Sendable, Equatable {
        case set(PlanCall)
        /// Wait until `condition` holds on the graph, failing the plan after `timeout`.
        case wait(Condition, timeout: Duration)
        /// Record `readings` under `name` (a scan's point beside them), each read after the last
        /// action and `settle` later.
        case measure(name: String, readings: [String], point: [String: Double], settle: Duration)
        case checkpoint(String)
    }

    /// `READING OP NUMBER`, OP one of < <= > >= == !=.
    public struct Condition: Sendable, Equatable, CustomStringConvertible {
        public var reading: String
        public var op: String
        public var value: Double
        public var description: String { "\(reading) \(op) \(PolicyGuard.spell(value))" }

        public func holds(_ v: Double) -> Bool {
            switch op {
            case "<": v < value
            case "<=": v <= value
            case ">": v > value
            case ">=": v >= value
            case "==": v == value
            default: v != value
            }
        }
    }

    public var name: String
    public var context: String?
    /// SHA-256 of the file's bytes: what an approval of the plan is bound to.
    public var hash: String
    public var steps: [Step]
    public var cleanup: [PlanCall]
    /// Where each step was written (`file:line`), for errors while it runs.
    public var locations: [String]
    public var file: String
    /// The device its steps and readings name unless they say otherwise.
    public var device: String?

    /// The most steps a plan may expand to.
    public static let maximumSteps = 100_000

    public static func parse(_ text: String, file: String) throws(ConfigError) -> Plan {
        let root = try ConfigNode.parse(text, file: file)
        let fields = try root.mapping(allowed: ["version", "plan", "context", "device", "cleanup", "steps"], required: ["version", "plan", "steps"])
        func field(_ name: String) -> ConfigNode? { fields.first { $0.key == name }?.value }
        _ = try field("version")!.int(in: 1...1)
        let name = try field("plan")!.string()
        guard !name.isEmpty, name.count <= 64, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            throw field("plan")!.error("a plan's name is 1 to 64 letters, digits, - and _", hint: "such as supply-scan")
        }
        let device = try field("device")?.string()
        var plan = Plan(name: name, context: try field("context")?.string(), hash: SHA256.hex(Array(text.utf8)), steps: [], cleanup: [], locations: [],
                        file: file, device: device)
        for node in try field("cleanup")?.sequence() ?? [] {
            let (key, body) = try single(node)
            guard key == "set" else { throw node.error("cleanup runs only set steps, not \(key)", hint: "cleanup: [ { set: { action: psu.output_off } } ]") }
            plan.cleanup.append(try call(body, device: device))
        }
        try plan.expand(try field("steps")!.sequence(), device: device, repeats: 1)
        if plan.steps.isEmpty { throw field("steps")!.error("the plan has no steps") }
        return plan
    }

    private mutating func append(_ step: Step, at node: ConfigNode) throws(ConfigError) {
        guard steps.count < Self.maximumSteps else {
            throw node.error("the plan expands to more than \(Self.maximumSteps) steps", hint: "scan with a coarser step, or repeat fewer times")
        }
        steps.append(step)
        locations.append(node.location)
    }

    private mutating func expand(_ nodes: [ConfigNode], device: String?, repeats: Int64) throws(ConfigError) {
        for node in nodes {
            let (key, body) = try Self.single(node)
            switch key {
            case "set": try append(.set(try Self.call(body, device: device)), at: node)
            case "wait-until":
                var condition: Condition?, timeout = Duration.seconds(10)
                for (k, v) in try body.mapping(allowed: ["condition", "timeout-s"], required: ["condition", "timeout-s"]) {
                    if k == "condition" { condition = try Self.condition(v) } else { timeout = .milliseconds(Int64(try v.double(in: 0.01...86_400) * 1000)) }
                }
                try append(.wait(condition!, timeout: timeout), at: node)
            case "measure": try append(try Self.measure(body, point: [:], settle: .zero), at: node)
            case "checkpoint":
                let label = try body.string()
                guard !label.isEmpty, label.count <= 64 else { throw body.error("a checkpoint's name is 1 to 64 characters") }
                guard repeats == 1 else { throw body.error("a checkpoint inside a repeat would name several places", hint: "put it before or after the repeat") }
                try append(.checkpoint(label), at: node)
            case "scan":
                let f = try body.mapping(allowed: ["action", "device", "parameter", "from", "to", "step", "params", "settle-ms", "measure"],
                                         required: ["action", "parameter", "from", "to", "step", "measure"])
                func value(_ name: String) -> ConfigNode? { f.first { $0.key == name }?.value }
                let parameter = try value("parameter")!.string()
                let from = try value("from")!.double(in: -1e9...1e9), to = try value("to")!.double(in: -1e9...1e9)
                let stepNode = value("step")!
                let step = try stepNode.double(in: 1e-9...1e9)
                let settle = Duration.milliseconds(try value("settle-ms")?.int(in: 0...600_000) ?? 0)
                let count = Int(((abs(to - from) / step) + 1e-9).rounded(.down)) + 1
                guard count <= Self.maximumSteps / 2 else { throw stepNode.error("a scan of \(count) points is too long", hint: "use a coarser step") }
                var base = try Self.call(body, device: device, ignoring: ["parameter", "from", "to", "step", "settle-ms", "measure"])
                guard base.params[parameter] == nil else { throw value("params")!.error("\(parameter) is the scanned parameter; it cannot also be fixed") }
                let direction = to >= from ? 1.0 : -1.0
                for i in 0..<count {
                    // Each point from its index, so 0.1 steps do not drift by adding.
                    let v = ((from + direction * step * Double(i)) * 1e9).rounded() / 1e9
                    base.params[parameter] = PolicyGuard.spell(v)
                    try append(.set(base), at: node)
                    try append(try Self.measure(value("measure")!, point: [parameter: v], settle: settle), at: node)
                }
            case "repeat":
                let f = try body.mapping(allowed: ["times", "steps"], required: ["times", "steps"])
                let times = try f.first { $0.key == "times" }!.value.int(in: 1...100_000)
                let innerNode = f.first { $0.key == "steps" }!.value
                let inner = try innerNode.sequence()
                // Rounds of nothing would still be counted, without bound.
                guard !inner.isEmpty else { throw innerNode.error("a repeat needs at least one step") }
                for _ in 0..<times { try expand(inner, device: device, repeats: repeats * times) }
            default:
                throw node.error("unknown plan step \"\(key)\"", hint: "use set, wait-until, measure, scan, repeat or checkpoint")
            }
        }
    }

    static func single(_ node: ConfigNode) throws(ConfigError) -> (String, ConfigNode) {
        let pairs = try node.mappingPairs()
        guard pairs.count == 1 else { throw node.error("a step is one of set, wait-until, measure, scan, repeat or checkpoint, as a one-key mapping") }
        return (pairs[0].key, pairs[0].value)
    }

    static func call(_ node: ConfigNode, device fallback: String?, ignoring: Set<String> = []) throws(ConfigError) -> PlanCall {
        var action = "", device = fallback, params: [String: String] = [:]
        for (key, value) in try node.mappingPairs() {
            switch key {
            case "action": action = try value.string()
            case "device": device = try value.string()
            case "params":
                for (k, v) in try value.mappingPairs() {
                    let text = try v.string()
                    guard !k.isEmpty, !k.contains("="), !k.contains(","), !text.contains(",") else {
                        throw v.error("parameter \(k)=\(text) cannot be sent (no = or , in a name, no , in a value)")
                    }
                    params[k] = text
                }
            case _ where ignoring.contains(key): continue
            default: throw value.error("unknown field \"\(key)\"", hint: "a set takes action, device and params")
            }
        }
        guard !action.isEmpty, action.allSatisfy({ $0.isLetter || $0.isNumber || "._-".contains($0) }) else {
            throw node.error("a step needs an action of letters, digits, . _ and -", hint: "such as psu.set_voltage")
        }
        guard let device else { throw node.error("\(action) names no device and the plan has no device:", hint: "add device: bench-bridge") }
        return PlanCall(device: device, action: action, params: params)
    }

    static func measure(_ node: ConfigNode, point: [String: Double], settle: Duration) throws(ConfigError) -> Step {
        let f = try node.mapping(allowed: ["name", "readings"], required: ["name", "readings"])
        let name = try f.first { $0.key == "name" }!.value.string()
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            throw node.error("a measurement's name is letters, digits, - and _")
        }
        let readingsNode = f.first { $0.key == "readings" }!.value
        let readings = try readingsNode.strings()
        guard !readings.isEmpty else { throw readingsNode.error("a measurement records at least one reading") }
        return .measure(name: name, readings: readings, point: point, settle: settle)
    }

    static func condition(_ node: ConfigNode) throws(ConfigError) -> Condition {
        let parts = try node.string().split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard parts.count == 3, ["<", "<=", ">", ">=", "==", "!="].contains(parts[1]), let v = Double(parts[2]), v.isFinite else {
            throw node.error("a condition is READING OP NUMBER, OP one of < <= > >= == !=", hint: "such as \"supply-output >= 1\"")
        }
        return Condition(reading: parts[0], op: parts[1], value: v)
    }

    /// What the guard is shown before the plan starts: every distinct action of its steps and
    /// its cleanup, and their ranges.
    public var summary: PlanSummary {
        var seen = Set<PlanCall>(), calls: [PlanCall] = []
        for case .set(let call) in steps + cleanup.map(Step.set) where seen.insert(call).inserted { calls.append(call) }
        var ranges: [String: String] = [:]
        for (key, group) in Dictionary(grouping: calls, by: { "\($0.action) on \($0.device)" }) {
            let names = Set(group.flatMap(\.params.keys)).sorted()
            ranges[key] = names.isEmpty ? "no parameters" : names.map { name in
                let values = Set(group.compactMap { $0.params[name] })
                let numbers = values.compactMap(Double.init)
                if numbers.count == values.count, numbers.count > 1 {
                    return "\(name) \(PolicyGuard.spell(numbers.min()!))…\(PolicyGuard.spell(numbers.max()!)) (\(numbers.count) values)"
                }
                return "\(name) " + values.sorted().joined(separator: "|")
            }.joined(separator: ", ")
        }
        return PlanSummary(name: name, hash: hash, calls: calls, ranges: ranges)
    }

    /// The devices it acts on.
    public var devices: [String] { Set(summary.calls.map(\.device)).sorted() }
}
