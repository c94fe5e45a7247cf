import CZstd
import Glibc
import Journal
import SystemCalls

/// Writes an MCAP file: schemas and channels as they are added, messages gathered into chunks
/// (zstd-compressed, CRC-checked) each followed by its message indexes, and on close the
/// summary (schemas, channels, chunk indexes, statistics), the summary offsets and the footer.
///
/// A chunk and its indexes go to the kernel in one write, so a process killed at any moment
/// leaves every finished chunk whole; ``MCAPRepair`` turns such a file back into a complete one.
public final class MCAPWriter {
    public enum Compression: String, Sendable { case zstd, none = "" }

    public struct Failure: Error, CustomStringConvertible {
        public var path: String
        public var message: String
        public var description: String { "MCAP file \(path): \(message)" }
    }

    public let path: String
    public let compression: Compression
    private let fd: Int32
    /// Bytes written to the file so far.
    public private(set) var position: UInt64 = 0
    private var schemas: [[UInt8]] = []
    private var channels: [[UInt8]] = []
    private var chunkIndexes: [[UInt8]] = []
    // The chunk being gathered.
    private var chunk = RecordBuilder()
    private var chunkStart: UInt64 = .max
    private var chunkEnd: UInt64 = 0
    private var chunkIndex: [UInt16: [(time: UInt64, offset: UInt64)]] = [:]
    // Statistics.
    private var messageCount: UInt64 = 0
    private var firstTime: UInt64 = .max
    private var lastTime: UInt64 = 0
    private var perChannel: [UInt16: UInt64] = [:]
    private var closed = false

    /// Bytes of messages waiting in the open chunk.
    public var pendingBytes: Int { chunk.bytes.count }
    public var pendingMessages: Bool { !chunk.bytes.isEmpty }

    public init(path: String, profile: String = "", library: String = "worldos", compression: Compression = .zstd) throws(Failure) {
        self.path = path
        self.compression = compression
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Failure(path: path, message: "cannot create: \(String(cString: strerror(errno)))") }
        try emit(magic + RecordBuilder.record(.header) { $0.string(profile); $0.string(library) })
    }

    /// Continue a file cut short after its last whole record (see ``repair(path:)``).
    private init(resuming reader: MCAPReader) throws(Failure) {
        path = reader.path
        compression = .zstd
        fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0, ftruncate(fd, off_t(reader.dataEnd)) == 0, lseek(fd, off_t(reader.dataEnd), SEEK_SET) >= 0 else {
            throw Failure(path: path, message: "cannot reopen to repair: \(String(cString: strerror(errno)))")
        }
        position = reader.dataEnd
        schemas = reader.schemaRecords
        channels = reader.channelRecords
        for c in reader.chunks {
            chunkIndexes.append(RecordBuilder.record(.chunkIndex) { r in
                r.u64(c.start); r.u64(c.end); r.u64(c.offset); r.u64(c.length)
                r.prefixed32 { m in for (channel, offset) in c.indexOffsets { m.u16(channel); m.u64(offset) } }
                r.u64(c.indexLength); r.string(c.compression); r.u64(c.compressedSize); r.u64(c.uncompressedSize)
            })
            for m in c.messages {
                messageCount += 1
                firstTime = min(firstTime, m.logTime)
                lastTime = max(lastTime, m.logTime)
                perChannel[m.channel, default: 0] += 1
            }
        }
    }

    /// What ``repair(path:)`` did.
    public struct Repair: Sendable, Equatable {
        public var chunks: Int
        public var messages: Int
        /// Bytes after the last whole record, cut off.
        public var bytesCut: UInt64
        /// The file was already complete: nothing was changed.
        public var wasComplete: Bool
    }

    /// Make a file cut short by a crash complete again: keep every whole, CRC-valid chunk (and
    /// the schemas and channels before it), cut what follows, and write the summary and footer
    /// from what was kept. A complete file is left as it is.
    public static func repair(path: String) throws -> Repair {
        let reader = try MCAPReader(path: path)
        let size = UInt64(reader.bytes.count)
        if reader.complete { return Repair(chunks: reader.chunks.count, messages: reader.messages.count, bytesCut: 0, wasComplete: true) }
        let writer = try MCAPWriter(resuming: reader)
        try writer.close()
        return Repair(chunks: reader.chunks.count, messages: reader.messages.count, bytesCut: size - reader.dataEnd, wasComplete: false)
    }

    deinit { if !closed { Glibc.close(fd) } }

    /// Register a schema (written at once, and again in the summary). Ids start at 1.
    public func addSchema(name: String, encoding: String, data: [UInt8]) throws(Failure) -> UInt16 {
        let id = UInt16(schemas.count + 1)
        let record = RecordBuilder.record(.schema) { $0.u16(id); $0.string(name); $0.string(encoding); $0.data32(data) }
        schemas.append(record)
        try emit(record)
        return id
    }

    /// Register a channel on a topic. Ids start at 0.
    public func addChannel(topic: String, messageEncoding: String, schema: UInt16, metadata: [String: String] = [:]) throws(Failure) -> UInt16 {
        let id = UInt16(channels.count)
        let record = RecordBuilder.record(.channel) { r in
            r.u16(id); r.u16(schema); r.string(topic); r.string(messageEncoding)
            r.prefixed32 { m in for (k, v) in metadata.sorted(by: { $0.key < $1.key }) { m.string(k); m.string(v) } }
        }
        channels.append(record)
        try emit(record)
        return id
    }

    /// Add a message to the open chunk (nothing is written until ``flushChunk()``).
    public func write(channel: UInt16, sequence: UInt32, logTime: UInt64, publishTime: UInt64, data: [UInt8]) {
        chunkIndex[channel, default: []].append((logTime, UInt64(chunk.bytes.count)))
        // Straight into the chunk: no record built apart and copied (this is the hot path).
        chunk.u8(Opcode.message.rawValue)
        chunk.u64(UInt64(22 + data.count))
        chunk.u16(channel); chunk.u32(sequence); chunk.u64(logTime); chunk.u64(publishTime)
        chunk.bytes.append(contentsOf: data)
        chunkStart = min(chunkStart, logTime)
        chunkEnd = max(chunkEnd, logTime)
        messageCount += 1
        firstTime = min(firstTime, logTime)
        lastTime = max(lastTime, logTime)
        perChannel[channel, default: 0] += 1
    }

    /// Compress the open chunk and write it, with its message indexes, in one write.
    public func flushChunk() throws(Failure) {
        guard !chunk.bytes.isEmpty else { return }
        let uncompressed = chunk.bytes
        let stored = try compress(uncompressed)
        let chunkRecord = RecordBuilder.record(.chunk) { r in
            r.u64(chunkStart); r.u64(chunkEnd); r.u64(UInt64(uncompressed.count)); r.u32(CRC32.of(uncompressed))
            r.string(compression.rawValue); r.u64(UInt64(stored.count)); r.bytes += stored
        }
        let chunkOffset = position
        var indexes: [UInt8] = []
        var indexOffsets: [(UInt16, UInt64)] = []
        for (channel, entries) in chunkIndex.sorted(by: { $0.key < $1.key }) {
            indexOffsets.append((channel, chunkOffset + UInt64(chunkRecord.count + indexes.count)))
            indexes += RecordBuilder.record(.messageIndex) { r in
                r.u16(channel)
                r.prefixed32 { a in for e in entries { a.u64(e.time); a.u64(e.offset) } }
            }
        }
        chunkIndexes.append(RecordBuilder.record(.chunkIndex) { r in
            r.u64(chunkStart); r.u64(chunkEnd); r.u64(chunkOffset); r.u64(UInt64(chunkRecord.count))
            r.prefixed32 { m in for (c, o) in indexOffsets { m.u16(c); m.u64(o) } }
            r.u64(UInt64(indexes.count)); r.string(compression.rawValue); r.u64(UInt64(stored.count)); r.u64(UInt64(uncompressed.count))
        })
        try emit(chunkRecord + indexes)
        chunk = RecordBuilder()
        chunkIndex = [:]
        chunkStart = .max
        chunkEnd = 0
    }

    /// Flush the last chunk and write the summary and footer; the file is then complete.
    public func close() throws(Failure) {
        guard !closed else { return }
        try flushChunk()
        try emit(RecordBuilder.record(.dataEnd) { $0.u32(0) })
        let summaryStart = position
        var summary: [UInt8] = []
        var offsets: [UInt8] = []
        func group(_ op: Opcode, _ records: [[UInt8]]) {
            guard !records.isEmpty else { return }
            let start = summaryStart + UInt64(summary.count)
            for r in records { summary += r }
            offsets += RecordBuilder.record(.summaryOffset) { r in
                r.u8(op.rawValue); r.u64(start); r.u64(summaryStart + UInt64(summary.count) - start)
            }
        }
        group(.schema, schemas)
        group(.channel, channels)
        group(.chunkIndex, chunkIndexes)
        group(.statistics, [RecordBuilder.record(.statistics) { r in
            r.u64(messageCount); r.u16(UInt16(schemas.count)); r.u32(UInt32(channels.count)); r.u32(0); r.u32(0)
            r.u32(UInt32(chunkIndexes.count)); r.u64(messageCount == 0 ? 0 : firstTime); r.u64(lastTime)
            r.prefixed32 { m in for (c, n) in perChannel.sorted(by: { $0.key < $1.key }) { m.u16(c); m.u64(n) } }
        }])
        let summaryOffsetStart = summaryStart + UInt64(summary.count)
        // The footer's CRC covers the summary, the offsets and the footer up to its own CRC field.
        var footerHead = RecordBuilder()
        footerHead.u8(Opcode.footer.rawValue); footerHead.u64(20); footerHead.u64(summaryStart); footerHead.u64(summaryOffsetStart)
        var crc = CRC32()
        crc.update(summary); crc.update(offsets); crc.update(footerHead.bytes)
        var tail = footerHead
        tail.u32(crc.value)
        try emit(summary + offsets + tail.bytes + magic)
        fsync(fd)
        Glibc.close(fd)
        closed = true
    }

    private func compress(_ bytes: [UInt8]) throws(Failure) -> [UInt8] {
        guard compression == .zstd else { return bytes }
        var out = [UInt8](repeating: 0, count: ZSTD_compressBound(bytes.count))
        let n = out.withUnsafeMutableBytes { o in bytes.withUnsafeBytes { i in ZSTD_compress(o.baseAddress, o.count, i.baseAddress, i.count, 3) } }
        guard ZSTD_isError(n) == 0 else { throw Failure(path: path, message: "zstd: \(String(cString: ZSTD_getErrorName(n)))") }
        return Array(out[0..<n])
    }

    private func emit(_ bytes: [UInt8]) throws(Failure) {
        if let failed = Syscall.writeAll(fd, bytes) {
            throw Failure(path: path, message: "write failed: \(failed)")
        }
        position += UInt64(bytes.count)
    }
}
