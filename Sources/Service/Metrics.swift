import Foundation
import Prometheus
import StateGraph
import SystemCalls

/// The supervisor's metrics, in Prometheus's text format at the API's `/metrics`: the loop's
/// step latency and lateness, surprise, the guard's decisions, approvals waiting, trace bytes,
/// device errors, the API's own requests, and the process's memory (resident; the heap in use
/// beside what malloc keeps free). One registry per supervisor (not the process-wide
/// swift-metrics bootstrap), so two supervisors in one test process keep their counts apart.
public final class ServiceMetrics: @unchecked Sendable {
    public let registry = PrometheusCollectorRegistry()

    public let stepSeconds: DurationHistogram
    public let stepsLate: Counter
    public let surprise: ValueHistogram
    public let pendingApprovals: Gauge
    public let traceBytes: Gauge
    public let subscribers: Gauge
    let resident: Gauge
    let heapInUse: Gauge
    let heapFree: Gauge

    public init() {
        stepSeconds = registry.makeDurationHistogram(
            descriptor: .init(namespace: "worldos", metricName: "loop_step", unitName: "seconds",
                              helpText: "Time one macro step of the loop took (observe, estimate, draw, pick, act, record)."),
            buckets: [.microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(20),
                      .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1)])
        stepsLate = registry.makeCounter(descriptor: .init(namespace: "worldos", metricName: "loop_steps_late", unitName: "total",
                                                           helpText: "Steps that began later than their interval after the one before."))
        surprise = registry.makeValueHistogram(
            descriptor: .init(namespace: "worldos", metricName: "loop_surprise", unitName: "nodes",
                              helpText: "Nodes the prior got wrong (missing, unexpected or changed) per step."),
            buckets: [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000])
        pendingApprovals = Self.gauge(registry, "approvals_pending", help: "Irreversible actions waiting for an approval.")
        traceBytes = Self.gauge(registry, "trace_written", unit: "bytes", help: "Bytes of trace written to the run folder this run.")
        subscribers = Self.gauge(registry, "api_subscribers", help: "WebSocket subscriptions open.")
        resident = Self.gauge(registry, "resident_memory", unit: "bytes", namespace: "process", help: "Resident memory size in bytes.")
        heapInUse = Self.gauge(registry, "heap_in_use", unit: "bytes", help: "Bytes malloc has handed out and not had back (glibc mallinfo2).")
        heapFree = Self.gauge(registry, "heap_free", unit: "bytes", help: "Bytes malloc holds free in its arenas (glibc mallinfo2).")
    }

    private static func gauge(_ registry: PrometheusCollectorRegistry, _ name: String, unit: String = "", namespace: String = "worldos",
                              help: String) -> Gauge {
        registry.makeGauge(descriptor: .init(namespace: namespace, metricName: name, unitName: unit, helpText: help))
    }

    /// The guard decided something: counted by verdict.
    public func decided(_ verdict: String) {
        registry.makeCounter(descriptor: Self.decisions, labels: [("verdict", verdict)]).increment()
    }

    /// A device's step failed: counted by device.
    public func deviceError(_ device: String) {
        registry.makeCounter(descriptor: Self.deviceErrors, labels: [("device", device)]).increment()
    }

    /// The periods' telemetry from the graph: each periodic context's jitter against its
    /// release (quantiles 0.5, 0.99 and 1, seconds) and its late steps; the loop's cadence.
    public func timing(_ graph: Graph) {
        func seconds(_ node: Node, _ key: String) -> Double? { node[key]?.doubleValue.map { $0 / 1000 } }
        for context in graph.contexts {
            guard case .context(let name) = context.partition, context["period-ms"] != nil else { continue }
            for (q, key) in [("0.5", "jitter-p50-ms"), ("0.99", "jitter-p99-ms"), ("1", "jitter-max-ms")] {
                if let v = seconds(context, key) { registry.makeGauge(descriptor: Self.jitter, labels: [("context", name), ("quantile", q)]).set(v) }
            }
            if let late = context["late"]?.intValue { registry.makeGauge(descriptor: Self.late, labels: [("context", name)]).set(Double(late)) }
        }
        guard let root = graph[.kernel] else { return }
        for (q, key) in [("0.5", "loop-cadence-p50-ms"), ("0.99", "loop-cadence-p99-ms"), ("1", "loop-cadence-max-ms")] {
            if let v = seconds(root, key) { registry.makeGauge(descriptor: Self.cadence, labels: [("quantile", q)]).set(v) }
        }
    }

    private static var jitter: MetricNameDescriptor {
        MetricNameDescriptor(namespace: "worldos", metricName: "context_jitter", unitName: "seconds",
                             helpText: "How long after its release a periodic context's step started (last 1024 steps).")
    }
    private static var late: MetricNameDescriptor {
        MetricNameDescriptor(namespace: "worldos", metricName: "context_steps_late",
                             helpText: "Steps of a periodic context that started after their deadline, or never ran for a release.")
    }
    private static var cadence: MetricNameDescriptor {
        MetricNameDescriptor(namespace: "worldos", metricName: "loop_cadence", unitName: "seconds",
                             helpText: "Time from one step of the loop to the next (last 1024 steps).")
    }

    /// The API answered: counted by route and status code.
    public func answered(route: String, code: Int) {
        registry.makeCounter(descriptor: Self.requests, labels: [("route", route), ("code", String(code))]).increment()
    }

    /// The text a scrape gets.
    public func exposition() -> [UInt8] {
        // The heap's figures walk every malloc arena under its lock, stalling whatever allocates
        // meanwhile: at most every 5 s, however often it is scraped.
        memoryLock.lock()
        if memorySampled.map({ ContinuousClock.now - $0 >= .seconds(5) }) ?? true {
            memorySampled = .now
            let memory = MemoryUse.now()
            resident.set(Double(memory.residentBytes))
            heapInUse.set(Double(memory.heapInUse))
            heapFree.set(Double(memory.heapFree))
        }
        memoryLock.unlock()
        return registry.emitToBuffer()
    }
    private let memoryLock = NSLock()
    private var memorySampled: ContinuousClock.Instant?

    private static var decisions: MetricNameDescriptor { MetricNameDescriptor(namespace: "worldos", metricName: "guard_decisions", unitName: "total",
                                                        helpText: "The guard's decisions, by verdict.") }
    private static var deviceErrors: MetricNameDescriptor { MetricNameDescriptor(namespace: "worldos", metricName: "device_errors", unitName: "total",
                                                           helpText: "Device steps that failed, by device.") }
    private static var requests: MetricNameDescriptor { MetricNameDescriptor(namespace: "worldos", metricName: "api_requests", unitName: "total",
                                                       helpText: "API requests answered, by route and status code.") }
}
