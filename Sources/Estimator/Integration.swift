import LoopCore
import StateGraph

/// One posterior being made: the prior's indexes, edited — the observed scope of the kernel
/// partition replaced by the observation (its nodes, and every edge between two of them);
/// context descriptors the supervisor does not hold, and the events observed at the last step
/// (recorded with it), gone. Only what differs is written, and the delta is found by looking
/// only there.
///
/// Two ways to the same posterior (a property test holds them equal): `whole` looks once at
/// every observed node and edge; `changed` — when the prior came from a posterior that
/// integrated the observation this one's change is relative to — looks only at what the
/// observation changed and what was done to the graph since (the fold), so a step of a quiet
/// 18,000-node machine looks at a few dozen nodes.
struct Integration {
    /// The prior's graph, held here alone (the prior was handed over), so the delta found is
    /// applied to it in place; until then it is read, and `edits` beside it are the posterior.
    var before: Graph
    let scope: Set<NodeKind>
    var edits = GraphEdits()
    var touched = Set<NodeID>()
    var surprise = Surprise()

    init(prior: consuming Prior, scope: Set<NodeKind>) {
        before = prior.graph
        self.scope = scope
    }

    private static let placeholder = Graph()

    func inScope(_ n: Node) -> Bool { n.partition == .kernel && scope.contains(n.kind) }

    /// An observed node (already projected), first seen in this observation.
    mutating func observe(_ node: Node) {
        if let predicted = before[node.id] {
            if inScope(predicted) {
                if predicted.attributes != node.attributes || predicted.observability != node.observability { surprise.changed += 1 }
            } else {
                surprise.unexpected += 1
            }
            if predicted == node { return }
            // Replaced by a node of another kind: what pointed at it is put back.
            if predicted.kind != node.kind || predicted.partition != node.partition { touched.formUnion(before.edges(to: node.id).map(\.from)) }
        } else {
            surprise.unexpected += 1
        }
        edits.set(node)
        touched.insert(node.id)
    }

    /// A node of the prior that is gone: it, its edges, and the edges into it.
    mutating func remove(_ id: NodeID) {
        edits.remove(id)
        touched.insert(id)
        for edge in before.edges(to: id) where edits.node(edge.from, in: before) != nil {
            drop(edge)
        }
    }

    /// A node the prior had that the observation does not: a surprise, and gone.
    mutating func miss(_ id: NodeID) {
        surprise.missing += 1
        remove(id)
    }

    mutating func drop(_ edge: Edge) {
        edits.setEdges(edits.edges(from: edge.from, in: before).filter { $0 != edge }, from: edge.from)
        touched.insert(edge.from)
    }

    /// `id`'s outgoing edges become those to nodes outside the observation it had, and the
    /// observation's from it; a list that holds the same edges is left as it was.
    mutating func settle(_ id: NodeID, observed theirs: [Edge], observedSource: Bool, isObserved: (NodeID) -> Bool) {
        let mine = edits.edges(from: id, in: before)
        // The same list (the usual case) holds the same edges, whatever it points at.
        guard mine != theirs else { return }
        let next = observedSource && mine.contains(where: { isObserved($0.to) }) ? mine.filter { !isObserved($0.to) } + theirs : mine + theirs
        if next == mine || (mine.count == next.count && Set(mine) == Set(next)) { return }
        edits.setEdges(next, from: id)
        touched.insert(id)
    }

    /// Context descriptors stand only if the supervisor really holds that descriptor; the
    /// events observed at the last step go, this step's come.
    mutating func finish(supervisorFDs: Set<Int64>, events: [ObservedEvent], step: Int, stamp: ObservationStamp?,
                         observation: Observation) throws -> Posterior {
        for partition in before.contextPartitions {
            for n in before.members(of: partition) where n.kind == .fileDescriptor {
                guard let fd = n["fd"]?.intValue, !supervisorFDs.contains(fd), edits.node(n.id, in: before) != nil else { continue }
                miss(n.id)
            }
        }
        for event in before.nodes(ofKind: .pendingEvent) where event.partition == .kernel && event["observed"] == .bool(true) {
            remove(event.id)
        }
        for node in LiveEstimator.eventNodes(events, step: step) {
            edits.set(node)
            touched.insert(node.id)
        }
        let change = edits.delta(from: before, touching: touched)
        // The graph is taken out (this was its one holder), so the delta edits it in place.
        var graph = Self.placeholder
        swap(&graph, &before)
        do { try graph.apply(change) } catch { throw PosteriorFailure(prior: graph, underlying: error) }
        return Posterior(step: step, graph: graph, surprise: surprise, observedAt: observation.time, supervisor: observation.supervisor,
                         change: change, integrated: stamp)
    }

    /// The posterior from one look at every observed node and edge.
    static func whole(_ prior: consuming Prior, _ observation: Observation) throws -> Posterior {
        let step = prior.step
        var it = Integration(prior: consume prior, scope: observation.scope)
        var observed = Set<NodeID>(minimumCapacity: observation.nodeCount)
        let supervisorOwned = Set(observation.edgeParts.joined().lazy.filter { $0.kind == .owns && $0.from == observation.supervisor }.map(\.to))
        var supervisorFDs = Set<Int64>()
        for var node in observation.nodeParts.joined() {
            LiveEstimator.project(&node)
            if supervisorOwned.contains(node.id), let fd = node["fd"]?.intValue { supervisorFDs.insert(fd) }
            guard observed.insert(node.id).inserted else {
                // The same node twice in one observation: the last one stands.
                it.edits.set(node)
                it.touched.insert(node.id)
                continue
            }
            it.observe(node)
        }
        for id in it.before.nodes.keys where !observed.contains(id) {
            guard let node = it.before[id], it.inScope(node) else { continue }
            it.miss(id)
        }
        var bySource: [NodeID: [Edge]] = [:]
        for edge in observation.edgeParts.joined() { bySource[edge.from, default: []].append(edge) }
        for id in observed { it.settle(id, observed: bySource[id] ?? [], observedSource: true, isObserved: observed.contains) }
        for (id, edges) in bySource where !observed.contains(id) { it.settle(id, observed: edges, observedSource: false, isObserved: observed.contains) }
        return try it.finish(supervisorFDs: supervisorFDs, events: observation.events, step: step, stamp: observation.stamp,
                             observation: observation)
    }

    /// The posterior from what changed: the observation's change since the observation the
    /// basis integrated, and what was done to the graph since that posterior.
    static func changed(_ prior: consuming Prior, _ observation: Observation, _ change: ObservationChange, _ basis: PriorBasis) throws -> Posterior {
        let step = prior.step
        var it = Integration(prior: consume prior, scope: observation.scope)
        var given = [NodeID: Node](minimumCapacity: change.nodes.count)
        for var node in change.nodes {
            LiveEstimator.project(&node)
            given[node.id] = node
        }
        let gone = Set(change.removed), scope = observation.scope
        // Observed now: given, or observed in the basis's observation and not gone since — as
        // the basis's posterior had it: for what was edited since, the basis kept it; the rest
        // is the prior's.
        func observedNow(_ id: NodeID) -> Node? {
            if let node = given[id] { return node }
            guard !gone.contains(id), let node = basis.edited.contains(id) ? basis.was[id] : it.before[id],
                  node.partition == .kernel, scope.contains(node.kind) else { return nil }
            return node
        }
        for node in given.values { it.observe(node) }
        for id in gone where given[id] == nil {
            guard let node = it.before[id], it.inScope(node) else { continue }
            it.miss(id)
        }
        // What the fold made or changed is held against the observation again.
        let edited = basis.edited.subtracting(given.keys).subtracting(gone)
        for id in edited {
            if let node = observedNow(id) { it.observe(node) } else if let node = it.before[id], it.inScope(node) {
                it.miss(id)
            }
        }
        for edge in change.removedEdges where it.edits.edges(from: edge.from, in: it.before).contains(edge) { it.drop(edge) }
        for edge in change.addedEdges where it.edits.node(edge.from, in: it.before) != nil {
            let list = it.edits.edges(from: edge.from, in: it.before)
            guard !list.contains(edge) else { continue }
            it.edits.setEdges(list + [edge], from: edge.from)
            it.touched.insert(edge.from)
        }
        // A source the fold gave edges to observed nodes keeps only those the observation has.
        let added = Dictionary(grouping: change.addedEdges, by: \.from), unadded = Set(change.removedEdges)
        for id in edited where observedNow(id) != nil {
            let theirs = ((basis.wasEdges[id] ?? []).filter { observedNow($0.to) != nil && !unadded.contains($0) } + (added[id] ?? []))
            let observedTargets = Set((it.edits.edges(from: id, in: it.before) + theirs).map(\.to).filter { observedNow($0) != nil })
            it.settle(id, observed: theirs, observedSource: true, isObserved: observedTargets.contains)
        }
        var supervisorFDs = Set<Int64>()
        if let me = observation.supervisor {
            for edge in it.edits.edges(from: me, in: it.before) where edge.kind == .owns {
                if let node = it.edits.node(edge.to, in: it.before), it.inScope(node), let fd = node["fd"]?.intValue { supervisorFDs.insert(fd) }
            }
        }
        return try it.finish(supervisorFDs: supervisorFDs, events: observation.events, step: step, stamp: observation.stamp,
                             observation: observation)
    }
}
