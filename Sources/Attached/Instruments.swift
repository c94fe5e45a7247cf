import Config
import DevicePorts
import Devices
import Foundation
import Guard
import HostAdapter
import LoopCore
import StateGraph

/// A serial instrument recognised by its profile and open for the loop.
public final class AttachedInstrument {
    public let profile: DeviceProfile
    public let path: String
    public let identity: SCPIInstrument.Identity
    public let scpi: SCPIInstrument
    /// The graph's identity for it: profile and serial number (not the path, which can change).
    public var id: NodeID { NodeID("instrument:\(profile.name):\(identity.serial)") }

    init(profile: DeviceProfile, path: String, identity: SCPIInstrument.Identity, scpi: SCPIInstrument) {
        self.profile = profile
        self.path = path
        self.identity = identity
        self.scpi = scpi
    }

    /// Send the profile's safe-state lines; errors are returned, not thrown: this runs on the way out.
    @discardableResult
    public func returnToSafeState() -> [String] {
        var problems: [String] = []
        for line in profile.safeState {
            do { try scpi.send(line) } catch { problems.append("\(path): \(line): \(error)") }
        }
        return problems
    }
}

/// Finds instruments: candidate serial ports (what libserialport lists, plus ports named
/// explicitly, such as the simulator's pseudo-terminal) against the profiles' serial matches,
/// most specific first, each confirmed by `*IDN?` when the profile asks.
public enum DeviceDiscovery {
    public static func discover(_ catalog: DeviceCatalog, explicit: [String]) -> (attached: [AttachedInstrument], notes: [String]) {
        var ports = SerialPortInfo.list()
        for path in explicit where !ports.contains(where: { $0.path == path }) {
            ports.append(SerialPortInfo(path: path, description: "named on the command line"))
        }
        var attached: [AttachedInstrument] = []
        var notes: [String] = []
        let serialProfiles = catalog.profiles.filter { if case .serial = $0.match { true } else { false } }
            .sorted { $0.match.specificity > $1.match.specificity }
        for port in ports {
            for profile in serialProfiles where matches(profile, port) {
                guard case .serial(_, _, let idnPattern) = profile.match else { continue }
                guard let idnPattern else { break }   // a port with no identity check: nothing to talk to
                do {
                    let settings = SerialSettings(baud: profile.connection.baud)
                    let scpi = SCPIInstrument(port: try SerialPort(path: port.path, settings: settings),
                                              terminator: profile.connection.terminator, timeoutMilliseconds: profile.connection.timeoutMilliseconds)
                    scpi.port.flush()
                    let idn = try scpi.query("*IDN?")
                    guard globMatches(idnPattern, idn) else {
                        notes.append("\(port.path): answered \"\(idn)\", not \(profile.name)")
                        continue
                    }
                    attached.append(AttachedInstrument(profile: profile, path: port.path, identity: try identity(idn), scpi: scpi))
                    break
                } catch {
                    notes.append("\(port.path): \(profile.name) did not answer: \(error)")
                }
            }
        }
        return (attached, notes)
    }

    static func identity(_ idn: String) throws -> SCPIInstrument.Identity {
        let f = idn.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingCharacters(in: .whitespaces) }
        guard f.count == 4 else { throw SCPIReplyError(command: "*IDN?", reply: idn, expected: "four comma-separated fields") }
        return SCPIInstrument.Identity(manufacturer: f[0], model: f[1], serial: f[2], version: f[3])
    }

    static func matches(_ profile: DeviceProfile, _ port: SerialPortInfo) -> Bool {
        guard case .serial(let path, let usb, _) = profile.match else { return false }
        if let path, globMatches(path, port.path) { return true }
        if let usb, let vid = port.usbVendorID, let pid = port.usbProductID {
            return usb.contains { $0.matches(vendorID: vid, productID: pid, serial: port.usbSerial) }
        }
        return false
    }
}

/// Reads every attached instrument's readings each step: an instrument node (what it is, where,
/// which actions it offers and at what risk), its serial port, and one sensor node per reading.
/// Each poll is also the host contact the instruments' watchdogs wait for.
public struct InstrumentObserver: Observing {
    public let instruments: [AttachedInstrument]
    /// Latched when an instrument is lost; nil: losses are only observed.
    public let fault: FaultLatch?
    public init(_ instruments: [AttachedInstrument], fault: FaultLatch? = nil) {
        self.instruments = instruments
        self.fault = fault
    }

    public mutating func observe(at now: Instant) throws -> Observation {
        try fault?.refresh(at: now)
        var nodes: [Node] = []
        var edges: [Edge] = []
        var problems = 0
        var events: [ObservedEvent] = []
        for instrument in instruments {
            let portID = NodeID("serial-port:\(instrument.path)")
            nodes.append(Node(id: portID, kind: .serialPort, observability: .background, attributes: ["path": .string(instrument.path)]))
            var node = Node(id: instrument.id, kind: .instrument, projected: true, attributes: [
                "profile": .string(instrument.profile.name), "serial": .string(instrument.identity.serial),
                "model": .string(instrument.identity.model), "version": .string(instrument.identity.version),
                "path": .string(instrument.path), "safe-state": .string(instrument.profile.safeState.joined(separator: "; ")),
                "actions": .string(instrument.profile.actions.values.sorted { $0.name < $1.name }.map { "\($0.name) (\($0.risk.rawValue))" }.joined(separator: ", ")),
            ])
            edges.append(Edge(instrument.id, .attachedTo, portID))
            var lost: String?
            for reading in instrument.profile.readings {
                do {
                    let reply = try instrument.scpi.query(reading.query)
                    let id = NodeID("sensor:\(instrument.profile.name)/\(instrument.identity.serial)/\(reading.name)")
                    var attributes: Attributes = ["unit": .string(reading.unit), "reading": .string(reading.name),
                                                                "role": .string(reading.actuator ? "actuator" : "sensor")]
                    attributes["value"] = Double(reply).map { .double($0) } ?? .string(reply)
                    nodes.append(Node(id: id, kind: .sensor, projected: true, attributes: attributes))
                    edges.append(Edge(instrument.id, .owns, id))
                } catch {
                    lost = "\(error)"
                    problems += 1
                    break
                }
            }
            node["status"] = .string(lost == nil ? "ok" : "lost")
            if let lost {
                node["problem"] = .string(lost)
                events.append(ObservedEvent(source: "instrument", action: "lost", subject: instrument.id.rawValue, time: now, details: ["error": lost]))
                // A lost device halts everything physical until a person has looked; the
                // instruments still answering go to their safe state (the lost one's firmware
                // watchdog covers it).
                if let fault, try fault.latch("lost \(instrument.profile.name) \(instrument.identity.serial) on \(instrument.path): \(lost)", at: now) {
                    for other in instruments where other !== instrument {
                        for problem in other.returnToSafeState() {
                            events.append(ObservedEvent(source: "instrument", action: "safe-state-failed", subject: other.id.rawValue, time: now, details: ["error": problem]))
                        }
                    }
                }
            }
            nodes.append(node)
        }
        if let latched = fault?.current {
            for i in nodes.indices where nodes[i].kind == .instrument { nodes[i]["fault"] = .string(latched.reason) }
        }
        return Observation(time: now, scope: [.instrument, .serialPort], nodes: nodes, edges: edges, supervisor: nil, raced: problems, events: events)
    }
}
