import Foundation
import Guard
import LoopCore
import StateGraph
import WorldOSTesting
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

    func testTwoPersonRule_needsTwoDifferentPeople() throws {
        let text = "version: 1\ncontexts:\n  op:\n    allow:\n      - op: act\n        action: [relay.*]\n"
        let id = identity
        let g = PolicyGuard(policy: try Policy.parse(text, file: "p.yaml"), audit: try AuditLog(path: directory + "/audit.jsonl"), mode: .real,
                            risk: { _, _ in "irreversible-physical" }, identity: { _ in id }, approvals: store, approvers: { _ in 2 })
        guard case .needsApproval(let request, let reason) = g.evaluate(energise(), context: "op", held: []) else { return XCTFail() }
        XCTAssertTrue(reason.hasSuffix("is irreversible-physical, and needs 2 different people to approve it"), reason)
        let first = try store.approve(request, by: "alice")
        XCTAssertEqual(first.state, .pending)
        XCTAssertEqual(first.approvedBy, ["alice"])
        XCTAssertThrowsError(try store.approve(request, by: "alice")) {
            XCTAssertEqual("\($0)", "alice has already approved request \(request); it needs 2 different people")
        }
        guard case .needsApproval(request, let waiting) = g.evaluate(energise(), context: "op", held: []) else { return XCTFail("one approval is not enough") }
        XCTAssertTrue(waiting.hasSuffix("(1 so far)"), waiting)
        XCTAssertEqual(try store.approve(request, by: "bob").state, .approved)
        XCTAssertEqual(g.evaluate(energise(), context: "op", held: []), .allow(rule: "approval \(request) by alice and bob"))
        XCTAssertFalse(g.evaluate(energise(), context: "op", held: []).isAllowed, "and still once")
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
    /// Over random sequences of requests, approvals, rejections, replays, forged ids, identity
    /// swaps behind the same path and attempts on the run folder: an irreversible action is
    /// allowed only on an approval this test granted for exactly that binding and has not seen
    /// used, and the audit chain verifies after every sequence.
    func testRandomSequences_neverRunAnIrreversibleActionWithoutAMatchingApproval() throws {
        final class Bench: @unchecked Sendable { var serial = "SIM-1" }
        for seed in UInt64(1)...12 {
            var rng = SeededRandom(seed: seed)
            let run = directory + "/run-\(seed)", bench = Bench()
            let store = try ApprovalStore(directory: run + "/approvals", lifetime: 60)
            let text = "version: 1\ncontexts:\n  op:\n    allow:\n      - op: act\n        action: [relay.*]\n      - op: open\n        path: /**\n"
            var g = PolicyGuard(policy: try Policy.parse(text, file: "p.yaml"), audit: try AuditLog(path: run + "/audit.jsonl"), mode: .real,
                                risk: { _, action in action == "relay.energise" ? "irreversible-physical" : "reversible" },
                                identity: { device in device == "bench-bridge" ? ("bench-bridge:\(bench.serial)", "/dev/pts/3") : nil },
                                approvals: store, protectedPaths: [run])
            var granted: [String: ApprovalBinding] = [:]   // approved by this test, not yet seen used
            var spent: Set<String> = []
            var ran = 0
            for step in 0..<120 {
                let at = Instant(nanoseconds: UInt64(step))
                let why = "seed \(seed) step \(step)"
                switch rng.next() % 7 {
                case 0, 1:   // a context asks for an action, irreversible or not, maybe from a context with no policy
                    let name = rng.next() % 3 == 0 ? "other" : "op", relay = Int(rng.next() % 2)
                    let action = rng.next() % 4 == 0 ? "relay.release" : "relay.energise"
                    let call = ResolvedCall(.act, ["device": .string("bench-bridge"), "action": .string(action), "params": .string("relay=\(relay)")])
                    let node = Node(id: .context(name), kind: .executionContext, partition: .context(name))
                    let decision = g.decide(call, context: node, held: [], at: at)
                    guard decision.isAllowed else { continue }
                    if action == "relay.energise" {
                        let binding = ApprovalBinding(context: name, action: action, device: "bench-bridge:\(bench.serial)", path: "/dev/pts/3",
                                                      params: ["relay": "\(relay)"])
                        guard case .allow(let rule) = decision, let id = rule.split(separator: " ").dropFirst().first.map(String.init),
                              granted[id] == binding else {
                            return XCTFail("\(why): \(call) was allowed (\(decision)) without a matching unused approval; granted \(granted)")
                        }
                        granted[id] = nil
                        spent.insert(id)
                        ran += 1
                    }
                    g.recordOutcome(call, context: name, result: .value(0), at: at)
                case 2:   // a person approves a pending request
                    guard let request = store.pending().randomElement(using: &rng) else { continue }
                    granted[request.id] = try store.approve(request.id, by: "alice").binding
                case 3:   // a person rejects one
                    guard let request = store.pending().randomElement(using: &rng) else { continue }
                    _ = try store.reject(request.id, by: "bob")
                case 4:   // replaying a used approval, or approving an id nobody issued
                    let id = spent.randomElement(using: &rng) ?? String(format: "%016llx", rng.next())
                    XCTAssertThrowsError(try store.approve(id, by: "mallory"), why)
                case 5:   // another bench appears behind the same path
                    bench.serial = bench.serial == "SIM-1" ? "SIM-2" : "SIM-1"
                default:  // a context tries to write an approval into the run folder
                    let forged = ResolvedCall(.open, ["path": .string("\(run)/approvals/\(String(format: "%016llx", rng.next())).json"),
                                                      "mode": .string("create")])
                    let node = Node(id: .context("op"), kind: .executionContext, partition: .context("op"))
                    XCTAssertEqual(g.decide(forged, context: node, held: [], at: at).rule, "protected", why)
                }
            }
            XCTAssertNoThrow(try AuditLog.verify(path: run + "/audit.jsonl").get(), "seed \(seed)")
            XCTAssertGreaterThan(ran, 0, "seed \(seed): the sequence should also exercise the approved path")
        }
    }
}

/// Approvals are minted by the supervisor from answers whose owner is the person, recorded in the
/// audit chain, and found there again after a restart.
final class ApprovalMintingTests: XCTestCase {
    var directory = ""
    override func setUpWithError() throws { directory = try temporaryFolder("minting") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    let binding = ApprovalBinding(context: "op", action: "relay.energise", device: "bench-bridge:SIM-1", path: "/dev/pts/3", params: ["relay": "0"])

    func testTwoOperatingSystemUsers_areTwoPeople_andEachApprovalIsAudited() throws {
        guard getuid() == 0 else { throw XCTSkip("NEEDS ROOT: an answer owned by another user can only be made by root") }
        let audit = try AuditLog(path: directory + "/audit.jsonl")
        let store = try ApprovalStore(directory: directory + "/approvals", audit: audit)
        let id = try store.request(binding, approvers: 2).id
        try ApprovalStore.answer(id, approve: true, label: "first", directory: store.directory)
        store.collectAnswers()
        XCTAssertEqual(store.pending().first?.approvedBy, ["root"])
        let answer = try ApprovalStore.answer(id, approve: true, label: "second", directory: store.directory)
        XCTAssertEqual(answer.id, id)
        // The second answer as left by user nobody.
        for name in try FileManager.default.contentsOfDirectory(atPath: store.answersDirectory) {
            XCTAssertEqual(chown(store.answersDirectory + "/" + name, 65534, 65534), 0)
        }
        let used = try XCTUnwrap(try store.consume(binding))
        XCTAssertEqual(used.decidedBy, "root and nobody")
        let records = AuditLog.records(path: audit.path).filter { $0.event == "approval" }
        XCTAssertEqual(records.map(\.reason), ["by root (uid 0, cli) labelled \"first\"", "by nobody (uid 65534, cli) labelled \"second\""])
        XCTAssertEqual(records.last?.result?.hasSuffix("approvals=2/2"), true)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: store.answersDirectory), [], "answers are taken")
    }

    func testAMintedApproval_survivesARestart_onceOnly_andAPendingRequestDoesNot() throws {
        let audit = try AuditLog(path: directory + "/audit.jsonl")
        var store = try ApprovalStore(directory: directory + "/approvals", audit: audit)
        let approved = try store.request(binding).id
        _ = try store.approve(approved, by: "alice")
        let other = ApprovalBinding(context: "op", action: "relay.energise", device: "bench-bridge:SIM-1", path: "/dev/pts/3", params: ["relay": "1"])
        let waiting = try store.request(other).id
        store = try ApprovalStore(directory: directory + "/approvals", audit: audit)   // the supervisor restarts
        XCTAssertEqual(ApprovalStore.read(directory: store.directory).first { $0.id == waiting }?.state, .abandoned)
        XCTAssertThrowsError(try ApprovalStore.answer(waiting, approve: true, label: nil, directory: store.directory)) {
            XCTAssertTrue("\($0)".contains("before the supervisor restarted"), "\($0)")
        }
        XCTAssertEqual(try store.consume(binding)?.id, approved, "minted before the restart, as the audit log records")
        // The decision that used it is what the log records; a later start sees it used.
        try audit.append(AuditRecord(time: 1, policy: "", event: "decision", mode: "real", context: "op", call: "act", decision: "allow",
                                     rule: "approval \(approved) by alice"))
        store = try ApprovalStore(directory: directory + "/approvals", audit: audit)
        XCTAssertNil(try store.consume(binding))
    }
}

func temporaryFolder(_ label: String) throws -> String {
    let path = NSTemporaryDirectory() + "worldos-\(label)-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
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
