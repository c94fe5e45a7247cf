import Foundation
import Guard
import LoopCore
import StateGraph
import XCTest

/// A learned model's failed prediction escalates the context's next physical action to an
/// approval, saying which prediction failed; a request for approval carries the model's dream.
final class EscalationTests: XCTestCase {
    var directory: String!
    var store: ApprovalStore!
    let op = Node(id: .context("op"), kind: .executionContext, partition: .context("op"))
    let now = Instant(nanoseconds: 1_000_000_000)

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "worldos-escalation-\(UUID().uuidString)"
        store = try ApprovalStore(directory: directory + "/approvals", lifetime: 60)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    func guardian(_ uncertainty: String = "  min-outcome-probability: 0.05\n  max-learned-surprise-bits: 20\n") throws -> PolicyGuard {
        let text = "version: 1\nuncertainty:\n\(uncertainty)contexts:\n  op:\n    allow:\n      - op: act\n        action: [relay.*, status.*]\n      - op: open\n        path: /**\n"
        return PolicyGuard(policy: try Policy.parse(text, file: "p.yaml"), audit: try AuditLog(path: directory + "/audit.jsonl"), mode: .filtered,
                           risk: { _, action in action == "relay.energise" ? "irreversible-physical" : action.hasPrefix("status") ? "observe" : "reversible" },
                           identity: { _ in ("bench-bridge:SIM-1", "/dev/pts/3") }, approvals: store)
    }

    func act(_ action: String) -> ResolvedCall {
        ResolvedCall(.act, ["device": .string("bench-bridge"), "action": .string(action), "params": .string("relay=0")])
    }
    let open = ResolvedCall(.open, ["path": .string("/etc/hostname")])

    func testUnlikelyReturn_holdsTheContextsNextPhysicalAction_untilAPersonApproves() throws {
        var g = try guardian()
        g.look(at: Posterior(step: 0, graph: Graph(), surprise: Surprise(), observedAt: now), now: now)
        XCTAssertEqual(g.decide(act("relay.release"), context: op, held: [], at: now), .allow(rule: "p.yaml:8"))
        g.notePrediction(open, context: "op", result: .failure(errno: EACCES), probability: 0.2, at: now)
        XCTAssertEqual(g.decide(act("relay.release"), context: op, held: [], at: now), .allow(rule: "p.yaml:8"), "0.2 is likely enough")
        g.notePrediction(open, context: "op", result: .failure(errno: EACCES), probability: 0.01, at: now)
        guard case .needsApproval(let id, let reason) = g.decide(act("relay.release"), context: op, held: [], at: now) else {
            return XCTFail("a failed prediction holds the next physical action")
        }
        XCTAssertTrue(reason.contains("escalated to approval: the model gave open's return errno 13 (EACCES) probability 0.010 (the policy wants at least 0.05)"), reason)
        XCTAssertEqual(g.decide(open, context: op, held: [], at: now), .allow(rule: "p.yaml:10"), "only physical steps are held")
        XCTAssertEqual(g.decide(act("status.read"), context: op, held: [], at: now).isAllowed, true, "an observe-class action is not held")
        XCTAssertEqual(Array(g.escalated.keys), ["op"], "nor another context's")
        _ = try store.approve(id, by: "alice")
        XCTAssertEqual(g.decide(act("relay.release"), context: op, held: [], at: now), .allow(rule: "approval \(id) by alice"))
        XCTAssertNil(g.escalated["op"])
        XCTAssertEqual(g.decide(act("relay.release"), context: op, held: [], at: now), .allow(rule: "p.yaml:8"), "the escalation ended with its approval")
    }

    func testSurprisingObservation_afterAnAction_escalatesThatContext_namingWhatWasUnusual() throws {
        var g = try guardian()
        let learned = LearnedSurprise(bits: 35.5, unexpected: ["-process": 0.01], missing: ["~sensor/relay-0": 0.97], after: "op")
        g.look(at: Posterior(step: 3, graph: Graph(), surprise: Surprise(learned: LearnedSurprise(bits: 4, after: "op")), observedAt: now), now: now)
        XCTAssertTrue(g.decide(act("relay.release"), context: op, held: [], at: now).isAllowed, "4 bits is within the policy's 20")
        g.look(at: Posterior(step: 4, graph: Graph(), surprise: Surprise(learned: learned), observedAt: now), now: now)
        guard case .needsApproval(_, let reason) = g.decide(act("relay.release"), context: op, held: [], at: now) else { return XCTFail() }
        XCTAssertTrue(reason.contains("the machine did not do what it usually does after op's action: 35.5 bits of surprise (the policy allows 20): "
                                      + "-process (p 0.01), no ~sensor/relay-0 (p 0.97)"), reason)
    }

    func testIrreversibleAction_afterAFailedPrediction_saysSoInItsRequest() throws {
        var g = try guardian()
        g.look(at: Posterior(step: 0, graph: Graph(), surprise: Surprise(), observedAt: now), now: now)
        g.notePrediction(open, context: "op", result: .value(3), probability: 0.001, at: now)
        guard case .needsApproval(let id, let reason) = g.decide(act("relay.energise"), context: op, held: [], at: now) else { return XCTFail() }
        XCTAssertTrue(reason.contains("is irreversible-physical; and escalated: the model gave open's return 3"), reason)
        XCTAssertEqual(store.pending().first { $0.id == id }?.risk?.hasPrefix("irreversible-physical; and escalated"), true)
    }

    func testWithoutTheLimits_nothingIsEscalated() throws {
        var g = try guardian("  max-surprise: 1000\n")
        g.look(at: Posterior(step: 0, graph: Graph(), surprise: Surprise(learned: LearnedSurprise(bits: 1e6, after: "op")), observedAt: now), now: now)
        g.notePrediction(open, context: "op", result: .value(3), probability: 0, at: now)
        XCTAssertTrue(g.decide(act("relay.release"), context: op, held: [], at: now).isAllowed)
        XCTAssertEqual(g.escalated, [:])
    }

    func testLimits_outOfRange_areRefusedNamingTheLine() {
        for (text, message) in [("  min-outcome-probability: 1.5\n", "1.5 is out of range"), ("  max-learned-surprise-bits: lots\n", "\"lots\" is not a number")] {
            XCTAssertThrowsError(try guardian(text)) { error in
                XCTAssertTrue("\(error)".hasPrefix("p.yaml:3"), "\(error)")
                XCTAssertTrue("\(error)".contains(message), "\(error)")
            }
        }
    }

    func testRequest_carriesTheDream_whichIsNotPartOfWhatIsApproved() throws {
        var g = try guardian()
        g.look(at: Posterior(step: 0, graph: Graph(), surprise: Surprise(), observedAt: now), now: now)
        g.dream = { call, context in
            ApprovalDream(returns: [.init(label: "scpi-ok", probability: 0.9), .init(label: "EIO", probability: 0.08)],
                          readings: ["relay-0": 1], model: "m.json (\(context), \(call.op.rawValue))")
        }
        guard case .needsApproval(let id, _) = g.decide(act("relay.energise"), context: op, held: [], at: now) else { return XCTFail() }
        let request = try XCTUnwrap(ApprovalStore.read(directory: directory + "/approvals").first { $0.id == id })
        XCTAssertEqual(request.dream?.confidence, 0.9)
        XCTAssertEqual(request.dream?.summary, "DREAM (model m.json (op, act), confidence 0.90): scpi-ok 90%, EIO 8%; after: relay-0 1")
        XCTAssertEqual(request.digest, request.binding.digest, "the dream is beside the binding, not in it")
        var withoutDream = request
        withoutDream.dream = nil
        XCTAssertEqual(withoutDream.binding.digest, request.digest)
    }
}
