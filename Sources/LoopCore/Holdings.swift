/// What an execution context holds: the descriptors, child processes and mappings it created
/// (or was given) and has not released. The guard lets a context use only what it holds.
public struct Holdings: Hashable, Sendable {
    public var descriptors: Set<Int64>
    public var processes: Set<Int64>
    public var mappings: Set<Int64>

    public init(descriptors: Set<Int64> = [], processes: Set<Int64> = [], mappings: Set<Int64> = []) {
        self.descriptors = descriptors
        self.processes = processes
        self.mappings = mappings
    }

    /// Account for a performed call: what it created is now held, what it released is not.
    public mutating func record(_ call: ResolvedCall, _ result: CallResult) {
        guard let v = result.value else { return }
        if call.op.returnsDescriptor {
            descriptors.insert(v)
            if let w = result.fields["write-fd"] { descriptors.insert(w) }
        }
        switch call.op {
        case .close: if let fd = call.fd { descriptors.remove(fd) }
        case .spawn: processes.insert(v)
        case .waitpid: if v > 0 { processes.remove(v) }
        case .mmap: mappings.insert(v)
        case .munmap: if let m = call.int(.map) { mappings.remove(m) }
        default: break
        }
    }

    /// Why `call` may not use what it names, or nil when the context holds all of it.
    public func refusal(for call: ResolvedCall, context: String) -> String? {
        if let fd = call.descriptor, !descriptors.contains(fd) {
            return "descriptor \(fd) is not held by context \(context)"
        }
        if call.op == .waitpid || call.op == .kill, let pid = call.int(.pid), !processes.contains(pid) {
            return "process \(pid) is not a child of context \(context)"
        }
        if call.op == .munmap, let m = call.int(.map), !mappings.contains(m) {
            return "mapping \(m) is not held by context \(context)"
        }
        return nil
    }
}

extension Holdings: ExpressibleByArrayLiteral {
    /// Holdings of just these descriptors.
    public init(arrayLiteral descriptors: Int64...) { self.init(descriptors: Set(descriptors)) }
}
