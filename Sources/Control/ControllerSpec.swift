import Config
import Guard

/// A controller as a bench declares it under a context (`controller:`): its law, the reading it
/// follows, the actuator it writes through a profile action, its first setpoint, and the safety
/// envelope the guard holds that actuator to.
///
///     controller:
///       name: heater
///       law: pid                       # pid | bang-bang | curve
///       input: bench-bridge/heater-temperature
///       output: { device: bench-bridge, action: heater.set_power, parameter: percent, min: 0, max: 100 }
///       setpoint: 80                   # asked for at start; raising it waits for an approval
///       gains: { kp: 6, ki: 0.05, kd: 0 }
///       setpoints: { min: 0, max: 120 }
///       safety:
///         max-output: 100
///         range: [0, 150]
///         stale-ms: 3000
///         runaway: { output-above: 50, min-rise: 2, within-s: 20, hysteresis: 5 }
public struct ControllerSpec: Sendable, Equatable {
    public var law: ControlLaw
    /// The setpoint the controller asks for when it starts (nil: it waits for one).
    public var initialSetpoint: Double?
    /// The output's range: the law's limits.
    public var outputRange: ClosedRange<Double>
    /// The output is written as a whole number (the profile's parameter is an integer one; the
    /// supervisor sets this from the profile).
    public var wholeOutput = true
    public var envelope: SafetyEnvelope
    /// `file:line` of the declaration.
    public var location: String

    public var name: String { envelope.controller }

    public init(law: ControlLaw, initialSetpoint: Double?, outputRange: ClosedRange<Double>, envelope: SafetyEnvelope, location: String) {
        (self.law, self.initialSetpoint, self.outputRange, self.envelope, self.location) = (law, initialSetpoint, outputRange, envelope, location)
    }

    public static func parse(_ node: ConfigNode, context: String) throws(ConfigError) -> ControllerSpec {
        let fields = try node.mapping(allowed: ["name", "law", "input", "unit", "output", "setpoint", "setpoints", "gains", "hysteresis", "curve", "safety"],
                                      required: ["name", "law", "input", "output", "safety"])
        func field(_ name: String) -> ConfigNode? { fields.first { $0.key == name }?.value }
        let name = try field("name")!.string()
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            throw field("name")!.error("a controller's name is letters, digits, - and _", hint: "such as heater")
        }
        let inputNode = field("input")!
        let input = try inputNode.string()
        guard input.split(separator: "/").count == 2 else {
            throw inputNode.error("input \"\(input)\" is not PROFILE/READING", hint: "such as bench-bridge/heater-temperature, or bench-bridge:SERIAL/heater-temperature")
        }
        let outputNode = field("output")!
        var device = "", action = "", parameter = ""
        var low = 0.0, high = 100.0
        for (key, value) in try outputNode.mapping(allowed: ["device", "action", "parameter", "min", "max"], required: ["device", "action", "parameter"]) {
            switch key {
            case "device": device = try value.string()
            case "action": action = try value.string()
            case "parameter": parameter = try value.string()
            case "min": low = try value.double(in: -1e9...1e9)
            default: high = try value.double(in: -1e9...1e9)
            }
        }
        guard low < high else { throw outputNode.error("output min \(low) is not below max \(high)") }
        let lawName = try field("law")!.string()
        let law: ControlLaw
        switch lawName {
        case "pid":
            guard let gains = field("gains") else { throw node.error("a pid controller needs gains: { kp, ki, kd }") }
            var k: [String: Double] = [:]
            for (key, value) in try gains.mapping(allowed: ["kp", "ki", "kd"], required: ["kp"]) { k[key] = try value.double(in: -1e6...1e6) }
            law = .pid(PID(kp: k["kp"]!, ki: k["ki"] ?? 0, kd: k["kd"] ?? 0, minimum: low, maximum: high))
        case "bang-bang":
            let h = try field("hysteresis").map { n throws(ConfigError) in try n.double(in: 0...1e6) } ?? 1
            law = .bangBang(BangBang(hysteresis: h, onOutput: high, offOutput: low))
        case "curve":
            guard let curveNode = field("curve") else { throw node.error("a curve controller needs curve: [[reading, output], ...]") }
            var points: [(Double, Double)] = []
            for entry in try curveNode.sequence() {
                let pair = try entry.sequence()
                guard pair.count == 2 else { throw entry.error("a curve point is [reading, output]") }
                points.append((try pair[0].double(in: -1e9...1e9), try pair[1].double(in: low...high)))
            }
            guard let curve = Curve(points: points) else {
                throw curveNode.error("a curve needs at least two points with different readings")
            }
            law = .curve(curve)
        default:
            throw field("law")!.error("unknown control law \"\(lawName)\"", hint: "use pid, bang-bang or curve")
        }
        for (key, value) in fields where (key == "gains" && lawName != "pid") || (key == "hysteresis" && lawName != "bang-bang") || (key == "curve" && lawName != "curve") {
            throw value.error("it does not apply to a \(lawName) controller", hint: "remove it, or change the law")
        }
        var setpoints = low...high
        if let node = field("setpoints") {
            var bounds = (low, high)
            for (key, value) in try node.mapping(allowed: ["min", "max"], required: ["min", "max"]) {
                if key == "min" { bounds.0 = try value.double(in: -1e9...1e9) } else { bounds.1 = try value.double(in: -1e9...1e9) }
            }
            guard bounds.0 <= bounds.1 else { throw node.error("setpoints min \(bounds.0) is above max \(bounds.1)") }
            setpoints = bounds.0...bounds.1
        }
        let initial = try field("setpoint").map { n throws(ConfigError) in try n.double(in: -1e9...1e9) }
        if let initial, !setpoints.contains(initial) {
            throw field("setpoint")!.error("setpoint \(initial) is outside the setpoints \(setpoints.lowerBound)...\(setpoints.upperBound)")
        }
        var envelope = SafetyEnvelope(controller: name, context: context, input: input, device: device, action: action, parameter: parameter,
                                      maximumOutput: high, setpoints: setpoints)
        envelope.unit = try field("unit")?.string() ?? ""
        try parseSafety(field("safety")!, into: &envelope, outputRange: low...high)
        return ControllerSpec(law: law, initialSetpoint: initial, outputRange: low...high, envelope: envelope, location: node.location)
    }

    static func parseSafety(_ node: ConfigNode, into envelope: inout SafetyEnvelope, outputRange: ClosedRange<Double>) throws(ConfigError) {
        for (key, value) in try node.mapping(allowed: ["max-output", "range", "stale-ms", "runaway"], required: ["max-output"]) {
            switch key {
            case "max-output": envelope.maximumOutput = try value.double(in: outputRange)
            case "range":
                let bounds = try value.sequence()
                guard bounds.count == 2 else { throw value.error("a range is [low, high]") }
                let (a, b) = (try bounds[0].double(in: -1e9...1e9), try bounds[1].double(in: -1e9...1e9))
                guard a < b else { throw value.error("range low \(a) is not below high \(b)") }
                envelope.range = a...b
            case "stale-ms": envelope.staleAfter = .milliseconds(try value.int(in: 1...3_600_000))
            default:
                var r = SafetyEnvelope.Runaway(outputAbove: 0, minimumRise: 0, window: .zero, hysteresis: 0)
                for (k, v) in try value.mapping(allowed: ["output-above", "min-rise", "within-s", "hysteresis"], required: ["output-above", "min-rise", "within-s"]) {
                    switch k {
                    case "output-above": r.outputAbove = try v.double(in: outputRange)
                    case "min-rise": r.minimumRise = try v.double(in: 0.001...1e6)
                    case "within-s": r.window = .milliseconds(Int64(try v.double(in: 0.01...86_400) * 1000))
                    default: r.hysteresis = try v.double(in: 0...1e6)
                    }
                }
                envelope.runaway = r
            }
        }
    }
}
