import DevicePorts
import Devices
import Foundation
import Guard
import SystemCalls

/// The USB devices a profile claims, and every route to each: its usbfs node (raw transfers)
/// and the nodes its interfaces' drivers made (a tty, a hidraw, …). All are the profile's, as a
/// serial instrument's port is: reached through its actions, or with its risk.
public enum USBOwnership {
    /// The profile that claims `device` — a USB profile, or a serial one matched through its USB
    /// adapter (the bench bridge behind its FTDI) — if any; of several, the most specific (the
    /// bench bridge's `BENCH-*` serial before a generic adapter's bare vid:pid).
    public static func profile(for device: USBDevice, in profiles: [DeviceProfile]) -> DeviceProfile? {
        profiles.filter { profile in
            let matches: [DeviceProfile.USBMatch]
            switch profile.match {
            case .usb(let m): matches = m
            case .serial(_, let m?, _): matches = m
            default: return false
            }
            return matches.contains { $0.matches(vendorID: device.vendorID, productID: device.productID, serial: device.serial) }
        }.max { $0.match.specificity < $1.match.specificity }
    }

    /// The identity a claimed device is known by: `profile:serial`, or the bus path without one.
    public static func identity(of device: USBDevice, profile: DeviceProfile) -> String {
        "\(profile.name):\(device.serial ?? device.busPath)"
    }

    /// The device numbers of every node of a USB device, from sysfs: the `dev` file of its own
    /// directory (the usbfs node) and of everything below it (interfaces' ttys, hidraw, …),
    /// symlinks not followed.
    public static func deviceNumbers(of busPath: String, sysfs: String = "/sys") -> [UInt64] {
        let root = URL(fileURLWithPath: "\(sysfs)/bus/usb/devices/\(busPath)").resolvingSymlinksInPath().path
        var numbers: [UInt64] = []
        var directories = [(root, 0)]
        while let (directory, depth) = directories.popLast() {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { continue }
            for name in names {
                let path = directory + "/" + name
                var info = stat()
                guard lstat(path, &info) == 0 else { continue }
                if name == "dev", info.st_mode & S_IFMT == S_IFREG, let number = parse(try? String(contentsOfFile: path, encoding: .utf8)) {
                    numbers.append(number)
                } else if info.st_mode & S_IFMT == S_IFDIR, depth < 6 {
                    directories.append((path, depth + 1))
                }
            }
        }
        return numbers.sorted()
    }

    /// `MAJOR:MINOR` (a sysfs `dev` file) as a device number.
    static func parse(_ text: String?) -> UInt64? {
        guard let parts = text?.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ":"), parts.count == 2,
              let major = UInt32(parts[0]), let minor = UInt32(parts[1]) else { return nil }
        return FileObject.deviceNumber(major: major, minor: minor)
    }

    /// Every node of every claimed USB device on `usb`, by device number, as owned devices.
    public static func owners(usb: (any USBBus)?, profiles: [DeviceProfile], sysfs: String = "/sys") -> [UInt64: DeviceOwner] {
        var owned: [UInt64: DeviceOwner] = [:]
        for device in (try? usb?.devices()) ?? [] {
            guard let profile = profile(for: device, in: profiles) else { continue }
            let owner = DeviceOwner(device: identity(of: device, profile: profile),
                                    path: String(format: "/dev/bus/usb/%03d/%03d", device.bus, device.address),
                                    profile: profile.name, rawChannel: profile.rawChannel, risk: profile.highestRisk.rawValue)
            for number in deviceNumbers(of: device.busPath, sysfs: sysfs) { owned[number] = owner }
        }
        return owned
    }
}
