import Foundation
import LoopCore
import StateGraph

/// What the guard holds a controlled actuator to, declared beside its controller in the bench
/// (`safety:`). The guard enforces it, not the controller: a controller that computes nonsense,
/// or a person acting on the actuator directly, meets the same limits.
public struct SafetyEnvelope: Sendable, Equatable {
    /// The runaway check, in the manner of Klipper's verify_heater: while the output is at
    /// least `outputAbove` and the reading is more than `hysteresis` short of the setpoint, the
    /// reading must gain `minimumRise` toward it within every `window`.
    public struct Runaway: Sendable, Equatable {
        public var outputAbove: Double
        public var minimumRise: Double
        public var window: Duration
        public var hysteresis: Double
        public init(outputAbove: Double, minimumRise: Double, window: Duration, hysteresis: Double) {
            (self.outputAbove, self.minimumRise, self.window, self.hysteresis) = (outputAbove, minimumRise, window, hysteresis)
        }
    }

    /// The controller's name; its actions are `NAME.setpoint` on device `controller:NAME`.
    public var controller: String
    /// The context it runs as: the only one whose writes of the output its setpoint covers.
    public var context: String
    /// The reading it follows: `PROFILE/READING` or `PROFILE:SERIAL/READING`.
    public var input: String
    public var unit: String = ""
    /// The actuator: a profile action on a device and the parameter that carries the output.
    public var device: String
    public var action: String
    public var parameter: String
    /// No write of the output above this, from any context.
    public var maximumOutput: Double
    /// A reading outside this trips (over-temperature, a broken sensor).
    public var range: ClosedRange<Double>?
    /// The reading must have been seen within this while the controller runs.
    public var staleAfter: Duration?
    public var runaway: Runaway?
    /// How long one write may keep the output on without another (the profile's `max-on-ms`):
    /// a controller that stops renewing it trips.
    public var maximumOn: Duration?
    /// Setpoints a person may ask for, and what a change costs: raising carries `raiseRisk`
    /// (irreversible-physical: an approval), lowering `lowerRisk`.
    public var setpoints: ClosedRange<Double>
    public var raiseRisk: String = "irreversible-physical"
    public var lowerRisk: String = "reversible"

    public init(controller: String, context: String, input: String, device: String, action: String, parameter: String,
                maximumOutput: Double, setpoints: ClosedRange<Double>) {
        (self.controller, self.context, self.input, self.device, self.action, self.parameter) = (controller, context, input, device, action, parameter)
        (self.maximumOutput, self.setpoints) = (maximumOutput, setpoints)
    }

    /// The device string a controller's own actions name.
    public var deviceName: String { "controller:\(controller)" }
    public var setpointAction: String { "\(controller).setpoint" }

    /// The input's sensor node in `graph`: the one sensor of an instrument of that profile (and
    /// serial, when given) with that reading's name; nil when there is none or more than one.
    public func inputNode(in graph: Graph) -> Node? { Self.sensor(input, in: graph) }

    /// The sensor node `input` (`PROFILE/READING` or `PROFILE:SERIAL/READING`) names in `graph`.
    public static func sensor(_ input: String, in graph: Graph) -> Node? {
        guard let slash = input.lastIndex(of: "/") else { return nil }
        let (device, reading) = (String(input[..<slash]), String(input[input.index(after: slash)...]))
        let prefix = "sensor:" + (device.contains(":") ? device.replacingOccurrences(of: ":", with: "/") + "/" : device + "/")
        let found = graph.nodes(ofKind: .sensor).filter {
            let id = $0.id.rawValue
            return id.hasPrefix(prefix) && id.hasSuffix("/" + reading) && (device.contains(":") || id.dropFirst(prefix.count).split(separator: "/").count == 2)
        }
        return found.count == 1 ? found[0] : nil
    }

    /// The input's value in `graph`, if it is there and a number.
    public func reading(in graph: Graph) -> Double? { inputNode(in: graph)?["value"]?.doubleValue }
}

/// The controllers' shared record: their envelopes, the setpoint in force for each (set only by
/// a performed `NAME.setpoint` action, which the guard decided), the last output the guard let
/// through, and what the safety checks have seen. The guard, the controllers and the host share
/// one; all on the loop's thread, locked anyway for the service's readers.
public final class ControlBoard: @unchecked Sendable {
    public struct Setpoint: Sendable, Equatable {
        public var value: Double
        /// Who it rests on: the approval and its people, or the rule that allowed a lowering.
        public var grant: String
    }

    struct State {
        var setpoint: Setpoint?
        var output: Double?
        var writtenAt: Instant?
        var seenAt: Instant?
        /// The runaway check's goal: the reading to reach, and by when.
        var goal: (reading: Double, by: Instant)?
    }

    public let envelopes: [SafetyEnvelope]
    private var states: [String: State] = [:]
    private let lock = NSLock()

    public init(_ envelopes: [SafetyEnvelope] = []) {
        self.envelopes = envelopes
    }

    public func envelope(controller: String) -> SafetyEnvelope? { envelopes.first { $0.controller == controller } }
    /// The envelope whose controller a device string (`controller:NAME`) names.
    public func envelope(device: String) -> SafetyEnvelope? { envelopes.first { $0.deviceName == device } }
    /// The envelopes of actuators on a device (as a step names it: by profile or identity).
    func envelopes(device: String, identity: (String) -> String?) -> [SafetyEnvelope] {
        envelopes.filter { $0.device == device || identity($0.device).map { $0 == identity(device) } == true }
    }

    public func setpoint(of controller: String) -> Setpoint? { locked { states[controller]?.setpoint } }

    /// A setpoint action was performed: the controller follows `value` from its next step.
    public func apply(controller: String, value: Double, grant: String) {
        locked {
            states[controller, default: State()].setpoint = Setpoint(value: value, grant: grant)
            states[controller]?.goal = nil
        }
    }

    /// Every setpoint withdrawn (a fault latched): after the acknowledgement, a controller
    /// waits for a setpoint a person approves again.
    public func revokeAll() { locked { for key in states.keys { states[key]?.setpoint = nil; states[key]?.goal = nil; states[key]?.output = nil } } }

    /// The risk of a setpoint action: raising above the setpoint in force (none: from nothing)
    /// costs the envelope's `raiseRisk`, anything else its `lowerRisk`. Nil: not a controller's.
    public func risk(of call: ResolvedCall) -> String? {
        guard call.op == .act, let device = call.string(.device), let envelope = envelope(device: device),
              call.string(.action) == envelope.setpointAction else { return nil }
        guard let value = call.actionParameters.pairs["value"].flatMap(Double.init) else { return envelope.raiseRisk }
        let current = setpoint(of: envelope.controller)?.value
        return current.map { value > $0 } ?? true ? envelope.raiseRisk : envelope.lowerRisk
    }

    /// Why a setpoint action may not run, whatever its approval: no value, or one outside the
    /// envelope's setpoints.
    func refusal(of call: ResolvedCall, envelope: SafetyEnvelope) -> String? {
        let pairs = call.actionParameters.pairs
        guard pairs.keys.sorted() == ["value"], let value = pairs["value"].flatMap(Double.init), value.isFinite else {
            return "\(envelope.setpointAction) takes one parameter, value=NUMBER"
        }
        guard envelope.setpoints.contains(value) else {
            return "\(envelope.setpointAction) value=\(value) is outside \(envelope.setpoints.lowerBound)...\(envelope.setpoints.upperBound), the setpoints its bench allows"
        }
        return nil
    }

    /// A write of an output the guard let through and the host performed.
    public func noteOutput(controller: String, value: Double, at now: Instant) {
        locked {
            states[controller, default: State()].output = value
            states[controller]?.writtenAt = now
        }
    }

    /// The first safety check `graph` violates at `now`, as `check: what happened`: the
    /// reading out of range; while a setpoint is in force, the reading stale, the output left on
    /// longer than one write may keep it, or the reading not gaining on the setpoint.
    public func violation(in graph: Graph, observedAt: Instant?, now: Instant) -> (envelope: SafetyEnvelope, check: String, detail: String)? {
        lock.lock()
        defer { lock.unlock() }
        for envelope in envelopes {
            var state = states[envelope.controller] ?? State()
            defer { states[envelope.controller] = state }
            let reading = envelope.reading(in: graph)
            if reading != nil, let observedAt { state.seenAt = observedAt }
            let unit = envelope.unit.isEmpty ? "" : " " + envelope.unit
            if let reading, let range = envelope.range, !range.contains(reading) {
                return (envelope, "range", "\(envelope.input) reads \(format(reading))\(unit), outside \(format(range.lowerBound))...\(format(range.upperBound))\(unit)")
            }
            guard let setpoint = state.setpoint else { state.goal = nil; continue }
            if let stale = envelope.staleAfter {
                let since = state.seenAt ?? state.writtenAt
                if let since, now.duration(since: since) > stale {
                    return (envelope, "stale", "\(envelope.input) has not been read for \(seconds(now.duration(since: since))) (the envelope allows \(seconds(stale)))")
                }
            }
            if let maximumOn = envelope.maximumOn, let output = state.output, output > 0, let at = state.writtenAt, now.duration(since: at) > maximumOn {
                return (envelope, "max-on-time", "\(envelope.action) \(envelope.parameter)=\(format(output)) has stood for \(seconds(now.duration(since: at))) without a new write (one may keep it on \(seconds(maximumOn)))")
            }
            guard let runaway = envelope.runaway, let reading else { continue }
            let heating = (state.output ?? 0) >= runaway.outputAbove && reading < setpoint.value - runaway.hysteresis
            guard heating else { state.goal = nil; continue }
            guard let goal = state.goal, reading < goal.reading else {
                state.goal = (reading + runaway.minimumRise, now + runaway.window)
                continue
            }
            if now > goal.by {
                return (envelope, "runaway", "\(envelope.input) did not gain \(format(runaway.minimumRise))\(unit) within \(seconds(runaway.window)) while \(envelope.parameter) was \(format(state.output ?? 0)) (it reads \(format(reading))\(unit), the setpoint is \(format(setpoint.value))\(unit))")
            }
        }
        return nil
    }

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }
}

private func format(_ v: Double) -> String { v.rounded() == v && abs(v) < 1e15 ? String(Int64(v)) : String(format: "%.2f", v) }
private func seconds(_ d: Duration) -> String {
    let s = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    return String(format: "%.1f s", s)
}
