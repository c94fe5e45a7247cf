import LoopCore
import Estimator
import Observer
import StateGraph

extension Supervisor {
    /// One observation of this machine, as a graph.
    public static func observeNow() throws -> (Graph, supervisor: NodeID?) {
        let observation = try observeOnce()
        let prior = Prior(step: 0, graph: Graph())
        let posterior = try LiveEstimator().posterior(from: prior, observation: observation, at: observation.time)
        return (posterior.graph, observation.supervisor)
    }

    /// One observation of this machine as the snapshot of the graph ``observeNow()`` gives,
    /// made without building the graph (what `worldos graph --json` prints).
    public static func observedSnapshot() throws -> GraphSnapshot {
        LiveEstimator.firstSnapshot(of: try observeOnce())
    }

    private static func observeOnce() throws -> Observation {
        var observer = CompositeObserver([ProcObserver(), TelemetryObserver()])
        return try observer.observe(at: SystemClock().now())
    }

    /// The graph as an indented tree: processes under their parents, descriptors under their
    /// process with what they opened, then every execution context with what it owns.
    public static func tree(_ graph: Graph, highlight: NodeID? = nil) -> String {
        var out = "kernel (\(graph.nodeCount) nodes, \(graph.edgeCount) edges)\n"
        let processes = graph.nodes(ofKind: .process)
        var children: [NodeID: [Node]] = [:]
        var roots: [Node] = []
        for p in processes {
            if let parent = graph.edges(to: p.id).first(where: { $0.kind == .parentOf })?.from { children[parent, default: []].append(p) }
            else { roots.append(p) }
        }
        func pid(_ n: Node) -> Int64 { n["pid"]?.intValue ?? 0 }
        func emit(_ p: Node, depth: Int) {
            let indent = String(repeating: "  ", count: depth + 1)
            let mark = p.id == highlight ? "  <- this process" : ""
            out += "\(indent)process \(pid(p)) \(p["comm"]?.stringValue ?? "?") [\(p.id)]\(mark)\n"
            for fd in graph.owned(by: p.id).compactMap({ graph[$0] }).sorted(by: { ($0["fd"]?.intValue ?? 0) < ($1["fd"]?.intValue ?? 0) }) {
                out += "\(indent)  fd \(fd["fd"]?.intValue ?? -1) -> \(fd["target"]?.stringValue ?? "?")\n"
            }
            for c in (children[p.id] ?? []).sorted(by: { pid($0) < pid($1) }) { emit(c, depth: depth + 1) }
        }
        for r in roots.sorted(by: { pid($0) < pid($1) }) { emit(r, depth: 0) }
        let sensors = graph.nodes(ofKind: .sensor)
        if !sensors.isEmpty { out += "telemetry (\(sensors.count) sensors)\n" }
        for sensor in sensors {
            let value = sensor["value"].map { "\($0)" } ?? "?"
            out += "  \(sensor.id.rawValue.dropFirst("sensor:".count)) = \(value) \(sensor["unit"]?.stringValue ?? "")\n"
        }
        for context in graph.contexts {
            out += "context \(context.id) caps [\(context.capabilities.sorted().joined(separator: "; "))]\n"
            for member in graph.owned(by: context.id).compactMap({ graph[$0] }) {
                out += "  \(member.kind.rawValue) \(member.id)\n"
            }
        }
        return out
    }
}
