import Config
import Foundation

/// Every profile in Devices/ (the top-level *.yaml files), checked against each other.
public struct DeviceCatalog: Sendable {
    public var profiles: [DeviceProfile]

    public init(profiles: [DeviceProfile]) throws(ConfigError) {
        self.profiles = profiles.sorted { $0.name < $1.name }
        try checkNamesAndAmbiguity()
    }

    public static func load(directory: String) throws(ConfigError) -> DeviceCatalog {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw ConfigError(file: directory, line: 0, column: 0, message: "cannot list the profile directory", hint: "check the path")
        }
        var profiles: [DeviceProfile] = []
        for name in names.sorted() where name.hasSuffix(".yaml") {
            profiles.append(try DeviceProfile.load(file: "\(directory)/\(name)"))
        }
        return try DeviceCatalog(profiles: profiles)
    }

    public func profile(named name: String) -> DeviceProfile? { profiles.first { $0.name == name } }

    private func checkNamesAndAmbiguity() throws(ConfigError) {
        for (i, a) in profiles.enumerated() {
            for b in profiles[(i + 1)...] {
                if a.name == b.name {
                    throw ConfigError(file: b.file, line: 1, column: 1, message: "profile name \(b.name) is also used by \(a.file)", hint: "names are unique")
                }
                if DeviceCatalog.overlap(a.match, b.match) && a.match.specificity == b.match.specificity {
                    throw ConfigError(file: b.file, line: Int(b.matchLocation.split(separator: ":").last ?? "0") ?? 0, column: 1,
                                      message: "match is ambiguous with profile \(a.name) (\(a.matchLocation)): one device could match both",
                                      hint: "narrow one with a USB serial pattern, a different path, or an idn check")
                }
            }
        }
    }

    /// Whether one device could satisfy both matches.
    static func overlap(_ a: DeviceProfile.Match, _ b: DeviceProfile.Match) -> Bool {
        switch (a, b) {
        case (.gpio(let la, let linesA), .gpio(let lb, let linesB)):
            return la == lb && !Set(linesA).isDisjoint(with: linesB)
        case (.usb(let ua), .usb(let ub)):
            return usbOverlap(ua, ub)
        case (.serial(let pa, let ua, let ia), .serial(let pb, let ub, let ib)):
            if let ia, let ib, !globsOverlap(ia, ib) { return false }
            if let pa, let pb, globsOverlap(pa, pb) { return true }
            if let ua, let ub, usbOverlap(ua, ub) { return true }
            return false
        default:
            return false
        }
    }

    static func usbOverlap(_ a: [DeviceProfile.USBMatch], _ b: [DeviceProfile.USBMatch]) -> Bool {
        a.contains { x in b.contains { y in
            x.vendorID == y.vendorID && x.productID == y.productID && (x.serial == nil || y.serial == nil || globsOverlap(x.serial!, y.serial!))
        } }
    }

    /// Conservative: two globs overlap unless their literal prefixes (up to the first `*`) disagree.
    static func globsOverlap(_ a: String, _ b: String) -> Bool {
        let pa = a.prefix { $0 != "*" && $0 != "?" }, pb = b.prefix { $0 != "*" && $0 != "?" }
        return pa.hasPrefix(pb) || pb.hasPrefix(pa)
    }
}
