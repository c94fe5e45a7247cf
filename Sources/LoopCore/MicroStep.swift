import StateGraph

/// The operations a micro-step may perform: the level-0 action space. Each lands on one real
/// Linux syscall in the host adapter (or on a predicted outcome in latent mode).
public enum MicroOp: String, Codable, CaseIterable, Sendable {
    case open, openat, read, write, pread, pwrite, close, lseek, fstat
    /// `ioctl(fd, request)` for the named requests in ``ioctlRequests``.
    case ioctl
    case poll, mmap, munmap, pipe
    case socket, bind, listen, connect, accept, sendto, recvfrom
    /// posix_spawn of an executable, stdio on /dev/null; returns the child's pid.
    case spawn
    case waitpid, kill
    /// A timerfd armed to expire after `after-ms` (and every `interval-ms`); returns its fd.
    case timer
    /// inotify_init1; returns its fd.
    case inotify
    /// inotify_add_watch on an inotify fd; returns the watch descriptor.
    case watch
    /// Set a GPIO line (by chip label and line name or offset) as an output; the line stays held,
    /// and goes back to 0 when released.
    case gpioSet = "gpio-set"
    /// Read a GPIO line (its output value if held as an output, else as an input).
    case gpioGet = "gpio-get"
    /// A bulk or interrupt transfer on a USB device (by bus path), endpoint from its descriptors.
    case usbTransfer = "usb-transfer"
    /// A control transfer on a USB device's endpoint 0.
    case usbControl = "usb-control"
    /// A named action of an attached device's profile (`relay.energise`), its template filled
    /// from `params` (`relay=1,percent=40`) and sent; risk classes come from the profile.
    case act

    /// The kinds of graph node a call of this operation touches, which a policy rule can name
    /// (`kind: [file]`).
    public var touches: Set<NodeKind> {
        switch self {
        case .open, .openat, .watch: [.file]
        case .read, .write, .pread, .pwrite, .close, .lseek, .fstat, .ioctl, .poll, .mmap, .munmap: [.fileDescriptor]
        case .pipe: [.pipe]
        case .socket, .bind, .listen, .connect, .accept, .sendto, .recvfrom: [.socket]
        case .spawn: [.process, .file]
        case .waitpid, .kill: [.process]
        case .timer, .inotify: [.anonInode]
        case .gpioSet, .gpioGet: [.gpioLine]
        case .usbTransfer, .usbControl: [.usbDevice]
        case .act: [.instrument]
        }
    }

    /// The arguments each operation takes, and their types. Checked when a bench is loaded and
    /// again when a step's references are resolved.
    public var parameters: [(name: Parameter, type: ParameterType, required: Bool)] {
        switch self {
        case .open: [(.path, .string, true), (.mode, .string, false)]
        case .openat: [(.dir, .int, true), (.path, .string, true), (.mode, .string, false)]
        case .read, .recvfrom: [(.fd, .int, true), (.count, .int, true)]
        case .write: [(.fd, .int, true), (.data, .string, true)]
        case .pread: [(.fd, .int, true), (.count, .int, true), (.offset, .int, true)]
        case .pwrite: [(.fd, .int, true), (.data, .string, true), (.offset, .int, true)]
        case .close, .fstat, .accept: [(.fd, .int, true)]
        case .lseek: [(.fd, .int, true), (.offset, .int, true), (.whence, .string, false)]
        case .ioctl: [(.fd, .int, true), (.request, .string, true), (.value, .int, false)]
        case .poll: [(.fd, .int, true), (.events, .string, false), (.timeoutMs, .int, false)]
        case .mmap: [(.fd, .int, true), (.length, .int, true), (.offset, .int, false)]
        case .munmap: [(.map, .int, true)]
        case .pipe, .inotify: []
        case .socket: [(.domain, .string, true), (.`type`, .string, true)]
        case .bind, .connect: [(.fd, .int, true), (.address, .string, true)]
        case .listen: [(.fd, .int, true), (.backlog, .int, false)]
        case .sendto: [(.fd, .int, true), (.data, .string, true), (.address, .string, false)]
        case .spawn: [(.path, .string, true), (.args, .string, false)]
        case .waitpid: [(.pid, .int, true), (.nohang, .int, false)]
        case .kill: [(.pid, .int, true), (.signal, .string, false)]
        case .timer: [(.afterMs, .int, true), (.intervalMs, .int, false)]
        case .watch: [(.fd, .int, true), (.path, .string, true)]
        case .act: [(.device, .string, true), (.action, .string, true), (.params, .string, false)]
        case .gpioSet: [(.chip, .string, true), (.line, .string, true), (.value, .int, true)]
        case .gpioGet: [(.chip, .string, true), (.line, .string, true)]
        case .usbTransfer: [(.device, .string, true), (.endpoint, .int, true), (.data, .string, false), (.length, .int, false), (.timeoutMs, .int, false)]
        case .usbControl: [(.device, .string, true), (.requestType, .int, true), (.request, .int, true), (.value, .int, false),
                           (.index, .int, false), (.data, .string, false), (.length, .int, false), (.timeoutMs, .int, false)]
        }
    }

    /// The parameter that names a descriptor this step uses, if any (`dir` for openat).
    public var descriptorParameter: Parameter? {
        switch self {
        case .openat: .dir
        case .open, .munmap, .pipe, .socket, .spawn, .waitpid, .kill, .timer, .inotify, .act, .gpioSet, .gpioGet, .usbTransfer, .usbControl: nil
        default: .fd
        }
    }

    /// Operations whose return value is a new descriptor the calling context then holds
    /// (pipe also returns its write end in the `write-fd` field).
    public var returnsDescriptor: Bool { [.open, .openat, .socket, .accept, .timer, .inotify, .pipe].contains(self) }

    public static let openModes: Set<String> = ["read", "write", "append", "create", "readwrite"]
    public static let ioctlRequests: Set<String> = ["FIONREAD", "FIONBIO"]
    public static let maximumReadCount: Int64 = 1 << 20
}

/// A micro-step's parameter, its name written once: the raw value is how bench files, the trace
/// and the audit log spell it. The last three are what the name resolver adds to a resolved call
/// (the name as written, the object's identity, a device node's device number).
public enum Parameter: String, CaseIterable, Sendable {
    case action
    case address
    case afterMs = "after-ms"
    case args
    case backlog
    case chip
    case count
    case data
    case device
    case dir
    case domain
    case endpoint
    case events
    case fd
    case index
    case intervalMs = "interval-ms"
    case length
    case line
    case map
    case mode
    case nohang
    case offset
    case params
    case path
    case pid
    case request
    case requestType = "request-type"
    case signal
    case timeoutMs = "timeout-ms"
    case `type`
    case value
    case whence
    case asWritten = "as-written"
    case object
    case deviceNumber = "rdev"
}

public enum ParameterType: String, Sendable { case int, string }

/// An argument as proposed: a literal, or something returned by an earlier step of the same trace.
public enum Argument: Hashable, Codable, Sendable, CustomStringConvertible {
    case int(Int64)
    case string(String)
    /// `$N` is the return value of step N (0-based); `$N.name` is its side field `name`, such
    /// as `$0.write-fd` for the write end of a pipe.
    case result(of: Int, field: String? = nil)

    public var description: String {
        switch self {
        case .int(let v): String(v)
        case .string(let s): "\"\(s)\""
        case .result(let n, let field): "$\(n)" + (field.map { ".\($0)" } ?? "")
        }
    }

    /// `$3` or `$3.write-fd`; nil for anything else.
    public static func reference(_ text: String) -> (step: Int, field: String?)? {
        guard text.hasPrefix("$") else { return nil }
        let parts = text.dropFirst().split(separator: ".", maxSplits: 1)
        guard let first = parts.first, let n = Int(first), n >= 0 else { return nil }
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) else { return nil }
            return (n, String(parts[1]))
        }
        return (n, nil)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let i = try? c.decode(Int64.self) { self = .int(i); return }
        let s = try c.decode(String.self)
        if let r = Argument.reference(s) { self = .result(of: r.step, field: r.field) } else { self = .string(s.hasPrefix("\\$") ? String(s.dropFirst()) : s) }
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .int(let v): try c.encode(v)
        case .string(let s): try c.encode(s.hasPrefix("$") ? "\\" + s : s)
        case .result: try c.encode(description)
        }
    }
}

/// One call of an operation with its arguments, as proposed (``MicroStep``: an argument may be
/// an earlier step's return) or as resolved (``ResolvedCall``: every argument a value, which the
/// guard decides on and the host performs). Arguments are read by ``Parameter``.
public struct Call<Arg: Hashable & Codable & Sendable & CustomStringConvertible>: Hashable, Codable, Sendable, CustomStringConvertible {
    public var op: MicroOp
    public var args: [String: Arg]
    public init(_ op: MicroOp, _ args: [String: Arg]) { self.op = op; self.args = args }

    public subscript(_ parameter: Parameter) -> Arg? {
        get { args[parameter.rawValue] }
        set { args[parameter.rawValue] = newValue }
    }

    /// The call as a person reads it (run log, panel, audit): its arguments, with the name as
    /// resolved and as written, but not the object identity the trace carries beside them.
    public var description: String {
        "\(op.rawValue)(" + args.filter { $0.key != Parameter.object.rawValue && $0.key != Parameter.deviceNumber.rawValue }
            .sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + ")"
    }
}

/// One proposed micro-step.
public typealias MicroStep = Call<Argument>

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
public typealias ResolvedCall = Call<Value>

extension Call where Arg == Value {
    public func int(_ parameter: Parameter) -> Int64? { self[parameter]?.int }
    public func string(_ parameter: Parameter) -> String? { self[parameter]?.string }

    public var fd: Int64? { int(.fd) }
    public var path: String? { string(.path) }
    /// An `act` call's `params` ("relay=0, hold-ms=50"): the key=value parts, trimmed, and
    /// whether every comma-separated part was one.
    public var actionParameters: (pairs: [String: String], wellFormed: Bool) {
        var pairs: [String: String] = [:], wellFormed = true
        for part in (string(.params) ?? "").split(separator: ",") {
            let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if kv.count == 2 { pairs[kv[0]] = kv[1] } else { wellFormed = false }
        }
        return (pairs, wellFormed)
    }
    /// The descriptor this call uses (`fd`, or `dir` for openat), if any.
    public var descriptor: Int64? { op.descriptorParameter.flatMap { int($0) } }

    /// The argument that names a file-system object, if this operation takes one: `path`, or
    /// for a unix socket `address` (`unix:/run/x.sock`).
    public var nameArgument: Parameter? {
        switch op {
        case .open, .openat, .spawn, .watch: .path
        case .bind, .connect: string(.address)?.hasPrefix("unix:") == true ? .address : nil
        default: nil
        }
    }

    /// The name as the proposal wrote it, when the host's resolver gave the call another (the
    /// canonical one it then decides on and opens).
    public var asWritten: String? { string(.asWritten) }
    /// `DEV:INODE` of the object the name reaches, when it exists (see ``named(_:object:deviceNumber:)``).
    public var object: String? { string(.object) }
    /// For a device node: the device number it opens.
    public var deviceNumber: UInt64? { int(.deviceNumber).map { UInt64(bitPattern: $0) } }

    /// This call with its name replaced by the canonical one (no symlink, `..` or magic link in
    /// it), and the identity of the object found there. The guard decides on that name and
    /// object; the host opens that name with links refused and checks it found that object.
    public func named(_ canonical: String, object: String?, deviceNumber: UInt64?) -> ResolvedCall {
        guard let argument = nameArgument, let written = string(argument) else { return self }
        var call = self
        let spelled = argument == .address ? "unix:" + canonical : canonical
        if spelled != written { call[.asWritten] = .string(written) }
        call[argument] = .string(spelled)
        if let object { call[.object] = .string(object) }
        if let deviceNumber { call[.deviceNumber] = .int(Int64(bitPattern: deviceNumber)) }
        return call
    }
}

/// Gives each call that names a file-system object the canonical name of that object and its
/// identity, before the guard sees it: the guard decides on objects, not on spellings.
public protocol NameResolving {
    func resolve(_ call: ResolvedCall) -> ResolvedCall
}

/// What a call returned: a value with its side data (the bytes read) and side fields (stat
/// fields, the write end of a pipe, a bound port, an exit code), or an errno.
public enum CallResult: Hashable, Codable, Sendable, CustomStringConvertible {
    case value(Int64, data: [UInt8]? = nil, fields: [String: Int64] = [:])
    case failure(errno: Int32)

    public var value: Int64? { if case .value(let v, _, _) = self { v } else { nil } }
    public var fields: [String: Int64] { if case .value(_, _, let f) = self { f } else { [:] } }
    public var data: [UInt8]? { if case .value(_, let d, _) = self { d } else { nil } }
    public var description: String {
        switch self {
        case .value(let v, let data, let fields):
            "\(v)" + (data.map { " (\($0.count) bytes)" } ?? "")
                + (fields.isEmpty ? "" : " {" + fields.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}")
        case .failure(let e): "errno \(e) (\(errnoName(e)))"
        }
    }
}

/// Names for the errno values we meet, for people reading traces and panels.
public func errnoName(_ e: Int32) -> String {
    errnoNames[e] ?? "E\(e)"
}

/// The errno a name from ``errnoName(_:)`` stands for (`ENOENT` → 2, `E71` → 71).
public func errnoNumber(_ name: String) -> Int32? {
    if let known = errnoNames.first(where: { $0.value == name })?.key { return known }
    return name.hasPrefix("E") ? Int32(name.dropFirst()) : nil
}

private let errnoNames: [Int32: String] = [
    1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 9: "EBADF", 11: "EAGAIN",
    12: "ENOMEM", 13: "EACCES", 14: "EFAULT", 16: "EBUSY", 17: "EEXIST", 19: "ENODEV",
    20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL", 24: "EMFILE", 25: "ENOTTY", 28: "ENOSPC",
    30: "EROFS", 32: "EPIPE", 98: "EADDRINUSE", 104: "ECONNRESET", 107: "ENOTCONN",
    110: "ETIMEDOUT", 111: "ECONNREFUSED", 10: "ECHILD", 29: "ESPIPE", 38: "ENOSYS", 95: "EOPNOTSUPP"]

/// A trace of micro-steps proposed for one execution context's quantum.
public struct Proposal: Hashable, Codable, Sendable {
    public var context: String
    public var task: String
    public var steps: [MicroStep]
    /// The macros the task called, where each expanded (nil: none).
    public var macros: [MacroUse]?
    public init(context: String, task: String, steps: [MicroStep], macros: [MacroUse]? = nil) {
        self.context = context
        self.task = task
        self.steps = steps
        self.macros = macros
    }
}

/// A macro a task called (level 1): its name, the first step it expanded to and how many; what
/// it saved is the steps the task did not spell out (all but one).
public struct MacroUse: Hashable, Codable, Sendable {
    public var name: String
    public var first: Int
    public var steps: Int
    public var saved: Int { steps - 1 }
    public init(name: String, first: Int, steps: Int) { (self.name, self.first, self.steps) = (name, first, steps) }
}
