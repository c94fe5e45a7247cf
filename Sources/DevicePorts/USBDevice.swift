import Glibc

/// A USB device as its descriptors describe it.
public struct USBDevice: Equatable, Sendable {
    public struct Endpoint: Equatable, Sendable {
        public enum Kind: String, Sendable { case control, isochronous, bulk, interrupt }
        /// Read from the descriptor (a UDC may renumber endpoints; never assume an address).
        public var address: UInt8
        public var kind: Kind
        public var maxPacketSize: Int
        public var isIn: Bool { address & 0x80 != 0 }
        public init(address: UInt8, kind: Kind, maxPacketSize: Int) {
            self.address = address
            self.kind = kind
            self.maxPacketSize = maxPacketSize
        }
    }
    public struct Interface: Equatable, Sendable {
        public var number: Int
        public var alternate: Int
        public var interfaceClass: UInt8
        public var subclass: UInt8
        public var interfaceProtocol: UInt8
        public var endpoints: [Endpoint]
        public init(number: Int, alternate: Int = 0, interfaceClass: UInt8, subclass: UInt8 = 0, interfaceProtocol: UInt8 = 0, endpoints: [Endpoint]) {
            self.number = number
            self.alternate = alternate
            self.interfaceClass = interfaceClass
            self.subclass = subclass
            self.interfaceProtocol = interfaceProtocol
            self.endpoints = endpoints
        }
    }
    public struct Configuration: Equatable, Sendable {
        public var value: Int
        public var interfaces: [Interface]
        public init(value: Int, interfaces: [Interface]) {
            self.value = value
            self.interfaces = interfaces
        }
    }

    public var bus: Int
    /// The port chain from the root hub, as in sysfs: `3-1.2` is bus 3, port 1, then port 2.
    public var busPath: String
    public var address: Int
    public var vendorID: UInt16
    public var productID: UInt16
    public var deviceClass: UInt8
    public var manufacturer: String?
    public var product: String?
    public var serial: String?
    public var configurations: [Configuration]

    /// A device described by hand (for fakes and recorded buses).
    public init(bus: Int, busPath: String, address: Int, vendorID: UInt16, productID: UInt16, deviceClass: UInt8 = 0,
                manufacturer: String? = nil, product: String? = nil, serial: String? = nil, configurations: [Configuration] = []) {
        self.bus = bus
        self.busPath = busPath
        self.address = address
        self.vendorID = vendorID
        self.productID = productID
        self.deviceClass = deviceClass
        self.manufacturer = manufacturer
        self.product = product
        self.serial = serial
        self.configurations = configurations
    }

    public var vidpid: String { String(format4(vendorID)) + ":" + String(format4(productID)) }
}

private func format4(_ v: UInt16) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: max(0, 4 - s.count)) + s
}

/// A USB failure: the libusb error code, its name, the device and what we tried.
public struct USBError: Error, CustomStringConvertible, Equatable, Sendable {
    public var code: Int32
    public var device: String
    public var action: String

    public init(code: Int32, device: String, action: String) {
        self.code = code
        self.device = device
        self.action = action
    }

    /// The errno a micro-step reports for this failure.
    public var errno: Int32 {
        switch code {
        case Self.noDevice: ENODEV
        case Self.timeout: ETIMEDOUT
        case Self.busy: EBUSY
        case Self.access: EACCES
        case Self.notFound: ENOENT
        case Self.pipe: EPIPE
        case Self.invalidParameter: EINVAL
        default: EIO
        }
    }

    /// LIBUSB_ERROR_NO_DEVICE: the device went away. A device-gone transition for the graph.
    public var isDeviceGone: Bool { code == Self.noDevice }
    public var isTimeout: Bool { code == Self.timeout }
    /// libusb's name for the code (what libusb_error_name says; held equal to it by a test).
    public var name: String { Self.names[code].map { "LIBUSB_ERROR_" + $0 } ?? "**UNKNOWN**" }

    // libusb's error codes (enum libusb_error; fixed by its ABI).
    public static let invalidParameter: Int32 = -2, access: Int32 = -3, noDevice: Int32 = -4, notFound: Int32 = -5,
                      busy: Int32 = -6, timeout: Int32 = -7, pipe: Int32 = -9
    static let names: [Int32: String] = [
        -1: "IO", -2: "INVALID_PARAM", -3: "ACCESS", -4: "NO_DEVICE", -5: "NOT_FOUND", -6: "BUSY", -7: "TIMEOUT",
        -8: "OVERFLOW", -9: "PIPE", -10: "INTERRUPTED", -11: "NO_MEM", -12: "NOT_SUPPORTED", -99: "OTHER",
    ]
    public var description: String { "\(device): cannot \(action): \(name)" }
}
