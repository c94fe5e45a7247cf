import Foundation
import Glibc
import Guard
import HostAdapter
import Supervisor
import XCTest

/// The panel as an operator uses it, in the rig: `worldos run` scans out on bochs-drm and takes
/// touches from QEMU's virtio tablet through the guest kernel's evdev. Two taps, placed from the
/// semantics tree the run records, approve the pending energise, which then runs once, audited
/// from the panel; pulling the tablet out and switching the connector off and on are
/// transitions the run rides through; the screen is given back at the end.
final class PanelRigTests: XCTestCase {
    override func setUpWithError() throws { try Rig.require(.display) }

    /// The widgets on screen now, as the trace's semantics deltas leave them.
    func semantics(_ trace: String) -> [[String: Any]] {
        var shown: [String: [String: Any]] = [:]
        let text = (try? String(contentsOfFile: trace, encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") {
            guard let step = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
            func key(_ s: [String: Any]) -> String { "\(s["role"] ?? "")|\(s["label"] ?? "")|\(s["x"] ?? "")|\(s["y"] ?? "")|\(s["value"] ?? "")" }
            for s in step["semanticsRemoved"] as? [[String: Any]] ?? [] { shown[key(s)] = nil }
            for s in step["semanticsAdded"] as? [[String: Any]] ?? [] { shown[key(s)] = s }
        }
        return Array(shown.values)
    }

    func button(_ label: String, in trace: String) -> [String: Any]? {
        semantics(trace).first { $0["role"] as? String == "button" && $0["label"] as? String == label }
    }

    /// Tap the middle of a widget, in fractions of the 1280×800 screen.
    func tap(_ widget: [String: Any]) throws {
        let (x, y, w, h) = (widget["x"] as! Int, widget["y"] as! Int, widget["width"] as! Int, widget["height"] as! Int)
        try Rig.request("touch \((Double(x) + Double(w) / 2) / 1279) \((Double(y) + Double(h) / 2) / 799)")
    }

    func testTwoTapsApproveTheEnergise_itRunsOnce_auditedFromThePanel_andUnplugsAreTransitions() throws {
        let out = NSTemporaryDirectory() + "rig-panel-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: out) }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let (log, run) = (out + "/run.log", out + "/run")
        let pid = try Rig.spawnWorldOS(["run", "--display", "/dev/dri/card0", "--panel-operator", "Alice", "--interval-ms", "200", "--out", run], log: log)
        var stopped = false
        defer { if !stopped { kill(pid, SIGKILL); _ = Rig.wait(pid, seconds: 10) } }
        func output() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        let trace = run + "/trace.jsonl"

        XCTAssertTrue(Rig.eventually(90) { output().contains("QEMU Virtio Tablet") }, "the tablet is taken as the panel's input:\n\(output())")
        XCTAssertTrue(Rig.eventually(90) { button("APPROVE", in: trace) != nil }, "the energise waits for approval on the panel:\n\(output())")
        let approve = try XCTUnwrap(button("APPROVE", in: trace))
        XCTAssertNil(approve["disabled"], "the seat has an operator: APPROVE is enabled")
        try tap(approve)
        XCTAssertTrue(Rig.eventually(30) { button("CONFIRM APPROVE", in: trace) != nil }, "one tap arms it:\n\(output())")
        XCTAssertTrue(ApprovalStore.read(directory: run + "/approvals").allSatisfy { $0.state == .pending }, "and approves nothing")
        try tap(try XCTUnwrap(button("CONFIRM APPROVE", in: trace)))

        let audit = run + "/audit.jsonl"
        XCTAssertTrue(Rig.eventually(30) { AuditLog.records(path: audit).contains { $0.event == "approval" && $0.reason == "by alice (panel)" } },
                      "the approval is audited as alice's, from the panel:\n\(output())")
        let id = try XCTUnwrap(ApprovalStore.read(directory: run + "/approvals").first { $0.decidedBy == "alice" }?.id)
        func ran() -> Int {
            AuditLog.records(path: audit).filter { $0.event == "decision" && $0.rule == "approval \(id) by alice" }.count
        }
        XCTAssertTrue(Rig.eventually(30) { ran() >= 1 }, "the energise runs on the approval:\n\(output())")

        // The tablet pulled out: the run goes on without it.
        try Rig.request("usb-unplug touch0")
        XCTAssertTrue(Rig.eventually(30) { output().contains("was unplugged") }, "unplugging the tablet is said:\n\(output())")
        let steps = output().components(separatedBy: "\n").filter { $0.hasPrefix("step ") }.count
        XCTAssertTrue(Rig.eventually(30) { output().components(separatedBy: "\n").filter { $0.hasPrefix("step ") }.count > steps + 2 },
                      "and the loop keeps stepping:\n\(output())")

        // The connector switched off (a hotplug): the panel goes on as the PNG; on again: back on screen.
        let status = "/sys/class/drm/card0-Virtual-1/status"
        try "off".write(toFile: status, atomically: false, encoding: .utf8)
        XCTAssertTrue(Rig.eventually(30) { output().contains("lost:") }, "a disconnected screen is let go:\n\(output())")
        try "detect".write(toFile: status, atomically: false, encoding: .utf8)
        XCTAssertTrue(Rig.eventually(30) { output().components(separatedBy: "display: /dev/dri/card0 Virtual-1").count > 2 },
                      "connected again, the screen is driven again:\n\(output())")

        kill(pid, SIGTERM)
        let exit = Rig.wait(pid, seconds: 60)
        stopped = true
        XCTAssertEqual(exit, 0, output())
        XCTAssertEqual(ran(), 1, "one approval, one run")
        XCTAssertNoThrow(try AuditLog.verify(path: audit).get(), "the audit chain holds")
    }

    /// The doors around the seat, attacked: a context whose policy allows /dev/input/* and
    /// /dev/uinput is refused the tablet (it would read or grab the operator's input) and uinput
    /// (it would make a device that taps for the operator), and a device a program made through
    /// uinput is not taken as the panel's input unless named.
    func testTheSeatsDevices_areOwned_andAForgedTouchscreenIsNotTaken() throws {
        let out = NSTemporaryDirectory() + "rig-seat-owned-\(getpid())"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: out) }
        let tablet = try XCTUnwrap(EvdevInput.devices().first { (try? EvdevInput(path: $0))?.info.name == "QEMU Virtio Tablet" })
        try """
        version: 1
        contexts:
          rogue:
            interval-ms: 0
            tasks:
              read-keys:
                - open: { path: \(tablet), mode: read }
              forge:
                - open: { path: /dev/uinput, mode: readwrite }
        """.write(toFile: out + "/bench.yaml", atomically: false, encoding: .utf8)
        try "version: 1\ncontexts:\n  rogue:\n    allow:\n      - op: open\n        path: /dev/input/*\n      - op: open\n        path: /dev/uinput\n      - op: close\n"
            .write(toFile: out + "/policy.yaml", atomically: false, encoding: .utf8)
        var options = SupervisorOptions()
        (options.out, options.bench, options.policy) = (out + "/run", out + "/bench.yaml", out + "/policy.yaml")
        (options.profiles, options.redaction, options.keys) = (out + "/no-profiles", out + "/no-redaction.yaml", out + "/keys")
        (options.panelInput, options.panelOperator) = ("auto", "alice")
        var session = try Supervisor.start(options)
        for _ in 0..<2 {
            let step = try XCTUnwrap(try session.loop.step().outcome?.steps.first)
            XCTAssertEqual(step.status, .denied, "\(step)")
            XCTAssertEqual(step.decision?.rule, "device-owned", "\(String(describing: step.decision))")
        }
        try session.loop.finish()

        // A touchscreen made through uinput (as that context would have).
        let script = Rig.root.appendingPathComponent("Tests/Rig/forged-touch.py").path
        var pipe: [Int32] = [0, 0]
        XCTAssertEqual(Glibc.pipe(&pipe), 0)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipe[0], 0)
        let command: [String] = ["/usr/bin/python3", script]
        let argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        XCTAssertEqual(posix_spawn(&pid, "/usr/bin/python3", &actions, nil, argv, environ), 0)
        close(pipe[0])
        defer { close(pipe[1]); _ = Rig.wait(pid, seconds: 10) }
        var forged: String?
        XCTAssertTrue(Rig.eventually(20) {
            forged = EvdevInput.devices().first { (try? EvdevInput(path: $0, allowVirtual: true))?.info.name == "WorldOS forged touch" }
            return forged != nil
        }, "the forged touchscreen appeared")
        let path = try XCTUnwrap(forged)
        XCTAssertTrue(EvdevInput.isVirtual(path))
        XCTAssertFalse(EvdevInput.isVirtual(tablet), "the tablet QEMU attached is not virtual")
        XCTAssertThrowsError(try EvdevInput(path: path)) { error in
            XCTAssertTrue("\(error)".contains("virtual input device"), "\(error)")
        }
        XCTAssertEqual(try EvdevInput(path: path, allowVirtual: true).info.capabilities, ["touch"], "named, it is taken")
    }
}
