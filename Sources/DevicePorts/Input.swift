/// What an operator does at the panel, as the seat needs it: a touch (or a tablet's click) from
/// where it went down to where it came up, in fractions of the screen (0…1, so any mode maps),
/// or a key that moves the focus, presses the focused widget or cancels.
public enum InputGesture: Hashable, Sendable {
    case touch(from: Point, to: Point)
    case key(PanelKey)

    public struct Point: Hashable, Sendable {
        public var x: Double, y: Double
        public init(x: Double, y: Double) { (self.x, self.y) = (x, y) }
    }
}

public enum PanelKey: String, Hashable, Sendable {
    case next, previous, press, cancel
}

/// An input device as the graph shows it: its node, its name, and what the panel takes from it.
public struct InputDeviceInfo: Hashable, Sendable {
    public var path: String
    public var name: String
    /// `touch` (absolute X/Y with a touch or left button), `keys` (the keys the panel uses);
    /// empty: nothing the panel uses (it is listed, and ignored).
    public var capabilities: [String]
    /// Why part of it is not used (an empty axis range, say), for the graph.
    public var note: String?
    public init(path: String, name: String, capabilities: [String], note: String? = nil) {
        (self.path, self.name, self.capabilities, self.note) = (path, name, capabilities, note)
    }
}

/// A source of the operator's gestures: readable `descriptor` (it joins the loop's poll set),
/// and `read()` that never blocks. The real one is HostAdapter's EvdevInput.
public protocol InputPort: AnyObject {
    var info: InputDeviceInfo { get }
    var descriptor: Int32 { get }
    /// The gestures completed since the last read. Throws when the device is gone (unplugged:
    /// ``DeviceError/isDeviceGone``) or cannot be read.
    func read() throws(DeviceError) -> [InputGesture]
}

/// Turns the kernel's evdev records (struct input_event: a timeval, then u16 type, u16 code,
/// s32 value; 24 bytes on 64-bit Linux) into gestures. Pure, so every malformed stream can be
/// fed to it: a partial record waits for the rest; after SYN_DROPPED (the kernel's buffer
/// overran) everything up to the next SYN_REPORT is discarded and a touch in progress is
/// forgotten (never completed from half the data); coordinates are clamped to the axis range.
public struct EvdevDecoder: Sendable {
    public static let recordSize = 24
    /// The absolute axes' ranges (nil: the device reports no touch the panel can use).
    public struct Axes: Hashable, Sendable {
        public var x: ClosedRange<Int32>, y: ClosedRange<Int32>
        public init(x: ClosedRange<Int32>, y: ClosedRange<Int32>) { (self.x, self.y) = (x, y) }
    }
    let axes: Axes?
    private var partial: [UInt8] = []
    private var dropping = false
    // The touch: where it is, whether it is down now and was at the last report, where it went down.
    private var position: (x: Int32, y: Int32) = (0, 0)
    private var down = false
    private var wasDown = false
    private var downAt: InputGesture.Point?
    private var slot: Int32 = 0
    private var shift = false
    private var keys: [InputGesture] = []

    public init(axes: Axes?) { self.axes = axes }

    // Event types and codes (linux/input-event-codes.h).
    static let synReport: UInt16 = 0, synDropped: UInt16 = 3
    static let evSyn: UInt16 = 0, evKey: UInt16 = 1, evAbs: UInt16 = 3
    static let absX: UInt16 = 0x00, absY: UInt16 = 0x01, absMTSlot: UInt16 = 0x2f
    static let absMTX: UInt16 = 0x35, absMTY: UInt16 = 0x36, absMTTracking: UInt16 = 0x39
    static let btnTouch: UInt16 = 0x14a, btnLeft: UInt16 = 0x110
    static let navigation: [UInt16: PanelKey] = [
        15: .next, 108: .next, 106: .next,          // Tab, Down, Right
        103: .previous, 105: .previous,             // Up, Left
        28: .press, 96: .press, 57: .press,         // Enter, keypad Enter, Space
        1: .cancel,                                 // Esc
    ]
    static let shifts: Set<UInt16> = [42, 54]
    /// The keys a device must have for the panel to take keys from it.
    public static let panelKeys: [UInt16] = [15, 28, 108, 103]

    /// Feed what a read returned; the gestures completed by it come back.
    public mutating func feed(_ bytes: some Collection<UInt8>) -> [InputGesture] {
        partial.append(contentsOf: bytes)
        var gestures: [InputGesture] = []
        let whole = partial.count / Self.recordSize * Self.recordSize
        partial.withUnsafeBytes { b in
            var offset = 0
            while offset < whole {
                let type = b.loadUnaligned(fromByteOffset: offset + 16, as: UInt16.self)
                let code = b.loadUnaligned(fromByteOffset: offset + 18, as: UInt16.self)
                let value = b.loadUnaligned(fromByteOffset: offset + 20, as: Int32.self)
                event(type: type, code: code, value: value, into: &gestures)
                offset += Self.recordSize
            }
        }
        partial.removeFirst(whole)
        return gestures
    }

    private mutating func event(type: UInt16, code: UInt16, value: Int32, into gestures: inout [InputGesture]) {
        if type == Self.evSyn && code == Self.synDropped {
            dropping = true
            keys = []
            return
        }
        if dropping {
            guard type == Self.evSyn && code == Self.synReport else { return }
            // Resynchronised: a touch half seen is not completed; the next report starts afresh.
            dropping = false
            down = false
            wasDown = false
            downAt = nil
            return
        }
        switch type {
        case Self.evSyn where code == Self.synReport:
            gestures += keys
            keys = []
            guard let point = point() else { return }
            if down && !wasDown { downAt = point }
            if !down && wasDown, let from = downAt {
                gestures.append(.touch(from: from, to: point))
                downAt = nil
            }
            wasDown = down
        case Self.evKey where code == Self.btnTouch || code == Self.btnLeft:
            if axes != nil { down = value != 0 }
        case Self.evKey where Self.shifts.contains(code):
            shift = value != 0
        case Self.evKey:
            // A press (1) or its autorepeat (2) moves the focus; only a press presses or cancels.
            guard value == 1 || value == 2, var key = Self.navigation[code] else { return }
            if value == 2 && (key == .press || key == .cancel) { return }
            if code == 15 && shift { key = .previous }
            keys.append(.key(key))
        case Self.evAbs where code == Self.absX || (code == Self.absMTX && slot == 0):
            position.x = value
        case Self.evAbs where code == Self.absY || (code == Self.absMTY && slot == 0):
            position.y = value
        case Self.evAbs where code == Self.absMTSlot:
            slot = value
        case Self.evAbs where code == Self.absMTTracking && slot == 0:
            if axes != nil { down = value >= 0 }
        default:
            break
        }
    }

    private func point() -> InputGesture.Point? {
        guard let axes else { return nil }
        func fraction(_ v: Int32, _ r: ClosedRange<Int32>) -> Double {
            (Double(min(max(v, r.lowerBound), r.upperBound)) - Double(r.lowerBound)) / (Double(r.upperBound) - Double(r.lowerBound))
        }
        return InputGesture.Point(x: fraction(position.x, axes.x), y: fraction(position.y, axes.y))
    }

    /// The ranges a device reported, or why they cannot be used.
    public static func axes(x: (Int32, Int32), y: (Int32, Int32)) -> (axes: Axes?, problem: String?) {
        guard x.0 < x.1, y.0 < y.1 else {
            return (nil, "its axis range is empty (X \(x.0)…\(x.1), Y \(y.0)…\(y.1)): touches are ignored")
        }
        return (Axes(x: x.0...x.1, y: y.0...y.1), nil)
    }
}
