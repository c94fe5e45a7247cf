import Config
import Foundation
import Guard
import Journal
import LoopCore
import StateGraph
import WorldOSTesting
import XCTest

final class GuardTests: XCTestCase {
    static let policyText = """
    version: 1
    contexts:
      reader:
        capabilities: [observe]
        deny:
          - op: open
            path: [/etc/shadow, /etc/ssh/**]
            reason: credentials stay closed
        allow:
          - op: open
            path: [/etc/*, /proc/**]
            mode: read
          - op: [read, close]
    """

    func policy() throws -> Policy { try Policy.parse(Self.policyText, file: "test.yaml") }
    func open(_ path: String, mode: String = "read") -> ResolvedCall { ResolvedCall(.open, ["path": .string(path), "mode": .string(mode)]) }

    func testDenyRules_winOverAllowRules_andCiteTheirLine() throws {
        let p = try policy()
        let g = PolicyGuard(policy: p, audit: try tempAudit(), mode: .real)
        XCTAssertEqual(g.evaluate(open("/etc/shadow"), context: "reader", held: []),
                       .deny(rule: "test.yaml:6", reason: "credentials stay closed"))
        XCTAssertEqual(g.evaluate(open("/etc/ssh/keys/host_key"), context: "reader", held: []),
                       .deny(rule: "test.yaml:6", reason: "credentials stay closed"))
        XCTAssertEqual(g.evaluate(open("/etc/hostname"), context: "reader", held: []), .allow(rule: "test.yaml:10"))
        XCTAssertEqual(g.evaluate(open("/proc/1/status"), context: "reader", held: []), .allow(rule: "test.yaml:10"))
    }

    /// The rule index must pick exactly the rule a plain in-order scan would: random rule sets
    /// of literal and wildcard patterns against random paths, deny rules first.
    func testRuleIndex_choosesTheSameRuleAsAnInOrderScan() throws {
        var rng = SeededRandom(seed: 7)
        let pieces = ["a", "b", "ab", "*", "**", "a*", "?", "*b"], names = ["a", "b", "ab", "ba", "abb"]
        for round in 0..<200 {
            // A rule has one or two patterns, so one rule can sit at several places along a path
            // in the index and must still be tried once, in its place.
            var text = "version: 1\ncontexts:\n  c:\n", rules: [(deny: Bool, patterns: [PathPattern], line: Int)] = []
            for effect in ["deny", "allow"] {
                text += "    \(effect):\n"
                for _ in 0...Int(rng.next() % 12) {
                    let patterns = (0...Int(rng.next() % 2)).map { _ in
                        "/" + (0...Int(rng.next() % 3)).map { _ in pieces[Int(rng.next() % 8)] }.joined(separator: "/")
                    }
                    let line = text.split(separator: "\n", omittingEmptySubsequences: false).count
                    text += "      - op: open\n        path: [\(patterns.joined(separator: ", "))]\n"
                    rules.append((effect == "deny", try patterns.map(PathPattern.init), line))
                }
            }
            let g = PolicyGuard(policy: try Policy.parse(text, file: "p.yaml"), audit: try tempAudit(), mode: .real)
            for _ in 0..<20 {
                let path = "/" + (0...Int(rng.next() % 4)).map { _ in names[Int(rng.next() % 5)] }.joined(separator: "/")
                let decision = g.evaluate(open(path), context: "c", held: [])
                guard let rule = rules.first(where: { $0.patterns.contains { $0.matches(path) } }) else {
                    XCTAssertFalse(decision.isAllowed, "round \(round): \(path) matched no rule but was allowed\n\(text)")
                    continue
                }
                let cited = rule.deny ? Decision.deny(rule: "p.yaml:\(rule.line)", reason: "denied by policy") : .allow(rule: "p.yaml:\(rule.line)")
                XCTAssertEqual(decision, cited, "round \(round): \(path)\n\(text)")
            }
        }
    }

    func testPolicyChanges_nameWhatEachContextGainedOrLost_andIgnoreMovedRules() throws {
        let old = try policy()
        XCTAssertEqual(try Policy.parse("# a comment moves every line\n" + Self.policyText, file: "moved.yaml").changes(since: old), [],
                       "a rule that only moved is not a change")
        let new = try Policy.parse(Self.policyText.replacingOccurrences(of: "[/etc/*, /proc/**]", with: "[/etc/*, /proc/**, /sys/**]")
                                     .replacingOccurrences(of: "capabilities: [observe]", with: "capabilities: [observe, tune]")
                                   + "\n  writer:\n    allow:\n      - op: write\n", file: "new.yaml")
        XCTAssertEqual(new.changes(since: old), [
            "  context reader",
            "+   capability tune",
            "-   allow open path /etc/*,/proc/** mode read",
            "+   allow open path /etc/*,/proc/**,/sys/** mode read",
            "+ context writer",
            "+   allow write",
        ])
        XCTAssertEqual(old.changes(since: new).first(where: { $0.hasPrefix("- context") }), "- context writer")
    }

    func testPolicyHistory_refusesBadAmbiguousAndMissingHashes() throws {
        let folder = NSTemporaryDirectory() + "worldos-history-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let history = PolicyHistory(directory: folder)
        let kept = try policy()
        try history.keep(kept)
        XCTAssertEqual(try history.load(hash: String(kept.contentHash.prefix(8))).contentHash, kept.contentHash)
        for (hash, message) in [("abc", "abc is neither a policy file nor a policy hash (8 to 64 hex digits)"),
                                ("../../etc/passwd", "../../etc/passwd is neither a policy file nor a policy hash (8 to 64 hex digits)"),
                                ("00000000", "no policy 00000000 kept in \(folder)")] {
            XCTAssertThrowsError(try history.load(hash: hash)) { XCTAssertEqual("\($0)", message) }
        }
        let twin = "\(folder)/\(kept.contentHash.prefix(8))ffff.yaml"
        try Data(kept.source.utf8).write(to: URL(fileURLWithPath: twin))
        XCTAssertThrowsError(try history.load(hash: String(kept.contentHash.prefix(8)))) { XCTAssertTrue("\($0)".contains("is ambiguous")) }
    }

    func testALatchedFault_stopsPhysicalStepsOnly_andClearsOnlyOnAcknowledgement() throws {
        let out = NSTemporaryDirectory() + "worldos-fault-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: out) }
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let audit = try AuditLog(path: out + "/audit.jsonl")
        let latch = FaultLatch(folder: RunFolder(out), audit: audit)
        let text = Self.policyText + "\n      - op: act\n        action: [relay.*]\n"
        let g = PolicyGuard(policy: try Policy.parse(text, file: "test.yaml"), audit: audit, mode: .real,
                            risk: { _, _ in "reversible" }, fault: latch)
        let release = ResolvedCall(.act, ["device": .string("bench"), "action": .string("relay.release")])
        XCTAssertTrue(g.evaluate(release, context: "reader", held: []).isAllowed)
        XCTAssertTrue(try latch.latch("lost bench SIM-1", at: Instant(nanoseconds: 1)))
        XCTAssertFalse(try latch.latch("a second cause", at: Instant(nanoseconds: 2)), "the first cause stays the one shown")
        XCTAssertEqual(g.evaluate(release, context: "reader", held: []).rule, "latched-fault")
        XCTAssertTrue(g.evaluate(open("/etc/hostname"), context: "reader", held: []).isAllowed, "observing goes on while halted")
        XCTAssertNil(try latch.refresh(at: Instant(nanoseconds: 3)), "not acknowledged: still latched")
        XCTAssertEqual(FaultLatch(folder: RunFolder(out), audit: nil).current?.reason, "lost bench SIM-1", "a restart finds it latched")
        XCTAssertEqual(try FaultLatch.acknowledge(folder: RunFolder(out), by: "alice").reason, "lost bench SIM-1")
        XCTAssertEqual(g.evaluate(release, context: "reader", held: []).rule, "latched-fault", "until the supervisor takes the acknowledgement in")
        XCTAssertEqual(try latch.refresh(at: Instant(nanoseconds: 4))?.acknowledgedBy, "alice")
        XCTAssertTrue(g.evaluate(release, context: "reader", held: []).isAllowed)
        XCTAssertThrowsError(try FaultLatch.acknowledge(folder: RunFolder(out), by: "alice")) { XCTAssertEqual("\($0)", "no fault is latched in \(out); nothing to acknowledge") }
        let events = try String(contentsOfFile: out + "/audit.jsonl", encoding: .utf8).split(separator: "\n").map { $0.contains("\"event\":\"fault\"") ? "fault" : $0.contains("fault-acknowledged") ? "ack" : "other" }
        XCTAssertEqual(events, ["fault", "ack"])
    }

    func testPhysicalSteps_areRefusedAsUncertain_onAStaleOrUnpredictedPicture() throws {
        let text = "version: 1\nuncertainty:\n  max-observation-age-ms: 2000\n  max-surprise: 10\ncontexts:\n  op:\n    allow:\n      - op: act\n        action: [relay.*]\n      - op: open\n        path: /etc/*\n"
        let policy = try Policy.parse(text, file: "u.yaml")
        func guardian(_ mode: Mode) throws -> PolicyGuard {
            PolicyGuard(policy: policy, audit: try tempAudit(), mode: mode, risk: { _, _ in "reversible" })
        }
        let release = ResolvedCall(.act, ["device": .string("bench"), "action": .string("relay.release")])
        let at = { (seconds: UInt64) in Instant(nanoseconds: seconds * 1_000_000_000) }
        func picture(observed: UInt64?, wrong: Int = 0) -> Posterior {
            Posterior(step: 1, graph: Graph(), surprise: observed == nil ? nil : Surprise(changed: wrong), observedAt: observed.map(at))
        }
        var g = try guardian(.real)
        XCTAssertTrue(g.evaluate(release, context: "op", held: []).isAllowed, "outside a loop there is no picture to doubt")
        g.look(at: picture(observed: nil), now: at(10))
        XCTAssertEqual(g.evaluate(release, context: "op", held: []),
                       .refuseUncertain(reason: "the machine has not been observed yet; the guard does not act on a picture it has not checked"))
        g.look(at: picture(observed: 10), now: at(10))
        XCTAssertTrue(g.evaluate(release, context: "op", held: []).isAllowed)
        g.look(at: picture(observed: nil), now: at(13))   // this step's observation failed: the last one is 3 s old
        XCTAssertEqual(g.evaluate(release, context: "op", held: []),
                       .refuseUncertain(reason: "the last observation is 3000 ms old (the policy allows 2000 ms); the guard does not act on a stale picture"))
        XCTAssertTrue(g.evaluate(open("/etc/hostname"), context: "op", held: []).isAllowed, "observing is not held back")
        g.look(at: picture(observed: 14, wrong: 11), now: at(14))
        XCTAssertEqual(g.evaluate(release, context: "op", held: []).reason,
                       "the estimator's prediction was wrong on 11 nodes this step (the policy allows 10); the guard does not act on a picture it could not predict")
        g.look(at: picture(observed: 15, wrong: 10), now: at(15))
        XCTAssertTrue(g.evaluate(release, context: "op", held: []).isAllowed)
        var dream = try guardian(.latent)
        dream.look(at: picture(observed: nil), now: at(99))
        XCTAssertTrue(dream.evaluate(release, context: "op", held: []).isAllowed, "a dream touches nothing")
        XCTAssertEqual(try Policy.parse("version: 1\ncontexts: {}\n", file: "d.yaml").maxObservationAge, .seconds(5), "the default")
    }

    func testParameterLimitsAndRateLimits_bindWhatAnAllowRuleAllows() throws {
        let text = """
        version: 1
        contexts:
          op:
            allow:
              - op: act
                action: [relay.release]
                params: { relay: { min: 0, max: 1 } }
                rate: 2/minute
        """
        var g = PolicyGuard(policy: try Policy.parse(text, file: "r.yaml"), audit: try tempAudit(), mode: .real, risk: { _, _ in "reversible" })
        let node = Node(id: .context("op"), kind: .executionContext, partition: .context("op"))
        func release(_ params: String) -> ResolvedCall { ResolvedCall(.act, ["device": .string("b"), "action": .string("relay.release"), "params": .string(params)]) }
        let minute = { (s: UInt64) in Instant(nanoseconds: s * 1_000_000_000) }
        XCTAssertEqual(g.decide(release("relay=2"), context: node, held: [], at: minute(0)),
                       .deny(rule: "r.yaml:5", reason: "relay=2 is outside 0.0...1.0, the policy's limit"))
        XCTAssertEqual(g.decide(release("relay=x"), context: node, held: [], at: minute(0)).reason, "relay=x is outside 0.0...1.0, the policy's limit")
        XCTAssertEqual(g.decide(release(""), context: node, held: [], at: minute(0)).reason, "relay must be given: the policy limits it to 0.0...1.0")
        XCTAssertTrue(g.decide(release("relay=1"), context: node, held: [], at: minute(0)).isAllowed)
        XCTAssertTrue(g.decide(release("relay=0"), context: node, held: [], at: minute(10)).isAllowed)
        XCTAssertEqual(g.decide(release("relay=0"), context: node, held: [], at: minute(30)),
                       .deny(rule: "r.yaml:5", reason: "rate limit 2/minute reached for context op; the next is allowed in 31 s"))
        XCTAssertTrue(g.decide(release("relay=0"), context: node, held: [], at: minute(61)).isAllowed, "the first has left the window")
        XCTAssertFalse(g.decide(release("relay=0"), context: node, held: [], at: minute(62)).isAllowed)
        let summary = try Policy.parse(text, file: "r.yaml").contexts["op"]!.rules[0].summary
        XCTAssertEqual(summary, "allow act action relay.release params relay 0.0...1.0 rate 2/minute", "policy diff sees limits")
    }

    func testNodeKindsDeviceIdentitiesAndTimeWindows_narrowWhatARuleAllows() throws {
        let text = """
        version: 1
        contexts:
          op:
            allow:
              - op: [open, read, close]
                kind: [fd]
              - op: act
                action: [relay.*]
                device: ["bench-bridge:BB-*"]
              - op: act
                action: [heater.*]
                hours: "08:00-18:00"
                days: [mon, tue, wed, thu, fri]
              - op: act
                action: [night.*]
                hours: "22:00-06:00"
                days: [fri]
        """
        final class Board: @unchecked Sendable { var serial = "BB-0001" }
        let board = Board()
        var g = PolicyGuard(policy: try Policy.parse(text, file: "k.yaml"), audit: try tempAudit(), mode: .real, risk: { _, _ in "reversible" },
                            identity: { _ in ("bench-bridge:" + board.serial, "/dev/pts/9") })
        // A Monday in 2026, built in local time, at the hour and minute given (plus days).
        func at(day: Int, _ hour: Int, _ minute: Int) -> Date {
            var parts = tm()
            parts.tm_year = 126; parts.tm_mon = 10; parts.tm_mday = Int32(16 + day); parts.tm_hour = Int32(hour); parts.tm_min = Int32(minute); parts.tm_isdst = -1
            return Date(timeIntervalSince1970: TimeInterval(mktime(&parts)))
        }
        func act(_ action: String) -> ResolvedCall { ResolvedCall(.act, ["device": .string("bench"), "action": .string(action), "params": .string("")]) }
        // kind: the open touches a file, not a descriptor; the read touches a descriptor.
        XCTAssertEqual(g.evaluate(open("/etc/hostname"), context: "op", held: []).rule, "default-deny")
        XCTAssertEqual(g.evaluate(ResolvedCall(.read, ["fd": .int(3), "count": .int(1)]), context: "op", held: [3]), .allow(rule: "k.yaml:5"))
        // device: the profile identity behind the name, not the name.
        XCTAssertEqual(g.evaluate(act("relay.energise"), context: "op", held: []), .allow(rule: "k.yaml:7"))
        board.serial = "XX-0002"
        XCTAssertEqual(g.evaluate(act("relay.energise"), context: "op", held: []).rule, "default-deny", "another board behind the same name")
        // hours and days, in local time; a window past midnight belongs to the day it starts.
        let cases: [(Date, String, Bool)] = [
            (at(day: 0, 9, 0), "heater.on", true), (at(day: 0, 7, 59), "heater.on", false), (at(day: 0, 18, 0), "heater.on", false),
            (at(day: 5, 9, 0), "heater.on", false), (at(day: 4, 23, 0), "night.run", true), (at(day: 5, 2, 0), "night.run", true),
            (at(day: 4, 2, 0), "night.run", false), (at(day: 5, 6, 0), "night.run", false),
        ]
        for (date, action, allowed) in cases {
            g.wallClock = { date }
            XCTAssertEqual(g.evaluate(act(action), context: "op", held: []).isAllowed, allowed, "\(action) at \(date)")
        }
    }

    func testAnythingNotAllowed_isDeniedByDefault() throws {
        let g = PolicyGuard(policy: try policy(), audit: try tempAudit(), mode: .real)
        XCTAssertEqual(g.evaluate(open("/etc/hostname", mode: "write"), context: "reader", held: []),
                       .deny(rule: "default-deny", reason: "no rule of context reader allows open of /etc/hostname"))
        XCTAssertEqual(g.evaluate(open("/etc/sub/dir"), context: "reader", held: []),
                       .deny(rule: "default-deny", reason: "no rule of context reader allows open of /etc/sub/dir"))
        XCTAssertEqual(g.evaluate(open("/etc/hostname"), context: "stranger", held: []),
                       .deny(rule: "default-deny", reason: "context stranger has no policy in test.yaml"))
    }

    func testTraversalAndRelativePaths_areRefusedNotResolved() throws {
        let g = PolicyGuard(policy: try policy(), audit: try tempAudit(), mode: .real)
        for path in ["/proc/../etc/shadow", "/etc/./shadow", "etc/hostname", "/etc//shadow"] {
            XCTAssertEqual(g.evaluate(open(path), context: "reader", held: []),
                           .deny(rule: "path-normalization", reason: "path \"\(path)\" is not absolute and normalized"), path)
        }
    }

    func testDescriptorOperations_needADescriptorTheContextHolds() throws {
        let g = PolicyGuard(policy: try policy(), audit: try tempAudit(), mode: .real)
        let read = ResolvedCall(.read, ["fd": .int(0), "count": .int(10)])
        XCTAssertEqual(g.evaluate(read, context: "reader", held: []),
                       .deny(rule: "capability", reason: "descriptor 0 is not held by context reader"))
        XCTAssertEqual(g.evaluate(read, context: "reader", held: [0]), .allow(rule: "test.yaml:13"))
    }

    func testEveryDecision_isAuditedInAChainThatVerifies() throws {
        let audit = try tempAudit()
        var g = PolicyGuard(policy: try policy(), audit: audit, mode: .real)
        let context = Node(id: .context("reader"), kind: .executionContext, partition: .context("reader"))
        XCTAssertFalse(g.decide(open("/etc/shadow"), context: context, held: [], at: Instant(nanoseconds: 5)).isAllowed)
        XCTAssertTrue(g.decide(open("/etc/hostname"), context: context, held: [], at: Instant(nanoseconds: 6)).isAllowed)
        g.recordOutcome(open("/etc/hostname"), context: "reader", result: .value(3), at: Instant(nanoseconds: 7))
        let lines = try String(contentsOfFile: audit.path, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 3)
        XCTAssertTrue(lines[0].contains(#""decision":"deny""#) && lines[0].contains("/etc/shadow"))
        XCTAssertTrue(lines[0].contains(try policy().contentHash), "each record names the policy version")
        XCTAssertTrue(lines[2].contains(#""event":"outcome""#))
        XCTAssertEqual(try AuditLog.verify(path: audit.path).get(), 3)
    }

    func testAuditChain_detectsAnEditedRecord() throws {
        let audit = try tempAudit()
        var g = PolicyGuard(policy: try policy(), audit: audit, mode: .real)
        let context = Node(id: .context("reader"), kind: .executionContext, partition: .context("reader"))
        for _ in 0..<3 { _ = g.decide(open("/etc/shadow"), context: context, held: [], at: Instant(nanoseconds: 5)) }
        var text = try String(contentsOfFile: audit.path, encoding: .utf8)
        text = text.replacingOccurrences(of: #""decision":"deny""#, with: #""decision":"allow""#, options: [], range: text.range(of: "\n")!.upperBound..<text.endIndex)
        try text.write(toFile: audit.path, atomically: true, encoding: .utf8)
        XCTAssertEqual(AuditLog.verify(path: audit.path), .failure(AuditError(path: audit.path, message: "record 2 (seq 1) breaks the chain")))
    }

    /// The log writes records with its own serializer; it must be byte for byte what
    /// JSONEncoder (sorted keys, unescaped slashes) writes, or older logs would stop verifying.
    func testAuditRecords_areWrittenExactlyAsJSONEncoderWouldWriteThem() throws {
        let audit = try tempAudit()
        var random = SeededRandom(seed: 7)
        let alphabet = (0..<0x80).map { Character(Unicode.Scalar(UInt8($0))) } + ["é", "→", "😀", "/", "\\", "\""]
        func text() -> String { String((0..<Int.random(in: 0..<24, using: &random)).map { _ in alphabet.randomElement(using: &random)! }) }
        for i in 0..<300 {
            let maybe = { (s: String) in Int.random(in: 0..<3, using: &random) == 0 ? nil : s }
            try audit.append(AuditRecord(time: UInt64.random(in: 0..<(1 << 40), using: &random), policy: text(), event: text(), mode: text(), context: text(),
                                         call: text(), decision: maybe(text()), rule: maybe(text()), reason: maybe(text()),
                                         result: maybe(text()), decisionSeq: Bool.random(using: &random) ? nil : i), sync: false)
        }
        let lines = try Data(contentsOf: URL(fileURLWithPath: audit.path)).split(separator: UInt8(ascii: "\n"))
        XCTAssertEqual(lines.count, 300)
        for line in lines {
            let record = try JSONDecoder().decode(AuditRecord.self, from: Data(line))
            XCTAssertEqual(String(decoding: try AppendOnlyFile.encoder().encode(record), as: UTF8.self), String(decoding: line, as: UTF8.self))
        }
        XCTAssertEqual(try AuditLog.verify(path: audit.path).get(), 300)
    }

    func testAuditLog_reopened_continuesTheChain_andCutsATornTail() throws {
        let path = try tempAudit().path
        let record = AuditRecord(time: 1, policy: "p", event: "decision", mode: "real", context: "c", call: "x")
        try AuditLog(path: path).append(record)
        let handle = FileHandle(forWritingAtPath: path)!
        handle.seekToEndOfFile()
        handle.write(Data(#"{"seq":1,"prev":"trunc"#.utf8))
        handle.closeFile()
        let reopened = try AuditLog(path: path)
        XCTAssertEqual(reopened.tornTailBytes, 22)
        try reopened.append(record)
        XCTAssertEqual(try AuditLog.verify(path: path).get(), 2, "everything before the torn tail is kept, and the chain goes on")
    }

    func testGuard_deniesWhenTheAuditLogCannotBeWritten() throws {
        let audit = try AuditLog(path: "/dev/full")
        var g = PolicyGuard(policy: try policy(), audit: audit, mode: .real)
        let context = Node(id: .context("reader"), kind: .executionContext, partition: .context("reader"))
        let d = g.decide(open("/etc/hostname"), context: context, held: [], at: Instant(nanoseconds: 1))
        guard case .deny(let rule, _) = d else { return XCTFail("an unaudited call must not be allowed") }
        XCTAssertEqual(rule, "audit")
        XCTAssertNotNil(g.auditFailure)
    }

    func testDeviceActions_irreversibleNeedApproval_unknownAreRefused_reversibleFollowThePolicy() throws {
        let text = "version: 1\ncontexts:\n  op:\n    allow:\n      - op: act\n        action: [relay.*]\n"
        let risks: [String: String] = ["relay.energise": "irreversible-physical", "relay.release": "reversible", "heater.off": "reversible"]
        let g = PolicyGuard(policy: try Policy.parse(text, file: "p.yaml"), audit: try tempAudit(), mode: .real,
                            risk: { device, action in device == "bench-bridge" ? risks[action] : nil })
        func act(_ device: String, _ action: String) -> ResolvedCall {
            ResolvedCall(.act, ["device": .string(device), "action": .string(action), "params": .string("relay=0")])
        }
        XCTAssertEqual(g.evaluate(act("bench-bridge", "relay.release"), context: "op", held: []), .allow(rule: "p.yaml:5"))
        guard case .deny(let rule, let reason) = g.evaluate(act("bench-bridge", "relay.energise"), context: "op", held: []) else {
            return XCTFail("an irreversible action ran without approval")
        }
        XCTAssertEqual(rule, "approval-required", "this guard takes no approvals at all")
        XCTAssertTrue(reason.contains("irreversible-physical"), reason)
        XCTAssertEqual(g.evaluate(act("bench-bridge", "heater.off"), context: "op", held: []),
                       .deny(rule: "default-deny", reason: "no rule of context op allows act"))
        XCTAssertEqual(g.evaluate(act("lab-psu", "relay.release"), context: "op", held: []),
                       .refuseUncertain(reason: "no attached device lab-psu offers relay.release; the guard does not guess"))
    }

    func tempAudit() throws -> AuditLog {
        try AuditLog(path: NSTemporaryDirectory() + "worldos-audit-\(UUID().uuidString).jsonl")
    }
}

/// Malformed policy files: each error names the file, the line and what to do.
final class PolicyParsingTests: XCTestCase {
    func error(_ text: String) -> ConfigError? {
        do { _ = try Policy.parse(text, file: "p.yaml"); return nil } catch { return error }
    }

    func testUnknownKey_isRejectedWithItsLineAndTheKeysAllowed() {
        let e = error("version: 1\ncontexts:\n  a:\n    allow:\n      - op: open\n        paht: /etc/x\n")
        XCTAssertEqual(e?.line, 6)
        XCTAssertEqual(e?.description, "p.yaml:6:9: contexts.a.allow[0]: unknown key \"paht\" (expected one of: op, path, mode, action, params, rate, reason, kind, device, hours, days)")
    }

    func testBadValues_areRejectedPrecisely() {
        XCTAssertEqual(error("version: 1\ncontexts:\n  a:\n    allow:\n      - op: explode\n")?.message,
                       "contexts.a.allow[0].op: unknown operation \"explode\"")
        XCTAssertEqual(error("version: 1\ncontexts:\n  a:\n    allow:\n      - op: open\n        path: etc/x\n")?.message,
                       "contexts.a.allow[0].path: path pattern \"etc/x\" must be absolute (start with /)")
        XCTAssertEqual(error("version: 1\ncontexts:\n  a:\n    allow:\n      - op: open\n        path: /etc/../root\n")?.line, 6)
        XCTAssertEqual(error("version: 1\ncontexts:\n  a:\n    allow:\n      - op: read\n        path: /etc/x\n")?.message,
                       "contexts.a.allow[0]: \"path\" applies only to ops that name a path (open, openat, spawn, watch)")
        XCTAssertEqual(error("version: 1\ncontexts:\n  a:\n    allow:\n      - op: open\n        mode: sideways\n")?.message,
                       "contexts.a.allow[0].mode: unknown open mode \"sideways\"")
        XCTAssertEqual(error("version: 2\ncontexts: {}\n")?.message, "version: 2 is out of range")
        XCTAssertEqual(error("version: 1\ncontexts:\n  a:\n    allow:\n      - op: read\n        action: relay.*\n")?.message,
                       "contexts.a.allow[0]: \"action\" applies only to op act")
        XCTAssertEqual(error("version: 1\ncontexts:\n  a:\n    allow:\n      - op: act\n        action: \"relay;rm\"\n")?.message,
                       "contexts.a.allow[0].action: action pattern \"relay;rm\" may use letters, digits, . _ - and *")
        XCTAssertEqual(error("version: 1\n")?.message, "document: missing required key \"contexts\"")
        XCTAssertEqual(error("version: 1\nuncertainty:\n  max-surprise: -1\ncontexts: {}\n")?.message, "uncertainty.max-surprise: -1 is out of range")
        XCTAssertEqual(error("version: 1\nuncertainty:\n  max-observation-age-ms: soon\ncontexts: {}\n")?.line, 3)
        XCTAssertEqual(error("version: 1\nuncertainty:\n  max-age: 5\ncontexts: {}\n")?.line, 3)
        let act = "version: 1\ncontexts:\n  a:\n    allow:\n      - op: act\n"
        XCTAssertEqual(error(act + "        rate: often\n")?.message, "contexts.a.allow[0].rate: rate \"often\" is not COUNT/UNIT")
        XCTAssertEqual(error(act + "        rate: 0/minute\n")?.message, "contexts.a.allow[0].rate: rate \"0/minute\" is not COUNT/UNIT")
        XCTAssertEqual(error(act + "        params: { relay: { min: 2, max: 1 } }\n")?.message, "contexts.a.allow[0].params.relay: min 2.0 is above max 1.0")
        XCTAssertEqual(error(act + "        params: { relay: { min: zero, max: 1 } }\n")?.message, "contexts.a.allow[0].params.relay.min: \"zero\" is not a number")
        XCTAssertEqual(error(act + "        params: { relay: { max: 1 } }\n")?.message, "contexts.a.allow[0].params.relay: missing required key \"min\"")
        XCTAssertEqual(error("version: 1\ncontexts:\n  a:\n    allow:\n      - op: open\n        params: { relay: { min: 0, max: 1 } }\n")?.message,
                       "contexts.a.allow[0]: \"params\" applies only to op act")
        XCTAssertEqual(error(act + "        kind: [gadget]\n")?.message, "contexts.a.allow[0].kind: unknown node kind \"gadget\"")
        XCTAssertEqual(error(act + "        device: bench-bridge\n")?.message, "contexts.a.allow[0].device: device \"bench-bridge\" is not a profile identity pattern")
        XCTAssertEqual(error(act + "        device: \"a:b/../c\"\n")?.message, "contexts.a.allow[0].device: device \"a:b/../c\" is not a profile identity pattern")
        XCTAssertEqual(error("version: 1\ncontexts:\n  a:\n    allow:\n      - op: open\n        device: \"a:*\"\n")?.message,
                       "contexts.a.allow[0]: \"device\" applies only to op act")
        for bad in ["8-18", "08:00", "08:00-08:00", "25:00-26:00", "08:60-09:00", "08:00-24:01"] {
            XCTAssertEqual(error(act + "        hours: \"\(bad)\"\n")?.message, "contexts.a.allow[0].hours: hours \"\(bad)\" is not HH:MM-HH:MM", bad)
        }
        XCTAssertEqual(error(act + "        days: [mon, funday]\n")?.message, "contexts.a.allow[0].days: unknown day \"funday\"")
        XCTAssertEqual(error("version: 1\ncontexts:\n  a:\n    deny:\n      - op: act\n        rate: 1/hour\n")?.message,
                       "contexts.a.deny[0]: \"params\" and \"rate\" limit what an allow rule allows; a deny rule denies outright")
    }

    func testSyntaxErrorsEmptyFilesAndDuplicates_nameTheLine() {
        XCTAssertEqual(error("")?.message, "the file is empty")
        let syntax = error("version: 1\ncontexts:\n  a:\n    allow: [\n")
        XCTAssertNotNil(syntax)
        XCTAssertTrue(syntax!.message.hasPrefix("YAML syntax"), syntax!.description)
        let dup = error("version: 1\ncontexts:\n  a:\n    allow: []\n  a:\n    allow: []\n")
        XCTAssertNotNil(dup)
        XCTAssertTrue(dup!.description.contains("twice"), dup!.description)
        XCTAssertEqual(error("version: 1\ncontexts:\n  bad name!:\n    allow: []\n")?.line, 3)
    }

    func testShippedPolicy_loads() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let p = try Policy.load(file: root.appendingPathComponent("Policies/default.yaml").path)
        XCTAssertEqual(Set(p.contexts.keys), ["telemetry", "maintenance", "bench-operator", "heater-control", "plan-runner", "sampler"])
    }
}

