import LoopCore
import StateGraph

/// The deterministic estimator of the walking skeleton.
///
/// - prior: persistence — the machine stays as the last step left it (the outcome's effects
///   are already folded into memory);
/// - posterior: the observed scope of the kernel partition is replaced by the observation, the
///   context partitions are kept, and each context descriptor is checked against the
///   supervisor's real descriptor table; what differs from the prior is the surprise;
/// - fold: an open that stays open adds a descriptor to the context (and to the supervisor's
///   process), a close removes it, and the context node remembers what it last did.
public struct LiveEstimator: Estimating {
    public init() {}

    public func prior(from memory: Graph, step: Int, at now: Instant) -> Prior {
        Prior(step: step, graph: memory)
    }

    public func posterior(from prior: Prior, observation: Observation?, at now: Instant) throws -> Posterior {
        guard let observation else {
            return Posterior(step: prior.step, graph: prior.graph, surprise: nil, observedAt: nil)
        }
        let before = prior.graph.snapshot()
        let inScope = { (n: Node) in n.partition == .kernel && observation.scope.contains(n.kind) }
        let observedIDs = Set(observation.nodes.map(\.id))
        var observedByID: [NodeID: Node] = [:]
        for var node in observation.nodes {
            // Processes are on the panel when visible; other kinds keep what their observer said.
            if node.kind == .process { node.projected = node.observability == .visible }
            observedByID[node.id] = node
        }
        // Context descriptors stand only if the supervisor really holds that descriptor.
        let supervisorFDs: Set<Int64> = Set(observation.edges.lazy
            .filter { $0.kind == .owns && $0.from == observation.supervisor }
            .compactMap { observedByID[$0.to]?["fd"]?.intValue })
        let staleContextFDs = Set(before.nodes.filter { n in
            guard n.kind == .fileDescriptor, case .context = n.partition, let fd = n["fd"]?.intValue else { return false }
            return !supervisorFDs.contains(fd)
        }.map(\.id))

        // Events observed at the last step have been recorded with it; this step's replace them.
        let earlierEvent = { (n: Node) in n.partition == .kernel && n.kind == .pendingEvent && n["observed"] == .bool(true) }
        var nodes = before.nodes.filter { !inScope($0) && !staleContextFDs.contains($0.id) && !earlierEvent($0) }
        nodes.append(contentsOf: observedByID.values)
        for (i, event) in observation.events.enumerated() {
            var attributes: [String: AttributeValue] = ["observed": .bool(true), "source": .string(event.source),
                                                        "action": .string(event.action), "subject": .string(event.subject),
                                                        "time": .int(Int64(event.time.nanoseconds))]
            for (k, v) in event.details { attributes["detail." + k] = .string(v) }
            nodes.append(Node(id: .pendingEvent("\(prior.step).\(i)"), kind: .pendingEvent, projected: true, attributes: attributes))
        }
        let kept = Set(nodes.map(\.id))
        var edges = before.edges.filter { e in
            kept.contains(e.from) && kept.contains(e.to) && !(observedIDs.contains(e.from) && observedIDs.contains(e.to))
        }
        edges.append(contentsOf: observation.edges)
        let after = GraphSnapshot(nodes: nodes, edges: edges)

        var graph = prior.graph
        try graph.apply(before.diff(to: after))

        var surprise = Surprise()
        let priorScoped = Dictionary(uniqueKeysWithValues: before.nodes.filter(inScope).map { ($0.id, $0) })
        for (id, node) in observedByID {
            if let predicted = priorScoped[id] {
                if predicted.attributes != node.attributes || predicted.observability != node.observability { surprise.changed += 1 }
            } else {
                surprise.unexpected += 1
            }
        }
        surprise.missing = priorScoped.keys.filter { observedByID[$0] == nil }.count + staleContextFDs.count
        return Posterior(step: prior.step, graph: graph, surprise: surprise, observedAt: observation.time, supervisor: observation.supervisor)
    }

    public func fold(_ outcome: ActionOutcome?, into posterior: Posterior, at now: Instant) -> Graph {
        var graph = posterior.graph
        guard let outcome, var context = graph[.context(outcome.proposal.context)] else { return graph }
        let partition = context.partition
        var delta = GraphDelta()
        var opened: [Int64: String] = [:]
        var closed: Set<Int64> = []
        for step in outcome.steps {
            guard let call = step.call, case .performed(.value(let v, _)) = step.status else { continue }
            switch call.op {
            case .open: opened[v] = call.path ?? "?"
            case .close:
                if let fd = call.fd { if opened.removeValue(forKey: fd) == nil { closed.insert(fd) } }
            default: break
            }
        }
        let contextFDs = Dictionary(graph.members(of: partition).filter { $0.kind == .fileDescriptor }
            .compactMap { n in n["fd"]?.intValue.map { ($0, n.id) } }, uniquingKeysWith: { a, _ in a })
        for fd in closed.sorted() {
            if let id = contextFDs[fd] { delta.append(.removeNode(id)) }
            if let sup = posterior.supervisor, graph.contains(.fileDescriptor(owner: sup, fd: Int32(fd))) {
                delta.append(.removeNode(.fileDescriptor(owner: sup, fd: Int32(fd))))
            }
        }
        for (fd, path) in opened.sorted(by: { $0.key < $1.key }) {
            let id = NodeID.fileDescriptor(owner: context.id, fd: Int32(fd))
            delta.append(.addNode(Node(id: id, kind: .fileDescriptor, partition: partition, observability: .background,
                                       attributes: ["fd": .int(fd), "target": .string(path)])))
            delta.append(.addEdge(Edge(context.id, .owns, id)))
            let file = NodeID.object(.file, path)
            if graph.contains(file) { delta.append(.addEdge(Edge(id, .opened, file))) }
            if let sup = posterior.supervisor, graph.contains(sup) {
                let kernelFD = NodeID.fileDescriptor(owner: sup, fd: Int32(fd))
                if !graph.contains(kernelFD) {
                    delta.append(.addNode(Node(id: kernelFD, kind: .fileDescriptor, observability: .background,
                                               attributes: ["fd": .int(fd), "target": .string(path)])))
                    delta.append(.addEdge(Edge(sup, .owns, kernelFD)))
                }
            }
        }
        let allowed = outcome.steps.filter { $0.decision?.isAllowed == true }.count
        let denied = outcome.steps.filter { $0.status == .denied }
        context["last-task"] = .string(outcome.proposal.task)
        context["last-run"] = .int(Int64(now.nanoseconds))
        context["runs"] = .int((context["runs"]?.intValue ?? 0) + 1)
        context["allowed"] = .int((context["allowed"]?.intValue ?? 0) + Int64(allowed))
        context["denied"] = .int((context["denied"]?.intValue ?? 0) + Int64(denied.count))
        if let first = denied.first, case .deny(let rule, let reason)? = first.decision {
            context["last-denial"] = .string("\(first.call?.description ?? first.step.description): \(reason) [\(rule)]")
        }
        let failed = outcome.steps.compactMap { s -> String? in
            if case .performed(.failure(let e)) = s.status { return "\(s.step.op.rawValue): \(errnoName(e))" }
            return nil
        }
        context["last-result"] = .string(failed.isEmpty ? (denied.isEmpty ? "ok" : "denied") : failed.joined(separator: ", "))
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
}

/// The trivial outcome predictor: success, with synthetic values. It never touches the machine
/// (it holds no descriptor and calls nothing); descriptors it invents start at 1000 so they
/// cannot be mistaken for real ones.
public struct TrivialPredictor: Effecting {
    private var nextFD: Int64 = 1000
    public init() {}
    public mutating func perform(_ call: ResolvedCall) -> CallResult {
        switch call.op {
        case .open:
            defer { nextFD += 1 }
            return .value(nextFD)
        case .read:
            let count = max(0, min(call.args["count"]?.int ?? 0, 64))
            return .value(count, data: [UInt8](repeating: 0, count: Int(count)))
        case .write: return .value(Int64(call.args["data"]?.string?.utf8.count ?? 0))
        case .close, .fionread: return .value(0)
        }
    }
}
