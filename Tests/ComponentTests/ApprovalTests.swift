import Foundation
import Guard
import LoopCore
import StateGraph
import XCTest

/// Approvals: bound to the exact action, device identity, parameters and context; single use;
/// expiring; unforgeable; and the run folder is out of every context's reach.
final class ApprovalTests: XCTestCase {
    var directory: String!
    var store: ApprovalStore!
    var identity = ("bench-bridge:SIM-1", "/dev/pts/3")

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "worldos-approvals-\(UUID().uuidString)"
        store = try ApprovalStore(directory: directory + "/approvals", lifetime: 60)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    func guardian() throws -> PolicyGuard {
        let text = "version: 1\ncontexts:\n  op:\n    allow:\n      - op: act\n        action: [relay.*]\n      - op: open\n        path: /**\n"
        let id = identity
        return PolicyGuard(policy: try Policy.parse(text, file: "p.yaml"), audit: try AuditLog(path: directory + "/audit.jsonl"), mode: .real,
                           risk: { _, action in action == "relay.energise" ? "irreversible-physical" : "reversible" },
                           identity: { device in device == "bench-bridge" ? id : nil },
                           approvals: store, protectedPaths: [directory])
    }

    func energise(_ relay: Int = 0) -> ResolvedCall {
        ResolvedCall(.act, ["device": .string("bench-bridge"), "action": .string("relay.energise"), "params": .string("relay=\(relay)")])
    }

    func request(_ d: Decision, file: StaticString = #filePath, line: UInt = #line) -> String? {
        guard case .needsApproval(let id, _) = d else { XCTFail("expected needs-approval, got \(d)", file: file, line: line); return nil }
        return id
    }

    func testIrreversibleAction_waits_runsOnceApproved_andNeverTwiceOnOneApproval() throws {
        let g = try guardian()
        let id = try XCTUnwrap(request(g.evaluate(energise(), context: "op", held: [])))
        XCTAssertEqual(request(g.evaluate(energise(), context: "op", held: [])), id, "asking again reuses the open request")
        XCTAssertEqual(store.pending().map(\.id), [id])
        _ = try store.approve(id, by: "alice")
        XCTAssertEqual(g.evaluate(energise(), context: "op", held: []), .allow(rule: "approval \(id) by alice"))
        let next = try XCTUnwrap(request(g.evaluate(energise(), context: "op", held: [])), "used up: a replay asks again")
        XCTAssertNotEqual(next, id)
        XCTAssertThrowsError(try store.approve(id, by: "alice")) { XCTAssertEqual("\($0)", "request \(id) is already used") }
    }

    func testApproval_doesNotCover_otherParameters_anotherContext_orAnotherDeviceBehindTheSamePath() throws {
        var g = try guardian()
        let id = try XCTUnwrap(request(g.evaluate(energise(0), context: "op", held: [])))
        _ = try store.approve(id, by: "alice")
        XCTAssertNotNil(request(g.evaluate(energise(1), context: "op", held: [])), "relay 1 is not relay 0")
        identity = ("bench-bridge:SIM-2", "/dev/pts/3")   // another bench now answers on the same path
        g = try guardian()
        XCTAssertNotNil(request(g.evaluate(energise(0), context: "op", held: [])), "the approval named SIM-1, not the path")
        identity = ("bench-bridge:SIM-1", "/dev/pts/3")
        g = try guardian()
        XCTAssertEqual(g.evaluate(energise(0), context: "op", held: []).isAllowed, true, "still valid for what it named")
    }

    func testExpiredRejectedAndForgedApprovals_allowNothing() throws {
        let g = try guardian()
        let id = try XCTUnwrap(request(g.evaluate(energise(), context: "op", held: [])))
        XCTAssertThrowsError(try store.approve(id, by: "mallory", now: Date().addingTimeInterval(120))) {
            XCTAssertTrue("\($0)".contains("expired"), "\($0)")
        }
        _ = try store.reject(id, by: "bob")
        XCTAssertNotNil(request(g.evaluate(energise(), context: "op", held: [])), "rejected: it asks anew")
        XCTAssertThrowsError(try store.approve("0000000000000000", by: "mallory")) { XCTAssertTrue("\($0)".contains("no approval request")) }
        XCTAssertThrowsError(try store.approve("../../etc/passwd", by: "mallory")) { XCTAssertTrue("\($0)".contains("no approval request")) }
        let pendingID: String = try XCTUnwrap(store.pending().first?.id)
        let approved = try store.approve(pendingID, by: "bob")
        XCTAssertNil(try store.consume(approved.binding, now: Date().addingTimeInterval(120)), "an approval expires too")
    }

    func testContexts_cannotTouchTheRunFolder_whereApprovalsAndTheAuditLogLive() throws {
        let g = try guardian()
        let root: String = directory
        for path in [root + "/approvals/forged.json", root + "/audit.jsonl", root] {
            let d = g.evaluate(ResolvedCall(.open, ["path": .string(path), "mode": .string("create")]), context: "op", held: [])
            guard case .deny(let rule, _) = d else { return XCTFail("\(path): \(d)") }
            XCTAssertEqual(rule, "protected", path)
        }
        XCTAssertTrue(g.evaluate(ResolvedCall(.open, ["path": .string("/etc/hostname")]), context: "op", held: []).isAllowed)
    }

    func testUnknownDeviceIdentity_isRefusedAsUncertain() throws {
        let g = try guardian()
        identity = ("", "")
        let d = g.evaluate(ResolvedCall(.act, ["device": .string("bench-bridge"), "action": .string("relay.energise")]), context: "op", held: [])
        XCTAssertTrue(d.isAllowed == false)
    }
}

final class IntentTests: XCTestCase {
    func testAnApprovedIntentWithoutOutcome_isReported_untilClosed() throws {
        let path = NSTemporaryDirectory() + "worldos-intent-\(UUID().uuidString).jsonl"
        defer { unlink(path) }
        let log = try AuditLog(path: path)
        let decision = try log.append(AuditRecord(time: 1, policy: "p", event: "decision", mode: "real", context: "op", call: "act(relay.energise)",
                                                  decision: "allow", rule: "approval 0123456789abcdef by alice"))
        try log.append(AuditRecord(time: 2, policy: "p", event: "decision", mode: "real", context: "op", call: "open(/etc/hostname)",
                                   decision: "allow", rule: "p.yaml:3"))
        XCTAssertEqual(AuditLog.unfinishedApprovedActions(path: path).map(\.seq), [decision.seq], "only approved actions count")
        try log.append(AuditRecord(time: 3, policy: "p", event: "outcome-unknown", mode: "real", context: "op", call: "act(relay.energise)",
                                   result: "unknown after a restart", decisionSeq: decision.seq))
        XCTAssertEqual(AuditLog.unfinishedApprovedActions(path: path), [], "reported once")
        XCTAssertNoThrow(try AuditLog.verify(path: path).get())
    }
}
