import Attached
import Benches
import DataEngine
import Devices
import Foundation
import Guard
import HostAdapter
import Service

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
        var bench = try Bench.load(file: options.bench)
        try fitControllers(&bench, to: catalog)
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

extension Configuration {
    /// Each controller's actuator and input against the device profiles: the action and its
    /// parameter exist, and the input is one of the profile's readings; the envelope takes the
    /// action's `max-on-ms` and the parameter's wholeness. An error names the bench's line.
    static func fitControllers(_ bench: inout Bench, to catalog: DeviceCatalog?) throws {
        for i in bench.contexts.indices {
            guard var spec = bench.contexts[i].controller else { continue }
            let e = spec.envelope
            func fail(_ what: String) -> SupervisorError {
                SupervisorError(message: "\(spec.location): controller \(spec.name): \(what)")
            }
            let profileName = String(e.device.split(separator: ":").first ?? "")
            guard let profile = catalog?.profile(named: profileName) else {
                throw fail("no device profile \(profileName) (in \(catalog.map { _ in "the profiles" } ?? "no profiles"))")
            }
            guard let action = profile.actions[e.action] else {
                throw fail("profile \(profile.name) has no action \(e.action); it has \(profile.actions.keys.sorted().joined(separator: ", "))")
            }
            guard let parameter = action.parameters[e.parameter] else {
                throw fail("\(e.action) takes no parameter \(e.parameter); it takes \(action.parameters.keys.sorted().joined(separator: ", "))")
            }
            guard parameter.minimum <= spec.outputRange.lowerBound, spec.outputRange.upperBound <= parameter.maximum else {
                throw fail("its output \(spec.outputRange) is outside \(e.action)'s \(e.parameter) range \(parameter.minimum)...\(parameter.maximum)")
            }
            let inputProfile = String(e.input.split(separator: "/").first?.split(separator: ":").first ?? "")
            let readingName = String(e.input.split(separator: "/").last ?? "")
            guard let inputOwner = catalog?.profile(named: inputProfile), let reading = inputOwner.readings.first(where: { $0.name == readingName }) else {
                throw fail("its input \(e.input) is not a reading of a device profile")
            }
            spec.envelope.maximumOn = action.maximumOnMilliseconds.map { .milliseconds($0) }
            if spec.envelope.unit.isEmpty { spec.envelope.unit = reading.unit }
            spec.wholeOutput = parameter.integer
            bench.contexts[i].controller = spec
        }
    }
}

extension Supervisor {
    /// Load every file `options` names — bench, policy, device profiles, redaction rules, API
    /// tokens — without opening a device or writing anything: what `worldos config check`
    /// reports. A line for each that holds; the first that does not is thrown, naming its line.
    public static func checkFiles(_ options: SupervisorOptions) throws -> [String] {
        var lines: [String] = []
        var bench = try Bench.load(file: options.bench)
        if FileManager.default.fileExists(atPath: options.profiles) { try Configuration.fitControllers(&bench, to: try DeviceCatalog.load(directory: options.profiles)) }
        lines.append("bench \(options.bench): \(bench.contexts.count) contexts (\(bench.contexts.map(\.name).joined(separator: ", ")))")
        let policy = try Policy.load(file: options.policy)
        lines.append("policy \(options.policy): \(policy.contexts.count) contexts, hash \(policy.contentHash.prefix(12))")
        for context in bench.contexts where policy.contexts[context.name] == nil {
            lines.append("warning: no policy for context \(context.name); everything it proposes will be denied")
        }
        if FileManager.default.fileExists(atPath: options.profiles) {
            let catalog = try DeviceCatalog.load(directory: options.profiles)
            lines.append("device profiles \(options.profiles): \(catalog.profiles.count)")
        } else {
            lines.append("device profiles: none at \(options.profiles)")
        }
        if FileManager.default.fileExists(atPath: options.redaction) {
            _ = try Redaction.load(file: options.redaction)
            lines.append("redaction rules \(options.redaction)")
        }
        if let listen = options.listen {
            let tokens = try TokenFile.load(options.tokenFile)
            lines.append("API on \(listen), \(tokens.tokens.count) tokens in \(options.tokenFile)")
        } else {
            lines.append("API: none")
        }
        lines.append("run folder \(options.out), keys \(options.keys), display \(options.display)")
        return lines
    }
}
