/// MCAP records as bytes (https://mcap.dev/spec): little-endian integers, strings and byte
/// arrays with a uint32 length, maps with a uint32 byte length.
public enum Opcode: UInt8, Sendable {
    case header = 0x01, footer = 0x02, schema = 0x03, channel = 0x04, message = 0x05, chunk = 0x06
    case messageIndex = 0x07, chunkIndex = 0x08, attachment = 0x09, attachmentIndex = 0x0A, statistics = 0x0B
    case metadata = 0x0C, metadataIndex = 0x0D, summaryOffset = 0x0E, dataEnd = 0x0F
}

public let magic: [UInt8] = [0x89, 0x4D, 0x43, 0x41, 0x50, 0x30, 0x0D, 0x0A]

/// Builds one record's content.
struct RecordBuilder {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { for i in 0..<2 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    mutating func u32(_ v: UInt32) { for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) } }
    mutating func u64(_ v: UInt64) { for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) } }
    mutating func string(_ s: String) { let utf8 = Array(s.utf8); u32(UInt32(utf8.count)); bytes += utf8 }
    mutating func data32(_ d: [UInt8]) { u32(UInt32(d.count)); bytes += d }

    /// A map or array: its entries, prefixed by their total byte length.
    mutating func prefixed32(_ body: (inout RecordBuilder) -> Void) {
        var inner = RecordBuilder()
        body(&inner)
        u32(UInt32(inner.bytes.count))
        bytes += inner.bytes
    }

    /// The whole record: opcode, content length, content.
    static func record(_ op: Opcode, _ body: (inout RecordBuilder) -> Void) -> [UInt8] {
        var content = RecordBuilder()
        body(&content)
        var out = RecordBuilder()
        out.u8(op.rawValue)
        out.u64(UInt64(content.bytes.count))
        out.bytes += content.bytes
        return out.bytes
    }
}

/// Reads one record's content; every read is bounds-checked and a short one throws.
struct RecordReader {
    let bytes: ArraySlice<UInt8>
    var at: Int

    init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes; at = bytes.startIndex }

    struct Short: Error {}

    mutating func take(_ n: Int) throws(Short) -> ArraySlice<UInt8> {
        guard n >= 0, n <= bytes.endIndex - at else { throw Short() }
        defer { at += n }
        return bytes[at..<at + n]
    }
    /// A length read from the file: any 64-bit value, longer than what is left is short.
    mutating func take(_ n: UInt64) throws(Short) -> ArraySlice<UInt8> {
        guard n <= UInt64(bytes.endIndex - at) else { throw Short() }
        return try take(Int(n))
    }
    mutating func uint(_ width: Int) throws(Short) -> UInt64 {
        let b = try take(width)
        return b.reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }
    mutating func u16() throws(Short) -> UInt16 { UInt16(try uint(2)) }
    mutating func u32() throws(Short) -> UInt32 { UInt32(try uint(4)) }
    mutating func u64() throws(Short) -> UInt64 { try uint(8) }
    mutating func string() throws(Short) -> String { String(decoding: try take(Int(try u32())), as: UTF8.self) }
    mutating func data32() throws(Short) -> ArraySlice<UInt8> { try take(Int(try u32())) }
    var rest: ArraySlice<UInt8> { bytes[at...] }
}
