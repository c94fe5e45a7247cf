import Config
import Foundation

extension DeviceProfile {
    /// Load and validate one profile. Errors name the file, the line and what to do.
    public static func load(file: String) throws(ConfigError) -> DeviceProfile {
        try parse(ConfigNode.load(file: file))
    }

    public static func parse(_ text: String, file: String) throws(ConfigError) -> DeviceProfile {
        try parse(ConfigNode.parse(text, file: file))
    }

    static func parse(_ root: ConfigNode) throws(ConfigError) -> DeviceProfile {
        var profile = DeviceProfile(name: "", kind: .instrument, description: "", match: .serial(path: nil, usb: nil, idn: nil),
                                    connection: Connection(), safeState: [], readings: [], actions: [:], file: root.file, matchLocation: root.location)
        var sawMatch = false
        var detachNode: ConfigNode?, edgesNode: ConfigNode?
        for (key, value) in try root.mapping(allowed: ["version", "name", "kind", "description", "match", "connection", "safe-state", "readings", "actions",
                                                       "detach-kernel-driver", "raw-channel", "edges", "approvers"],
                                             required: ["version", "name", "kind", "match"]) {
            switch key {
            case "version": _ = try value.int(in: 1...1)
            case "name":
                let name = try value.string()
                guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) else {
                    throw value.error("profile name \"\(name)\" may use only letters, digits and -")
                }
                profile.name = name
            case "kind":
                let text = try value.string()
                guard let kind = Kind(rawValue: text) else {
                    throw value.error("unknown kind \"\(text)\"", hint: "use one of: \(Kind.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                profile.kind = kind
            case "description": profile.description = try value.string()
            case "match":
                profile.match = try parseMatch(value)
                profile.matchLocation = value.location
                sawMatch = true
            case "connection": profile.connection = try parseConnection(value)
            case "safe-state": profile.safeState = try value.strings()
            case "approvers": profile.approvers = Int(try value.int(in: 1...5))
            case "detach-kernel-driver":
                profile.detachKernelDriver = try value.bool()
                detachNode = value
            case "raw-channel":
                profile.rawChannel = try value.bool()
            case "edges":
                profile.edges = try value.strings()
                edgesNode = value
            case "readings":
                for entry in try value.sequence() {
                    var r = Reading(name: "", query: "", unit: "")
                    for (k, v) in try entry.mapping(allowed: ["name", "query", "unit", "actuator"], required: ["name", "query"]) {
                        switch k {
                        case "name": r.name = try v.string()
                        case "query":
                            r.query = try v.string()
                            guard r.query.split(separator: " ").first?.hasSuffix("?") == true else {
                                throw v.error("a reading is a query: its header ends in ?", hint: "such as MEAS:TEMP? or RELAY? 0")
                            }
                        case "actuator": r.actuator = try v.bool()
                        default: r.unit = try v.string()
                        }
                    }
                    profile.readings.append(r)
                }
            default:
                for (name, body) in try value.namedActions() {
                    profile.actions[name] = try parseAction(name, body)
                }
            }
        }
        _ = sawMatch
        if let detachNode {
            guard case .usb = profile.match else { throw detachNode.error("detach-kernel-driver applies to profiles that match a USB device") }
        }
        if let edgesNode {
            guard case .gpio(_, let lines) = profile.match else { throw edgesNode.error("edges apply to profiles that match GPIO lines") }
            for e in profile.edges where !lines.contains(e) {
                throw edgesNode.error("edge line \(e) is not one of the matched lines", hint: "add it to match.gpio.lines")
            }
        }
        if case .gpio = profile.match {
            for action in profile.actions.values {
                for line in action.send where !line.contains("=") {
                    throw ConfigError(file: profile.file, line: Int(action.location.split(separator: ":").last ?? "0") ?? 0, column: 1,
                                      message: "actions.\(action.name): a GPIO action sends LINE=VALUE pairs, not \"\(line)\"", hint: "such as relay=1")
                }
            }
        }
        return profile
    }

    static func parseMatch(_ node: ConfigNode) throws(ConfigError) -> Match {
        let entries = try node.mapping(allowed: ["serial", "usb", "gpio"])
        guard entries.count == 1, let (key, value) = entries.first else {
            throw node.error("a profile matches in exactly one way: serial, usb or gpio")
        }
        switch key {
        case "usb": return .usb(try parseUSBList(value))
        case "gpio":
            var label = "", lines: [String] = []
            for (k, v) in try value.mapping(allowed: ["chip-label", "lines"], required: ["chip-label", "lines"]) {
                if k == "chip-label" { label = try v.string() } else { lines = try v.strings() }
            }
            if lines.isEmpty { throw value.error("a GPIO match names at least one line") }
            if Set(lines).count != lines.count { throw value.error("a line is named twice") }
            return .gpio(chipLabel: label, lines: lines)
        default:
            var path: String?, usb: [USBMatch]?, idn: String?
            for (k, v) in try value.mapping(allowed: ["path", "usb", "idn"]) {
                switch k {
                case "path":
                    let p = try v.string()
                    let parts = p.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
                    guard p.hasPrefix("/dev/"), !parts.contains(where: { $0 == ".." || $0 == "." || $0.isEmpty }) else {
                        throw v.error("path \"\(p)\" must be a normalized absolute path under /dev", hint: "such as /dev/ttyUSB* or /dev/pts/*")
                    }
                    path = p
                case "usb": usb = try parseUSBList(v)
                default: idn = try v.string()
                }
            }
            guard path != nil || usb != nil else { throw value.error("a serial match needs a path or a usb parent") }
            return .serial(path: path, usb: usb, idn: idn)
        }
    }

    static func parseUSBList(_ node: ConfigNode) throws(ConfigError) -> [USBMatch] {
        if node.isSequence { return try node.sequence().map { n throws(ConfigError) in try parseUSB(n) } }
        return [try parseUSB(node)]
    }

    static func parseUSB(_ node: ConfigNode) throws(ConfigError) -> USBMatch {
        var vid: UInt16?, pid: UInt16?, serial: String?
        for (k, v) in try node.mapping(allowed: ["vid", "pid", "serial"], required: ["vid", "pid"]) {
            switch k {
            case "serial": serial = try v.string()
            default:
                let text = try v.string()
                guard text.count == 4, let n = UInt16(text, radix: 16) else { throw v.error("\(k) \"\(text)\" is not four hex digits", hint: "such as 0403") }
                if k == "vid" { vid = n } else { pid = n }
            }
        }
        return USBMatch(vendorID: vid!, productID: pid!, serial: serial)
    }

    static func parseConnection(_ node: ConfigNode) throws(ConfigError) -> Connection {
        var c = Connection()
        for (k, v) in try node.mapping(allowed: ["baud", "terminator", "timeout-ms"]) {
            switch k {
            case "baud":
                let baud = Int(try v.int(in: 300...4_000_000))
                guard [9600, 19200, 38400, 57600, 115_200, 230_400, 460_800, 921_600].contains(baud) else {
                    throw v.error("baud rate \(baud) is not a standard rate", hint: "use 9600, 19200, 38400, 57600, 115200, 230400, 460800 or 921600")
                }
                c.baud = baud
            case "terminator":
                let t = try v.string()
                guard ["\n", "\r\n", "\r"].contains(t) else { throw v.error("terminator must be \"\\n\", \"\\r\\n\" or \"\\r\"") }
                c.terminator = t
            default: c.timeoutMilliseconds = Int(try v.int(in: 10...60_000))
            }
        }
        return c
    }

    static func parseAction(_ name: String, _ node: ConfigNode) throws(ConfigError) -> Action {
        var action = Action(name: name, risk: .observe, parameters: [:], send: [], maximumOnMilliseconds: nil, location: node.location)
        for (k, v) in try node.mapping(allowed: ["risk", "parameters", "send", "max-on-ms"], required: ["risk", "send"]) {
            switch k {
            case "risk":
                let text = try v.string()
                guard let risk = Risk(rawValue: text) else {
                    throw v.error("unknown risk class \"\(text)\"", hint: "use one of: \(Risk.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                action.risk = risk
            case "parameters":
                for (pname, body) in try v.namedEntries(what: "parameter") {
                    var p = Parameter(minimum: 0, maximum: 0, integer: true)
                    for (pk, pv) in try body.mapping(allowed: ["min", "max", "integer"], required: ["min", "max"]) {
                        switch pk {
                        case "min": p.minimum = try pv.number()
                        case "max": p.maximum = try pv.number()
                        default: p.integer = try pv.bool()
                        }
                    }
                    guard p.minimum <= p.maximum else { throw body.error("min \(format(p.minimum)) is above max \(format(p.maximum))") }
                    action.parameters[pname] = p
                }
            case "send": action.send = try v.strings()
            default: action.maximumOnMilliseconds = Int(try v.int(in: 1...86_400_000))
            }
        }
        let template = action.send.joined(separator: "\n")
        for p in action.parameters.keys where !template.contains("{\(p)}") {
            throw node.error("parameter \(p) is declared but not used in send", hint: "use {\(p)} in a line or remove it")
        }
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{") {
            guard let close = rest[open...].firstIndex(of: "}") else { throw node.error("unclosed { in send") }
            let used = String(rest[rest.index(after: open)..<close])
            guard action.parameters[used] != nil else { throw node.error("send uses {\(used)}, which is not a declared parameter") }
            rest = rest[rest.index(after: close)...]
        }
        if action.risk == .irreversiblePhysical && action.maximumOnMilliseconds == nil && !name.hasSuffix(".off") && !name.hasSuffix(".release") {
            throw node.error("an irreversible physical action needs max-on-ms", hint: "how long may what it switches on stay on?")
        }
        return action
    }
}

extension ConfigNode {
    func number() throws(ConfigError) -> Double {
        let text = try string()
        guard let v = Double(text), v.isFinite else { throw error("\"\(text)\" is not a number") }
        return v
    }
    /// Action names are `thing.verb` (letters, digits, - and _ on each side).
    func namedActions() throws(ConfigError) -> [(name: String, value: ConfigNode)] {
        var out: [(String, ConfigNode)] = []
        for (k, v) in try mappingPairs() {
            let parts = k.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" } }) else {
                throw v.error("action name \"\(k)\" must read thing.verb, such as relay.energise")
            }
            out.append((k, v))
        }
        return out
    }
}
