import Foundation
import Glibc
import Guard
import WorldOSTesting
import XCTest

/// The audit log cut short or rewritten and re-hashed is detected: by the head kept outside it
/// and by the signed checkpoints, at start and by `verify`.
final class AuditSealTests: XCTestCase {
    var directory = ""
    var keys: String { directory + "/keys" }
    var log: String { directory + "/run/audit.jsonl" }

    override func setUpWithError() throws {
        directory = try temporaryFolder("seal")
        try FileManager.default.createDirectory(atPath: directory + "/run", withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    func record(_ n: Int) -> AuditRecord {
        AuditRecord(time: UInt64(n), policy: "p", event: "decision", mode: "real", context: "op", call: "open(\(n))", decision: "allow", rule: "p.yaml:\(n)")
    }

    /// 150 decisions under a seal: checkpoints at open and every 64 synced records.
    func writeSealedLog() throws -> AuditSeal {
        let seal = try AuditSeal(directory: keys)
        let audit = try AuditLog(path: log, seal: seal)
        for n in 0..<150 { try audit.append(record(n)) }
        return seal
    }

    func lines() throws -> [Substring] { try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n") }

    func testASealedLog_verifies_withItsCheckpointsAndHead() throws {
        _ = try writeSealedLog()
        let verified = try AuditLog.verify(path: log, keys: keys).get()
        XCTAssertEqual(verified.records, 152, "150 records and two checkpoints")
        XCTAssertEqual(verified.checkpoints, 2)
        XCTAssertEqual(verified.head, 151)
        var info = stat()
        XCTAssertEqual(stat(keys + "/audit-ed25519.key", &info), 0)
        XCTAssertEqual(info.st_mode & 0o777, 0o600, "the key is the supervisor's alone")
        // Reopening continues the chain and signs a checkpoint at once.
        _ = try AuditLog(path: log, seal: try AuditSeal(directory: keys))
        XCTAssertEqual(try AuditLog.verify(path: log, keys: keys).get().checkpoints, 3)
    }

    func testTheLast40RecordsDeleted_areDetected_byVerifyAndAtStart() throws {
        _ = try writeSealedLog()
        let kept = try lines().dropLast(40)
        try (kept.joined(separator: "\n") + "\n").write(toFile: log, atomically: false, encoding: .utf8)
        XCTAssertNoThrow(try AuditLog.verify(path: log).get(), "the chain alone cannot tell")
        guard case .failure(let e) = AuditLog.verify(path: log, keys: keys) else { return XCTFail("a cut log verified") }
        XCTAssertTrue(e.message.contains("the log ends at seq 111, its head says 151"), e.message)
        XCTAssertThrowsError(try AuditLog(path: log, seal: try AuditSeal(directory: keys))) {
            XCTAssertTrue("\($0)".contains("the log ends at seq 111, its head says 151") && "\($0)".contains("start a new run folder"), "\($0)")
        }
    }

    func testALogRewrittenAndRehashedFromTheFirstRecord_isDetected() throws {
        _ = try writeSealedLog()
        let original = try lines().map { try JSONDecoder().decode(AuditRecord.self, from: Data($0.utf8)) }
        try FileManager.default.removeItem(atPath: log)
        // The forger rewrites one decision and re-hashes everything, checkpoints copied as they were.
        let forged = try AuditLog(path: log)
        for var r in original {
            if r.seq == 10 { r.decision = "deny" }
            try forged.append(AuditRecord(time: r.time, policy: r.policy, event: r.event, mode: r.mode, context: r.context, call: r.call,
                                          decision: r.decision, rule: r.rule, reason: r.reason, result: r.result))
        }
        XCTAssertNoThrow(try AuditLog.verify(path: log).get(), "a re-hashed chain is a valid chain")
        guard case .failure(let e) = AuditLog.verify(path: log, keys: keys) else { return XCTFail("a rewritten log verified") }
        XCTAssertTrue(e.message.contains("checkpoint whose signature does not verify") || e.message.contains("was rewritten"), e.message)
        // Without its checkpoints, the head still gives it away.
        try FileManager.default.removeItem(atPath: log)
        let stripped = try AuditLog(path: log)
        for r in original where r.event != "checkpoint" {
            try stripped.append(AuditRecord(time: r.time, policy: r.policy, event: r.event, mode: r.mode, context: r.context, call: r.call,
                                            decision: r.decision, rule: r.rule, reason: r.reason, result: r.result))
        }
        guard case .failure(let e2) = AuditLog.verify(path: log, keys: keys) else { return XCTFail("a rewritten log verified") }
        XCTAssertTrue(e2.message.contains("its head says 151"), e2.message)
    }

    /// A tail is read from the file's end, and is the same records as the whole log's last ones,
    /// across the 64 KiB reads it is made of.
    /// `audit verify` beside a running supervisor: records appended while it reads are not a cut.
    func testVerify_whileTheWriterAppends_neverSeesTheHeadAheadOfTheLog() throws {
        let audit = try AuditLog(path: log, seal: try AuditSeal(directory: keys))
        let done = DispatchSemaphore(value: 0)
        let stop = Locked(false)
        Thread.detachNewThread {
            var n = 0
            while !stop.current && n < 2000 {
                _ = try? audit.append(AuditRecord(time: UInt64(n), policy: "p", event: "decision", mode: "real", context: "op", call: "open(\(n))"))
                n += 1
            }
            done.signal()
        }
        defer { stop.withLock { $0 = true }; done.wait() }
        for _ in 0..<40 {
            if case .failure(let error) = AuditLog.verify(path: log, keys: keys) { return XCTFail("\(error)") }
        }
    }

    /// A last record still being written (no newline yet) is not a broken one: verify reads the
    /// complete lines, as the log's writer does when it opens it. A complete line that is not a
    /// record still breaks it.
    func testVerify_countsCompleteLinesOnly_aRecordBeingWrittenIsNotBroken() throws {
        let audit = try AuditLog(path: log)
        for n in 0..<5 { try audit.append(record(n)) }
        let half = Array(#"{"call":"open(5)","context":"op","#.utf8)
        let end = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try end.seekToEnd()
        try end.write(contentsOf: half)
        XCTAssertEqual(try AuditLog.verify(path: log).get(), 5, "the line being written is not counted, nor is it a fault")
        try end.write(contentsOf: Array("\n".utf8))
        try end.close()
        guard case .failure(let error) = AuditLog.verify(path: log) else { return XCTFail("a complete line that is no record verified") }
        XCTAssertTrue(error.message.contains("record 6 is not a valid record"), error.message)
    }

    func testTheLastRecords_readFromTheEnd_areTheLogsLastRecords() throws {
        let audit = try AuditLog(path: log)
        for n in 0..<1500 { try audit.append(record(n)) }  // ~400 KiB: several reads back
        let all = AuditLog.records(path: log)
        XCTAssertGreaterThan(try FileManager.default.attributesOfItem(atPath: log)[.size] as? Int ?? 0, 3 * 65536)
        for count in [1, 7, 300, 1500, 4000] {
            XCTAssertEqual(AuditLog.lastRecords(path: log, count: count).map(\.seq), all.suffix(count).map(\.seq), "last \(count)")
        }
        XCTAssertEqual(AuditLog.lastRecords(path: directory + "/none.jsonl", count: 5).count, 0)
    }

    func testAKeyOthersCanRead_isRefused() throws {
        _ = try AuditSeal(directory: keys)
        chmod(keys + "/audit-ed25519.key", 0o644)
        XCTAssertThrowsError(try AuditSeal(directory: keys)) { XCTAssertTrue("\($0)".contains("chmod 600"), "\($0)") }
    }
}

extension AuditSealTests {
    func testAWholeLogRemoved_beginsTheNewChainBySayingSo() throws {
        _ = try writeSealedLog()
        try FileManager.default.removeItem(atPath: log)
        _ = try AuditLog(path: log, seal: try AuditSeal(directory: keys))
        let first = try XCTUnwrap(AuditLog.records(path: log).first)
        XCTAssertEqual(first.event, "log-missing")
        XCTAssertTrue(first.reason?.contains("a log of 152 records") == true, first.reason ?? "")
        XCTAssertNoThrow(try AuditLog.verify(path: log, keys: keys).get())
    }
}

