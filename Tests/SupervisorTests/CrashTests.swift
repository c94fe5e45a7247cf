import DevicePorts
import Foundation
import Glibc
import Guard
import HostAdapter
import Supervisor
import WorldOSTesting
import XCTest

/// kill -9 during an approved action, then restart: nothing repeats, the chain verifies, an
/// intent without an outcome is reported, and the bench is safe (the firmware's watchdog).
final class CrashTests: XCTestCase {
    func testKillDuringAnApprovedAction_restart_noRepeat_chainVerifies_outputsSafe() throws {
        let sim = try BenchSimulator()
        let out = try temporaryDirectory("crash")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let child = try startWorldOS(["run", "--out", out, "--device", sim.pty, "--interval-ms", "50"])
        defer { if child.isRunning { kill(child.processIdentifier, SIGKILL) } }

        var request: String?
        XCTAssertTrue(waitFor(60) {
            // The energise's (the heater's controller asks for its setpoint too).
            request = ApprovalStore.read(directory: out + "/approvals").first { $0.state == .pending && $0.binding.action == "relay.energise" }?.id
            return request != nil
        }, "the energise asked for an approval")
        let id = try XCTUnwrap(request)
        try ApprovalStore.approveAsCLI(id, out: out)
        // Kill it the moment the approved decision (the write-ahead intent) is on disk.
        XCTAssertTrue(waitFor(30) { (try? String(contentsOfFile: out + "/audit.jsonl", encoding: .utf8))?.contains("approval \(id) by ") == true })
        // The bench's supervised program (context sampler) is the supervisor's child.
        let program = getuid() == 0 ? childProcesses(of: child.processIdentifier).first { cmdline($0).hasPrefix("/bin/sh\0-c\0while") } : nil
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        XCTAssertEqual(child.terminationReason, .uncaughtSignal)
        if let program {
            XCTAssertTrue(waitFor(5) { kill(program, 0) != 0 }, "the supervised program died with its supervisor")
        } else {
            print("CrashTests: FAIL LOUDLY: no supervised program ran (needs root), so its death with the supervisor is not checked")
        }

        // The firmware sees the host go quiet: after its 3 s watchdog everything is safe.
        usleep(3_500_000)
        let bench = SCPIInstrument(port: try SerialPort(path: sim.pty))
        bench.port.flush()
        XCTAssertEqual(try bench.query("RELAY? 0"), "0", "safe without the supervisor")

        var options = SupervisorOptions()
        options.out = out
        options.devices = [sim.pty]
        options.bench = repositoryRoot.appendingPathComponent("Devices/benches/default.yaml").path
        options.policy = repositoryRoot.appendingPathComponent("Policies/default.yaml").path
        options.profiles = repositoryRoot.appendingPathComponent("Devices").path
        var session = try Supervisor.start(options)
        let audit = try String(contentsOfFile: out + "/audit.jsonl", encoding: .utf8)
        let outcomes = audit.split(separator: "\n").filter { $0.contains(#""event":"outcome""#) && $0.contains("relay.energise") }
        XCTAssertLessThanOrEqual(outcomes.count, 1, "an approval ran at most once")
        if outcomes.isEmpty {
            XCTAssertTrue(session.notes.contains { $0.hasPrefix("OUTCOME UNKNOWN:") && $0.contains("approval \(id)") }, "\(session.notes)")
        }
        XCTAssertNoThrow(try AuditLog.verify(path: out + "/audit.jsonl").get(), "the chain verifies after kill -9")
        XCTAssertEqual(ApprovalStore.read(directory: out + "/approvals").first { $0.id == id }?.state, .used)
        // Running on, the energise asks for a new approval: the old one is never replayed.
        var asked = false
        for _ in 0..<40 where !asked {
            let r = try session.loop.step()
            if r.context == "bench-operator", case .needsApproval(let next, _)? = r.outcome?.steps.first?.decision {
                XCTAssertNotEqual(next, id)
                asked = true
            }
            usleep(100_000)
        }
        XCTAssertTrue(asked)
        _ = session.returnToSafeState()
    }
}

/// The processes whose parent is `pid`.
func childProcesses(of pid: Int32) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap(Int32.init).filter { candidate in
        let stat = (try? FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/\(candidate)/stat")).readToEnd()).map { String(decoding: $0, as: UTF8.self) } ?? ""
        // pid (comm) state ppid ...: the comm may hold spaces, so read after its last ')'.
        guard let close = stat.lastIndex(of: ")") else { return false }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 && Int32(fields[1]) == pid
    }
}

func cmdline(_ pid: Int32) -> String {
    (try? FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/\(pid)/cmdline")).readToEnd()).map { String(decoding: $0, as: UTF8.self) } ?? ""
}
