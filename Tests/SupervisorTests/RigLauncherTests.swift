import Foundation
import XCTest

/// The rig launcher refuses what it cannot do before booting anything, loudly and with the fix.
final class RigLauncherTests: XCTestCase {
    func rig(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stderr: String) {
        let process = Process()
        process.executableURL = repositoryRoot.appendingPathComponent("Tests/Rig/rig")
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }

    func testUnknownFixtureOrMissingCommand_isAUsageError() throws {
        let fixture = try rig(["--fixtures", "gpio,toaster", "--", "true"])
        XCTAssertEqual(fixture.status, 2)
        XCTAssertTrue(fixture.stderr.contains("unknown fixture \"toaster\" (choose from display,usb,gadget,gpio)"), fixture.stderr)
        let command = try rig(["--fixtures", "gpio"])
        XCTAssertEqual(command.status, 2)
        XCTAssertTrue(command.stderr.contains("no command given"), command.stderr)
    }

    func testMissingKernel_failsLoudly_beforeBooting() throws {
        let result = try rig(["--", "true"], environment: ["WORLDOS_RIG_KERNEL": "0.0.0-absent-amd64"])
        XCTAssertEqual(result.status, 3)
        XCTAssertTrue(result.stderr.contains("rig: FAILED TO START: no kernel image /boot/vmlinuz-0.0.0-absent-amd64"), result.stderr)
    }
}
