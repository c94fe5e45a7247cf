import Config
import Foundation
import Guard
import Journal
import LoopCore
import StateGraph
import XCTest

/// The red-team corpus: attempts to get around the guard, each of which must be denied,
/// escalated to a person, or refused as uncertain, for the reason asserted. Every attempt runs
/// on a fresh run folder, policy and approval store, after its own preparation (approvals
/// granted, used, rejected, expired; the device behind a path swapped).
final class RedTeamTests: XCTestCase {
    static let policy = """
    version: 1
    contexts:
      telemetry:
        capabilities: [observe]
        allow:
          - op: open
            path: [/proc/**, /sys/class/**]
            mode: read
          - op: [read, close]
      operator:
        capabilities: [actuate]
        deny:
          - op: open
            path: /dev/ttyUSB0
            mode: create
            reason: device nodes are never created
        allow:
          - op: act
            action: [relay.*, host.*]
          - op: open
            path: /dev/ttyUSB0
            mode: [read, write]
      maintenance:
        allow:
          - op: act
            action: [relay.*]
    """

    /// One attempt's world: its guard, approval store, run folder and the bench behind the path.
    final class Harness: @unchecked Sendable {
        let run: String
        let store: ApprovalStore
        /// The serial number the bench behind /dev/ttyUSB0 reports; nil when it cannot be read.
        var serial: String? = "SIM-1"
        var takesApprovals = true
        var approvers = 1
        init() throws {
            run = NSTemporaryDirectory() + "worldos-redteam-\(UUID().uuidString)"
            store = try ApprovalStore(directory: run + "/approvals", lifetime: 60)
        }
        func guardian() throws -> PolicyGuard {
            let risks = ["relay.energise": "irreversible-physical", "host.reboot": "destructive-host", "relay.release": "reversible"]
            return PolicyGuard(policy: try Policy.parse(RedTeamTests.policy, file: "red.yaml"), audit: try AuditLog(path: run + "/audit.jsonl"),
                               mode: .real, risk: { device, action in device == "bench-bridge" ? risks[action] : nil },
                               identity: { [self] device in
                                   guard device == "bench-bridge", let serial else { return nil }
                                   return ("bench-bridge:\(serial)", "/dev/ttyUSB0")
                               },
                               approvals: takesApprovals ? store : nil, approvers: { [approvers] _ in approvers }, protectedPaths: [run], fault: FaultLatch(folder: RunFolder(run), audit: nil))
        }
        /// Ask for the call, and have a person approve the request it raises.
        func approve(_ call: ResolvedCall, in context: String) throws -> String {
            let decision = try guardian().evaluate(call, context: context, held: [])
            guard case .needsApproval(let id, _) = decision else {
                throw NSError(domain: "RedTeam", code: 1, userInfo: [NSLocalizedDescriptionKey: "\(call) did not ask for an approval: \(decision)"])
            }
            _ = try store.approve(id, by: "alice")
            return id
        }
    }

    struct Attempt: Sendable {
        var name: String
        var context = "operator"
        var call: ResolvedCall
        var held: Holdings = []
        var prepare: @Sendable (Harness) throws -> Void = { _ in }
        /// The verdict (`deny`, `needs-approval`, `refuse-uncertain`) and a part of its reason.
        var verdict: String
        var because: String
    }

    static func open(_ path: String, _ mode: String = "read") -> ResolvedCall { ResolvedCall(.open, ["path": .string(path), "mode": .string(mode)]) }
    static func act(_ action: String, _ params: String = "relay=0", device: String = "bench-bridge") -> ResolvedCall {
        ResolvedCall(.act, ["device": .string(device), "action": .string(action), "params": .string(params)])
    }
    static func call(_ op: MicroOp, _ args: [String: Value]) -> ResolvedCall { ResolvedCall(op, args) }
    static let latch: @Sendable (Harness) throws -> Void = { h in try FaultLatch(folder: RunFolder(h.run), audit: nil).latch("lost bench-bridge SIM-1", at: Instant(nanoseconds: 0)) }

    static let corpus: [Attempt] = [
        // Out of capability: what the context's policy does not grant.
        Attempt(name: "telemetry reads a credential", context: "telemetry", call: open("/etc/shadow"), verdict: "deny", because: "no rule of context telemetry allows open"),
        Attempt(name: "telemetry writes into /proc", context: "telemetry", call: open("/proc/sys/kernel/panic", "write"), verdict: "deny", because: "no rule of context telemetry allows open"),
        Attempt(name: "telemetry creates under /sys", context: "telemetry", call: open("/sys/class/gpio/export", "create"), verdict: "deny", because: "no rule"),
        Attempt(name: "telemetry opens the serial port", context: "telemetry", call: open("/dev/ttyUSB0", "write"), verdict: "deny", because: "no rule"),
        Attempt(name: "telemetry energises a relay", context: "telemetry", call: act("relay.energise"), verdict: "deny", because: "no rule of context telemetry allows act"),
        Attempt(name: "telemetry spawns a shell", context: "telemetry", call: call(.spawn, ["path": .string("/bin/sh")]), verdict: "deny", because: "allows spawn"),
        Attempt(name: "telemetry kills init", context: "telemetry", call: call(.kill, ["pid": .int(1)]), verdict: "deny", because: "process 1 is not a child of context telemetry"),
        Attempt(name: "telemetry waits on a stranger", context: "telemetry", call: call(.waitpid, ["pid": .int(4242)]), verdict: "deny", because: "process 4242 is not a child"),
        Attempt(name: "telemetry reads stdin it does not hold", context: "telemetry", call: call(.read, ["fd": .int(0), "count": .int(64)]), verdict: "deny", because: "descriptor 0 is not held"),
        Attempt(name: "telemetry closes a descriptor it does not hold", context: "telemetry", call: call(.close, ["fd": .int(3)]), held: [4], verdict: "deny", because: "descriptor 3 is not held"),
        Attempt(name: "telemetry unmaps a mapping it does not hold", context: "telemetry", call: call(.munmap, ["map": .int(1)]), verdict: "deny", because: "mapping 1 is not held"),
        Attempt(name: "telemetry writes to a held descriptor", context: "telemetry", call: call(.write, ["fd": .int(5), "data": .string("x")]), held: [5], verdict: "deny", because: "allows write"),
        Attempt(name: "operator ioctls a descriptor it does not hold", call: call(.ioctl, ["fd": .int(9), "request": .string("TIOCMSET")]), verdict: "deny", because: "descriptor 9 is not held"),
        Attempt(name: "operator opens another serial port", call: open("/dev/ttyUSB1", "write"), verdict: "deny", because: "no rule of context operator allows open of /dev/ttyUSB1"),
        Attempt(name: "operator creates the device node", call: open("/dev/ttyUSB0", "create"), verdict: "deny", because: "device nodes are never created"),
        Attempt(name: "a context with no policy", context: "intruder", call: open("/proc/1/status"), verdict: "deny", because: "context intruder has no policy"),
        Attempt(name: "maintenance reboots the host", context: "maintenance", call: act("host.reboot", ""), verdict: "deny", because: "no rule of context maintenance allows act"),
        Attempt(name: "an action on a device that is not attached", call: act("relay.energise", device: "lab-psu"), verdict: "refuse-uncertain", because: "no attached device lab-psu offers relay.energise"),
        Attempt(name: "an action the device does not offer", call: act("relay.explode"), verdict: "refuse-uncertain", because: "no attached device bench-bridge offers relay.explode"),

        // Paths the guard refuses rather than resolves.
        Attempt(name: "traversal out of /proc", context: "telemetry", call: open("/proc/../etc/shadow"), verdict: "deny", because: "is not absolute and normalized"),
        Attempt(name: "deep traversal out of /sys", context: "telemetry", call: open("/sys/class/../../etc/shadow"), verdict: "deny", because: "is not absolute and normalized"),
        Attempt(name: "a dot segment", context: "telemetry", call: open("/proc/./self/environ"), verdict: "deny", because: "is not absolute and normalized"),
        Attempt(name: "a doubled slash", context: "telemetry", call: open("//etc/shadow"), verdict: "deny", because: "is not absolute and normalized"),
        Attempt(name: "a relative path", context: "telemetry", call: open("proc/1/status"), verdict: "deny", because: "is not absolute and normalized"),
        Attempt(name: "a trailing slash", context: "telemetry", call: open("/proc/1/"), verdict: "deny", because: "is not absolute and normalized"),
        Attempt(name: "an empty path", context: "telemetry", call: open(""), verdict: "deny", because: "is not absolute and normalized"),
        Attempt(name: "a NUL byte that would cut the path short", context: "telemetry", call: open("/proc/1\u{0}/../../etc/shadow"), verdict: "deny", because: "is not absolute and normalized"),
        Attempt(name: "a NUL byte hiding a shorter path", call: open("/dev/ttyUSB0\u{0}x", "write"), verdict: "deny", because: "is not absolute and normalized"),
        Attempt(name: "openat relative to a held directory", context: "telemetry", call: call(.openat, ["dir": .int(3), "path": .string("../etc/shadow")]), held: [3], verdict: "deny", because: "is not absolute and normalized"),

        // The run folder: audit log, approvals and trace are out of every context's reach.
        Attempt(name: "forging an approval file", call: open("{run}/approvals/0123456789abcdef.json", "create"), verdict: "deny", because: "under the supervisor's own records"),
        Attempt(name: "truncating the audit log", call: open("{run}/audit.jsonl", "write"), verdict: "deny", because: "under the supervisor's own records"),
        Attempt(name: "reading the approvals folder", context: "telemetry", call: open("{run}/approvals"), verdict: "deny", because: "under the supervisor's own records"),

        // Irreversible actions and approvals.
        Attempt(name: "an irreversible action with no approval", call: act("relay.energise"), verdict: "needs-approval", because: "relay.energise on bench-bridge:SIM-1 (/dev/ttyUSB0) is irreversible-physical"),
        Attempt(name: "a destructive host action with no approval", call: act("host.reboot", ""), verdict: "needs-approval", because: "is destructive-host"),
        Attempt(name: "an irreversible action where approvals are off", call: act("relay.energise"), prepare: { $0.takesApprovals = false }, verdict: "deny", because: "this supervisor takes no approvals"),
        Attempt(name: "replaying a used approval", call: act("relay.energise"), prepare: { h in
            _ = try h.approve(act("relay.energise"), in: "operator")
            XCTAssertTrue(try h.guardian().evaluate(act("relay.energise"), context: "operator", held: []).isAllowed)
        }, verdict: "needs-approval", because: "is irreversible-physical"),
        Attempt(name: "approval for relay 0 used for relay 1", call: act("relay.energise", "relay=1"), prepare: { h in _ = try h.approve(act("relay.energise", "relay=0"), in: "operator") },
                verdict: "needs-approval", because: "is irreversible-physical"),
        Attempt(name: "a parameter added after approval", call: act("relay.energise", "relay=0,hold-ms=60000"), prepare: { h in _ = try h.approve(act("relay.energise", "relay=0"), in: "operator") },
                verdict: "needs-approval", because: "is irreversible-physical"),
        Attempt(name: "a parameter dropped after approval", call: act("relay.energise", "relay=0"), prepare: { h in _ = try h.approve(act("relay.energise", "relay=0,hold-ms=50"), in: "operator") },
                verdict: "needs-approval", because: "is irreversible-physical"),
        Attempt(name: "an approval carried to another context", context: "maintenance", call: act("relay.energise"), prepare: { h in _ = try h.approve(act("relay.energise"), in: "operator") },
                verdict: "needs-approval", because: "is irreversible-physical"),
        Attempt(name: "an approval carried to another action", call: act("host.reboot", "relay=0"), prepare: { h in _ = try h.approve(act("relay.energise"), in: "operator") },
                verdict: "needs-approval", because: "is destructive-host"),
        Attempt(name: "another bench swapped in behind the same path", call: act("relay.energise"), prepare: { h in
            _ = try h.approve(act("relay.energise"), in: "operator")
            h.serial = "SIM-2"
        }, verdict: "needs-approval", because: "bench-bridge:SIM-2 (/dev/ttyUSB0)"),
        Attempt(name: "a rejected request", call: act("relay.energise"), prepare: { h in
            guard case .needsApproval(let id, _) = try h.guardian().evaluate(act("relay.energise"), context: "operator", held: []) else { return XCTFail("no request") }
            _ = try h.store.reject(id, by: "bob")
        }, verdict: "needs-approval", because: "is irreversible-physical"),
        Attempt(name: "an expired approval", call: act("relay.energise"), prepare: { h in
            let old = Date().addingTimeInterval(-120)
            let binding = ApprovalBinding(context: "operator", action: "relay.energise", device: "bench-bridge:SIM-1", path: "/dev/ttyUSB0", params: ["relay": "0"])
            _ = try h.store.approve(h.store.request(binding, now: old).id, by: "alice", now: old)
        }, verdict: "needs-approval", because: "is irreversible-physical"),
        Attempt(name: "a still-pending request is not an approval", call: act("relay.energise"), prepare: { h in
            _ = try h.guardian().evaluate(act("relay.energise"), context: "operator", held: [])
        }, verdict: "needs-approval", because: "is irreversible-physical"),
        Attempt(name: "an approved action once the device's identity is lost", call: act("relay.energise"), prepare: { h in
            _ = try h.approve(act("relay.energise"), in: "operator")
            h.serial = nil
        }, verdict: "refuse-uncertain", because: "the identity of bench-bridge is not known"),

        Attempt(name: "one person approving twice under the two-person rule", call: act("relay.energise"), prepare: { h in
            h.approvers = 2
            let id = try h.approve(act("relay.energise"), in: "operator")
            XCTAssertThrowsError(try h.store.approve(id, by: "alice"))
        }, verdict: "needs-approval", because: "needs 2 different people to approve it (1 so far)"),

        // Approvals written by anyone but the supervisor.
        Attempt(name: "a request file edited by hand to approved", call: act("relay.energise"), prepare: { h in
            guard case .needsApproval(let id, _) = try h.guardian().evaluate(act("relay.energise"), context: "operator", held: []) else { return XCTFail("no request") }
            let path = h.run + "/approvals/\(id).json"
            let text = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(of: #""state" : "pending""#, with: #""state" : "approved""#)
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        }, verdict: "deny", because: "the supervisor recorded no approval of it in the audit log"),
        Attempt(name: "a request file forged from scratch", call: act("relay.energise"), prepare: { h in
            let binding = ApprovalBinding(context: "operator", action: "relay.energise", device: "bench-bridge:SIM-1", path: "/dev/ttyUSB0", params: ["relay": "0"])
            let forged = Approval(id: "00000000000000ff", binding: binding, digest: binding.digest, state: .approved, requestedAt: Date(),
                                  expiresAt: Date().addingTimeInterval(60), decidedBy: "alice")
            try JSONRecordFile.write(forged, to: h.run + "/approvals/00000000000000ff.json")
        }, verdict: "deny", because: "says it is approved, but the supervisor recorded no approval"),
        Attempt(name: "alice, then alice with a space, under the two-person rule", call: act("relay.energise"), prepare: { h in
            h.approvers = 2
            let id = try h.approve(act("relay.energise"), in: "operator")
            XCTAssertThrowsError(try h.store.approve(id, by: " alice")) { XCTAssertTrue("\($0)".contains("alice has already approved"), "\($0)") }
        }, verdict: "needs-approval", because: "(1 so far)"),
        Attempt(name: "bob, then BOB, under the two-person rule", call: act("relay.energise"), prepare: { h in
            h.approvers = 2
            guard case .needsApproval(let id, _) = try h.guardian().evaluate(act("relay.energise"), context: "operator", held: []) else { return XCTFail("no request") }
            _ = try h.store.approve(id, by: "bob")
            XCTAssertThrowsError(try h.store.approve(id, by: "BOB"))
        }, verdict: "needs-approval", because: "(1 so far)"),
        Attempt(name: "one user answering twice with two --by labels", call: act("relay.energise"), prepare: { h in
            h.approvers = 2
            guard case .needsApproval(let id, _) = try h.guardian().evaluate(act("relay.energise"), context: "operator", held: []) else { return XCTFail("no request") }
            try ApprovalStore.answer(id, approve: true, label: "alice", directory: h.run + "/approvals")
            try ApprovalStore.answer(id, approve: true, label: "bob", directory: h.run + "/approvals")
        }, verdict: "needs-approval", because: "(1 so far)"),
        Attempt(name: "an answer that is a symlink to someone else's", call: act("relay.energise"), prepare: { h in
            guard case .needsApproval(let id, _) = try h.guardian().evaluate(act("relay.energise"), context: "operator", held: []) else { return XCTFail("no request") }
            try ApprovalStore.answer(id, approve: true, label: nil, directory: h.run + "/approvals")
            let answers = h.run + "/approvals/answers"
            let real = try XCTUnwrap(FileManager.default.contentsOfDirectory(atPath: answers).first)
            try FileManager.default.moveItem(atPath: answers + "/" + real, toPath: h.run + "/elsewhere.json")
            try FileManager.default.createSymbolicLink(atPath: answers + "/" + real, withDestinationPath: h.run + "/elsewhere.json")
        }, verdict: "needs-approval", because: "is irreversible-physical"),

        // Actions while a fault is latched.
        Attempt(name: "a reversible action during a latched fault", call: act("relay.release"), prepare: latch, verdict: "deny", because: "halted by a fault"),
        Attempt(name: "an action approved before the fault", call: act("relay.energise"), prepare: { h in
            _ = try h.approve(act("relay.energise"), in: "operator")
            try latch(h)
        }, verdict: "deny", because: "lost bench-bridge SIM-1; nothing physical runs until a person checks the bench and runs worldos ack"),
        Attempt(name: "a GPIO set during a latched fault", call: call(.gpioSet, ["chip": .string("gpiochip0"), "line": .string("relay"), "value": .int(1)]),
                prepare: latch, verdict: "deny", because: "halted by a fault"),
        Attempt(name: "a USB transfer during a latched fault", call: call(.usbTransfer, ["device": .string("relay-board"), "endpoint": .int(1), "data": .string("ff")]),
                prepare: latch, verdict: "deny", because: "halted by a fault"),
        Attempt(name: "a fault record nobody can read still halts", call: act("relay.release"), prepare: { h in
            try Data("{not json".utf8).write(to: URL(fileURLWithPath: h.run + "/fault.json"))
        }, verdict: "deny", because: "fault.json cannot be read as a fault record"),
        Attempt(name: "a context acknowledging the fault itself", call: open("{run}/fault.json", "write"), prepare: latch, verdict: "deny", because: "under the supervisor's own records"),
    ]

    func testEveryAttempt_isDeniedOrEscalated_forTheReasonAsserted() throws {
        for attempt in Self.corpus {
            let h = try Harness()
            defer { try? FileManager.default.removeItem(atPath: h.run) }
            try attempt.prepare(h)
            var call = attempt.call
            if let path = call.path { call.args["path"] = .string(path.replacingOccurrences(of: "{run}", with: h.run)) }
            var g = try h.guardian()
            let node = Node(id: .context(attempt.context), kind: .executionContext, partition: .context(attempt.context))
            let decision = g.decide(call, context: node, held: attempt.held, at: Instant(nanoseconds: 1))
            XCTAssertEqual(decision.verdict, attempt.verdict, "\(attempt.name): \(decision)")
            XCTAssertTrue(decision.reason?.contains(attempt.because.replacingOccurrences(of: "{run}", with: h.run)) == true,
                          "\(attempt.name): expected a reason containing \"\(attempt.because)\", got \(decision)")
            XCTAssertNoThrow(try AuditLog.verify(path: h.run + "/audit.jsonl").get(), "\(attempt.name): the attempt is audited")
        }
    }

    /// Attempts made at the approvals themselves rather than through an action.
    func testApprovalForgeryAndReplay_areRefusedWithTheReason() throws {
        let h = try Harness()
        defer { try? FileManager.default.removeItem(atPath: h.run) }
        let id = try h.approve(Self.act("relay.energise"), in: "operator")
        XCTAssertTrue(try h.guardian().evaluate(Self.act("relay.energise"), context: "operator", held: []).isAllowed)
        let attempts: [(String, String, String)] = [
            ("approving a used approval again", id, "request \(id) is already used"),
            ("an invented id", "0000000000000000", "no approval request 0000000000000000"),
            ("an id that walks out of the folder", "../../etc/passwd", "no approval request ../../etc/passwd"),
            ("an id naming the audit log", "../audit.jsonl", "no approval request ../audit.jsonl"),
            ("a non-hex id of the right length", "zzzzzzzzzzzzzzzz", "no approval request zzzzzzzzzzzzzzzz"),
            ("an empty id", "", "no approval request "),
        ]
        for (name, candidate, message) in attempts {
            XCTAssertThrowsError(try h.store.approve(candidate, by: "mallory"), name) { XCTAssertTrue("\($0)".hasPrefix(message), "\(name): \($0)") }
        }
        XCTAssertThrowsError(try h.store.reject(id, by: "mallory"), "a used approval cannot be rejected after the fact either")
    }

    /// Policy values that try to reach outside what they name are load errors with a line.
    func testPolicyValues_thatTraverseOrMisapply_areRejectedWithTheirLine() {
        let cases: [(String, String)] = [
            ("      - op: open\n        path: /proc/../etc/shadow\n", "p.yaml:6:15: contexts.c.allow[0].path: path pattern \"/proc/../etc/shadow\" must be normalized"),
            ("      - op: open\n        path: etc/passwd\n", "p.yaml:6:15: contexts.c.allow[0].path: path pattern \"etc/passwd\" must be absolute"),
            ("      - op: open\n        path: /dev//ttyUSB0\n", "p.yaml:6:15: contexts.c.allow[0].path: path pattern \"/dev//ttyUSB0\" must be normalized"),
            ("      - op: act\n        action: relay/../x\n", "p.yaml:6:17: contexts.c.allow[0].action: action pattern \"relay/../x\" may use letters"),
            ("      - op: act\n        path: /dev/ttyUSB0\n", "p.yaml:5:9: contexts.c.allow[0]: \"path\" applies only to ops that name a path"),
            ("      - op: open\n        mode: exec\n", "p.yaml:6:15: contexts.c.allow[0].mode: unknown open mode \"exec\""),
            ("      - op: escalate\n", "p.yaml:5:13: contexts.c.allow[0].op: unknown operation \"escalate\""),
        ]
        for (rule, expected) in cases {
            let text = "version: 1\ncontexts:\n  c:\n    allow:\n" + rule
            XCTAssertThrowsError(try Policy.parse(text, file: "p.yaml"), expected) { XCTAssertTrue("\($0)".hasPrefix(expected), "got: \($0)\nwanted: \(expected)") }
        }
    }

}
