import Foundation
import Glibc
import Journal
import LoopCore

/// One record of the audit log. Each carries the hash of the one before it, so any change to
/// an earlier record breaks every hash after it.
public struct AuditRecord: Codable, Equatable, Sendable {
    public var seq: Int
    public var prev: String
    public var time: UInt64
    public var policy: String
    /// "decision" before a call, "outcome" after an allowed one.
    public var event: String
    public var mode: String
    public var context: String
    public var call: String
    public var decision: String?
    public var rule: String?
    public var reason: String?
    public var result: String?
    /// For an outcome: the seq of the decision it follows (the write-ahead intent it closes).
    public var decisionSeq: Int?
    public var hash: String?

    /// A record to append; `seq`, `prev` and `hash` are filled in by ``AuditLog/append(_:)``.
    public init(time: UInt64, policy: String, event: String, mode: String, context: String, call: String,
                decision: String? = nil, rule: String? = nil, reason: String? = nil, result: String? = nil, decisionSeq: Int? = nil) {
        seq = 0
        prev = ""
        hash = nil
        self.time = time
        self.policy = policy
        self.event = event
        self.mode = mode
        self.context = context
        self.call = call
        self.decision = decision
        self.rule = rule
        self.reason = reason
        self.result = result
        self.decisionSeq = decisionSeq
    }

    func computedHash() -> String {
        let (head, tail) = jsonHalves()
        return SHA256.hex(head + tail)
    }

    /// The record as JSONEncoder writes it with sorted keys and unescaped slashes, byte for byte
    /// (a test holds them equal), without its cost: a mediated program's every open is one
    /// record, and JSONEncoder took ~20 µs of each.
    func json() -> [UInt8] {
        let (head, tail) = jsonHalves()
        guard let hash else { return head + tail }
        var line = head
        line.append(contentsOf: #","hash":"#.utf8)
        Self.appendQuoted(hash, to: &line)
        return line + tail
    }

    /// The keys before "hash" (with the opening brace) and after it (with the closing one):
    /// the hashed body is the two together, the written line has the hash between them.
    private func jsonHalves() -> (head: [UInt8], tail: [UInt8]) {
        var out: [UInt8] = [UInt8(ascii: "{")]
        out.reserveCapacity(512)
        func key(_ name: StaticString) {
            if out.count > 1 { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            out.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
        }
        func string(_ name: StaticString, _ value: String?) {
            guard let value else { return }
            key(name)
            Self.appendQuoted(value, to: &out)
        }
        func number(_ name: StaticString, _ value: String?) {
            guard let value else { return }
            key(name)
            out.append(contentsOf: value.utf8)
        }
        // Alphabetical, as .sortedKeys orders them; "hash" goes between event and mode.
        string("call", call)
        string("context", context)
        string("decision", decision)
        number("decisionSeq", decisionSeq.map(String.init))
        string("event", event)
        let head = out
        out = [UInt8(ascii: "{")]
        string("mode", mode)
        string("policy", policy)
        string("prev", prev)
        string("reason", reason)
        string("result", result)
        string("rule", rule)
        number("seq", String(seq))
        number("time", String(time))
        out.append(UInt8(ascii: "}"))
        // Both halves are non-empty (call, context, event, mode... are always there): join with a comma.
        out[0] = UInt8(ascii: ",")
        return (head, out)
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    static func appendQuoted(_ text: String, to out: inout [UInt8]) {
        let hex = hexDigits
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x08: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x0C: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0..<0x20: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), 0x30, 0x30, hex[Int(byte >> 4)], hex[Int(byte & 15)]])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// The append-only, hash-chained audit log (JSON lines). Every record is written and fsync'd
/// before `append` returns, so the record of an allowed call is on disk before the call runs.
/// The loop and the mediators of supervised programs append from their own threads; a lock
/// keeps the chain in one order.
public final class AuditLog: @unchecked Sendable {
    private let lock = NSLock()
    public static let genesis = String(repeating: "0", count: 64)
    private let file: AppendOnlyFile
    private var lastHash: String
    private var nextSeq: Int
    public var path: String { file.path }
    /// Bytes of an incomplete last record found and cut off when the log was opened (a crash mid-write).
    public var tornTailBytes: Int { file.tornTailBytes }
    /// Signs checkpoints and keeps the head outside the log (see ``AuditSeal``); nil: the chain alone.
    public let seal: AuditSeal?
    private var head: Int32 = -1
    private var sinceCheckpoint = 0

    /// Open (or create) the log and continue its chain. With a seal, the log must reach the head
    /// kept for it (a log cut short or rewritten is refused, saying where it ends and where its
    /// head is), and a checkpoint is signed at once.
    public init(path: String, seal: AuditSeal? = nil) throws {
        self.seal = seal
        do { file = try AppendOnlyFile(path: path, permissions: 0o600) } catch {
            throw AuditError(path: path, message: error.message)
        }
        if let lastLine = file.lastLine {
            guard let record = try? JSONDecoder().decode(AuditRecord.self, from: lastLine), let hash = record.hash else {
                throw AuditError(path: path, message: "the last record cannot be read, so the chain cannot be continued; move the file aside")
            }
            lastHash = hash
            nextSeq = record.seq + 1
        } else {
            lastHash = AuditLog.genesis
            nextSeq = 0
        }
        guard let seal else { return }
        let headPath = AuditSeal.headPath(for: path, in: seal.directory)
        let kept = AuditSeal.readHead(headPath)
        if let kept, nextSeq > 0, let problem = Self.headProblem(kept, lastSeq: nextSeq - 1, lastHash: lastHash, path: path) {
            throw AuditError(path: path, message: problem + "; keep this log for inspection (its head is \(headPath)) and start a new run folder")
        }
        head = open(headPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard head >= 0 else { throw AuditError(path: path, message: "cannot keep its head in \(headPath): \(String(cString: strerror(errno)))") }
        if let kept, nextSeq == 0 {
            // A whole log gone (a run folder removed and made anew, or a log deleted): the new
            // chain begins by saying so.
            try append(AuditRecord(time: 0, policy: "", event: "log-missing", mode: "", context: "supervisor", call: "open(\(path))",
                                   reason: "a log of \(kept.seq + 1) records ending in \(kept.hash) was here and is gone"))
        }
        if nextSeq > 0 { try checkpoint() }
    }

    deinit { if head >= 0 { close(head) } }

    /// Why a log does not reach its head, or nil when it does.
    static func headProblem(_ kept: AuditSeal.Head, lastSeq: Int, lastHash: String, path: String) -> String? {
        if lastSeq < kept.seq { return "the log ends at seq \(lastSeq), its head says \(kept.seq): records were removed from its end" }
        if lastSeq == kept.seq { return lastHash == kept.hash ? nil : "record \(kept.seq) is not the one its head names: the log was rewritten" }
        guard let record = records(path: path).first(where: { $0.seq == kept.seq }) else {
            return "the log has no record \(kept.seq), which its head names: the log was rewritten"
        }
        return record.hash == kept.hash ? nil : "record \(kept.seq) is not the one its head names: the log was rewritten"
    }

    /// Append a record, chained to the previous one, and fsync it (`sync: false` leaves the
    /// fsync to the next synced record or the kernel: see ``ProgramGuard``).
    @discardableResult
    public func append(_ record: AuditRecord, sync: Bool = true) throws -> AuditRecord {
        lock.lock()
        defer { lock.unlock() }
        let r = try chain(record, sync: sync)
        if sync, seal != nil {
            keepHead()
            sinceCheckpoint += 1
            if sinceCheckpoint >= AuditSeal.checkpointEvery { try checkpoint() }
        }
        return r
    }

    /// Give the record its place in the chain and write it (called with the lock held).
    private func chain(_ record: AuditRecord, sync: Bool) throws -> AuditRecord {
        var r = record
        r.seq = nextSeq
        r.prev = lastHash
        r.hash = nil
        r.hash = r.computedHash()
        do { try file.append(Data(r.json()), sync: sync) } catch {
            throw AuditError(path: path, message: error.message)
        }
        lastHash = r.hash!
        nextSeq += 1
        return r
    }

    /// The head of the synced chain, in place and fsync'd (fixed width: one pwrite).
    private func keepHead() {
        let text = Array((String(repeating: "0", count: max(0, 20 - String(nextSeq - 1).count)) + String(nextSeq - 1) + " " + lastHash + "\n").utf8)
        _ = pwrite(head, text, text.count, 0)
        fsync(head)
    }

    /// A signed checkpoint over the record before it (called with the lock held).
    private func checkpoint() throws {
        guard let seal else { return }
        sinceCheckpoint = 0
        _ = try chain(AuditRecord(time: 0, policy: "", event: "checkpoint", mode: "", context: "supervisor", call: "sign(seq \(nextSeq - 1))",
                                  reason: seal.sign(seq: nextSeq - 1, hash: lastHash), result: seal.fingerprint), sync: true)
        keepHead()
    }

    /// SHA-256 in hex, for the seal (whose file cannot name the project's `SHA256` beside Crypto's).
    static func hex(_ bytes: [UInt8]) -> String { SHA256.hex(bytes) }

    /// Approved actions whose decision (the write-ahead intent) is on disk but whose outcome is
    /// not: the supervisor stopped between the two. Their approvals were used before they ran,
    /// so they are never repeated; a person must find out what happened. Intents already
    /// reported as `outcome-unknown` are not reported again.
    public static func unfinishedApprovedActions(path: String) -> [AuditRecord] {
        let records = records(path: path)
        let closed = Set(records.compactMap(\.decisionSeq))
        return records.filter { $0.event == "decision" && $0.decision == "allow" && ($0.rule ?? "").hasPrefix("approval ") && !closed.contains($0.seq) }
    }

    /// The hashes of the policies the log records being loaded (`policy` events), oldest first.
    public static func loadedPolicies(path: String) -> [String] {
        records(path: path).filter { $0.event == "policy" }.map(\.policy)
    }

    /// Every readable record of a log, for the questions asked of it at start and by the CLI.
    public static func records(path: String) -> [AuditRecord] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        return data.split(separator: UInt8(ascii: "\n")).compactMap { try? JSONDecoder().decode(AuditRecord.self, from: Data($0)) }
    }

    /// The last `count` records, read from the file's end: what a tail costs does not grow with
    /// the log (a long run's log is megabytes; reading it whole for every look is a heap that
    /// grows with it).
    public static func lastRecords(path: String, count: Int) -> [AuditRecord] {
        guard count > 0, let file = FileHandle(forReadingAtPath: path) else { return [] }
        defer { try? file.close() }
        guard var position = try? file.seekToEnd() else { return [] }
        var tail = Data()
        let chunk: UInt64 = 64 << 10
        // Enough whole lines: one more newline than records asked for (or the file's start).
        while position > 0, tail.reduce(0, { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 }) <= count {
            let step = min(chunk, position)
            position -= step
            try? file.seek(toOffset: position)
            tail = (file.readData(ofLength: Int(step))) + tail
        }
        var lines = tail.split(separator: UInt8(ascii: "\n"))
        if position > 0, !lines.isEmpty { lines.removeFirst() }  // cut through: not a whole line
        return lines.suffix(count).compactMap { try? JSONDecoder().decode(AuditRecord.self, from: Data($0)) }
    }

    /// What ``verify(path:keys:)`` found.
    public struct Verified: Sendable {
        public var records: Int
        public var checkpoints: Int
        /// The head kept for the log, when there is one.
        public var head: Int?
    }

    /// Check a log's chain, and with the seal's folder (`keys`) every checkpoint's signature
    /// and that the log reaches the head kept for it.
    public static func verify(path: String, keys: String) -> Result<Verified, AuditError> {
        // The head first: a writer appends a record before it moves the head, so a log read after
        // the head always reaches it, however many records are appended meanwhile.
        let kept = AuditSeal.readHead(AuditSeal.headPath(for: path, in: keys))
        let chain = verify(path: path)
        guard case .success(let count) = chain else { return chain.map { _ in Verified(records: 0, checkpoints: 0) } }
        let all = records(path: path)
        var checkpoints = 0
        let key = AuditSeal.publicKey(in: keys)
        for r in all where r.event == "checkpoint" {
            guard let key else {
                return .failure(AuditError(path: path, message: "record \(r.seq + 1) is a signed checkpoint, but \(keys) holds no public key to check it"))
            }
            guard AuditSeal.valid(r.reason ?? "", seq: r.seq - 1, hash: r.prev, key: key) else {
                return .failure(AuditError(path: path, message: "record \(r.seq + 1) (seq \(r.seq)) is a checkpoint whose signature does not verify: the log was rewritten"))
            }
            checkpoints += 1
        }
        if let kept, let last = all.last, let problem = headProblem(kept, lastSeq: last.seq, lastHash: last.hash ?? "", path: path) {
            return .failure(AuditError(path: path, message: problem))
        }
        if let kept, all.isEmpty { return .failure(AuditError(path: path, message: "the log is empty, its head says \(kept.seq): records were removed")) }
        return .success(Verified(records: count, checkpoints: checkpoints, head: kept?.seq))
    }

    /// Check a log's chain from the start. Returns the number of records, or the first broken one.
    /// Only complete lines count: one without its newline is a record being written as the log is
    /// read (or a crash's torn tail, which the writer cuts when it opens the log).
    public static func verify(path: String) -> Result<Int, AuditError> {
        guard let read = FileManager.default.contents(atPath: path) else {
            return .failure(AuditError(path: path, message: "cannot read"))
        }
        let data = read.prefix(read.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0)
        var prev = genesis
        var count = 0
        for (i, line) in data.split(separator: UInt8(ascii: "\n")).enumerated() {
            guard let r = try? JSONDecoder().decode(AuditRecord.self, from: Data(line)) else {
                return .failure(AuditError(path: path, message: "record \(i + 1) is not a valid record"))
            }
            guard r.seq == i, r.prev == prev, r.hash == r.computedHash() else {
                return .failure(AuditError(path: path, message: "record \(i + 1) (seq \(r.seq)) breaks the chain"))
            }
            prev = r.hash!
            count += 1
        }
        return .success(count)
    }
}

public struct AuditError: Error, CustomStringConvertible, Equatable {
    public var path: String
    public var message: String
    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }
    public var description: String { "audit log \(path): \(message)" }
}
