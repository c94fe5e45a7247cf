import Attached
import Benches
import DataEngine
import Devices
import Foundation
import Guard
import HostAdapter

/// What a supervisor runs with, loaded and checked before anything is written: the device
/// profiles and the devices they found on this machine, the bench, the policy and the redaction
/// rules. A file that does not hold is an error naming it; what is merely absent is a note.
struct Configuration {
    var bench: Bench
    var policy: Policy
    /// The redaction rules, without their salt, which lives in the run folder (``RunRecords``);
    /// nil when there is no rules file (transitions are recorded as they are).
    var redaction: Redaction?
    var catalog: DeviceCatalog?
    var instruments: [AttachedInstrument] = []
    var gpioDevices: [AttachedGPIODevice] = []
    var usb: USBContext?
    var notes: [String] = []

    static func load(_ options: SupervisorOptions) throws -> Configuration {
        var notes: [String] = []
        var instruments: [AttachedInstrument] = []
        var gpioDevices: [AttachedGPIODevice] = []
        var catalog: DeviceCatalog?
        if FileManager.default.fileExists(atPath: options.profiles) {
            let loaded = try DeviceCatalog.load(directory: options.profiles)
            let found = DeviceDiscovery.discover(loaded, explicit: options.devices)
            instruments = found.attached
            gpioDevices = AttachedGPIODevice.discover(loaded)
            notes += found.notes
            catalog = loaded
        } else if !options.devices.isEmpty {
            throw SupervisorError(message: "no device profiles at \(options.profiles); pass --profiles DIR")
        }
        for path in options.devices where !FileManager.default.fileExists(atPath: path) {
            throw SupervisorError(message: "--device \(path): no such device; give the path of a serial port or pseudo-terminal that exists "
                                  + "(the simulator prints its own when it starts)")
        }
        let bench = try Bench.load(file: options.bench)
        // libusb starts a thread of its own; a missing USB subsystem is a note, not a failure.
        var usb: USBContext?
        do { usb = try USBContext() } catch { notes.append("USB is not observed: \(error)") }
        let policy = try Policy.load(file: options.policy)
        for context in bench.contexts where policy.contexts[context.name] == nil {
            FileHandle.standardError.write(Data("warning: \(options.policy): no policy for context \(context.name); everything it proposes will be denied\n".utf8))
        }
        var redaction: Redaction?
        if FileManager.default.fileExists(atPath: options.redaction) {
            redaction = try Redaction.load(file: options.redaction)
        } else {
            notes.append("no redaction rules at \(options.redaction): transitions are recorded as they are")
        }
        return Configuration(bench: bench, policy: policy, redaction: redaction, catalog: catalog, instruments: instruments,
                             gpioDevices: gpioDevices, usb: usb, notes: notes)
    }
}
