import Foundation
import JSONWriter
import LoopCore
import StateGraph

/// What a client can subscribe to.
public enum Topic: String, CaseIterable, Sendable {
    /// The instruments' and sensors' values (sensor nodes), the newest of each per message.
    case readings
    /// The guard's decisions on what the step's context proposed, every one.
    case decisions
    /// What the observer saw happen (uevents, processes, instruments lost), every one.
    case events
    /// The graph's changes since the last message.
    case graph
    /// The panel, when its frame changed: the frame's hash (GET /api/v1/panel.png has it) and
    /// its semantics tree.
    case panel
}

/// One step as subscribers see it. The graph's changes since an earlier step are worked out
/// once per earlier step asked about: subscribers last sent the graph at the same step share them.
final class StepNews: @unchecked Sendable {
    let step: Int
    let time: Date
    let report: StepReport
    let graph: Graph
    let semantics: [Frame.Semantic]
    private let lock = NSLock()
    private var deltas: [Int: GraphDelta] = [:]

    init(report: StepReport, graph: Graph, semantics: [Frame.Semantic] = [], time: Date) {
        (step, self.report, self.graph, self.semantics, self.time) = (report.step, report, graph, semantics, time)
    }

    /// What changed from `then`, the graph published at step `since`, to this step's graph.
    func delta(since: Int, from then: Graph) -> GraphDelta {
        lock.lock()
        defer { lock.unlock() }
        if let made = deltas[since] { return made }
        let made = then.draft.diff(to: graph.draft)
        deltas[since] = made
        return made
    }
}

/// One client's subscription: what it asked for, at what rate, and the messages made for it and
/// not yet taken. The loop hands it each step and never waits: a subscriber that leaves more
/// than `limit` messages untaken is closed, saying why, and the client is dropped.
public final class Subscriber: @unchecked Sendable {
    public static let defaultLimit = 64
    public let topics: Set<Topic>
    public let interval: Duration
    let limit: Int
    private let lock = NSLock()
    private var outgoing: [[UInt8]] = []
    private var waiting: CheckedContinuation<[UInt8]?, Never>?
    private(set) var closed = false
    public private(set) var closedBecause: String?
    private var lastSent: [Topic: ContinuousClock.Instant] = [:]
    private var readings: [NodeID: Node] = [:]
    private var decisions: [(step: Int, context: String, task: String, steps: [StepOutcome])] = []
    private var events: [(step: Int, event: ObservedEvent)] = []
    /// The graph last sent on the graph topic, and the step it was published at.
    private var sentGraph: (step: Int, graph: Graph)?
    /// The hash of the last frame sent on the panel topic.
    private var sentFrame: String?
    private let clock = ContinuousClock()
    private var closing: (@Sendable () -> Void)?

    /// Called once when the subscription closes (the client's socket is closed with it).
    public var onClose: (@Sendable () -> Void)? {
        get { lock.lock(); defer { lock.unlock() }; return closing }
        set {
            lock.lock()
            let already = closed
            closing = newValue
            lock.unlock()
            if already { newValue?() }
        }
    }

    /// `graph` is the one published at `step`, which the first graph message is a delta from.
    init(topics: Set<Topic>, interval: Duration, limit: Int, graph: Graph, step: Int) {
        (self.topics, self.interval, self.limit) = (topics, interval, limit)
        if topics.contains(.graph) { sentGraph = (step, graph) }
    }

    /// The next message, waiting for one; nil once closed (``closedBecause`` says why).
    public func next() async -> [UInt8]? {
        await withCheckedContinuation { (c: CheckedContinuation<[UInt8]?, Never>) in
            lock.lock()
            if !outgoing.isEmpty {
                let message = outgoing.removeFirst()
                lock.unlock()
                c.resume(returning: message)
            } else if closed {
                lock.unlock()
                c.resume(returning: nil)
            } else {
                waiting = c
                lock.unlock()
            }
        }
    }

    /// The client went away, or the service stops.
    public func close(_ reason: String) {
        lock.lock()
        guard !closed else { lock.unlock(); return }
        closed = true
        closedBecause = reason
        let w = waiting
        waiting = nil
        let then = closing
        lock.unlock()
        w?.resume(returning: nil)
        then?()
    }

    /// The loop's step, taken in: what is due goes out as messages.
    func take(_ news: StepNews) {
        let now = clock.now
        lock.lock()
        if closed { lock.unlock(); return }
        if topics.contains(.readings) {
            for sensor in news.graph.nodes(ofKind: .sensor) where readings[sensor.id] != sensor { readings[sensor.id] = sensor }
        }
        if topics.contains(.decisions), let context = news.report.context, let outcome = news.report.outcome {
            decisions.append((news.step, context, outcome.proposal.task, outcome.steps))
        }
        if topics.contains(.events) { events += news.report.events.map { (news.step, $0) } }
        var made: [[UInt8]] = []
        for topic in Topic.allCases where topics.contains(topic) {
            if let last = lastSent[topic], now - last < interval { continue }
            guard let message = message(topic, news) else { continue }
            lastSent[topic] = now
            made.append(message)
        }
        outgoing += made
        var resume: (CheckedContinuation<[UInt8]?, Never>, [UInt8]?)?
        var then: (@Sendable () -> Void)?
        if outgoing.count > limit {
            then = closing
            closed = true
            closedBecause = "too slow: \(outgoing.count) messages not taken; subscribe at a longer interval"
            outgoing = []
            if let w = waiting { resume = (w, nil) }
            waiting = nil
        } else if let w = waiting, !outgoing.isEmpty {
            resume = (w, outgoing.removeFirst())
            waiting = nil
        }
        lock.unlock()
        if let (w, message) = resume { w.resume(returning: message) }
        then?()
    }

    /// The message `topic` has to say now (called with the lock held), nil when nothing changed.
    private func message(_ topic: Topic, _ news: StepNews) -> [UInt8]? {
        var json = JSONWriter(reserving: 512)
        json.beginObject()
        json.key("topic"); json.string(topic.rawValue)
        json.key("step"); json.int(news.step)
        json.key("time"); json.double((news.time.timeIntervalSince1970 * 1000).rounded() / 1000)
        switch topic {
        case .readings:
            guard !readings.isEmpty else { return nil }
            json.key("readings")
            json.beginArray()
            for sensor in readings.values.sorted(by: { $0.id < $1.id }) {
                json.beginObject()
                json.key("node"); json.value(sensor.id)
                if let name = sensor["reading"] { json.key("name"); json.value(name) }
                json.key("value"); sensor["value"].map { json.value($0) } ?? json.null()
                if let unit = sensor["unit"] { json.key("unit"); json.value(unit) }
                json.endObject()
            }
            json.endArray()
            readings = [:]
        case .decisions:
            guard !decisions.isEmpty else { return nil }
            json.key("decisions")
            json.beginArray()
            for d in decisions {
                for s in d.steps {
                    json.beginObject()
                    json.key("step"); json.int(d.step)
                    json.key("context"); json.string(d.context)
                    json.key("task"); json.string(d.task)
                    json.key("call"); json.string(s.call?.description ?? s.step.op.rawValue)
                    if let decision = s.decision {
                        json.key("verdict"); json.string(decision.verdict)
                        json.key("rule"); json.string(decision.rule)
                        if let reason = decision.reason { json.key("reason"); json.string(reason) }
                    }
                    if let result = s.result { json.key("result"); json.string(result.description) }
                    json.endObject()
                }
            }
            json.endArray()
            decisions = []
        case .events:
            guard !events.isEmpty else { return nil }
            json.key("events")
            json.beginArray()
            for (step, e) in events {
                json.beginObject()
                json.key("step"); json.int(step)
                json.key("source"); json.string(e.source)
                json.key("action"); json.string(e.action)
                json.key("subject"); json.string(e.subject)
                if !e.details.isEmpty {
                    json.key("details")
                    json.beginObject()
                    for (k, v) in e.details.sorted(by: { $0.key < $1.key }) { json.key(k); json.string(v) }
                    json.endObject()
                }
                json.endObject()
            }
            json.endArray()
            events = []
        case .panel:
            guard news.report.frameHash != sentFrame else { return nil }
            sentFrame = news.report.frameHash
            json.key("frame"); json.string(news.report.frameHash)
            json.key("semantics")
            json.beginArray()
            for s in news.semantics { ServiceModel.write(s, &json) }
            json.endArray()
        case .graph:
            let delta = sentGraph.map { news.delta(since: $0.step, from: $0.graph) } ?? GraphDelta()
            sentGraph = (news.step, news.graph)
            guard !delta.changes.isEmpty else { return nil }
            json.key("delta"); json.value(delta)
        }
        json.endObject()
        return json.bytes
    }
}
