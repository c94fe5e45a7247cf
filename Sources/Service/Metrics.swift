import Prometheus

/// The supervisor's metrics, in Prometheus's text format at the API's `/metrics`: the loop's
/// step latency and lateness, surprise, the guard's decisions, approvals waiting, trace bytes,
/// device errors, and the API's own requests. One registry per supervisor (not the process-wide
/// swift-metrics bootstrap), so two supervisors in one test process keep their counts apart.
public final class ServiceMetrics: @unchecked Sendable {
    public let registry = PrometheusCollectorRegistry()

    public let stepSeconds: DurationHistogram
    public let stepsLate: Counter
    public let surprise: ValueHistogram
    public let pendingApprovals: Gauge
    public let traceBytes: Gauge
    public let subscribers: Gauge

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
        pendingApprovals = registry.makeGauge(descriptor: .init(namespace: "worldos", metricName: "approvals_pending", unitName: "",
                                                                helpText: "Irreversible actions waiting for an approval."))
        traceBytes = registry.makeGauge(descriptor: .init(namespace: "worldos", metricName: "trace_written", unitName: "bytes",
                                                          helpText: "Bytes of trace written to the run folder this run."))
        subscribers = registry.makeGauge(descriptor: .init(namespace: "worldos", metricName: "api_subscribers", unitName: "",
                                                           helpText: "WebSocket subscriptions open."))
    }

    /// The guard decided something: counted by verdict.
    public func decided(_ verdict: String) {
        registry.makeCounter(descriptor: Self.decisions, labels: [("verdict", verdict)]).increment()
    }

    /// A device's step failed: counted by device.
    public func deviceError(_ device: String) {
        registry.makeCounter(descriptor: Self.deviceErrors, labels: [("device", device)]).increment()
    }

    /// The API answered: counted by route and status code.
    public func answered(route: String, code: Int) {
        registry.makeCounter(descriptor: Self.requests, labels: [("route", route), ("code", String(code))]).increment()
    }

    /// The text a scrape gets.
    public func exposition() -> [UInt8] { registry.emitToBuffer() }

    private static var decisions: MetricNameDescriptor { MetricNameDescriptor(namespace: "worldos", metricName: "guard_decisions", unitName: "total",
                                                        helpText: "The guard's decisions, by verdict.") }
    private static var deviceErrors: MetricNameDescriptor { MetricNameDescriptor(namespace: "worldos", metricName: "device_errors", unitName: "total",
                                                           helpText: "Device steps that failed, by device.") }
    private static var requests: MetricNameDescriptor { MetricNameDescriptor(namespace: "worldos", metricName: "api_requests", unitName: "total",
                                                       helpText: "API requests answered, by route and status code.") }
}
