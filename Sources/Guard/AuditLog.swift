import Foundation
import Glibc
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
    public var hash: String?

    /// A record to append; `seq`, `prev` and `hash` are filled in by ``AuditLog/append(_:)``.
    public init(time: UInt64, policy: String, event: String, mode: String, context: String, call: String,
                decision: String? = nil, rule: String? = nil, reason: String? = nil, result: String? = nil) {
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
    }

    func computedHash() -> String {
        var body = self
        body.hash = nil
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return SHA256.hex(Array((try? encoder.encode(body)) ?? Data()))
    }
}

/// The append-only, hash-chained audit log (JSON lines). Every record is written and fsync'd
/// before `append` returns, so the record of an allowed call is on disk before the call runs.
public final class AuditLog {
    public static let genesis = String(repeating: "0", count: 64)
    public let path: String
    private let fd: Int32
    private var lastHash: String
    private var nextSeq: Int
    /// Bytes of an incomplete last line found and cut off when the log was opened (a crash mid-write).
    public private(set) var tornTailBytes = 0

    public init(path: String) throws {
        self.path = path
        fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AuditError(path: path, message: "cannot open: \(String(cString: strerror(errno)))") }
        let existing = FileManager.default.contents(atPath: path) ?? Data()
        var complete = existing
        if let lastNewline = existing.lastIndex(of: UInt8(ascii: "\n")) {
            complete = existing.prefix(through: lastNewline)
        } else {
            complete = Data()
        }
        tornTailBytes = existing.count - complete.count
        if tornTailBytes > 0 { _ = ftruncate(fd, off_t(complete.count)) }
        let lastLine = complete.split(separator: UInt8(ascii: "\n")).last
        if let lastLine, let record = try? JSONDecoder().decode(AuditRecord.self, from: Data(lastLine)), let hash = record.hash {
            lastHash = hash
            nextSeq = record.seq + 1
        } else if lastLine != nil {
            close(fd)
            throw AuditError(path: path, message: "the last record cannot be read, so the chain cannot be continued; move the file aside")
        } else {
            lastHash = AuditLog.genesis
            nextSeq = 0
        }
    }

    deinit { close(fd) }

    /// Append a record, chained to the previous one, and fsync it.
    @discardableResult
    public func append(_ record: AuditRecord) throws -> AuditRecord {
        var r = record
        r.seq = nextSeq
        r.prev = lastHash
        r.hash = nil
        r.hash = r.computedHash()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var line = Array(try encoder.encode(r))
        line.append(UInt8(ascii: "\n"))
        var written = 0
        while written < line.count {
            let n = line[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw AuditError(path: path, message: "write failed: \(String(cString: strerror(errno)))")
            }
            written += n
        }
        guard fsync(fd) == 0 else { throw AuditError(path: path, message: "fsync failed: \(String(cString: strerror(errno)))") }
        lastHash = r.hash!
        nextSeq += 1
        return r
    }

    /// Check a log's chain from the start. Returns the number of records, or the first broken one.
    public static func verify(path: String) -> Result<Int, AuditError> {
        guard let data = FileManager.default.contents(atPath: path) else {
            return .failure(AuditError(path: path, message: "cannot read"))
        }
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
