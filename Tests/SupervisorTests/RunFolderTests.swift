import Foundation
import Glibc
import WorldOSTesting
import XCTest

/// One writer per run folder; a clear error for a device that is not there; and on the way out,
/// each instrument says whether its safe state was reached.
final class RunFolderTests: XCTestCase {
    func testASecondSupervisorOnARunFolder_isRefusedNamingTheHolder_andReadersWorkBesideIt() throws {
        let out = try temporaryDirectory("lock")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let first = try startWorldOS(["run", "--out", out, "--interval-ms", "200"])
        defer { if first.isRunning { kill(first.processIdentifier, SIGINT); first.waitUntilExit() } }
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && !FileManager.default.fileExists(atPath: out + "/trace.jsonl") { usleep(50_000) }
        let second = try runWorldOS(["step", "1", "--out", out])
        XCTAssertEqual(second.status, 1, second.stdout + second.stderr)
        XCTAssertTrue(second.stderr.contains("is in use by another supervisor (pid \(first.processIdentifier))"), second.stderr)
        let verify = try runWorldOS(["audit", "verify", "--out", out])
        XCTAssertEqual(verify.status, 0, "a reader needs no lock: \(verify.stderr)")
        kill(first.processIdentifier, SIGINT)
        first.waitUntilExit()
        XCTAssertEqual(try runWorldOS(["step", "1", "--out", out]).status, 0, "free again once the first has stopped")
        XCTAssertNoThrow(try runWorldOS(["audit", "verify", "--out", out]).status == 0 ? () : XCTFail("one chain"))
    }

    func testADeviceThatDoesNotExist_stopsTheStart_sayingSo() throws {
        let out = try temporaryDirectory("nodevice")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let result = try runWorldOS(["run", "--steps", "1", "--out", out, "--device", "/dev/ttyNOPE"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("--device /dev/ttyNOPE: no such device"), result.stderr)
    }

    func testOnTheWayOut_eachInstrumentSaysWhetherItsSafeStateWasReached() throws {
        let out = try temporaryDirectory("safe")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let sim = try BenchSimulator(arguments: ["--serial", "SIM-SAFE"])
        let result = try runWorldOS(["run", "--steps", "2", "--interval-ms", "10", "--out", out, "--device", sim.pty])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("bench-bridge:SIM-SAFE on \(sim.pty): safe state reached"), result.stdout)
        XCTAssertFalse(result.stdout.contains("instruments returned to their safe state"), "no blanket claim")
    }
}
