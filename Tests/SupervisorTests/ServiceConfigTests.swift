import Foundation
import Glibc
import Service
import XCTest

/// The service's configuration file, the unit shipped beside it, and what the supervisor tells
/// systemd over the real notify protocol.
final class ServiceConfigTests: XCTestCase {
    func testTheShippedConfiguration_checks() throws {
        let checked = try runWorldOS(["config", "check", "Policies/worldos.yaml"])
        XCTAssertEqual(checked.status, 0, checked.stderr)
        XCTAssertTrue(checked.stdout.hasPrefix("Policies/worldos.yaml: ok"), checked.stdout)
        XCTAssertTrue(checked.stdout.contains("bench Devices/benches/default.yaml: 6 contexts"), checked.stdout)
    }

    func testMalformedConfigurations_areRefusedNamingTheLine() throws {
        let cases: [(String, String)] = [
            ("bench: x\n", "document: missing required key \"version\""),
            ("version: 2\n", "version"),
            ("version: 1\nbenc: x\n", ":2:1: document: unknown key \"benc\""),
            ("version: 1\nlisten: localhost\n", ":2:9: listen: listen \"localhost\" is not HOST:PORT"),
            ("version: 1\nlisten: 127.0.0.1:70000\n", "is not HOST:PORT"),
            ("version: 1\ninterval-ms: 5\n", "interval-ms"),
            ("version: 1\nmode: dreaming\n", "mode \"dreaming\" is not one of real, filtered, latent"),
            ("version: 1\ndisplay-mode: big\n", "is not WIDTHxHEIGHT"),
            ("version: 1\nbench: ''\n", "bench is empty"),
            ("version: 1\nbench: [a\n", "worldos.yaml:"),
            ("version: 1\nbench: a\nbench: b\n", "bench"),
        ]
        for (text, says) in cases {
            XCTAssertThrowsError(try ServiceConfig.parse(text, file: "worldos.yaml"), text) { error in
                XCTAssertTrue("\(error)".contains(says), "\(text) → \(error)")
                XCTAssertTrue("\(error)".hasPrefix("worldos.yaml:"), "names the file: \(error)")
            }
        }
        let directory = try temporaryDirectory("config")
        try "version: 1\nbench: \(directory)/missing.yaml\n".write(toFile: directory + "/worldos.yaml", atomically: true, encoding: .utf8)
        let checked = try runWorldOS(["config", "check", directory + "/worldos.yaml"])
        XCTAssertEqual(checked.status, 1)
        XCTAssertTrue(checked.stderr.contains("names a file that does not hold") && checked.stderr.contains("missing.yaml"), checked.stderr)
    }

    func testARunConfiguredByFile_takesItsSettings_andAGivenOptionWins() throws {
        let directory = try temporaryDirectory("configured")
        try """
        version: 1
        run-folder: \(directory)/from-file
        interval-ms: 50
        display: none
        listen: none
        """.write(toFile: directory + "/worldos.yaml", atomically: true, encoding: .utf8)
        let ran = try runWorldOS(["run", "--config", directory + "/worldos.yaml", "--steps", "2"])
        XCTAssertEqual(ran.status, 0, ran.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory + "/from-file/audit.jsonl"), ran.stdout)
        XCTAssertFalse(ran.stdout.contains("API and web page"), "listen: none in the file")
        let overridden = try runWorldOS(["run", "--config", directory + "/worldos.yaml", "--steps", "1", "--out", directory + "/given"])
        XCTAssertEqual(overridden.status, 0, overridden.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory + "/given/audit.jsonl"))
    }

    func testTheSupervisor_tellsSystemdReady_pingsTheWatchdogFromItsLoop_andSaysStopping() throws {
        let directory = try temporaryDirectory("notify")
        let socketPath = directory + "/notify.sock"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in socketPath.utf8.enumerated() { raw[i] = b } }
        XCTAssertEqual(withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }, 0)
        var limit = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))

        let process = Process()
        process.executableURL = try worldosBinary()
        process.arguments = ["run", "--out", directory + "/out", "--steps", "8", "--interval-ms", "100", "--display", "none", "--listen", "none"]
        process.currentDirectoryURL = repositoryRoot
        process.environment = ProcessInfo.processInfo.environment.merging(["NOTIFY_SOCKET": socketPath, "WATCHDOG_USEC": "400000"]) { $1 }
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        var messages: [String] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !(messages.last?.hasPrefix("STOPPING=1") ?? false) {
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0 else { break }
            messages.append(String(decoding: buffer[..<n], as: UTF8.self))
        }
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        XCTAssertTrue(messages.first?.hasPrefix("READY=1\nSTATUS=supervising in real mode") == true, "\(messages)")
        XCTAssertTrue(messages.first?.contains("MAINPID=\(process.processIdentifier)") == true, "\(messages)")
        let pings = messages.filter { $0.hasPrefix("WATCHDOG=1") }
        XCTAssertGreaterThanOrEqual(pings.count, 2, "8 steps of 100 ms, pinged at least every 200 ms: \(messages)")
        XCTAssertTrue(pings.first?.contains("STATUS=step ") == true)
        XCTAssertTrue(messages.last?.hasPrefix("STOPPING=1") == true, "\(messages)")
    }

    func testTheUnit_isOneSystemdAccepts() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze") else {
            throw XCTSkip("FAIL LOUDLY: systemd-analyze is not installed; the unit cannot be checked here")
        }
        let directory = try temporaryDirectory("unit")
        // The unit as installed, its paths pointed at this build so the check finds them.
        let unit = try String(contentsOf: repositoryRoot.appendingPathComponent("Policies/systemd/worldos.service"), encoding: .utf8)
            .replacingOccurrences(of: "/usr/local/bin/worldos", with: try worldosBinary().path)
            .replacingOccurrences(of: "/usr/local/share/worldos", with: repositoryRoot.path)
        try unit.write(toFile: directory + "/worldos.service", atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/systemd-analyze")
        process.arguments = ["verify", "--man=no", directory + "/worldos.service"]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = err
        try process.run()
        let said = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        // In a container without systemd running, verify still parses the unit; complaints about
        // the unit's own lines are what fail it.
        let complaints = said.split(separator: "\n").filter { $0.contains("worldos.service:") }
        XCTAssertTrue(complaints.isEmpty, said)
        XCTAssertTrue(unit.contains("Type=notify") && unit.contains("WatchdogSec=") && unit.contains("Restart=on-failure"))
    }
}
