/// The operations a micro-step may perform. Each lands on one real Linux syscall in the host
/// adapter (or on a predicted outcome in latent mode).
public enum MicroOp: String, Codable, CaseIterable, Sendable {
    case open, read, write, close
    /// `ioctl(fd, FIONREAD)`: bytes ready to read.
    case fionread

    /// The arguments each operation takes, and their types. Checked when a bench is loaded and
    /// again when a step's references are resolved.
    public var parameters: [(name: String, type: ParameterType, required: Bool)] {
        switch self {
        case .open: [("path", .string, true), ("mode", .string, false)]
        case .read: [("fd", .int, true), ("count", .int, true)]
        case .write: [("fd", .int, true), ("data", .string, true)]
        case .close, .fionread: [("fd", .int, true)]
        }
    }
    /// The parameter that names a descriptor this step uses, if any.
    public var usesDescriptor: Bool { self != .open }
    public static let openModes: Set<String> = ["read", "write", "append", "create"]
    public static let maximumReadCount: Int64 = 1 << 20
}

public enum ParameterType: String, Sendable { case int, string }

/// An argument as proposed: a literal, or the value returned by an earlier step of the same trace.
public enum Argument: Hashable, Codable, Sendable, CustomStringConvertible {
    case int(Int64)
    case string(String)
    /// `$N`: the return value of step N (0-based) of the same trace.
    case result(of: Int)

    public var description: String {
        switch self {
        case .int(let v): String(v)
        case .string(let s): "\"\(s)\""
        case .result(let n): "$\(n)"
        }
    }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let i = try? c.decode(Int64.self) { self = .int(i); return }
        let s = try c.decode(String.self)
        if s.hasPrefix("$"), let n = Int(s.dropFirst()) { self = .result(of: n) } else { self = .string(s.hasPrefix("\\$") ? String(s.dropFirst()) : s) }
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .int(let v): try c.encode(v)
        case .string(let s): try c.encode(s.hasPrefix("$") ? "\\" + s : s)
        case .result(let n): try c.encode("$\(n)")
        }
    }
}

/// One proposed micro-step.
public struct MicroStep: Hashable, Codable, Sendable, CustomStringConvertible {
    public var op: MicroOp
    public var args: [String: Argument]
    public init(_ op: MicroOp, _ args: [String: Argument]) { self.op = op; self.args = args }
    public var description: String {
        "\(op.rawValue)(" + args.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + ")"
    }
}

/// A resolved argument: what the host adapter receives.
public enum Value: Hashable, Codable, Sendable, CustomStringConvertible {
    case int(Int64)
    case string(String)
    public var description: String {
        switch self {
        case .int(let v): String(v)
        case .string(let s): "\"\(s)\""
        }
    }
    public var int: Int64? { if case .int(let v) = self { v } else { nil } }
    public var string: String? { if case .string(let v) = self { v } else { nil } }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let i = try? c.decode(Int64.self) { self = .int(i) } else { self = .string(try c.decode(String.self)) }
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .int(let v): try c.encode(v)
        case .string(let s): try c.encode(s)
        }
    }
}

/// A micro-step with every reference replaced by the value it named. This is what the guard
/// decides on and what the host adapter performs.
public struct ResolvedCall: Hashable, Codable, Sendable, CustomStringConvertible {
    public var op: MicroOp
    public var args: [String: Value]
    public init(_ op: MicroOp, _ args: [String: Value]) { self.op = op; self.args = args }
    public var description: String {
        "\(op.rawValue)(" + args.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + ")"
    }
    public var fd: Int64? { args["fd"]?.int }
    public var path: String? { args["path"]?.string }
}

/// What a call returned: a value (with side data such as the bytes read) or an errno.
public enum CallResult: Hashable, Codable, Sendable, CustomStringConvertible {
    case value(Int64, data: [UInt8]? = nil)
    case failure(errno: Int32)

    public var value: Int64? { if case .value(let v, _) = self { v } else { nil } }
    public var description: String {
        switch self {
        case .value(let v, let data?): "\(v) (\(data.count) bytes)"
        case .value(let v, nil): "\(v)"
        case .failure(let e): "errno \(e) (\(errnoName(e)))"
        }
    }
}

/// Names for the errno values we meet, for people reading traces and panels.
public func errnoName(_ e: Int32) -> String {
    let names: [Int32: String] = [1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 9: "EBADF", 11: "EAGAIN",
                                  12: "ENOMEM", 13: "EACCES", 14: "EFAULT", 16: "EBUSY", 17: "EEXIST", 19: "ENODEV",
                                  20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL", 24: "EMFILE", 25: "ENOTTY", 28: "ENOSPC",
                                  30: "EROFS", 32: "EPIPE", 110: "ETIMEDOUT"]
    return names[e] ?? "E\(e)"
}

/// A trace of micro-steps proposed for one execution context's quantum.
public struct Proposal: Hashable, Codable, Sendable {
    public var context: String
    public var task: String
    public var steps: [MicroStep]
    public init(context: String, task: String, steps: [MicroStep]) {
        self.context = context
        self.task = task
        self.steps = steps
    }
}
