/// The project's one JSON encoder for what it writes in bulk — graph snapshots (`worldos graph
/// --json`), graph deltas in the trace, and the API — written straight into a byte buffer and,
/// when given a sink, handed on in chunks as it fills, so a 10,000-node graph is never held
/// whole as text nor built as an intermediate tree of values.
///
/// Its text is byte for byte what Foundation's `JSONEncoder` writes with `.sortedKeys` and
/// `.withoutEscapingSlashes` (a test holds the two against each other): keys are written in the
/// order the caller gives, which every conformance keeps sorted; strings escape `"`, `\` and
/// the control characters; a double is its shortest round-trip text, `.0` dropped.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []
    /// Per open container, whether a member has been written (the next one needs a comma).
    private var filled: [Bool] = []
    private let chunk: Int
    private let sink: (([UInt8]) throws -> Void)?
    /// The first error the sink threw: writing stops there, and `finish` throws it.
    private var failure: (any Error)?

    /// Collect everything in `bytes`.
    public init(reserving capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
        chunk = .max
        sink = nil
    }

    /// Hand the text to `sink` in pieces of about `chunk` bytes; `finish` hands over the rest.
    public init(chunk: Int = 1 << 16, sink: @escaping ([UInt8]) throws -> Void) {
        bytes.reserveCapacity(chunk + 4096)
        self.chunk = chunk
        self.sink = sink
    }

    /// Hand what is left to the sink; throws what the sink threw, if it ever did.
    public mutating func finish() throws {
        if let failure { throw failure }
        guard let sink, !bytes.isEmpty else { return }
        try sink(bytes)
        bytes.removeAll(keepingCapacity: true)
    }

    private mutating func spill() {
        guard bytes.count >= chunk, let sink, failure == nil else { return }
        do { try sink(bytes) } catch { failure = error }
        bytes.removeAll(keepingCapacity: true)
    }

    // MARK: Containers

    public mutating func beginObject() { separate(); bytes.append(UInt8(ascii: "{")); filled.append(false) }
    public mutating func endObject() { filled.removeLast(); bytes.append(UInt8(ascii: "}")); spill() }
    public mutating func beginArray() { separate(); bytes.append(UInt8(ascii: "[")); filled.append(false) }
    public mutating func endArray() { filled.removeLast(); bytes.append(UInt8(ascii: "]")); spill() }

    /// A member's name; its value is written next.
    public mutating func key(_ name: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
        suppress = true
    }

    public mutating func key(_ name: String) {
        separate()
        quoted(name)
        bytes.append(UInt8(ascii: ":"))
        suppress = true
    }

    /// A line break (for text meant to be read a member a line); JSON still.
    public mutating func newline() { bytes.append(UInt8(ascii: "\n")) }

    /// The next member of the open container on a line of its own: the comma before it ends
    /// the line above.
    public mutating func memberOnNewLine() {
        separate()
        newline()
        suppress = true
    }

    /// Set by `key`: the value that follows is not a new member.
    private var suppress = false

    private mutating func separate() {
        if suppress { suppress = false; return }
        guard let last = filled.indices.last else { return }
        if filled[last] { bytes.append(UInt8(ascii: ",")) } else { filled[last] = true }
    }

    // MARK: Values

    public mutating func string(_ value: String) { separate(); quoted(value); spill() }
    public mutating func bool(_ value: Bool) { separate(); append(value ? "true" : "false") }
    public mutating func null() { separate(); append("null") }

    public mutating func int<T: BinaryInteger>(_ value: T) {
        separate()
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // room for 24 digits
        var count = 0
        withUnsafeMutableBytes(of: &digits) { room in
            repeat {
                room[23 - count] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: magnitude % 10)
                magnitude /= 10
                count += 1
            } while magnitude != 0
            bytes.append(contentsOf: room[(24 - count)...])
        }
    }

    /// Finite doubles only, as `JSONEncoder` (which refuses the others); a non-finite one is
    /// written as null.
    public mutating func double(_ value: Double) {
        guard value.isFinite else { return null() }
        separate()
        var text = value.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        append(text)
    }

    /// A value already encoded as JSON (by this writer or `JSONEncoder`), written as is.
    public mutating func raw(_ json: some Collection<UInt8>) { separate(); bytes.append(contentsOf: json); spill() }

    public mutating func value(_ value: some JSONWritable) { value.write(json: &self) }

    public mutating func array<C: Collection>(_ values: C) where C.Element: JSONWritable {
        beginArray()
        for v in values { v.write(json: &self) }
        endArray()
    }

    private mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { bytes.append(contentsOf: $0) }
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    private mutating func quoted(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { utf8 in
            var start = 0
            for i in 0..<utf8.count {
                let c = utf8[i]
                guard c < 0x20 || c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") else { continue }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<i]))
                start = i + 1
                bytes.append(UInt8(ascii: "\\"))
                switch c {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes.append(c)
                case 0x0A: bytes.append(UInt8(ascii: "n"))
                case 0x0D: bytes.append(UInt8(ascii: "r"))
                case 0x09: bytes.append(UInt8(ascii: "t"))
                case 0x08: bytes.append(UInt8(ascii: "b"))
                case 0x0C: bytes.append(UInt8(ascii: "f"))
                default:
                    bytes.append(UInt8(ascii: "u"))
                    bytes.append(UInt8(ascii: "0"))
                    bytes.append(UInt8(ascii: "0"))
                    bytes.append(Self.hex[Int(c >> 4)])
                    bytes.append(Self.hex[Int(c & 0xF)])
                }
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start...]))
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

/// A value that writes itself through ``JSONWriter``, keys sorted.
public protocol JSONWritable {
    func write(json: inout JSONWriter)
}

extension String: JSONWritable {
    public func write(json: inout JSONWriter) { json.string(self) }
}
