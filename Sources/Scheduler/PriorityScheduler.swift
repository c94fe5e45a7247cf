import LoopCore
import StateGraph

/// Picks the execution context that gets the next quantum.
///
/// A context is ready when it is not blocked and its interval has passed since it last ran.
/// Among ready contexts the highest effective priority wins: its `priority` plus
/// ``agingBonus`` for every pick it was ready for and passed over, so a busy high-priority
/// context cannot starve a lower one forever. Ties go to the one that waited longest, then to
/// name order, so the choice is deterministic for a given graph and time. Coarse by design:
/// it never replaces the kernel's CPU scheduler.
public struct PriorityScheduler: Scheduling {
    public static let agingBonus: Int64 = 2
    private var lastRun: [String: Instant] = [:]
    private var passedOver: [String: Int64] = [:]

    public init() {}

    public mutating func pick(from posterior: Posterior, at now: Instant) -> String? {
        var ready: [(name: String, priority: Int64, last: Instant)] = []
        for context in posterior.graph.contexts {
            guard case .context(let name) = context.partition else { continue }
            // Blocked contexts wait; a supervised program runs on its own and proposes nothing.
            if let state = context["state"]?.stringValue, state == "blocked" || state == "program" { continue }
            let interval = Duration.milliseconds(context["interval-ms"]?.intValue ?? 0)
            let last = lastRun[name]
            if let last, now < last + interval { continue }
            let effective = (context["priority"]?.intValue ?? 0) + Self.agingBonus * passedOver[name, default: 0]
            ready.append((name, effective, last ?? Instant(nanoseconds: 0)))
        }
        guard let winner = ready.min(by: { a, b in
            a.priority != b.priority ? a.priority > b.priority : (a.last != b.last ? a.last < b.last : a.name < b.name)
        }) else { return nil }
        for r in ready where r.name != winner.name { passedOver[r.name, default: 0] += 1 }
        passedOver[winner.name] = 0
        lastRun[winner.name] = now
        return winner.name
    }
}
