import Glibc

/// The kinds of node the graph holds, as listed in the design map.
public enum NodeKind: String, Codable, CaseIterable, Sendable, Comparable {
    case kernel
    case process
    case executionContext = "execution-context"
    case fileDescriptor = "fd"
    case file
    case socket
    case pipe
    case anonInode = "anon-inode"
    case usbDevice = "usb-device"
    case usbInterface = "usb-interface"
    case gpioChip = "gpio-chip"
    case gpioLine = "gpio-line"
    case serialPort = "serial-port"
    case instrument
    case displayConnector = "display-connector"
    case crtc
    case plane
    case framebuffer
    case inputDevice = "input-device"
    case sensor
    case surface
    case widget
    case pendingEvent = "pending-event"
    /// An irreversible action waiting for a person's approval (what `worldos approvals` lists).
    case approval
    /// A program context's supervised program as its mediator saw it: calls decided, allowed
    /// and refused, the last of each, how it ended.
    case program

    public static func < (a: NodeKind, b: NodeKind) -> Bool { a.rawValue < b.rawValue }
}

/// The kinds of edge. `owns` is special: it forms a forest, and removing a node removes
/// everything it owns, transitively.
public enum EdgeKind: String, Codable, CaseIterable, Sendable, Comparable {
    case owns
    case opened
    case backs
    case attachedTo = "attached-to"
    case parentOf = "parent-of"
    case renders
    case waitsOn = "waits-on"

    public static func < (a: EdgeKind, b: EdgeKind) -> Bool { a.rawValue < b.rawValue }
}

/// Stable identity of a node across steps. The raw value encodes what makes the thing the same
/// thing: a process is pid + start time (so a reused pid is a new node), a descriptor is its
/// process plus its number, a GPIO line is chip + offset.
public struct NodeID: Hashable, Comparable, Codable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }
    /// Identity order: the ids' UTF-8 bytes, compared as unsigned bytes (for ids in NFC, which
    /// the kernel's names nearly always are, the order of `String`'s `<` too, at memcmp's cost).
    public static func < (a: NodeID, b: NodeID) -> Bool { a.compare(b) < 0 }

    /// Negative, zero or positive as `self` comes before, is, or comes after `other`.
    @inlinable
    public func compare(_ other: NodeID) -> Int {
        let fast = rawValue.utf8.withContiguousStorageIfAvailable { x in
            other.rawValue.utf8.withContiguousStorageIfAvailable { y in
                let n = min(x.count, y.count)
                let c = n == 0 ? 0 : Int(memcmp(x.baseAddress!, y.baseAddress!, n))
                return c != 0 ? c : x.count - y.count
            }
        }
        if let fast = fast ?? nil { return fast }
        // A bridged or otherwise non-contiguous string: byte by byte.
        for (x, y) in zip(rawValue.utf8, other.rawValue.utf8) where x != y { return Int(x) - Int(y) }
        return rawValue.utf8.count - other.rawValue.utf8.count
    }

    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }

    public static let kernel = NodeID("kernel")
    /// A process: `startTime` is the kernel's start time in clock ticks since boot (/proc/PID/stat field 22).
    public static func process(pid: Int32, startTime: UInt64) -> NodeID {
        NodeID(IDText("process:", DecimalText(pid), "@", DecimalText(startTime)))
    }
    public static func fileDescriptor(owner: NodeID, fd: Int32) -> NodeID { NodeID(IDText("fd:", owner.rawValue, "#", DecimalText(fd))) }
    /// An anonymous inode (eventfd, timerfd, …) a descriptor holds: its own node, under the descriptor's owner.
    public static func anonymousInode(owner: NodeID, fd: Int32) -> NodeID { NodeID(IDText("anon:", owner.rawValue, "#", DecimalText(fd))) }
    /// A shared object named by one number or two (`file:2049:1234`, `socket:5678`): `kind` ends with its colon.
    public static func object(_ kind: StaticString, _ a: UInt64, _ b: UInt64? = nil) -> NodeID {
        NodeID(IDText(kind, DecimalText(a), ":", b.map { DecimalText($0) }))
    }
    public static func context(_ name: String) -> NodeID { NodeID("context:\(name)") }
    /// A file, socket, pipe or anonymous inode, named by what the kernel calls it
    /// (a path, `socket:[123]`, `pipe:[456]`, `anon_inode:[eventfd]`).
    public static func object(_ kind: NodeKind, _ name: String) -> NodeID { NodeID(kind.rawValue + ":" + name) }
    public static func pendingEvent(_ name: String) -> NodeID { NodeID("event:\(name)") }
    public static func widget(_ name: String) -> NodeID { NodeID("widget:\(name)") }
}

/// An id's text written in one allocation: a prefix, a name or a number, then a separator and a
/// number. A refresh makes ids for tens of thousands of descriptors and objects; `+` and
/// interpolation allocate at each step.
@usableFromInline
func IDText(_ prefix: StaticString, _ name: String, _ separator: StaticString, _ number: DecimalText) -> String {
    var name = name
    return name.withUTF8 { nameBytes in
        let count = prefix.utf8CodeUnitCount + nameBytes.count + separator.utf8CodeUnitCount + number.length
        return String(unsafeUninitializedCapacity: count) { out in
            var at = copy(prefix, into: out, at: 0)
            if nameBytes.count > 0 { out.baseAddress!.advanced(by: at).update(from: nameBytes.baseAddress!, count: nameBytes.count) }
            at = copy(separator, into: out, at: at + nameBytes.count)
            return number.write(into: out, at: at)
        }
    }
}

@usableFromInline
func IDText(_ prefix: StaticString, _ first: DecimalText, _ separator: StaticString, _ second: DecimalText?) -> String {
    let count = prefix.utf8CodeUnitCount + first.length + (second.map { separator.utf8CodeUnitCount + $0.length } ?? 0)
    return String(unsafeUninitializedCapacity: count) { out in
        let at = first.write(into: out, at: copy(prefix, into: out, at: 0))
        guard let second else { return at }
        return second.write(into: out, at: copy(separator, into: out, at: at))
    }
}

private func copy(_ text: StaticString, into out: UnsafeMutableBufferPointer<UInt8>, at: Int) -> Int {
    out.baseAddress!.advanced(by: at).update(from: text.utf8Start, count: text.utf8CodeUnitCount)
    return at + text.utf8CodeUnitCount
}

/// An integer as its decimal text.
@usableFromInline
struct DecimalText {
    let negative: Bool
    let magnitude: UInt64
    @usableFromInline init<T: BinaryInteger>(_ n: T) {
        negative = n < 0
        magnitude = UInt64(n.magnitude)
    }

    var length: Int {
        var rest = magnitude, length = negative ? 2 : 1
        while rest >= 10 {
            rest /= 10
            length += 1
        }
        return length
    }

    func write(into out: UnsafeMutableBufferPointer<UInt8>, at: Int) -> Int {
        let end = at + length
        var rest = magnitude, i = end
        repeat {
            i -= 1
            out[i] = UInt8(ascii: "0") + UInt8(rest % 10)
            rest /= 10
        } while rest > 0
        if negative { out[at] = UInt8(ascii: "-") }
        return end
    }
}

/// Which partition a node lives in: the kernel's, or one execution context's. Partitions are
/// isolated: an edge may join the kernel partition to a context, never two contexts.
public enum Partition: Hashable, Comparable, Codable, Sendable, CustomStringConvertible {
    case kernel
    case context(String)

    public var description: String {
        switch self {
        case .kernel: "kernel"
        case .context(let name): "context:\(name)"
        }
    }

    public init(parsing text: String) throws {
        if text == "kernel" { self = .kernel; return }
        if text.hasPrefix("context:"), text.count > 8 { self = .context(String(text.dropFirst(8))); return }
        throw GraphError.malformedPartition(text)
    }

    public init(from decoder: any Decoder) throws {
        self = try Partition(parsing: decoder.singleValueContainer().decode(String.self))
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
    public static func < (a: Partition, b: Partition) -> Bool { a.description < b.description }
}

/// Whether a node is in view.
public enum Observability: String, Codable, Sendable, CaseIterable {
    case visible, background, hidden
}

/// An attribute value. Kept small so a 100,000-node graph stays cheap.
public enum AttributeValue: Hashable, Codable, Sendable, CustomStringConvertible {
    case int(Int64)
    case double(Double)
    case string(String)
    case bool(Bool)

    public var description: String {
        switch self {
        case .int(let v): String(v)
        case .double(let v): String(v)
        case .string(let v): v
        case .bool(let v): String(v)
        }
    }
    /// A double with a whole value and its integer are the same value: JSON writes both as `5`,
    /// so a graph read back from a trace must compare equal to the one that wrote it.
    public static func == (a: AttributeValue, b: AttributeValue) -> Bool {
        switch (a.numericKey, b.numericKey) {
        case let (x?, y?): return x == y
        case (nil, nil): break
        default: return false
        }
        switch (a, b) {
        case let (.double(x), .double(y)): return x == y || (x.isNaN && y.isNaN)
        case let (.string(x), .string(y)): return x == y
        case let (.bool(x), .bool(y)): return x == y
        default: return false
        }
    }

    public func hash(into hasher: inout Hasher) {
        if let key = numericKey { hasher.combine(0); hasher.combine(key); return }
        switch self {
        case .double(let v): hasher.combine(1); hasher.combine(v.isNaN ? .nan : v)
        case .string(let v): hasher.combine(2); hasher.combine(v)
        case .bool(let v): hasher.combine(3); hasher.combine(v)
        case .int: break
        }
    }

    /// The integer an int, or a double with a whole value in Int64's range, stands for.
    private var numericKey: Int64? {
        switch self {
        case .int(let v): v
        case .double(let v): v.rounded() == v && abs(v) < 9.2e18 ? Int64(v) : nil
        default: nil
        }
    }

    public var intValue: Int64? { if case .int(let v) = self { v } else { nil } }
    public var stringValue: String? { if case .string(let v) = self { v } else { nil } }
    /// A number, whole or not.
    public var doubleValue: Double? {
        switch self {
        case .double(let v): v
        case .int(let v): Double(v)
        default: nil
        }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int64.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else { self = .string(try c.decode(String.self)) }
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .int(let v): try c.encode(v)
        case .double(let v): try c.encode(v)
        case .string(let v): try c.encode(v)
        case .bool(let v): try c.encode(v)
        }
    }
}

/// A node's attributes: a few named values (a dozen at most), kept as pairs in the order they
/// were set and found by a scan. Two are equal when they hold the same pairs in any order. A
/// node is made on every refresh for every process and descriptor, and a dictionary per node
/// cost a hash table allocation and a SipHash of every key; comparing two cost a lookup per key.
public struct Attributes: Hashable, Codable, Sendable, Sequence, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    public typealias Element = (key: String, value: AttributeValue)
    /// Unlabelled, as a literal gives them: taken without a copy.
    private(set) var pairs: [(String, AttributeValue)]

    public init() { pairs = [] }

    /// A later pair with a key already given replaces the earlier one.
    public init(dictionaryLiteral elements: (String, AttributeValue)...) {
        pairs = elements
        // Keys of different lengths differ: most pairs are told apart without a string comparison.
        for i in pairs.indices.dropFirst() where pairs[..<i].contains(where: { $0.0.utf8.count == pairs[i].0.utf8.count && $0.0 == pairs[i].0 }) {
            pairs = []
            for (key, value) in elements { self[key] = value }
            return
        }
    }

    public subscript(_ key: String) -> AttributeValue? {
        get {
            for pair in pairs where pair.0 == key { return pair.1 }
            return nil
        }
        set {
            let at = pairs.firstIndex { $0.0 == key }
            switch (at, newValue) {
            case let (i?, value?): pairs[i].1 = value
            case let (i?, nil): pairs.remove(at: i)
            case let (nil, value?): pairs.append((key, value))
            case (nil, nil): break
            }
        }
    }

    public var count: Int { pairs.count }
    public var isEmpty: Bool { pairs.isEmpty }

    public struct Iterator: IteratorProtocol {
        fileprivate var base: IndexingIterator<[(String, AttributeValue)]>
        public mutating func next() -> Element? { base.next().map { (key: $0.0, value: $0.1) } }
    }
    public func makeIterator() -> Iterator { Iterator(base: pairs.makeIterator()) }

    public static func == (a: Attributes, b: Attributes) -> Bool {
        guard a.pairs.count == b.pairs.count else { return false }
        // Most comparisons are of attributes made by the same code, in the same order.
        var i = 0
        while i < a.pairs.count, a.pairs[i].0 == b.pairs[i].0 {
            guard a.pairs[i].1 == b.pairs[i].1 else { return false }
            i += 1
        }
        for (key, value) in a.pairs[i...] where b[key] != value { return false }
        return true
    }

    /// Independent of order: the pairs' hashes are summed.
    public func hash(into hasher: inout Hasher) {
        var sum = 0
        for (key, value) in pairs {
            var h = Hasher()
            h.combine(key)
            h.combine(value)
            sum &+= h.finalize()
        }
        hasher.combine(pairs.count)
        hasher.combine(sum)
    }

    public var description: String {
        pairs.isEmpty ? "[:]" : "[" + pairs.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "]"
    }

    /// As a JSON object, one member per pair (the same text a dictionary gives).
    private struct Name: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Name.self)
        pairs = try c.allKeys.map { ($0.stringValue, try c.decode(AttributeValue.self, forKey: $0)) }
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Name.self)
        for (key, value) in pairs { try c.encode(value, forKey: Name(stringValue: key)) }
    }
}

/// One node of the machine's graph.
public struct Node: Hashable, Codable, Sendable {
    public var id: NodeID
    public var kind: NodeKind
    public var partition: Partition
    public var observability: Observability
    /// Part of the UI-projected subset: the surface shows it. Never true for a hidden node.
    public var projected: Bool
    /// Capability labels: what an execution context may touch. Only contexts carry them.
    public var capabilities: Set<String>
    public var attributes: Attributes

    public init(id: NodeID, kind: NodeKind, partition: Partition = .kernel,
                observability: Observability = .visible, projected: Bool = false,
                capabilities: Set<String> = [], attributes: Attributes = [:]) {
        self.id = id
        self.kind = kind
        self.partition = partition
        self.observability = observability
        self.projected = projected
        self.capabilities = capabilities
        self.attributes = attributes
    }

    public subscript(_ key: String) -> AttributeValue? {
        get { attributes[key] }
        set { attributes[key] = newValue }
    }

    private enum CodingKeys: String, CodingKey {
        case id, kind, partition, observability, projected, capabilities, attributes
    }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(NodeID.self, forKey: .id)
        kind = try c.decode(NodeKind.self, forKey: .kind)
        partition = try c.decode(Partition.self, forKey: .partition)
        observability = try c.decode(Observability.self, forKey: .observability)
        projected = try c.decodeIfPresent(Bool.self, forKey: .projected) ?? false
        capabilities = try c.decodeIfPresent(Set<String>.self, forKey: .capabilities) ?? []
        attributes = try c.decodeIfPresent(Attributes.self, forKey: .attributes) ?? [:]
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(kind, forKey: .kind)
        try c.encode(partition, forKey: .partition)
        try c.encode(observability, forKey: .observability)
        if projected { try c.encode(true, forKey: .projected) }
        if !capabilities.isEmpty { try c.encode(capabilities.sorted(), forKey: .capabilities) }
        if !attributes.isEmpty { try c.encode(attributes, forKey: .attributes) }
    }
}

/// A typed, directed edge. Edges carry no payload; their identity is (from, kind, to).
public struct Edge: Hashable, Comparable, Codable, Sendable, CustomStringConvertible {
    public var from: NodeID
    public var kind: EdgeKind
    public var to: NodeID

    public init(_ from: NodeID, _ kind: EdgeKind, _ to: NodeID) {
        self.from = from
        self.kind = kind
        self.to = to
    }
    public var description: String { "\(from) -\(kind.rawValue)-> \(to)" }
    public static func < (a: Edge, b: Edge) -> Bool {
        let from = a.from.compare(b.from)
        if from != 0 { return from < 0 }
        if a.kind != b.kind { return a.kind < b.kind }
        return a.to.compare(b.to) < 0
    }
}
