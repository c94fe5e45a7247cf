import DevicePorts
import Devices
import HostAdapter

/// A GPIO device recognised by its profile: a chip whose label and line names match.
public final class AttachedGPIODevice {
    public let profile: DeviceProfile
    public let chip: GPIO.Chip
    init(profile: DeviceProfile, chip: GPIO.Chip) {
        self.profile = profile
        self.chip = chip
    }
    /// Find the GPIO devices the catalog's GPIO profiles describe.
    public static func discover(_ catalog: DeviceCatalog, chips: [GPIO.Chip] = LinuxGPIO().chips()) -> [AttachedGPIODevice] {
        catalog.profiles.compactMap { profile in
            guard case .gpio(let label, let lines) = profile.match,
                  let chip = chips.first(where: { c in c.label == label && lines.allSatisfy { name in c.lines.contains { $0.name == name } } }) else { return nil }
            return AttachedGPIODevice(profile: profile, chip: chip)
        }
    }
}

/// Every attached device with a profile, as a device argument names it: its identity
/// (`profile:serial`, or `profile:gpiochipN` for GPIO), or just the profile when only one
/// device of that profile is attached.
public struct AttachedDevices: Sendable {
    public struct Entry: Sendable {
        public let id: String
        public let path: String
        public let profile: DeviceProfile
        public init(id: String, path: String, profile: DeviceProfile) {
            self.id = id
            self.path = path
            self.profile = profile
        }
    }
    public let entries: [Entry]

    public init(instruments: [AttachedInstrument], gpio: [AttachedGPIODevice]) {
        entries = instruments.map { Entry(id: "\($0.profile.name):\($0.identity.serial)", path: $0.path, profile: $0.profile) }
            + gpio.map { Entry(id: "\($0.profile.name):\($0.chip.name)", path: $0.chip.path, profile: $0.profile) }
    }

    /// Devices known otherwise than by being attached now (a replay reads them from the graph).
    public init(entries: [Entry]) { self.entries = entries }

    public func find(_ device: String) -> Entry? {
        if let exact = entries.first(where: { $0.id == device }) { return exact }
        let byProfile = entries.filter { $0.profile.name == device }
        return byProfile.count == 1 ? byProfile[0] : nil
    }

    /// The profiles of the attached devices that offer an action, each named once.
    public func offering(_ action: String) -> [String] {
        var names: [String] = []
        for entry in entries where entry.profile.actions[action] != nil && !names.contains(entry.profile.name) { names.append(entry.profile.name) }
        return names
    }
}
