import Config

/// The service's one configuration file (`worldos run --config FILE`, checked by `worldos
/// config check FILE`): where the bench, profiles, policy and redaction rules are, the run
/// folder and keys, the display and seat, the API's address and tokens, the loop's mode and
/// interval. Strict like every configuration file here: unknown keys, wrong types and values
/// out of range are errors naming the file and line. Relative paths are relative to the
/// directory the supervisor starts in (the unit's WorkingDirectory).
///
///     version: 1
///     bench: Devices/benches/default.yaml
///     run-folder: /var/lib/worldos/run
///     listen: 127.0.0.1:8420
public struct ServiceConfig: Sendable, Equatable {
    public var file: String
    public var bench: String?
    public var profiles: String?
    public var policy: String?
    public var redaction: String?
    public var runFolder: String?
    public var keys: String?
    public var devices: [String]?
    public var mode: String?
    public var intervalMilliseconds: Int?
    public var display: String?
    public var connector: String?
    public var displayMode: String?
    public var panelOperator: String?
    public var panelInput: String?
    /// `HOST:PORT`, or `none`.
    public var listen: String?
    public var tokens: String?

    static let keys = ["version", "bench", "profiles", "policy", "redaction", "run-folder", "keys", "devices", "mode", "interval-ms",
                       "display", "connector", "display-mode", "panel-operator", "panel-input", "listen", "tokens"]

    public static func load(file: String) throws(ConfigError) -> ServiceConfig {
        try parse(ConfigNode.load(file: file))
    }

    public static func parse(_ text: String, file: String) throws(ConfigError) -> ServiceConfig {
        try parse(ConfigNode.parse(text, file: file))
    }

    static func parse(_ root: ConfigNode) throws(ConfigError) -> ServiceConfig {
        var c = ServiceConfig(file: root.file)
        for (key, value) in try root.mapping(allowed: keys, required: ["version"]) {
            switch key {
            case "version":
                guard try value.int(in: 1...1) == 1 else { throw value.error("version must be 1") }
            case "devices": c.devices = try value.strings()
            case "interval-ms": c.intervalMilliseconds = Int(try value.int(in: 10...60_000))
            case "mode":
                let mode = try value.string()
                guard ["real", "filtered", "latent"].contains(mode) else { throw value.error("mode \"\(mode)\" is not one of real, filtered, latent") }
                c.mode = mode
            case "listen":
                let listen = try value.string()
                guard listen == "none" || Self.isAddress(listen) else {
                    throw value.error("listen \"\(listen)\" is not HOST:PORT or none", hint: "such as 127.0.0.1:8420; [::1]:8420 for IPv6")
                }
                c.listen = listen
            case "display-mode":
                let mode = try value.string()
                let parts = mode.split(separator: "@")[0].split(separator: "x")
                guard parts.count == 2, parts.allSatisfy({ Int($0).map { $0 > 0 } == true }) else {
                    throw value.error("display-mode \"\(mode)\" is not WIDTHxHEIGHT or WIDTHxHEIGHT@HZ")
                }
                c.displayMode = mode
            default:
                let text = try value.string()
                guard !text.isEmpty else { throw value.error("\(key) is empty") }
                switch key {
                case "bench": c.bench = text
                case "profiles": c.profiles = text
                case "policy": c.policy = text
                case "redaction": c.redaction = text
                case "run-folder": c.runFolder = text
                case "keys": c.keys = text
                case "display": c.display = text
                case "connector": c.connector = text
                case "panel-operator": c.panelOperator = text
                case "panel-input": c.panelInput = text
                default: c.tokens = text
                }
            }
        }
        return c
    }

    static func isAddress(_ text: String) -> Bool {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return false }
        return !text[..<colon].isEmpty
    }
}
