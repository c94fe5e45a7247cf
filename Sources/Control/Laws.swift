/// A control law: from a reading, its setpoint and the time since the last step, the output to
/// write. Pure state and arithmetic; the guard, not the law, keeps the actuator safe.
public enum ControlLaw: Sendable, Equatable {
    case pid(PID)
    case bangBang(BangBang)
    case curve(Curve)

    /// The output for `reading` at `setpoint`, `dt` seconds after the last step (nil: the first).
    public mutating func output(reading: Double, setpoint: Double, dt: Double?) -> Double {
        switch self {
        case .pid(var law): defer { self = .pid(law) }; return law.output(reading: reading, setpoint: setpoint, dt: dt)
        case .bangBang(var law): defer { self = .bangBang(law) }; return law.output(reading: reading, setpoint: setpoint)
        case .curve(let law): return law.output(reading: reading)
        }
    }

    /// Forget what the law accumulated (the integral, the last error, the bang-bang's side):
    /// after its output was held back, a new setpoint, a fault acknowledged.
    public mutating func reset() {
        switch self {
        case .pid(var law): law.reset(); self = .pid(law)
        case .bangBang(var law): law.on = false; self = .bangBang(law)
        case .curve: break
        }
    }

    public var kind: String {
        switch self {
        case .pid: "pid"
        case .bangBang: "bang-bang"
        case .curve: "curve"
        }
    }
}

/// A PID controller with output limits and anti-windup: the integral stops growing in the
/// direction that would push a saturated output further (conditional integration), and is
/// itself clamped so the integral term alone never exceeds the output range. The derivative
/// acts on the reading, not the error, so a setpoint step does not kick the output.
public struct PID: Sendable, Equatable {
    public var kp: Double, ki: Double, kd: Double
    public var minimum: Double, maximum: Double
    public private(set) var integral = 0.0
    private var lastReading: Double?

    public init(kp: Double, ki: Double, kd: Double, minimum: Double, maximum: Double) {
        (self.kp, self.ki, self.kd, self.minimum, self.maximum) = (kp, ki, kd, minimum, maximum)
    }

    public mutating func reset() {
        integral = 0
        lastReading = nil
    }

    public mutating func output(reading: Double, setpoint: Double, dt: Double?) -> Double {
        let error = setpoint - reading
        var derivative = 0.0
        if let dt, dt > 0, let last = lastReading { derivative = -(reading - last) / dt }
        lastReading = reading
        let unsaturated = kp * error + ki * integral + kd * derivative
        if let dt, dt > 0, ki != 0 {
            // Integrate only while it does not deepen a saturation.
            let pushingUp = error > 0, pushingDown = error < 0
            if !(unsaturated >= maximum && pushingUp) && !(unsaturated <= minimum && pushingDown) {
                integral += error * dt
                let bound = (maximum - minimum) / abs(ki)
                integral = min(max(integral, -bound), bound)
            }
        }
        return min(max(kp * error + ki * integral + kd * derivative, minimum), maximum)
    }
}

/// On below `setpoint - hysteresis`, off above `setpoint + hysteresis`, unchanged between.
public struct BangBang: Sendable, Equatable {
    public var hysteresis: Double
    public var onOutput: Double, offOutput: Double
    public var on = false

    public init(hysteresis: Double, onOutput: Double, offOutput: Double) {
        (self.hysteresis, self.onOutput, self.offOutput) = (hysteresis, onOutput, offOutput)
    }

    public mutating func output(reading: Double, setpoint: Double) -> Double {
        if reading < setpoint - hysteresis { on = true } else if reading > setpoint + hysteresis { on = false }
        return on ? onOutput : offOutput
    }
}

/// An output read off a curve of (reading, output) points, straight between them and flat
/// beyond the ends: a fan on a temperature curve. The setpoint does not enter.
public struct Curve: Sendable, Equatable {
    /// Sorted by reading, at least two.
    private var readings: [Double], outputs: [Double]

    public init?(points: [(reading: Double, output: Double)]) {
        let sorted = points.sorted { $0.reading < $1.reading }
        guard sorted.count >= 2, zip(sorted, sorted.dropFirst()).allSatisfy({ $0.reading < $1.reading }) else { return nil }
        readings = sorted.map(\.reading)
        outputs = sorted.map(\.output)
    }

    public func output(reading: Double) -> Double {
        if reading <= readings[0] { return outputs[0] }
        for i in 1..<readings.count where reading <= readings[i] {
            let t = (reading - readings[i - 1]) / (readings[i] - readings[i - 1])
            return outputs[i - 1] + t * (outputs[i] - outputs[i - 1])
        }
        return outputs[outputs.count - 1]
    }
}
