import DevicePorts
import HostAdapter
import LoopCore
import StateGraph

/// USB devices (with their interfaces and endpoints) and GPIO chips (with their lines) as graph
/// nodes. Identity follows the design map: a USB device is its bus path plus its serial (or
/// vid:pid when it has none), a GPIO line is its chip plus its offset. A device that vanished is
/// simply absent from the next observation: the estimator collects its subgraph.
public struct DeviceObserver: Observing {
    private let usb: (any USBBus)?
    private let gpio: any GPIOBank

    /// `usb` nil observes GPIO only (libusb could not start, or the caller does not want it).
    public init(usb: (any USBBus)?, gpio: any GPIOBank = LinuxGPIO()) {
        self.usb = usb
        self.gpio = gpio
    }

    public func observe(at now: Instant) throws -> Observation {
        var nodes: [Node] = []
        var edges: [Edge] = []
        var problems = 0
        if let usb {
            do {
                for d in try usb.devices() {
                    let id = NodeID("usb:\(d.busPath):\(d.serial ?? d.vidpid)")
                    nodes.append(Node(id: id, kind: .usbDevice, projected: d.deviceClass != 9, attributes: [
                        "bus-path": .string(d.busPath), "vid": .string(String(d.vidpid.prefix(4))), "pid": .string(String(d.vidpid.suffix(4))),
                        "serial": .string(d.serial ?? ""), "product": .string(d.product ?? ""), "manufacturer": .string(d.manufacturer ?? ""),
                        "class": .int(Int64(d.deviceClass)), "address": .int(Int64(d.address)),
                    ]))
                    for interface in d.configurations.first?.interfaces ?? [] where interface.alternate == 0 {
                        let iid = NodeID("\(id.rawValue)/if\(interface.number)")
                        nodes.append(Node(id: iid, kind: .usbInterface, observability: .background, attributes: [
                            "number": .int(Int64(interface.number)), "class": .int(Int64(interface.interfaceClass)),
                            "endpoints": .string(interface.endpoints.map { "0x" + String($0.address, radix: 16) + " " + $0.kind.rawValue }.joined(separator: ", ")),
                        ]))
                        edges.append(Edge(id, .owns, iid))
                    }
                }
            } catch {
                problems += 1
            }
        }
        for chip in gpio.chips() {
            let id = NodeID("gpio:\(chip.label)")
            nodes.append(Node(id: id, kind: .gpioChip, projected: true, attributes: [
                "name": .string(chip.name), "label": .string(chip.label), "path": .string(chip.path), "lines": .int(Int64(chip.lines.count)),
            ]))
            for line in chip.lines {
                let lid = NodeID("gpio:\(chip.label)/\(line.offset)")
                var attributes: Attributes = ["offset": .int(Int64(line.offset)), "direction": .string(line.direction.rawValue),
                                                            "used": .bool(line.used), "active-low": .bool(line.activeLow), "bias": .string(line.bias.rawValue)]
                if let name = line.name { attributes["name"] = .string(name) }
                if let consumer = line.consumer { attributes["consumer"] = .string(consumer) }
                nodes.append(Node(id: lid, kind: .gpioLine, observability: .background, attributes: attributes))
                edges.append(Edge(id, .owns, lid))
            }
        }
        return Observation(time: now, scope: [.usbDevice, .usbInterface, .gpioChip, .gpioLine], nodes: nodes, edges: edges,
                           supervisor: nil, raced: problems)
    }
}
