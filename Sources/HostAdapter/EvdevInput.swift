import CShim
import DevicePorts
import Glibc
import SystemCalls

/// An evdev input device (/dev/input/eventN) the panel takes gestures from: a touchscreen or
/// tablet (absolute X/Y with BTN_TOUCH or BTN_LEFT) and keys (Tab, arrows, Enter, Space, Esc).
/// Opened non-blocking; what it can do is asked of the kernel (EVIOCGNAME, EVIOCGBIT,
/// EVIOCGABS), and its records are decoded by ``EvdevDecoder``. Not grabbed: the console and
/// other readers still see it.
public final class EvdevInput: InputPort {
    public let info: InputDeviceInfo
    public let descriptor: Int32
    private var decoder: EvdevDecoder
    private var buffer = [UInt8](repeating: 0, count: 64 * EvdevDecoder.recordSize)

    /// The event devices under `directory`, in the kernel's order (event2 before event10).
    public static func devices(in directory: String = "/dev/input") -> [String] {
        let numbers = directoryNames(directory).compactMap { $0.hasPrefix("event") ? Int($0.dropFirst(5)) : nil }
        return numbers.sorted().map { "\(directory)/event\($0)" }
    }

    /// Made by a program (uinput), not attached to the machine: its sysfs device is virtual.
    public static func isVirtual(_ path: String) -> Bool {
        var st = stat()
        guard stat(path, &st) == 0 else { return false }
        let link = "/sys/dev/char/\(worldos_device_major(UInt64(st.st_rdev))):\(worldos_device_minor(UInt64(st.st_rdev)))"
        guard let resolved = realpath(link, nil) else { return false }
        defer { free(resolved) }
        return String(cString: resolved).contains("/devices/virtual/")
    }

    /// `allowVirtual`: take a device a program made through uinput (only when named): otherwise
    /// refused, since any program that may open /dev/uinput could tap the panel for the operator.
    public init(path: String, allowVirtual: Bool = false) throws(DeviceError) {
        guard allowVirtual || !Self.isVirtual(path) else {
            throw DeviceError(device: path, message: "is a virtual input device (made by a program through uinput), not one attached to this machine",
                              hint: "name it with --panel-input to take it anyway")
        }
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw DeviceError(device: path, errno: errno, action: "open the input device") }
        descriptor = fd
        var name = [CChar](repeating: 0, count: 256)
        let named = worldos_evdev_name(fd, &name, name.count) >= 0
        func has(_ type: UInt32, _ code: UInt16) -> Bool {
            var bits = [UInt8](repeating: 0, count: 96)
            guard worldos_evdev_bits(fd, type, &bits, bits.count) >= 0 else { return false }
            return Int(code) / 8 < bits.count && bits[Int(code) / 8] & (1 << (code % 8)) != 0
        }
        var capabilities: [String] = []
        var axes: EvdevDecoder.Axes?
        var note: String?
        let absolute = has(3, 0x00) && has(3, 0x01) ? (0x00, 0x01) as (UInt32, UInt32)
            : has(3, 0x35) && has(3, 0x36) ? (0x35, 0x36) : nil
        if let (ax, ay) = absolute, has(1, 0x14a) || has(1, 0x110) {
            var (x0, x1, y0, y1): (Int32, Int32, Int32, Int32) = (0, 0, 0, 0)
            if worldos_evdev_abs_range(fd, ax, &x0, &x1) >= 0, worldos_evdev_abs_range(fd, ay, &y0, &y1) >= 0 {
                let found = EvdevDecoder.axes(x: (x0, x1), y: (y0, y1))
                axes = found.axes
                note = found.problem
                if axes != nil { capabilities.append("touch") }
            } else {
                note = "its axis ranges cannot be read (\(String(cString: strerror(errno)))): touches are ignored"
            }
        }
        if EvdevDecoder.panelKeys.allSatisfy({ has(1, $0) }) { capabilities.append("keys") }
        info = InputDeviceInfo(path: path, name: named ? String(cString: name) : "?", capabilities: capabilities, note: note)
        decoder = EvdevDecoder(axes: axes)
    }

    deinit { close(descriptor) }

    public func read() throws(DeviceError) -> [InputGesture] {
        var gestures: [InputGesture] = []
        while true {
            let result = buffer.withUnsafeMutableBytes { b in Syscall.retrying { Glibc.read(descriptor, b.baseAddress, b.count) } }
            switch result {
            case .success(let n) where n > 0: gestures += decoder.feed(buffer.prefix(n))
            case .success: throw DeviceError(device: info.path, message: "the input device was removed", hint: "it is listed again when it comes back")
            case .failure(let e) where e.wouldBlock: return gestures
            case .failure(let e): throw DeviceError(device: info.path, errno: e.code, action: "read input events")
            }
        }
    }
}
