import Foundation
import Glibc
import Guard
import Journal
import Service
import XCTest

/// A supervised program (here root, under the real filter) trying the service's doors: the
/// control socket — whose peers are named by the kernel, so a root program would be counted as
/// root — refuses it, and the attempt is on the record.
extension SandboxTests {
    func testASupervisedProgram_cannotApproveThroughTheControlSocket() throws {
        let folder = RunFolder(dir + "/run")
        try FileManager.default.createDirectory(atPath: folder.path, withIntermediateDirectories: true)
        let audit = try AuditLog(path: folder.audit)
        let store = try ApprovalStore(directory: folder.approvals, audit: audit)
        let pending = try store.request(ApprovalBinding(context: "bench-operator", action: "relay.energise", device: "bench-bridge:SIM-0001",
                                                        path: "/dev/pts/9", params: ["relay": "0"]))
        let model = ServiceModel(folder: folder, approvals: store, audit: audit, keys: dir + "/keys", contexts: ["bench-operator"])
        let socket = try ControlSocket(model: model)
        socket.start()
        defer { socket.stop() }

        for request in [#"{"op":"approve","id":"\#(pending.id)"}"#, #"{"op":"ack"}"#, #"{"op":"act","context":"bench-operator","action":"relay.energise"}"#] {
            let lines = try run(["unix-request", folder.control, request])
            XCTAssertEqual(lines.count, 1, "\(lines)")
            XCTAssertTrue(lines.first?.hasPrefix("answer {\"ok\":false") == true, "\(lines)")
            XCTAssertTrue(lines.first?.contains("seccomp filter") == true, "\(lines)")
        }
        XCTAssertEqual(store.all().first?.state, .pending, "nothing a supervised program sent counted")
        XCTAssertTrue((try? FileManager.default.contentsOfDirectory(atPath: folder.requests))?.isEmpty ?? true, "no request was left")
        let refused = AuditLog.records(path: folder.audit).filter { $0.event == "service-refused" }
        XCTAssertEqual(refused.count, 3)
        XCTAssertTrue(refused.allSatisfy { $0.context == "control socket" && $0.reason?.contains("seccomp filter") == true }, "\(refused)")

        // The same request from this (unfiltered) process is served: it is the filter that is refused.
        XCTAssertEqual(try ControlClient.ask(folder.control, ["op": "approve", "id": pending.id])["ok"] as? Bool, true)
    }
}
