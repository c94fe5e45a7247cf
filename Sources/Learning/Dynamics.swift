import Foundation
import LoopCore
import StateGraph

/// The dynamics model: after a step (its context, task and what its calls returned, or no action
/// at all), which kinds of change the next observation shows — nodes of a kind added (`+fd`),
/// removed (`-process`), changed (`~process`; a sensor by its reading, `~sensor/relay-0`), edges
/// of a kind added or removed (`+edge:owns`) — each as a probability, backed off from the whole
/// step to its task, its context and every step; and the readings a device action leaves.
struct DynamicsModel: Codable, Equatable, Sendable {
    /// Step key (with its level) → how many steps had it, and how many of them showed each item.
    var steps: [String: Int] = [:]
    /// `all` holds every item ever seen: the model's vocabulary.
    var items: [String: [String: Int]] = [:]
    /// A device action (`bench-bridge relay.energise relay=1`, and without its parameters) →
    /// reading → the sum and count of its values in the observation after.
    var readings: [String: [String: Sums]] = [:]

    struct Sums: Codable, Equatable, Sendable {
        var sum = 0.0
        var count = 0
        var mean: Double { count == 0 ? 0 : sum / Double(count) }
    }

    /// The keys of a step, most specific first.
    static func keys(after outcome: ActionOutcome?) -> [String] {
        guard let outcome else { return ["idle", "idle", "idle"] }
        let context = outcome.proposal.context, task = outcome.proposal.task
        let returns = outcome.steps.map { s in s.call.flatMap { c in s.result.map { OutcomeLabel.of(c, $0) } } ?? "\(s.status.kind)" }
        return ["\(context)|\(task)|\(returns.joined(separator: ","))", "\(context)|\(task)", context]
    }

    /// What kinds of change a delta holds.
    static func items(of delta: GraphDelta) -> Set<String> {
        var out = Set<String>()
        for change in delta.changes {
            switch change {
            case .addNode(let n): out.insert("+" + n.kind.rawValue)
            case .updateNode(let n): out.insert("~" + n.kind.rawValue + (n.kind == .sensor ? "/" + (n["reading"]?.stringValue ?? String(n.id.rawValue.split(separator: "/").last ?? "?")) : ""))
            case .removeNode(let id): out.insert("-" + kind(of: id))
            case .addEdge(let e): out.insert("+edge:" + e.kind.rawValue)
            case .removeEdge(let e): out.insert("-edge:" + e.kind.rawValue)
            }
        }
        return out
    }

    /// A node's kind from its identity's prefix (`process:12@34` → process).
    static func kind(of id: NodeID) -> String {
        let prefix = id.rawValue.prefix { $0 != ":" }
        return ["context": "execution-context", "event": "pending-event", "anon": "anon-inode"][String(prefix)] ?? String(prefix)
    }

    /// The device actions a step ran, as reading keys: with their parameters, and without.
    static func actions(_ outcome: ActionOutcome?) -> [[String]] {
        (outcome?.steps ?? []).compactMap { s in
            guard let call = s.call, call.op == .act, s.result != nil else { return nil }
            let plain = "\(call.string(.device) ?? "?") \(call.string(.action) ?? "?")"
            return [plain + " " + (call.string(.params) ?? ""), plain]
        }
    }

    mutating func add(after outcome: ActionOutcome?, observed delta: GraphDelta) {
        let seen = Self.items(of: delta)
        for (level, key) in Self.keys(after: outcome).enumerated() {
            let k = "\(level)|\(key)"
            steps[k, default: 0] += 1
            for item in seen { items[k, default: [:]][item, default: 0] += 1 }
        }
        steps["all", default: 0] += 1
        for item in seen { items["all", default: [:]][item, default: 0] += 1 }
        let values = delta.changes.compactMap { c -> (String, Double)? in
            guard case .updateNode(let n) = c, n.kind == .sensor, let name = n["reading"]?.stringValue, case .double(let v)? = n["value"] else { return nil }
            return (name, v)
        }
        for keys in Self.actions(outcome) {
            for key in keys {
                for (name, v) in values {
                    readings[key, default: [:]][name, default: Sums()].sum += v
                    readings[key, default: [:]][name, default: Sums()].count += 1
                }
            }
        }
    }

    /// Every item of the vocabulary with P(item shows | the step before), each level leaning on
    /// the next with weight one. The step's levels are looked up once, not once an item.
    func expectation(after outcome: ActionOutcome?) -> [String: Double] {
        let all = items["all"] ?? [:], total = Double((steps["all"] ?? 0) + 1)
        let levels = Self.keys(after: outcome).enumerated().reversed().compactMap { level, key -> (n: Int, items: [String: Int])? in
            let k = "\(level)|\(key)"
            return steps[k].map { ($0, items[k] ?? [:]) }
        }
        var out: [String: Double] = [:]
        out.reserveCapacity(all.count)
        for (item, count) in all {
            var p = (Double(count) + 0.5) / total
            for level in levels { p = (Double(level.items[item] ?? 0) + p) / Double(level.n + 1) }
            out[item] = p
        }
        return out
    }

    /// What the model expects the observation to change: the items at least as likely as not.
    func predicted(after outcome: ActionOutcome?) -> Set<String> {
        Set(expectation(after: outcome).filter { $0.value >= 0.5 }.keys)
    }

    /// The information of what was observed under the expectation, in bits, and what most
    /// surprised it (an item with under 10% that showed, over 90% that did not).
    func surprise(of delta: GraphDelta, after outcome: ActionOutcome?) -> LearnedSurprise {
        let seen = Self.items(of: delta)
        let expected = expectation(after: outcome)
        var bits = 0.0
        var unexpected: [String: Double] = [:], missing: [String: Double] = [:]
        for (item, p) in expected {
            let shown = seen.contains(item)
            bits -= log2(shown ? p : 1 - p)
            if shown, p < 0.1 { unexpected[item] = p }
            if !shown, p > 0.9 { missing[item] = p }
        }
        // A kind of change never seen in training: as unlikely as the model can say.
        for item in seen where expected[item] == nil {
            let p = 0.5 / Double((steps["all"] ?? 0) + 1)
            bits -= log2(p)
            unexpected[item] = p
        }
        return LearnedSurprise(bits: bits, unexpected: unexpected, missing: missing, after: outcome?.proposal.context)
    }

    /// The readings a device action is expected to leave (the mean seen after it).
    func readings(after call: ResolvedCall) -> [String: Double] {
        let plain = "\(call.string(.device) ?? "?") \(call.string(.action) ?? "?")"
        let found = readings[plain + " " + (call.string(.params) ?? "")] ?? readings[plain] ?? [:]
        return found.mapValues(\.mean)
    }
}

extension StepOutcome.Status {
    var kind: String {
        switch self {
        case .performed: "performed"
        case .denied: "denied"
        case .skipped: "skipped"
        case .invalid: "invalid"
        }
    }
}
