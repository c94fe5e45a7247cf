import DevicePorts

/// The real adapters as the ports the supervisor uses (DevicePorts).
extension USBContext: USBBus {
    public func open(busPath: String) throws(USBError) -> any USBDeviceAccess { try openHandle(busPath: busPath) }
}

extension USBDeviceHandle: USBDeviceAccess {}
extension GPIOLineRequest: GPIOLineAccess {}

/// The GPIO chips under /dev, through libgpiod.
public struct LinuxGPIO: GPIOBank {
    public let directory: String
    public init(directory: String = "/dev") { self.directory = directory }
    public func chips() -> [GPIO.Chip] { GPIO.chips(in: directory) }
    public func request(chip path: String, offset: Int, kind: GPIO.RequestKind) throws(DeviceError) -> any GPIOLineAccess {
        try GPIOLineRequest(chip: path, offset: offset, kind: kind)
    }
}
