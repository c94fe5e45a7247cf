import CZstd
import Foundation

/// Reads MCAP files front to back — ours, complete or cut short by a crash. Used by
/// `worldos trace repair` and `worldos replay`; the tests read every file with the `mcap`
/// package from PyPI as well.
public struct MCAPReader {
    public struct Message: Sendable, Equatable {
        public var channel: UInt16
        public var sequence: UInt32
        public var logTime: UInt64
        public var publishTime: UInt64
        public var data: [UInt8]
    }

    public struct Channel: Sendable, Equatable {
        public var id: UInt16
        public var schema: UInt16
        public var topic: String
        public var messageEncoding: String
    }

    public struct Malformed: Error, CustomStringConvertible {
        public var path: String
        public var offset: UInt64
        public var message: String
        public var description: String { "MCAP file \(path), byte \(offset): \(message)" }
    }

    /// A chunk as found in the file, with its message indexes if they follow it whole.
    struct FoundChunk {
        var offset: UInt64
        var length: UInt64
        var start: UInt64
        var end: UInt64
        var compression: String
        var compressedSize: UInt64
        var uncompressedSize: UInt64
        var messages: [Message]
        var indexOffsets: [(UInt16, UInt64)] = []
        var indexLength: UInt64 = 0
    }

    public let path: String
    let bytes: [UInt8]
    public private(set) var channels: [UInt16: Channel] = [:]
    private(set) var schemaRecords: [[UInt8]] = []
    private(set) var channelRecords: [[UInt8]] = []
    private(set) var chunks: [FoundChunk] = []
    /// Where the last whole, CRC-valid record of the data section ends.
    private(set) var dataEnd: UInt64 = 0
    /// Whether the file ends with a footer and the magic (it was closed, not cut short).
    public private(set) var complete = false
    /// Why reading stopped before a footer, if it did (a torn record, a bad chunk CRC).
    public private(set) var stoppedBecause: String?

    public var messages: [Message] { chunks.flatMap(\.messages) }

    public init(path: String) throws(Malformed) {
        self.path = path
        guard let data = FileManager.default.contents(atPath: path) else { throw Malformed(path: path, offset: 0, message: "cannot read the file") }
        bytes = [UInt8](data)
        guard bytes.count >= magic.count, Array(bytes[0..<magic.count]) == magic else {
            throw Malformed(path: path, offset: 0, message: "does not start with the MCAP magic bytes; not an MCAP file")
        }
        var at = magic.count
        var sawHeader = false
        var whole = UInt64(at)
        while true {
            guard at + 9 <= bytes.count else {
                if at < bytes.count { stoppedBecause = "a record is cut short at byte \(at)" }
                else if !complete { stoppedBecause = "the file ends without a footer" }
                break
            }
            let op = bytes[at]
            var lengthReader = RecordReader(bytes[(at + 1)..<(at + 9)])
            let length = (try? lengthReader.u64()) ?? .max
            guard length <= UInt64(bytes.count - at - 9) else {
                stoppedBecause = "a record is cut short at byte \(at)"
                break
            }
            let end = at + 9 + Int(length)
            let content = bytes[(at + 9)..<end]
            guard sawHeader || op == Opcode.header.rawValue else {
                throw Malformed(path: path, offset: UInt64(at), message: "the first record is not a header")
            }
            switch Opcode(rawValue: op) {
            case .header: sawHeader = true
            case .schema: schemaRecords.append(Array(bytes[at..<end]))
            case .channel:
                var r = RecordReader(content)
                do throws(RecordReader.Short) {
                    let c = Channel(id: try r.u16(), schema: try r.u16(), topic: try r.string(), messageEncoding: try r.string())
                    channels[c.id] = c
                } catch { throw Malformed(path: path, offset: UInt64(at), message: "a channel record is too short") }
                channelRecords.append(Array(bytes[at..<end]))
            case .chunk:
                guard let chunk = try Self.chunk(content, at: UInt64(at), length: UInt64(end - at)) else {
                    stoppedBecause = "the chunk at byte \(at) fails its CRC or cannot be decompressed"
                    break
                }
                chunks.append(chunk)
            case .messageIndex:
                if !chunks.isEmpty, let channel = try? { var r = RecordReader(content); return try r.u16() }() {
                    chunks[chunks.count - 1].indexOffsets.append((channel, UInt64(at)))
                    chunks[chunks.count - 1].indexLength += UInt64(end - at)
                }
            case .dataEnd:
                dataEnd = UInt64(at)
                // Closed properly if the file ends with a footer and the magic.
                let footerAt = bytes.count - magic.count - 29
                complete = footerAt > at && Array(bytes[(bytes.count - magic.count)...]) == magic && bytes[footerAt] == Opcode.footer.rawValue
                if !complete { stoppedBecause = "the data ends but no footer follows" }
            default: break
            }
            // The summary after DataEnd is rebuilt by a repair, never read from.
            if stoppedBecause != nil || op == Opcode.dataEnd.rawValue || op == Opcode.footer.rawValue { break }
            whole = UInt64(end)
            at = end
        }
        if dataEnd == 0 { dataEnd = whole }
        if !sawHeader { throw Malformed(path: path, offset: UInt64(magic.count), message: "no header record") }
    }

    /// The largest uncompressed chunk read (256 MiB).
    static let largestChunk: UInt64 = 1 << 28

    /// A chunk's messages, or nil if its CRC does not match what it holds.
    static func chunk(_ content: ArraySlice<UInt8>, at offset: UInt64, length: UInt64) throws(Malformed) -> FoundChunk? {
        var r = RecordReader(content)
        guard let start = try? r.u64(), let end = try? r.u64(), let size = try? r.u64(), let crc = try? r.u32(),
              let compression = try? r.string(), let stored = try? r.u64(), let records = try? r.take(stored) else { return nil }
        let plain: [UInt8]
        switch compression {
        case "": plain = Array(records)
        case "zstd":
            // The room is made before anything is decompressed, so the size a chunk claims is
            // believed only if its zstd frame says the same, and up to a bound no chunk this
            // project writes comes near (they are cut at a megabyte and one message): a few
            // bytes claiming gigabytes are a damaged chunk, not an allocation.
            guard size <= Self.largestChunk,
                  records.withUnsafeBytes({ ZSTD_getFrameContentSize($0.baseAddress, $0.count) }) == size else { return nil }
            var out = [UInt8](repeating: 0, count: Int(size))
            let n = out.withUnsafeMutableBytes { o in records.withUnsafeBytes { i in ZSTD_decompress(o.baseAddress, o.count, i.baseAddress, i.count) } }
            guard ZSTD_isError(n) == 0, n == Int(size) else { return nil }
            plain = out
        default: return nil
        }
        guard CRC32.of(plain) == crc || crc == 0 else { return nil }
        var messages: [Message] = []
        var inner = RecordReader(plain[...])
        while inner.rest.count >= 9 {
            guard let op = try? inner.take(1).first, let len = try? inner.u64(), let body = try? inner.take(len) else { return nil }
            guard op == Opcode.message.rawValue else { continue }
            var m = RecordReader(body)
            guard let channel = try? m.u16(), let sequence = try? m.u32(), let log = try? m.u64(), let publish = try? m.u64() else { return nil }
            messages.append(Message(channel: channel, sequence: sequence, logTime: log, publishTime: publish, data: Array(m.rest)))
        }
        return FoundChunk(offset: offset, length: length, start: start, end: end, compression: compression,
                          compressedSize: stored, uncompressedSize: size, messages: messages)
    }
}
