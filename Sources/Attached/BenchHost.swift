import Config
import DevicePorts
import Devices
import Glibc
import Guard
import HostAdapter
import LoopCore
import SystemCalls

/// The host a bench acts on: device steps go to the devices it holds — named actions (`act`)
/// to instruments and GPIO devices, filled from their profiles' templates; `gpio-set`/`gpio-get`
/// to held GPIO lines; `usb-transfer`/`usb-control` to opened USB devices, whose kernel driver is
/// detached only when a profile allows it. Every other micro-step is a Linux syscall.
public final class BenchHost: Effecting {
    public private(set) var linux = LinuxHost()
    public let instruments: [AttachedInstrument]
    public let gpioDevices: [AttachedGPIODevice]
    private let usb: (any USBBus)?
    private let gpio: any GPIOBank
    private let catalog: DeviceCatalog?
    private var usbHandles: [String: any USBDeviceAccess] = [:]
    private var gpioLines: [String: any GPIOLineAccess] = [:]
    /// The controllers, whose setpoint actions are theirs (``ControlBoard``).
    private let controls: ControlBoard?

    public init(instruments: [AttachedInstrument], gpioDevices: [AttachedGPIODevice] = [], usb: (any USBBus)? = nil,
                gpio: any GPIOBank = LinuxGPIO(), catalog: DeviceCatalog? = nil, controls: ControlBoard? = nil) {
        self.controls = controls
        self.instruments = instruments
        self.gpioDevices = gpioDevices
        self.usb = usb
        self.gpio = gpio
        self.catalog = catalog
    }

    /// The instrument a device argument names: `profile:serial`, or a profile with one instrument.
    public func instrument(named device: String) -> AttachedInstrument? {
        if let exact = instruments.first(where: { "\($0.profile.name):\($0.identity.serial)" == device }) { return exact }
        let byProfile = instruments.filter { $0.profile.name == device }
        return byProfile.count == 1 ? byProfile[0] : nil
    }

    /// The risk class the profiles give an action on a device (nil: no such device or action).
    public static func risk(instruments: [AttachedInstrument], gpio: [AttachedGPIODevice]) -> @Sendable (String, String) -> String? {
        let devices = AttachedDevices(instruments: instruments, gpio: gpio)
        return { device, action in devices.find(device)?.profile.actions[action]?.risk.rawValue }
    }

    /// How many different people must approve an irreversible action on a device (its profile's
    /// `approvers`); a device no profile names needs the most any attached profile asks for.
    public static func approvers(instruments: [AttachedInstrument], gpio: [AttachedGPIODevice]) -> @Sendable (String) -> Int {
        let devices = AttachedDevices(instruments: instruments, gpio: gpio)
        let most = devices.entries.map(\.profile.approvers).max() ?? 1
        return { device in devices.find(device)?.profile.approvers ?? most }
    }

    /// A device's identity (`profile:serial`, or `profile:gpiochipN`) and where it is, for
    /// approvals, which bind to the device and not to its path.
    public static func identity(instruments: [AttachedInstrument], gpio: [AttachedGPIODevice]) -> @Sendable (String) -> (id: String, path: String)? {
        let devices = AttachedDevices(instruments: instruments, gpio: gpio)
        return { device in devices.find(device).map { ($0.id, $0.path) } }
    }

    /// Which attached device a device node opens, by its device number: the instruments' ports
    /// and the GPIO chips the profiles matched. Found once, at start (a device that appears later
    /// is matched by a later start).
    public static func owner(instruments: [AttachedInstrument], gpio: [AttachedGPIODevice], usb: (any USBBus)? = nil,
                             catalog: DeviceCatalog? = nil, sysfs: String = "/sys") -> @Sendable (UInt64) -> DeviceOwner? {
        // A claimed USB device's every node (usbfs, its tty…); an instrument found on one of
        // them is named by its own identity below.
        var owned = USBOwnership.owners(usb: usb, profiles: catalog?.profiles ?? [], sysfs: sysfs)
        let entries = instruments.map { ("\($0.profile.name):\($0.identity.serial)", $0.path, $0.profile) }
            + gpio.map { ("\($0.profile.name):\($0.chip.name)", $0.chip.path, $0.profile) }
        for (id, path, profile) in entries {
            guard let number = FileObject.at(path)?.deviceNumber else { continue }
            owned[number] = DeviceOwner(device: id, path: path, profile: profile.name, rawChannel: profile.rawChannel, risk: profile.highestRisk.rawValue)
        }
        let table = owned
        return { table[$0] }
    }

    /// The risk a raw device step carries: a line of a GPIO chip a profile matched, or a USB
    /// device a USB profile matches (by vid:pid and serial, looked up when asked), carries that
    /// profile's highest risk class, and is bound by its identity.
    public static func stepRisk(gpio: [AttachedGPIODevice], usb: (any USBBus)?, catalog: DeviceCatalog?)
        -> @Sendable (ResolvedCall) -> (device: String, path: String, risk: String)? {
        let chips = gpio.map { (label: $0.chip.label, name: $0.chip.name, path: $0.chip.path, id: "\($0.profile.name):\($0.chip.name)",
                                risk: $0.profile.highestRisk.rawValue) }
        let bus = UncheckedBus(usb)
        let profiles = catalog?.profiles ?? []
        return { call in
            switch call.op {
            case .gpioSet:
                guard let chip = call.string(.chip), let c = chips.first(where: { $0.label == chip || $0.name == chip }) else { return nil }
                return (c.id, c.path, c.risk)
            case .usbTransfer, .usbControl:
                guard let path = call.string(.device), let device = (try? bus.usb?.devices())?.first(where: { $0.busPath == path }),
                      let profile = USBOwnership.profile(for: device, in: profiles) else { return nil }
                return (USBOwnership.identity(of: device, profile: profile), path, profile.highestRisk.rawValue)
            default: return nil
            }
        }
    }

    public func perform(_ call: ResolvedCall) -> CallResult {
        switch call.op {
        case .act: return act(call)
        case .gpioSet, .gpioGet: return gpioStep(call)
        case .usbTransfer, .usbControl: return usbStep(call)
        default: return linux.perform(call)
        }
    }

    private func act(_ call: ResolvedCall) -> CallResult {
        guard let device = call.string(.device), let action = call.string(.action) else { return .failure(errno: EINVAL) }
        let (pairs, wellFormed) = call.actionParameters
        let params = pairs.compactMapValues(Double.init)
        guard wellFormed, params.count == pairs.count else { return .failure(errno: EINVAL) }
        if let envelope = controls?.envelope(device: device) {
            // A setpoint is the controller's to take: nothing to send; the guard, which decided
            // it, records it on the board with the grant it rests on.
            guard action == envelope.setpointAction, let value = params["value"], params.count == 1 else { return .failure(errno: EINVAL) }
            return .value(0, data: Array("\(envelope.controller) setpoint \(value)".utf8))
        }
        if let instrument = instrument(named: device) {
            let lines: [String]
            do { lines = try instrument.profile.expand(action, params) } catch { return .failure(errno: EINVAL) }
            do {
                for line in lines { try instrument.scpi.send(line) }
                if let first = try instrument.scpi.errors().first {
                    return .value(-1, data: Array("\(first)".utf8), fields: ["scpi-error": Int64(first.code)])
                }
            } catch {
                return .failure(errno: EIO)
            }
            return .value(Int64(lines.count), data: Array(lines.joined(separator: "\n").utf8))
        }
        let matching = gpioDevices.filter { $0.profile.name == device || "\($0.profile.name):\($0.chip.name)" == device }
        guard matching.count == 1, let target = matching.first else { return .failure(errno: ENODEV) }
        let lines: [String]
        do { lines = try target.profile.expand(action, params) } catch { return .failure(errno: EINVAL) }
        for line in lines {
            let kv = line.split(separator: "=")
            guard kv.count == 2, let value = Int64(kv[1]) else { return .failure(errno: EINVAL) }
            let r = gpioStep(ResolvedCall(.gpioSet, ["chip": .string(target.chip.label), "line": .string(String(kv[0])), "value": .int(value)]))
            guard r.value != nil else { return r }
        }
        return .value(Int64(lines.count), data: Array(lines.joined(separator: "\n").utf8))
    }

    private func gpioStep(_ call: ResolvedCall) -> CallResult {
        guard let label = call.string(.chip), let lineName = call.string(.line) else { return .failure(errno: EINVAL) }
        guard let chip = gpio.chips().first(where: { $0.label == label || $0.name == label }),
              let line = chip.lines.first(where: { $0.name == lineName }) ?? Int(lineName).flatMap({ o in chip.lines.first { $0.offset == o } }) else {
            return .failure(errno: ENODEV)
        }
        let key = "\(chip.path)#\(line.offset)"
        do {
            if call.op == .gpioSet {
                guard let value = call.int(.value), value == 0 || value == 1 else { return .failure(errno: EINVAL) }
                if let held = gpioLines[key], case .output = held.kind {
                    try held.set(Int32(value))
                } else {
                    gpioLines[key] = nil
                    gpioLines[key] = try gpio.request(chip: chip.path, offset: line.offset, kind: .output(initial: Int32(value), safe: 0))
                }
                return .value(value)
            }
            if let held = gpioLines[key] { return .value(Int64(try held.get())) }
            let request = try gpio.request(chip: chip.path, offset: line.offset, kind: .input)
            return .value(Int64(try request.get()))
        } catch {
            return .failure(errno: error.errno ?? EIO)
        }
    }

    private func usbStep(_ call: ResolvedCall) -> CallResult {
        guard let usb, let busPath = call.string(.device) else { return .failure(errno: ENODEV) }
        let timeout = UInt32(clamping: call.int(.timeoutMs) ?? 1000)
        var data: [UInt8] = []
        if let hex = call.string(.data) {
            guard let bytes = BenchHost.hexBytes(hex) else { return .failure(errno: EINVAL) }
            data = bytes
        }
        let length = Int(call.int(.length) ?? 0)
        do {
            guard let device = try usb.devices().first(where: { $0.busPath == busPath }) else { return .failure(errno: ENODEV) }
            let handle = try usbHandles[busPath] ?? usb.openDevice(busPath: busPath)
            usbHandles[busPath] = handle
            if call.op == .usbControl {
                guard let type = call.int(.requestType), let request = call.int(.request) else { return .failure(errno: EINVAL) }
                let bytes = try handle.control(requestType: UInt8(truncatingIfNeeded: type), request: UInt8(truncatingIfNeeded: request),
                                               value: UInt16(truncatingIfNeeded: call.int(.value) ?? 0),
                                               index: UInt16(truncatingIfNeeded: call.int(.index) ?? 0),
                                               data: data, length: length, timeoutMilliseconds: timeout)
                return .value(Int64(type & 0x80 != 0 ? bytes.count : data.count), data: bytes)
            }
            guard let address = call.int(.endpoint),
                  let (interface, endpoint) = (device.configurations.first?.interfaces ?? []).lazy
                    .compactMap({ i in i.endpoints.first { Int64($0.address) == address }.map { (i, $0) } }).first else {
                return .failure(errno: EINVAL)
            }
            try handle.claim(interface: interface.number, detachKernelDriver: mayDetach(device))
            let bytes = try handle.transfer(endpoint: endpoint.address, kind: endpoint.kind, data: data, length: length, timeoutMilliseconds: timeout)
            return .value(Int64(endpoint.isIn ? bytes.count : data.count), data: endpoint.isIn ? bytes : nil)
        } catch let e as USBError {
            if e.isDeviceGone { usbHandles[busPath] = nil }
            return .failure(errno: e.errno)
        } catch {
            return .failure(errno: EIO)
        }
    }

    /// A kernel driver may be detached only when a USB profile matching the device says so.
    private func mayDetach(_ device: USBDevice) -> Bool {
        catalog?.profiles.contains { p in
            guard p.detachKernelDriver, case .usb(let matches) = p.match else { return false }
            return matches.contains { $0.matches(vendorID: device.vendorID, productID: device.productID, serial: device.serial) }
        } ?? false
    }

    /// `01ff20` → [0x01, 0xff, 0x20]; nil if not whole hex bytes.
    static func hexBytes(_ text: String) -> [UInt8]? {
        let chars = Array(text)
        guard chars.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        for i in stride(from: 0, to: chars.count, by: 2) {
            guard let b = UInt8(String(chars[i..<i + 2]), radix: 16) else { return nil }
            bytes.append(b)
        }
        return bytes
    }

    /// Close descriptors; release USB devices; return held GPIO outputs to their safe value.
    /// On a latched fault, every GPIO line this host holds is driven to its safe value and
    /// released (a later gpio-set would need the fault acknowledged first).
    public func makeSafe(on fault: FaultLatch) {
        fault.onLatch.append { [weak self] in self?.gpioLines = [:] }
    }

    public func closeAll() {
        linux.closeAll()
        usbHandles = [:]
        gpioLines = [:]
    }
}

/// The USB bus as the guard's closure holds it: asked only from the loop's thread.
private final class UncheckedBus: @unchecked Sendable {
    let usb: (any USBBus)?
    init(_ usb: (any USBBus)?) { self.usb = usb }
}
