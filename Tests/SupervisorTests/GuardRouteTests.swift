import Foundation
import Glibc
import LoopCore
import StateGraph
import Supervisor
import Traces
import WorldOSTesting
import XCTest

/// The red-team cases as they were reproduced against an assembled supervisor: the loop's own
/// micro-steps reaching a denied file by another name, and a raw write to the port of an
/// instrument a profile owns.
final class GuardRouteTests: XCTestCase {
    var directory: String!
    override func setUpWithError() throws { directory = try temporaryDirectory("routes") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    func options(bench: String, policy: String? = nil, devices: [String] = []) throws -> SupervisorOptions {
        try write(bench, to: directory + "/bench.yaml")
        var o = SupervisorOptions()
        o.bench = directory + "/bench.yaml"
        if let policy {
            try write(policy, to: directory + "/policy.yaml")
            o.policy = directory + "/policy.yaml"
        } else {
            o.policy = repositoryRoot.appendingPathComponent("Policies/default.yaml").path
        }
        o.profiles = repositoryRoot.appendingPathComponent("Devices").path
        o.devices = devices
        o.out = directory + "/out"
        o.redaction = directory + "/none.yaml"
        return o
    }

    /// The shipped policy allows `open /etc/*` to maintenance and denies /etc/shadow: a symlink
    /// in /etc to the shadow file is the shadow file.
    func testDefaultPolicy_aSymlinkInEtcToShadow_isDeniedByTheShadowRule_andNothingIsRead() throws {
        let link = "/etc/wos-link-\(getpid())"
        guard symlink("/etc/shadow", link) == 0 else { throw XCTSkip("CANNOT CREATE \(link) (not root?): errno \(errno)") }
        defer { unlink(link) }
        let o = try options(bench: """
        version: 1
        contexts:
          maintenance:
            interval-ms: 0
            tasks:
              read-link:
                - open: { path: \(link) }
                - read: { fd: $0, count: 64 }
        """)
        var loop = try Supervisor.make(o, clock: ManualClock())
        let report = try loop.step()
        let open = try XCTUnwrap(report.outcome?.steps.first)
        XCTAssertEqual(open.status, .denied)
        XCTAssertEqual(open.call?.path, "/etc/shadow", "decided on the object's name")
        XCTAssertEqual(open.call?.asWritten, link)
        XCTAssertTrue(open.decision?.rule.hasPrefix(o.policy + ":") == true, "\(String(describing: open.decision))")
        XCTAssertTrue(open.decision?.reason?.contains("credentials are never read") == true)
        let shadow = try String(contentsOfFile: "/etc/shadow", encoding: .utf8)
        let firstLine = String(shadow.prefix { $0 != "\n" })
        let trace = try String(contentsOfFile: o.folder.trace, encoding: .utf8)
        XCTAssertFalse(trace.contains(firstLine), "the shadow file's bytes never reach the trace")
    }

    /// A context whose policy allows opening any pty cannot write the bench bridge's port: the
    /// profile owns it, and its actions (with their risk classes) are the only door.
    func testARawWriteToAnOwnedInstrumentPort_isDenied_andTheRelayStaysOff() throws {
        let sim = try BenchSimulator(arguments: ["--serial", "SIM-RAW"])
        let o = try options(bench: """
        version: 1
        contexts:
          rogue:
            interval-ms: 0
            tasks:
              raw-relay:
                - open: { path: \(sim.pty), mode: readwrite }
                - write: { fd: $0, data: "RELAY 0,ON\\n" }
        """, policy: """
        version: 1
        contexts:
          rogue:
            allow:
              - op: open
                path: /dev/pts/*
              - op: [write, read, close]
        """, devices: [sim.pty])
        var session = try Supervisor.start(o, clock: ManualClock())
        XCTAssertEqual(session.instruments.map(\.identity.serial), ["SIM-RAW"])
        let report = try session.loop.step()
        let open = try XCTUnwrap(report.outcome?.steps.first)
        XCTAssertEqual(open.status, .denied)
        XCTAssertEqual(open.decision?.rule, "device-owned")
        XCTAssertTrue(open.decision?.reason?.contains("bench-bridge:SIM-RAW") == true, "\(String(describing: open.decision))")
        XCTAssertEqual(try session.instruments[0].scpi.query("RELAY? 0"), "0", "the relay was never energised")
    }
}

extension GuardRouteTests {
    /// A policy may let a context read a credential; the shipped kind of redaction rule keeps
    /// its bytes out of every record (the JSON-lines trace and the MCAP file), its length kept.
    func testBytesReadFromACredentialPath_areUsed_butNeverRecorded() throws {
        try "key-material-7f3a\n".write(toFile: directory + "/id_ed25519", atomically: false, encoding: .utf8)
        var o = try options(bench: """
        version: 1
        contexts:
          keys:
            interval-ms: 0
            tasks:
              read-key:
                - open: { path: \(directory!)/id_ed25519 }
                - read: { fd: $0, count: 64 }
                - close: { fd: $0 }
        """, policy: """
        version: 1
        contexts:
          keys:
            allow:
              - op: open
                path: \(directory!)/id_ed25519
                mode: read
              - op: [read, close]
        """)
        try write("version: 1\nreads-of:\n  - \(directory!)/id_*\n", to: directory + "/redaction.yaml")
        o.redaction = directory + "/redaction.yaml"
        var session = try Supervisor.start(o, clock: ManualClock())
        let report = try session.loop.step()
        XCTAssertEqual(report.outcome?.steps[1].result?.data.map { String(decoding: $0, as: UTF8.self) }, "key-material-7f3a\n", "the loop had the bytes")
        try session.loop.recorder.finish()
        let trace = try String(contentsOfFile: o.folder.trace, encoding: .utf8)
        XCTAssertFalse(trace.contains("key-material") || trace.contains(Data("key-material".utf8).base64EncodedString().prefix(12)), "not in the trace")
        XCTAssertTrue(trace.contains("\"redacted-bytes\":18"), "its length is")
        let recorded = try Replay.transitions(from: o.out + "/trace-0001.mcap")
        XCTAssertEqual(recorded.first?.outcome?.steps[1].result?.fields["redacted-bytes"], 18, "the MCAP file's transition, decompressed")
        XCTAssertNil(recorded.first?.outcome?.steps[1].result?.data)
    }
}
