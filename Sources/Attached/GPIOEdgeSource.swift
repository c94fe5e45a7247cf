import DevicePorts
import Glibc
import HostAdapter
import LoopCore
import Observer

/// Edges on a GPIO line a profile names, as events: the line's request descriptor is polled
/// with the others, and each edge arrives with the kernel's timestamp.
public final class GPIOEdgeSource: EventSource {
    public let request: any GPIOLineAccess
    public let subject: String

    public init(device: AttachedGPIODevice, line name: String, bank: any GPIOBank = LinuxGPIO()) throws {
        guard let line = device.chip.lines.first(where: { $0.name == name }) else {
            throw DeviceError(device: device.chip.path, message: "no line named \(name)", hint: "check the profile's edges")
        }
        request = try bank.request(chip: device.chip.path, offset: line.offset, kind: .edges)
        subject = "\(device.chip.label)/\(name)"
    }

    public var descriptor: Int32 { request.descriptor }

    public func drain(at now: Instant) -> [ObservedEvent] {
        ((try? request.readEdges()) ?? []).map {
            ObservedEvent(source: "gpio", action: $0.rising ? "rising" : "falling", subject: subject, time: now,
                          details: ["kernel-ns": String($0.nanoseconds)])
        }
    }
}
