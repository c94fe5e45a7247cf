/// What the supervisor needs from a USB bus and a GPIO bank. The real adapters (USBContext with
/// USBDeviceHandle; LinuxGPIO with GPIOLineRequest) conform; WorldOSTesting's fakes are their
/// siblings for fast unit tests, never the only test of the real ones (those run in the rig).
public protocol USBBus: AnyObject {
    func devices() throws(USBError) -> [USBDevice]
    func open(busPath: String) throws(USBError) -> any USBDeviceAccess
}

public protocol USBDeviceAccess: AnyObject {
    var busPath: String { get }
    func claim(interface: Int, detachKernelDriver: Bool) throws(USBError)
    func release(interface: Int) throws(USBError)
    func transfer(endpoint: UInt8, kind: USBDevice.Endpoint.Kind, data: [UInt8], length: Int, timeoutMilliseconds: UInt32) throws(USBError) -> [UInt8]
    func control(requestType: UInt8, request: UInt8, value: UInt16, index: UInt16, data: [UInt8], length: Int,
                 timeoutMilliseconds: UInt32) throws(USBError) -> [UInt8]
}

public protocol GPIOBank {
    func chips() -> [GPIO.Chip]
    func request(chip path: String, offset: Int, kind: GPIO.RequestKind) throws(DeviceError) -> any GPIOLineAccess
}

public protocol GPIOLineAccess: AnyObject {
    var kind: GPIO.RequestKind { get }
    func set(_ value: Int32) throws(DeviceError)
    func get() throws(DeviceError) -> Int32
    var descriptor: Int32 { get }
    func readEdges() throws(DeviceError) -> [GPIO.Edge]
}

extension USBDeviceAccess {
    /// Claim without detaching a kernel driver (only a profile may allow that).
    public func claim(interface: Int) throws(USBError) { try claim(interface: interface, detachKernelDriver: false) }

    public func transfer(endpoint: UInt8, kind: USBDevice.Endpoint.Kind, data: [UInt8] = [], length: Int = 0,
                         timeoutMilliseconds: UInt32) throws(USBError) -> [UInt8] {
        try transfer(endpoint: endpoint, kind: kind, data: data, length: length, timeoutMilliseconds: timeoutMilliseconds)
    }
}

extension USBBus {
    /// Open by bus path (the protocol's requirement, spelled as USBContext always spelled it).
    public func openDevice(busPath: String) throws(USBError) -> any USBDeviceAccess { try open(busPath: busPath) }
}
