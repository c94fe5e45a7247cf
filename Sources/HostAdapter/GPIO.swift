import CGPIOD
import DevicePorts
import Glibc
import SystemCalls

/// GPIO through libgpiod 1.6 (the v1 API Debian 12 ships): chips and their lines, and line
/// requests that hold a line until released.
extension GPIO {
    /// Every GPIO chip under /dev, with its lines. A chip that cannot be opened is left out.
    public static func chips(in directory: String = "/dev") -> [Chip] {
        let paths = directoryNames(directory).filter { $0.hasPrefix("gpiochip") }.map { "\(directory)/\($0)" }
        return paths.sorted { $0.count != $1.count ? $0.count < $1.count : $0 < $1 }.compactMap { try? chip(at: $0) }
    }

    public static func chip(at path: String) throws(DeviceError) -> Chip {
        guard let chip = gpiod_chip_open(path) else { throw DeviceError(device: path, errno: errno, action: "open the GPIO chip") }
        defer { gpiod_chip_close(chip) }
        var lines: [Line] = []
        for offset in 0..<gpiod_chip_num_lines(chip) {
            guard let line = gpiod_chip_get_line(chip, offset) else { continue }
            lines.append(Line(offset: Int(offset), name: gpiod_line_name(line).map { String(cString: $0) },
                              consumer: gpiod_line_consumer(line).map { String(cString: $0) },
                              direction: gpiod_line_direction(line) == Int32(GPIOD_LINE_DIRECTION_OUTPUT) ? .output : .input,
                              activeLow: gpiod_line_active_state(line) == Int32(GPIOD_LINE_ACTIVE_STATE_LOW),
                              bias: bias(gpiod_line_bias(line)), used: gpiod_line_is_used(line)))
        }
        return Chip(name: String(cString: gpiod_chip_name(chip)), label: String(cString: gpiod_chip_label(chip)), path: path, lines: lines)
    }

    static func bias(_ raw: Int32) -> Bias {
        switch raw {
        case Int32(GPIOD_LINE_BIAS_PULL_UP): .pullUp
        case Int32(GPIOD_LINE_BIAS_PULL_DOWN): .pullDown
        case Int32(GPIOD_LINE_BIAS_DISABLE): .disabled
        default: .asIs
        }
    }
}

/// One requested GPIO line (gpiod_line_request_* / gpiod_line_release). An output line is set
/// to its declared safe value before it is released, so dropping the request never leaves an
/// actuator energised.
public final class GPIOLineRequest {
    public let chipPath: String
    public let offset: Int
    public let kind: GPIO.RequestKind
    private let chip: OpaquePointer
    private let line: OpaquePointer

    public init(chip path: String, offset: Int, kind: GPIO.RequestKind, consumer: String = "worldos") throws(DeviceError) {
        chipPath = path
        self.offset = offset
        self.kind = kind
        guard let chip = gpiod_chip_open(path) else { throw DeviceError(device: path, errno: errno, action: "open the GPIO chip") }
        guard let line = gpiod_chip_get_line(chip, UInt32(offset)) else {
            let e = errno
            gpiod_chip_close(chip)
            throw DeviceError(device: "\(path) line \(offset)", errno: e, action: "get the line")
        }
        let result: Int32 = switch kind {
        case .input: gpiod_line_request_input(line, consumer)
        case .output(let initial, _): gpiod_line_request_output(line, consumer, initial)
        case .edges: gpiod_line_request_both_edges_events(line, consumer)
        }
        guard result == 0 else {
            let e = errno
            gpiod_chip_close(chip)
            throw DeviceError(device: "\(path) line \(offset)", errno: e, action: "request the line (is another consumer holding it?)")
        }
        self.chip = chip
        self.line = line
    }

    deinit {
        try? returnToSafe()
        gpiod_line_release(line)
        gpiod_chip_close(chip)
    }

    /// Drive an output line to its declared safe value (a no-op for inputs). Release does this
    /// first; the supervisor also calls it when it stops, faults or loses the device.
    public func returnToSafe() throws(DeviceError) {
        if case .output(_, let safe) = kind { try set(safe) }
    }

    public func set(_ value: Int32) throws(DeviceError) {
        guard gpiod_line_set_value(line, value) == 0 else {
            throw DeviceError(device: "\(chipPath) line \(offset)", errno: errno, action: "set the line")
        }
    }

    /// For an edge request: the descriptor that becomes readable when edges are waiting (the
    /// loop polls it; nothing reads on a hidden thread). -1 for other requests.
    public var descriptor: Int32 {
        if case .edges = kind { return gpiod_line_event_get_fd(line) }
        return -1
    }

    /// The edges waiting now, without blocking.
    public func readEdges() throws(DeviceError) -> [GPIO.Edge] {
        var edges: [GPIO.Edge] = []
        let fd = descriptor
        guard fd >= 0 else { return [] }
        while true {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 0) == 1 else { return edges }
            var event = gpiod_line_event()
            guard gpiod_line_event_read(line, &event) == 0 else {
                throw DeviceError(device: "\(chipPath) line \(offset)", errno: errno, action: "read an edge event")
            }
            edges.append(GPIO.Edge(rising: event.event_type == Int32(GPIOD_LINE_EVENT_RISING_EDGE),
                              nanoseconds: UInt64(event.ts.tv_sec) * 1_000_000_000 + UInt64(event.ts.tv_nsec)))
        }
    }

    public func get() throws(DeviceError) -> Int32 {
        let v = gpiod_line_get_value(line)
        guard v >= 0 else { throw DeviceError(device: "\(chipPath) line \(offset)", errno: errno, action: "read the line") }
        return v
    }
}
