import CLibUSB
import DevicePorts
import Glibc

/// USB through libusb-1.0. ``USBContext`` owns a libusb context (libusb_init/libusb_exit); note
/// that libusb_init starts a background event thread, so create the context after any process
/// that must fork without threads (the seccomp sandbox) has been spawned.
public final class USBContext {
    let context: OpaquePointer

    public init() throws(USBError) {
        var ctx: OpaquePointer?
        let r = libusb_init(&ctx)
        guard r == 0, let ctx else { throw USBError(code: r, device: "libusb", action: "initialise libusb") }
        context = ctx
    }

    deinit { libusb_exit(context) }

    /// Handle whatever libusb has pending (hotplug arrivals and departures, finished transfers)
    /// without blocking. libusb (≥ 1.0.25) adds an arrived device to the context's list only
    /// while events are handled, so the loop calls this when libusb's descriptors are readable.
    public func processPendingEvents() {
        var zero = timeval(tv_sec: 0, tv_usec: 0)
        _ = libusb_handle_events_timeout_completed(context, &zero, nil)
    }

    /// Every device on every bus, with its descriptors, after processing pending hotplug events.
    /// The serial number needs the device opened; where it cannot be (permissions, no driver
    /// access) it is nil.
    public func devices() throws(USBError) -> [USBDevice] {
        processPendingEvents()
        var list: UnsafeMutablePointer<OpaquePointer?>?
        let count = libusb_get_device_list(context, &list)
        guard count >= 0, let list else { throw USBError(code: Int32(count), device: "libusb", action: "list devices") }
        defer { libusb_free_device_list(list, 1) }
        return (0..<count).compactMap { list[$0].flatMap(USBDevice.init(device:)) }.sorted { $0.busPath < $1.busPath }
    }

    /// Open the device at `busPath` (such as `3-1.2`). The returned handle owns it.
    public func openHandle(busPath: String) throws(USBError) -> USBDeviceHandle {
        var list: UnsafeMutablePointer<OpaquePointer?>?
        let count = libusb_get_device_list(context, &list)
        guard count >= 0, let list else { throw USBError(code: Int32(count), device: busPath, action: "list devices") }
        defer { libusb_free_device_list(list, 1) }
        for i in 0..<count {
            guard let device = list[i], USBDevice.busPath(of: device) == busPath else { continue }
            var handle: OpaquePointer?
            let r = libusb_open(device, &handle)
            guard r == 0, let handle else { throw USBError(code: r, device: busPath, action: "open") }
            return USBDeviceHandle(handle: handle, busPath: busPath)
        }
        throw USBError(code: LIBUSB_ERROR_NO_DEVICE.rawValue, device: busPath, action: "find the device")
    }
}

extension USBDevice {
    init?(device: OpaquePointer) {
        var descriptor = libusb_device_descriptor()
        guard libusb_get_device_descriptor(device, &descriptor) == 0 else { return nil }
        var strings: [String?] = [nil, nil, nil]
        var handle: OpaquePointer?
        if libusb_open(device, &handle) == 0, let handle {
            defer { libusb_close(handle) }
            strings = [descriptor.iManufacturer, descriptor.iProduct, descriptor.iSerialNumber].map { USBDevice.string(handle, $0) }
        }
        self.init(bus: Int(libusb_get_bus_number(device)), busPath: USBDevice.busPath(of: device),
                  address: Int(libusb_get_device_address(device)), vendorID: descriptor.idVendor, productID: descriptor.idProduct,
                  deviceClass: descriptor.bDeviceClass, manufacturer: strings[0], product: strings[1], serial: strings[2],
                  configurations: (0..<descriptor.bNumConfigurations).compactMap { USBDevice.configuration(device, index: $0) })
    }

    static func busPath(of device: OpaquePointer) -> String {
        var ports = [UInt8](repeating: 0, count: 8)
        let n = libusb_get_port_numbers(device, &ports, Int32(ports.count))
        let bus = libusb_get_bus_number(device)
        guard n > 0 else { return "\(bus)-0" }
        return "\(bus)-" + ports.prefix(Int(n)).map(String.init).joined(separator: ".")
    }

    static func string(_ handle: OpaquePointer, _ index: UInt8) -> String? {
        guard index != 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = libusb_get_string_descriptor_ascii(handle, index, &buffer, Int32(buffer.count))
        return n > 0 ? String(decoding: buffer.prefix(Int(n)), as: UTF8.self) : nil
    }

    static func configuration(_ device: OpaquePointer, index: UInt8) -> Configuration? {
        var config: UnsafeMutablePointer<libusb_config_descriptor>?
        guard libusb_get_config_descriptor(device, index, &config) == 0, let config else { return nil }
        defer { libusb_free_config_descriptor(config) }
        var interfaces: [Interface] = []
        for i in 0..<Int(config.pointee.bNumInterfaces) {
            let interface = config.pointee.interface[i]
            for a in 0..<Int(interface.num_altsetting) {
                let alt = interface.altsetting[a]
                let endpoints = (0..<Int(alt.bNumEndpoints)).map { e -> Endpoint in
                    let ep = alt.endpoint[e]
                    let kind: Endpoint.Kind = switch ep.bmAttributes & 0x3 {
                    case 0: .control
                    case 1: .isochronous
                    case 2: .bulk
                    default: .interrupt
                    }
                    return Endpoint(address: ep.bEndpointAddress, kind: kind, maxPacketSize: Int(ep.wMaxPacketSize))
                }
                interfaces.append(Interface(number: Int(alt.bInterfaceNumber), alternate: Int(alt.bAlternateSetting),
                                            interfaceClass: alt.bInterfaceClass, subclass: alt.bInterfaceSubClass,
                                            interfaceProtocol: alt.bInterfaceProtocol, endpoints: endpoints))
            }
        }
        return Configuration(value: Int(config.pointee.bConfigurationValue), interfaces: interfaces)
    }
}

/// An open USB device (libusb_open/libusb_close). Claimed interfaces are released, and kernel
/// drivers this handle detached are re-attached, when it is released.
public final class USBDeviceHandle {
    public let busPath: String
    private let handle: OpaquePointer
    private var claimed: Set<Int32> = []
    private var detached: Set<Int32> = []

    init(handle: OpaquePointer, busPath: String) {
        self.handle = handle
        self.busPath = busPath
    }

    deinit {
        for i in claimed { libusb_release_interface(handle, i) }
        for i in detached { libusb_attach_kernel_driver(handle, i) }
        libusb_close(handle)
    }

    /// Claim an interface. A kernel driver bound to it is detached only when `detachKernelDriver`
    /// says so (a device profile decides that, never the adapter).
    public func claim(interface: Int, detachKernelDriver: Bool) throws(USBError) {
        let i = Int32(interface)
        if libusb_kernel_driver_active(handle, i) == 1 {
            guard detachKernelDriver else {
                throw USBError(code: LIBUSB_ERROR_BUSY.rawValue, device: busPath, action: "claim interface \(interface): a kernel driver holds it and detaching was not allowed")
            }
            let r = libusb_detach_kernel_driver(handle, i)
            guard r == 0 else { throw USBError(code: r, device: busPath, action: "detach the kernel driver of interface \(interface)") }
            detached.insert(i)
        }
        let r = libusb_claim_interface(handle, i)
        guard r == 0 else { throw USBError(code: r, device: busPath, action: "claim interface \(interface)") }
        claimed.insert(i)
    }

    /// Release a claimed interface (and re-attach a kernel driver this handle detached from it).
    public func release(interface: Int) throws(USBError) {
        let i = Int32(interface)
        guard claimed.remove(i) != nil else { return }
        let r = libusb_release_interface(handle, i)
        if detached.remove(i) != nil { libusb_attach_kernel_driver(handle, i) }
        guard r == 0 else { throw USBError(code: r, device: busPath, action: "release interface \(interface)") }
    }

    /// A control transfer on endpoint 0. For device-to-host requests (bit 7 of `requestType`
    /// set) up to `length` bytes come back; otherwise `data` is sent.
    public func control(requestType: UInt8, request: UInt8, value: UInt16, index: UInt16, data: [UInt8], length: Int,
                        timeoutMilliseconds: UInt32) throws(USBError) -> [UInt8] {
        var buffer = requestType & 0x80 != 0 ? [UInt8](repeating: 0, count: length) : data
        let r = buffer.withUnsafeMutableBufferPointer { p in
            libusb_control_transfer(handle, requestType, request, value, index, p.baseAddress, UInt16(p.count), timeoutMilliseconds)
        }
        guard r >= 0 else { throw USBError(code: r, device: busPath, action: "control transfer 0x\(String(request, radix: 16))") }
        return requestType & 0x80 != 0 ? Array(buffer.prefix(Int(r))) : []
    }

    /// A bulk or interrupt transfer on `endpoint` (IN if its top bit is set). IN transfers read up
    /// to `length` bytes; OUT transfers send `data`. Returns the bytes read (IN) or an empty array
    /// after sending everything (OUT); a vanished device is ``USBError/isDeviceGone``.
    public func transfer(endpoint: UInt8, kind: USBDevice.Endpoint.Kind, data: [UInt8], length: Int,
                         timeoutMilliseconds: UInt32) throws(USBError) -> [UInt8] {
        var buffer = endpoint & 0x80 != 0 ? [UInt8](repeating: 0, count: length) : data
        var transferred: Int32 = 0
        let r: Int32 = buffer.withUnsafeMutableBufferPointer { p in
            switch kind {
            case .interrupt: libusb_interrupt_transfer(handle, endpoint, p.baseAddress, Int32(p.count), &transferred, timeoutMilliseconds)
            default: libusb_bulk_transfer(handle, endpoint, p.baseAddress, Int32(p.count), &transferred, timeoutMilliseconds)
            }
        }
        guard r == 0 else { throw USBError(code: r, device: busPath, action: "transfer on endpoint 0x\(String(endpoint, radix: 16))") }
        return endpoint & 0x80 != 0 ? Array(buffer.prefix(Int(transferred))) : []
    }
}
