import Glibc
import DevicePorts
import LoopCore

/// A USB bus in memory: devices can be plugged and unplugged, interfaces can have a kernel
/// driver bound, and every claim and transfer is logged. The sibling of USBContext for fast
/// unit tests; USBContext itself is tested on real drivers in the rig.
public final class FakeUSBBus: USBBus {
    public var attached: [USBDevice]
    /// `busPath#interface` with a kernel driver bound.
    public var kernelDrivers: Set<String> = []
    public private(set) var log: [String] = []
    /// What an IN transfer returns, by bus path and endpoint.
    public var answers: [String: [UInt8]] = [:]

    public init(_ devices: [USBDevice]) { attached = devices }

    public func devices() throws(USBError) -> [USBDevice] { attached }

    public func open(busPath: String) throws(USBError) -> any USBDeviceAccess {
        guard attached.contains(where: { $0.busPath == busPath }) else {
            throw USBError(code: -4, device: busPath, action: "find the device")
        }
        log.append("open \(busPath)")
        return Handle(bus: self, busPath: busPath)
    }

    public func unplug(_ busPath: String) { attached.removeAll { $0.busPath == busPath } }

    final class Handle: USBDeviceAccess {
        let bus: FakeUSBBus
        let busPath: String
        init(bus: FakeUSBBus, busPath: String) { self.bus = bus; self.busPath = busPath }

        private func present() throws(USBError) {
            guard bus.attached.contains(where: { $0.busPath == busPath }) else { throw USBError(code: -4, device: busPath, action: "use the device") }
        }
        func claim(interface: Int, detachKernelDriver: Bool) throws(USBError) {
            try present()
            if bus.kernelDrivers.contains("\(busPath)#\(interface)") {
                guard detachKernelDriver else { throw USBError(code: -6, device: busPath, action: "claim interface \(interface)") }
                bus.kernelDrivers.remove("\(busPath)#\(interface)")
                bus.log.append("detach \(busPath)#\(interface)")
            }
            bus.log.append("claim \(busPath)#\(interface)")
        }
        func release(interface: Int) throws(USBError) { bus.log.append("release \(busPath)#\(interface)") }
        func transfer(endpoint: UInt8, kind: USBDevice.Endpoint.Kind, data: [UInt8], length: Int, timeoutMilliseconds: UInt32) throws(USBError) -> [UInt8] {
            try present()
            bus.log.append("\(kind.rawValue) \(busPath) 0x\(String(endpoint, radix: 16)) \(endpoint & 0x80 != 0 ? "in \(length)" : "out \(data.count)")")
            return endpoint & 0x80 != 0 ? Array((bus.answers["\(busPath)/\(endpoint)"] ?? []).prefix(length)) : []
        }
        func control(requestType: UInt8, request: UInt8, value: UInt16, index: UInt16, data: [UInt8], length: Int,
                     timeoutMilliseconds: UInt32) throws(USBError) -> [UInt8] {
            try present()
            bus.log.append("control \(busPath) \(request)")
            return requestType & 0x80 != 0 ? [UInt8](repeating: 0, count: length) : []
        }
    }
}

/// GPIO chips in memory: lines with levels, held or not; an output line goes to its safe value
/// when released. The sibling of LinuxGPIO for fast unit tests.
public final class FakeGPIOBank: GPIOBank {
    public var chip: GPIO.Chip
    public var levels: [Int: Int32] = [:]
    public private(set) var held: Set<Int> = []
    public private(set) var log: [String] = []

    public init(label: String, lines: [String]) {
        chip = GPIO.Chip(name: "gpiochip9", label: label, path: "/dev/gpiochip9",
                         lines: lines.enumerated().map { GPIO.Line(offset: $0.offset, name: $0.element) })
    }

    public func chips() -> [GPIO.Chip] {
        var c = chip
        for i in c.lines.indices { c.lines[i].used = held.contains(i) }
        return [c]
    }

    public func request(chip path: String, offset: Int, kind: GPIO.RequestKind) throws(DeviceError) -> any GPIOLineAccess {
        guard path == chip.path, chip.lines.indices.contains(offset) else { throw DeviceError(device: path, errno: ENOENT, action: "get the line") }
        guard !held.contains(offset) else { throw DeviceError(device: path, errno: EBUSY, action: "request the line") }
        held.insert(offset)
        if case .output(let initial, _) = kind { levels[offset] = initial }
        log.append("request \(offset)")
        return Line(bank: self, offset: offset, kind: kind)
    }

    final class Line: GPIOLineAccess {
        let bank: FakeGPIOBank
        let offset: Int
        let kind: GPIO.RequestKind
        init(bank: FakeGPIOBank, offset: Int, kind: GPIO.RequestKind) { self.bank = bank; self.offset = offset; self.kind = kind }
        deinit {
            if case .output(_, let safe) = kind { bank.levels[offset] = safe }
            bank.held.remove(offset)
            bank.log.append("release \(offset)")
        }
        func set(_ value: Int32) throws(DeviceError) { bank.levels[offset] = value }
        func get() throws(DeviceError) -> Int32 { bank.levels[offset] ?? 0 }
        var descriptor: Int32 { -1 }
        func readEdges() throws(DeviceError) -> [GPIO.Edge] { [] }
    }
}

/// A screen in memory: what was presented, flips that complete when told to, and a failure on
/// demand. The sibling of DRMDisplay for fast unit tests; DRMDisplay itself is tested on the
/// real bochs-drm driver in the rig.
public final class FakeDisplay: DisplayPort {
    public var state: DisplayState
    public let descriptor: Int32 = -1
    /// Every frame that reached the screen (not superseded while a flip was pending), in order.
    public private(set) var shown: [[UInt32]] = []
    /// The two buffers as the fake drew them: only what each lacked was copied into it.
    public private(set) var buffers: [[UInt32]]
    public private(set) var restored = false
    /// The next present fails with this.
    public var failNext: DeviceError?
    /// Unplugged: the next present says so.
    public var connected = true
    private var waiting: [UInt32]?
    private var stale = StaleRegions()
    private var front: Int?

    public init(width: Int = 320, height: Int = 200) {
        state = DisplayState(device: "/dev/dri/fake", driver: "fake", connector: "Virtual-1", crtc: 31,
                             mode: DisplayMode(width: width, height: height, refresh: 60, name: "\(width)x\(height)"))
        buffers = [[UInt32](repeating: 0, count: width * height), [UInt32](repeating: 0, count: width * height)]
    }

    /// What is on the screen now.
    public var screen: [UInt32]? { front.map { buffers[$0] } }

    public func present(pixels: [UInt32], width: Int, height: Int, damage: [PixelRect]?) throws(DeviceError) {
        if let failure = failNext { failNext = nil; throw failure }
        guard connected else { throw DeviceError(device: state.device, message: "\(state.connector) is disconnected", hint: "the panel goes on as the PNG") }
        state.presented += 1
        stale.add(damage)
        if state.flipPending {
            if waiting != nil { state.superseded += 1 }
            waiting = pixels
            return
        }
        show(pixels)
    }

    /// As DRMDisplay: into the buffer not on screen; the first frame sets the CRTC (on screen at
    /// once), every later one waits for its flip.
    private func show(_ pixels: [UInt32]) {
        let target = front.map { 1 - $0 } ?? 0
        let width = state.mode.width
        let regions = stale.take(target) ?? [PixelRect(x: 0, y: 0, width: width, height: state.mode.height)]
        state.copied = 0
        for r in regions {
            for y in r.y..<r.maxY { for x in r.x..<r.maxX { buffers[target][y * width + x] = pixels[y * width + x] } }
            state.copied += r.area
        }
        shown.append(pixels)
        if front == nil {
            front = target
            state.framebuffer = 40 + UInt32(target)
        } else {
            state.flipPending = true
        }
    }

    /// The vertical blank: the pending flip completes (``service()`` then takes it).
    public func vblank() { completed = state.flipPending }
    private var completed = false

    public func service() throws(DeviceError) {
        guard completed else { return }
        completed = false
        state.flipPending = false
        state.flips += 1
        front = front.map { 1 - $0 }
        state.framebuffer = 40 + UInt32(front ?? 0)
        if let next = waiting {
            waiting = nil
            show(next)
        }
    }

    public func restore() { restored = true }
}

/// An input device in memory: the gestures a test queues, read once; unplugged on demand. The
/// sibling of EvdevInput (whose decoder is tested on raw records, and which the rig drives with
/// QEMU's virtio tablet).
public final class FakeInput: InputPort {
    public let info: InputDeviceInfo
    public let descriptor: Int32 = -1
    public var queued: [InputGesture] = []
    public var unplugged = false

    public init(path: String = "/dev/input/event7", name: String = "Fake Touch", capabilities: [String] = ["touch", "keys"]) {
        info = InputDeviceInfo(path: path, name: name, capabilities: capabilities)
    }

    public func read() throws(DeviceError) -> [InputGesture] {
        if unplugged { throw DeviceError(device: info.path, errno: ENODEV, action: "read input events") }
        defer { queued = [] }
        return queued
    }
}
