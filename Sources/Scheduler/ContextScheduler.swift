import LoopCore
import StateGraph

/// Picks the execution context that gets the next quantum.
///
/// A context with a period (`period-ms`, a controller's) is released every period and is due
/// within its deadline (`deadline-ms`, default the period). Released ones run first, earliest
/// absolute deadline first (ties by name). How late each started against its release is its
/// jitter; one that started after its deadline, or a release that passed with no step at all,
/// is counted late — never absorbed.
///
/// The rest run when no released context waits — or, when one has just run while they waited,
/// before the next, so a loop slower than a period starves nobody. A context is ready when it is not blocked and
/// its interval has passed since it last ran. Among ready contexts the highest effective
/// priority wins: its `priority` plus ``agingBonus`` for every pick it was ready for and passed
/// over, so a busy high-priority context cannot starve a lower one forever. Ties go to the one
/// that waited longest, then to name order, so the choice is deterministic for a given graph
/// and time. Coarse by design: it never replaces the kernel's CPU scheduler.
public struct ContextScheduler: Scheduling, DescribingNodes {
    public static let agingBonus: Int64 = 2
    /// The shortest wait for a context without a period, when periodic ones set the pace.
    public static let bestEffortGap = Duration.milliseconds(20)
    private var lastRun: [String: Instant] = [:]
    private var passedOver: [String: Int64] = [:]
    private var periodic: [String: Periodic] = [:]
    /// The time between one pick and the next: the loop's cadence.
    private var cadence = Spread()
    private var lastPick: Instant?
    /// The last pick went to a released context while others were ready.
    private var periodicLast = false
    /// When the next context without a period is ready, as of the last pick.
    private var bestEffortDue: Instant?

    struct Periodic {
        var period: Duration
        var deadline: Duration
        /// The next release not yet run.
        var release: Instant
        var late: Int64 = 0
        /// How long after its release each step started.
        var lateness = Spread()
    }

    public init() {}

    /// With periodic contexts, the loop steps whenever one is released or another is due, so a
    /// controller's steps do not starve the rest between its releases. Without any, nil: the
    /// loop keeps its own interval.
    public func nextDue() -> Instant? {
        guard let release = periodic.values.map(\.release).min() else { return nil }
        return min(release, bestEffortDue ?? release)
    }

    public mutating func pick(from posterior: Posterior, at now: Instant) -> String? {
        if let lastPick { cadence.add(now.duration(since: lastPick)) }
        lastPick = now
        var released: [(name: String, due: Instant)] = []
        var ready: [(name: String, priority: Int64, last: Instant)] = []
        var due: Instant?
        // Never sooner than a gap away: a context always ready does not make the loop spin.
        defer { bestEffortDue = due.map { max($0, now + Self.bestEffortGap) } }
        for context in posterior.graph.contexts {
            guard case .context(let name) = context.partition else { continue }
            // Blocked contexts wait; a supervised program runs on its own and proposes nothing.
            if let state = context["state"]?.stringValue, state == "blocked" || state == "program" { continue }
            if let ms = context["period-ms"]?.intValue, ms > 0 {
                let period = Duration.milliseconds(ms)
                let deadline = context["deadline-ms"]?.intValue.map { Duration.milliseconds($0) } ?? period
                var p = periodic[name] ?? Periodic(period: period, deadline: deadline, release: now)
                (p.period, p.deadline) = (period, deadline)
                periodic[name] = p
                if now >= p.release { released.append((name, p.release + deadline)) }
                continue
            }
            let interval = Duration.milliseconds(context["interval-ms"]?.intValue ?? 0)
            let last = lastRun[name]
            if let last, now < last + interval {
                due = min(due ?? last + interval, last + interval)
                continue
            }
            let effective = (context["priority"]?.intValue ?? 0) + Self.agingBonus * passedOver[name, default: 0]
            ready.append((name, effective, last ?? Instant(nanoseconds: 0)))
        }
        // A loop slower than the periods would give them every step: then the released and the
        // rest take turns (the releases' delay is counted late), so nothing starves.
        if let first = released.min(by: { $0.due != $1.due ? $0.due < $1.due : $0.name < $1.name }), ready.isEmpty || !periodicLast {
            // Those it passed over are due at once.
            if !ready.isEmpty { due = now }
            for r in ready { passedOver[r.name, default: 0] += 1 }
            periodicLast = !ready.isEmpty
            run(first.name, at: now)
            return first.name
        }
        periodicLast = false
        guard let winner = ready.min(by: { a, b in
            a.priority != b.priority ? a.priority > b.priority : (a.last != b.last ? a.last < b.last : a.name < b.name)
        }) else { return nil }
        for r in ready where r.name != winner.name { passedOver[r.name, default: 0] += 1 }
        passedOver[winner.name] = 0
        lastRun[winner.name] = now
        if ready.count > 1 { due = now }
        let interval = Duration.milliseconds(posterior.graph[.context(winner.name)]?["interval-ms"]?.intValue ?? 0)
        due = min(due ?? now + interval, now + interval)
        return winner.name
    }

    /// A released context runs: its lateness, whether it is late, and its next release — past
    /// every release that went by without a step (each of those counted late).
    private mutating func run(_ name: String, at now: Instant) {
        guard var p = periodic[name] else { return }
        let behind = now.duration(since: p.release)
        p.lateness.add(behind)
        if behind > p.deadline { p.late += 1 }
        let missed = Int64(behind / p.period)
        p.late += missed
        p.release = p.release + p.period * (missed + 1)
        periodic[name] = p
    }

    /// Each periodic context's late steps and jitter (ms, p50/p99/max against its
    /// release); the loop's cadence on the kernel root, when there are periodic contexts.
    public func nodeAttributes() -> [NodeID: Attributes] {
        var out: [NodeID: Attributes] = [:]
        for (name, p) in periodic {
            var a: Attributes = ["late": .int(p.late)]
            if let s = p.lateness.summary { (a["jitter-p50-ms"], a["jitter-p99-ms"], a["jitter-max-ms"]) = (.double(s.p50), .double(s.p99), .double(s.max)) }
            out[.context(name)] = a
        }
        // With periodic contexts the loop's pace is theirs to keep: its cadence beside them.
        if !periodic.isEmpty, let s = cadence.summary {
            out[.kernel] = ["loop-cadence-p50-ms": .double(s.p50), "loop-cadence-p99-ms": .double(s.p99), "loop-cadence-max-ms": .double(s.max)]
        }
        return out
    }
}

/// The last 1024 durations, and their median, 99th percentile and maximum in milliseconds
/// (to the microsecond).
public struct Spread: Sendable {
    public static let kept = 1024
    private var samples: [Int64] = []
    private var next = 0

    public init() {}

    public mutating func add(_ d: Duration) {
        let ns = d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000
        if samples.count < Self.kept { samples.append(ns) } else { samples[next] = ns }
        next = (next + 1) % Self.kept
    }

    public var summary: (p50: Double, p99: Double, max: Double)? {
        guard !samples.isEmpty else { return nil }
        let sorted = samples.sorted()
        func ms(_ ns: Int64) -> Double { (Double(ns) / 1000).rounded() / 1000 }
        func at(_ q: Double) -> Int64 { sorted[min(sorted.count - 1, Int((q * Double(sorted.count - 1)).rounded()))] }
        return (ms(at(0.5)), ms(at(0.99)), ms(sorted[sorted.count - 1]))
    }
}
