import Config
import Foundation

/// What a piece of hardware is and what may be done to it, from a YAML file in Devices/.
public struct DeviceProfile: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable { case instrument, serialAdapter = "serial-adapter", relayBoard = "relay-board",
                                                           powerSupply = "power-supply", gpioHeader = "gpio-header" }
    public enum Risk: String, Sendable, CaseIterable, Comparable {
        case observe, reversible
        case irreversiblePhysical = "irreversible-physical"
        case destructiveHost = "destructive-host"
        public static func < (a: Risk, b: Risk) -> Bool { allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)! }
        /// Needs an approval bound to the exact action before it runs.
        public var needsApproval: Bool { self == .irreversiblePhysical || self == .destructiveHost }
    }

    /// How a device is recognised. A serial port matches by its path or by its USB parent (any of
    /// several vid:pid), and then, if `idn` is given, must answer `*IDN?` as it says.
    public enum Match: Sendable, Equatable {
        case serial(path: String?, usb: [USBMatch]?, idn: String?)
        case usb([USBMatch])
        case gpio(chipLabel: String, lines: [String])

        /// How specific the match is: a USB serial pattern and an identity check each add one.
        /// Of two profiles matching one device, the more specific wins; equal ones are ambiguous.
        public var specificity: Int {
            switch self {
            case .serial(_, let usb, let idn): (usb?.contains { $0.serial != nil } == true ? 1 : 0) + (idn != nil ? 1 : 0)
            case .usb(let usb): usb.contains { $0.serial != nil } ? 1 : 0
            case .gpio(_, let lines): lines.count
            }
        }
    }

    /// The highest risk class of the profile's actions: what a raw step on the device (a GPIO
    /// set, a USB transfer) carries, since the guard cannot tell which action it amounts to.
    public var highestRisk: Risk { actions.values.map(\.risk).max() ?? .observe }

    public struct USBMatch: Sendable, Equatable {
        public var vendorID: UInt16
        public var productID: UInt16
        /// A glob on the USB serial string; nil matches any.
        public var serial: String?

        /// Whether a device with these ids (and serial string, if it has one) is this match's.
        public func matches(vendorID: UInt16, productID: UInt16, serial: String?) -> Bool {
            self.vendorID == vendorID && self.productID == productID && (self.serial.map { globMatches($0, serial ?? "") } ?? true)
        }
    }

    public struct Connection: Sendable, Equatable {
        public var baud: Int = 115_200
        public var terminator: String = "\n"
        public var timeoutMilliseconds: Int = 1000
    }

    public struct Parameter: Sendable, Equatable {
        public var minimum: Double
        public var maximum: Double
        public var integer: Bool
    }

    public struct Action: Sendable, Equatable {
        public var name: String
        public var risk: Risk
        public var parameters: [String: Parameter]
        /// Lines to send, with `{name}` replaced by parameter values (serial instruments); GPIO
        /// actions write `line=value` pairs.
        public var send: [String]
        /// How long what it switches on may stay on before the supervisor switches it off.
        public var maximumOnMilliseconds: Int?
        /// `file:line` of its definition.
        public var location: String
    }

    public struct Reading: Sendable, Equatable {
        public var name: String
        public var query: String
        public var unit: String
        /// The state of an output (a relay, a heater's power) rather than a measurement.
        public var actuator: Bool = false
    }

    public var name: String
    public var kind: Kind
    public var description: String
    public var match: Match
    public var connection: Connection
    /// Lines that put the device in its safe state (sent on stop, fault, or loss of contact).
    public var safeState: [String]
    public var readings: [Reading]
    public var actions: [String: Action]
    /// USB profiles: whether the supervisor may detach a kernel driver to claim an interface.
    public var detachKernelDriver: Bool = false
    /// Whether a context may open the device's node itself (a raw channel) instead of going
    /// only through the profile's actions; such an open carries the profile's highest risk class.
    public var rawChannel: Bool = false
    /// How many different people must approve an irreversible action on this device (the
    /// two-person rule is 2).
    public var approvers: Int = 1
    /// GPIO profiles: lines whose edges the loop watches (they become events).
    public var edges: [String] = []
    public var file: String
    /// `file:line` of the match, cited when two profiles are ambiguous.
    public var matchLocation: String

    /// Fill an action's template: every `{name}` replaced, after range checks.
    public func expand(_ actionName: String, _ arguments: [String: Double]) throws(ActionError) -> [String] {
        guard let action = actions[actionName] else {
            throw ActionError("profile \(name) has no action \(actionName); it has: \(actions.keys.sorted().joined(separator: ", "))")
        }
        for key in arguments.keys where action.parameters[key] == nil {
            throw ActionError("\(actionName) takes no parameter \(key)")
        }
        var lines = action.send
        for (key, p) in action.parameters {
            guard let v = arguments[key] else { throw ActionError("\(actionName) needs \(key) (\(format(p.minimum))...\(format(p.maximum)))") }
            guard v >= p.minimum, v <= p.maximum, !p.integer || v.rounded() == v else {
                throw ActionError("\(actionName): \(key) = \(format(v)) is out of range \(format(p.minimum))...\(format(p.maximum))")
            }
            lines = lines.map { $0.replacingOccurrences(of: "{\(key)}", with: format(v)) }
        }
        return lines
    }
}

public struct ActionError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ d: String) { description = d }
}

func format(_ v: Double) -> String { v.rounded() == v && abs(v) < 1e15 ? String(Int64(v)) : String(v) }
