import Dispatch
import LoopCore
import StateGraph

/// The deterministic estimator of the walking skeleton.
///
/// - prior: persistence — the machine stays as the last step left it (the outcome's effects
///   are already folded into memory);
/// - posterior: the observed scope of the kernel partition is replaced by the observation, the
///   context partitions are kept, and each context descriptor is checked against the
///   supervisor's real descriptor table; what differs from the prior is the surprise (see
///   `Integration`: from the whole observation, or from what it changed since the last);
/// - fold: an open that stays open adds a descriptor to the context (and to the supervisor's
///   process), a close removes it, and the context node remembers what it last did.
public struct LiveEstimator: Estimating {
    public init() {}

    public func prior(from memory: Graph, step: Int, at now: Instant) -> Prior {
        Prior(step: step, graph: memory)
    }

    public func posterior(from prior: consuming Prior, observation: Observation?, at now: Instant) throws -> Posterior {
        guard let observation else {
            return Posterior(step: prior.step, graph: prior.graph, surprise: nil, observedAt: nil, change: GraphDelta())
        }
        if let change = observation.change, let basis = prior.basis, basis.integrated == change.since {
            return try Integration.changed(consume prior, observation, change, basis)
        }
        return try Integration.whole(consume prior, observation)
    }

    /// The posterior is the prior's graph edited in place (see `Integration`).
    public var ownsPrior: Bool { true }

    /// Processes are on the panel when visible; other kinds keep what their observer said.
    static func project(_ node: inout Node) {
        if node.kind == .process { node.projected = node.observability == .visible }
    }

    /// What ``posterior(from:observation:at:)`` gives for a first observation (a prior of the
    /// kernel root alone, step 0), as a snapshot, without building a graph: for `worldos graph`,
    /// which prints one observation and exits. Equal to the posterior's snapshot (tested).
    public static func firstSnapshot(of observation: Observation) -> GraphSnapshot {
        var nodes = [Graph.kernelRoot]
        nodes.reserveCapacity(observation.nodes.count + observation.events.count + 1)
        for var node in observation.nodes {
            project(&node)
            nodes.append(node)
        }
        nodes += eventNodes(observation.events, step: 0)
        // Identity order; of one identity given twice, the last stands (as in the posterior).
        // The nodes are put in order on one thread while the edges are grouped by source on
        // another; then each source's few edges follow in the nodes' order, and any from a
        // source that is no node after them.
        var ordered: [Node] = []
        var bySource: [NodeID: [Edge]] = [:]
        let (observedEdges, given) = (observation.edges, nodes)
        withUnsafeMutablePointer(to: &ordered) { ordered in
            withUnsafeMutablePointer(to: &bySource) { bySource in
                let out = SortedHalves(nodes: ordered, edges: bySource)
                DispatchQueue.concurrentPerform(iterations: 2) { half in
                    if half == 0 {
                        let order = given.indices.sorted { a, b in
                            let c = given[a].id.compare(given[b].id)
                            return c != 0 ? c < 0 : a < b
                        }
                        out.nodes.pointee.reserveCapacity(given.count)
                        for (i, index) in order.enumerated() where i + 1 == order.count || given[order[i + 1]].id != given[index].id {
                            out.nodes.pointee.append(given[index])
                        }
                    } else {
                        out.edges.pointee = Dictionary(grouping: observedEdges, by: \.from)
                    }
                }
            }
        }
        var edges: [Edge] = []
        edges.reserveCapacity(observedEdges.count)
        func take(_ list: [Edge]) {
            for edge in list.count > 1 ? list.sorted() : list where edges.last != edge { edges.append(edge) }
        }
        for node in ordered {
            if let list = bySource.removeValue(forKey: node.id) { take(list) }
        }
        take(bySource.values.flatMap { $0 })
        return GraphSnapshot(ordered: ordered, edges: edges)
    }

    /// Where the two halves of ``firstSnapshot(of:)`` put what they made, each its own.
    private struct SortedHalves: @unchecked Sendable {
        let nodes: UnsafeMutablePointer<[Node]>
        let edges: UnsafeMutablePointer<[NodeID: [Edge]]>
    }

    /// The events observed at a step, as the nodes the posterior holds for them.
    static func eventNodes(_ events: [ObservedEvent], step: Int) -> [Node] {
        events.enumerated().map { i, event in
            var attributes: Attributes = ["observed": .bool(true), "source": .string(event.source),
                                          "action": .string(event.action), "subject": .string(event.subject),
                                          "time": .int(Int64(event.time.nanoseconds))]
            for (k, v) in event.details { attributes["detail." + k] = .string(v) }
            return Node(id: .pendingEvent("\(step).\(i)"), kind: .pendingEvent, projected: true, attributes: attributes)
        }
    }

    public func fold(_ outcome: ActionOutcome?, into posterior: Posterior, at now: Instant) -> Graph {
        var graph = posterior.graph
        guard let outcome, var context = graph[.context(outcome.proposal.context)] else { return graph }
        let partition = context.partition
        let effects = Effects(outcome)
        var delta = GraphDelta()

        let contextFDs = Dictionary(graph.members(of: partition).filter { $0.kind == .fileDescriptor }
            .compactMap { n in n["fd"]?.intValue.map { ($0, n.id) } }, uniquingKeysWith: { a, _ in a })
        let supervisor = posterior.supervisor.flatMap { graph.contains($0) ? $0 : nil }
        for fd in effects.closed.sorted() {
            if let id = contextFDs[fd] { delta.append(.removeNode(id)) }
            if let sup = supervisor, graph.contains(.fileDescriptor(owner: sup, fd: Int32(fd))) {
                delta.append(.removeNode(.fileDescriptor(owner: sup, fd: Int32(fd))))
            }
        }
        for (fd, target) in effects.opened.sorted(by: { $0.key < $1.key }) {
            let id = NodeID.fileDescriptor(owner: context.id, fd: Int32(fd))
            let attributes: Attributes = ["fd": .int(fd), "target": .string(target)]
            if graph.contains(id) { delta.append(.removeNode(id)) }
            delta.append(.addNode(Node(id: id, kind: .fileDescriptor, partition: partition, observability: .background, attributes: attributes)))
            delta.append(.addEdge(Edge(context.id, .owns, id)))
            // The supervisor's own process holds the real descriptor: the next prior expects it.
            if let sup = supervisor {
                let kernelFD = NodeID.fileDescriptor(owner: sup, fd: Int32(fd))
                if !graph.contains(kernelFD) {
                    delta.append(.addNode(Node(id: kernelFD, kind: .fileDescriptor, observability: .background, attributes: attributes)))
                    delta.append(.addEdge(Edge(sup, .owns, kernelFD)))
                }
            }
        }
        // Children spawned: their identity is pid + start time, which spawn reports.
        for (pid, child) in effects.spawned.sorted(by: { $0.key < $1.key }) {
            guard let start = child.start else { continue }
            let id = NodeID.process(pid: Int32(pid), startTime: UInt64(start))
            guard !graph.contains(id) else { continue }
            var attributes: Attributes = ["pid": .int(pid), "start": .int(start), "comm": .string(child.name),
                                                        "state": .string("R"), "fds": .int(3)]
            if let sup = supervisor, let ppid = graph[sup]?["pid"] { attributes["ppid"] = ppid }
            delta.append(.addNode(Node(id: id, kind: .process, projected: true, attributes: attributes)))
            delta.append(.addEdge(Edge(context.id, .parentOf, id)))
            if let sup = supervisor { delta.append(.addEdge(Edge(sup, .parentOf, id))) }
        }
        for pid in effects.reaped.sorted() {
            for edge in graph.edges(from: context.id) where edge.kind == .parentOf && graph[edge.to]?["pid"] == .int(pid) {
                delta.append(.removeNode(edge.to))
            }
        }
        var mappings = Set((context["mappings"]?.stringValue ?? "").split(separator: ",").compactMap { Int64($0) })
        mappings.formUnion(effects.mapped)
        mappings.subtract(effects.unmapped)
        context["mappings"] = mappings.isEmpty ? nil : .string(mappings.sorted().map(String.init).joined(separator: ","))

        let allowed = outcome.steps.filter { $0.decision?.isAllowed == true }.count
        let denied = outcome.steps.filter { $0.status == .denied }
        context["last-task"] = .string(outcome.proposal.task)
        context["last-run"] = .int(Int64(now.nanoseconds))
        context["runs"] = .int((context["runs"]?.intValue ?? 0) + 1)
        context["allowed"] = .int((context["allowed"]?.intValue ?? 0) + Int64(allowed))
        context["denied"] = .int((context["denied"]?.intValue ?? 0) + Int64(denied.count))
        // What the context's latest run was refused, if anything: a refusal of an earlier run is
        // history (the trace and audit log keep it), and a wait for approval is not a refusal
        // (the waiting approvals are nodes of their own).
        let refused = denied.filter { if case .needsApproval? = $0.decision { false } else { true } }
        if let first = refused.first, let decision = first.decision {
            context["last-denial"] = .string("\(first.call?.description ?? first.step.description): \(decision.reason ?? "") [\(decision.rule)]")
        } else {
            context["last-denial"] = nil
        }
        let failed = outcome.steps.compactMap { s -> String? in
            if case .performed(.failure(let e)) = s.status { return "\(s.step.op.rawValue): \(errnoName(e))" }
            return nil
        }
        let result = !failed.isEmpty ? failed.joined(separator: ", ") : !refused.isEmpty ? "denied" : !denied.isEmpty ? "waiting for approval" : "ok"
        context["last-result"] = .string(result)
        // What the context waits on now: a person (its action waits for an approval), a device
        // (its step failed the way a device that does not answer fails), or nothing.
        if context["state"]?.stringValue != "program" {
            let io = outcome.steps.contains { s in
                if case .performed(.failure(let e)) = s.status { return ["EIO", "ETIMEDOUT", "EAGAIN", "EBUSY", "ENODEV"].contains(errnoName(e)) }
                return false
            }
            context["state"] = .string(io ? "blocked-on-io" : !denied.isEmpty && refused.isEmpty ? "waiting-for-approval" : "ready")
        }
        delta.append(.updateNode(context))
        do {
            try graph.apply(delta)
        } catch {
            // The outcome contradicts memory (a descriptor number reused behind our back): keep
            // the posterior; the next observation corrects it and counts the surprise.
            context["last-result"] = .string("fold refused: \(error)")
            try? graph.apply(.updateNode(context))
        }
        return graph
    }

    /// What a trace did to the machine, in order: descriptors opened and still open, descriptors
    /// held before and closed, children spawned and not reaped, children reaped, mappings.
    struct Effects {
        var opened: [Int64: String] = [:]
        var closed: Set<Int64> = []
        var spawned: [Int64: (start: Int64?, name: String)] = [:]
        var reaped: Set<Int64> = []
        var mapped: Set<Int64> = []
        var unmapped: Set<Int64> = []

        init(_ outcome: ActionOutcome) {
            for step in outcome.steps {
                guard let call = step.call, case .performed(let result) = step.status, let v = result.value else { continue }
                if call.op.returnsDescriptor {
                    opened[v] = Effects.target(call)
                    if let w = result.fields["write-fd"] { opened[w] = "pipe (write end)" }
                }
                switch call.op {
                case .close:
                    if let fd = call.fd, opened.removeValue(forKey: fd) == nil { closed.insert(fd) }
                case .spawn:
                    let path = call.path ?? "?"
                    spawned[v] = (result.fields["start"], String(path.split(separator: "/").last ?? Substring(path)).prefix(15).description)
                case .waitpid where v > 0:
                    if spawned.removeValue(forKey: v) == nil { reaped.insert(v) }
                case .mmap:
                    mapped.insert(v)
                case .munmap:
                    if let m = call.int(.map), mapped.remove(m) == nil { unmapped.insert(m) }
                default: break
                }
            }
        }

        static func target(_ call: ResolvedCall) -> String {
            switch call.op {
            case .open, .openat: call.path ?? "?"
            case .socket: "socket \(call.string(.domain) ?? "?") \(call.string(.`type`) ?? "?")"
            case .accept: "socket (accepted)"
            case .pipe: "pipe (read end)"
            case .timer: "anon_inode:[timerfd]"
            case .inotify: "anon_inode:inotify"
            default: call.op.rawValue
            }
        }
    }
}

/// The trivial outcome predictor: every call succeeds, with synthetic values. It never
/// touches the machine (it holds nothing and calls nothing); descriptors it invents start at
/// 1000, processes at 100000, so neither can be mistaken for a real one.
public struct TrivialPredictor: Effecting {
    private var made = SyntheticValues()
    public init() {}

    public mutating func perform(_ call: ResolvedCall) -> CallResult {
        if let opened = made.descriptors(for: call.op) { return opened }
        switch call.op {
        case .read, .pread, .recvfrom:
            let count = max(0, min(call.int(.count) ?? 0, 64))
            return .value(count, data: [UInt8](repeating: 0, count: Int(count)))
        case .write, .pwrite, .sendto:
            return .value(Int64(call.string(.data)?.utf8.count ?? 0))
        case .spawn:
            return .value(made.process())
        case .waitpid:
            return .value(call.int(.pid) ?? 0, fields: ["exit-code": 0])
        case .mmap:
            return .value(made.mapping(), fields: ["length": call.int(.length) ?? 0])
        case .fstat:
            return .value(0, fields: ["size": 0])
        case .poll:
            return .value(1)
        case .watch:
            return .value(1)
        case .usbTransfer:
            return .value(call.int(.length) ?? Int64(call.string(.data)?.count ?? 0) / 2)
        default:
            // close, lseek, ioctl, munmap, bind, listen, connect, kill, act, gpio, usb-control.
            return .value(0)
        }
    }
}
