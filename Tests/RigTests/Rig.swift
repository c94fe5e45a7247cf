import Foundation
import Glibc
import XCTest

/// What a test inside the hardware rig can ask of it: the fixtures' names (from the guest's
/// /init), host-side requests over the virtio-serial control port, and the gpio-sim sysfs knobs.
enum Rig {
    static let results = "/results"
    static let environment = ProcessInfo.processInfo.environment

    enum Fixture: String { case display, usb, gadget, gpio }

    /// Skip loudly outside the rig, or when the rig was booted without the fixture a test needs:
    /// these tests need real drivers, which only the rig has.
    static func require(_ fixture: Fixture) throws {
        guard let fixtures = environment["RIG_FIXTURES"], FileManager.default.fileExists(atPath: "/dev/virtio-ports/org.worldos.rig") else {
            throw XCTSkip("RIG ONLY — SKIPPED: this test needs the emulated machine's real drivers; run it with `make rig`")
        }
        guard fixtures.split(separator: ",").contains(Substring(fixture.rawValue)) else {
            throw XCTSkip("RIG FIXTURE \(fixture.rawValue) NOT BOOTED — SKIPPED: the rig ran with --fixtures \(fixtures)")
        }
    }

    nonisolated(unsafe) private static var nextID = 0

    /// Send one request to the host helper (Tests/Rig/host.py) and return its reply's data.
    @discardableResult
    static func request(_ command: String) throws -> String {
        let fd = open("/dev/virtio-ports/org.worldos.rig", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw RigError("cannot open the rig control port: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        nextID += 1
        let id = String(nextID)
        let line = Array("\(id) \(command)\n".utf8)
        guard write(fd, line, line.count) == line.count else { throw RigError("cannot send \(command)") }
        var reply: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 30_000) == 1, read(fd, &byte, 1) == 1 else { throw RigError("no reply to \(command) within 30 s") }
            if byte == UInt8(ascii: "\n") {
                let text = String(decoding: reply, as: UTF8.self)
                reply = []
                guard text.hasPrefix(id + " ") else { continue }
                let body = text.dropFirst(id.count + 1)
                if body.hasPrefix("ok") { return String(body.dropFirst(2).drop { $0 == " " }) }
                throw RigError("host refused \(command): \(body)")
            }
            reply.append(byte)
        }
    }

    /// The repository (the project mounted in the guest at its own path).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `worldos` with the shipped bench, policy, redaction and profiles and these arguments,
    /// stdout and stderr to `log`. Spawned directly: Foundation's Process needs a socket pair the
    /// guest's kernel lacks.
    static func spawnWorldOS(_ arguments: [String], log: String) throws -> pid_t {
        let argv = [root.appendingPathComponent(".build/debug/worldos").path] + arguments + [
            "--bench", root.appendingPathComponent("Devices/benches/default.yaml").path,
            "--policy", root.appendingPathComponent("Policies/default.yaml").path,
            "--redaction", root.appendingPathComponent("Policies/redaction.yaml").path,
            "--profiles", root.appendingPathComponent("Devices").path]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, argv[0], &actions, nil, cArgs, environ)
        guard status == 0 else { throw RigError("cannot start worldos: \(String(cString: strerror(status)))") }
        return pid
    }

    /// Wait for `pid` to end (killed after `seconds`); its exit status.
    static func wait(_ pid: pid_t, seconds: Double) -> Int32 {
        var status: Int32 = 0
        let deadline = Date().addingTimeInterval(seconds)
        while waitpid(pid, &status, WNOHANG) == 0 {
            if Date() > deadline { kill(pid, SIGKILL); waitpid(pid, &status, 0); break }
            usleep(50_000)
        }
        return status
    }

    static var gpioChip: String { environment["RIG_GPIO_CHIP"] ?? "gpiochip0" }
    static var gpioDevice: String { environment["RIG_GPIO_DEVICE"] ?? "gpio-sim.0" }

    static func simulatedLine(_ offset: Int, _ attribute: String) -> String {
        "/sys/devices/platform/\(gpioDevice)/\(gpioChip)/sim_gpio\(offset)/\(attribute)"
    }

    /// Set the simulated pull of a gpio-sim line: what an input reads when nothing drives it.
    static func setPull(_ offset: Int, up: Bool) throws {
        try (up ? "pull-up" : "pull-down").write(toFile: simulatedLine(offset, "pull"), atomically: false, encoding: .utf8)
    }

    /// The level gpio-sim sees on a line (what an output drives).
    static func simulatedValue(_ offset: Int) throws -> Int {
        Int(try String(contentsOfFile: simulatedLine(offset, "value"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    /// Wait up to `seconds` for a condition on real hardware (a device to enumerate, a node to
    /// appear), checking every 50 ms.
    static func eventually(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            usleep(50_000)
        }
        return try condition()
    }
}

struct RigError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
