import Benches
import DataEngine
import Foundation
import Glibc
import Guard
import Journal
import LoopCore
import StateGraph

/// What a running supervisor shows its clients and what they may ask of it: one model behind
/// the control socket, the HTTP API, its WebSocket subscriptions and the web page.
///
/// The loop publishes into it after each step (``publish(_:graph:semantics:)``: values copied
/// under a lock, subscribers handed what is theirs, never waited for). Clients read and act from
/// their own threads, and what they do goes where the CLI's file drop goes: an approval to the
/// same ``ApprovalStore`` (audited with the approver and its source), an action to the same
/// ``ActionInbox``, taken by its context at its turn and decided by the guard like anything the
/// context proposes. Nothing here reaches a device.
public final class ServiceModel: @unchecked Sendable {
    public let folder: RunFolder
    public let approvals: ApprovalStore
    public let audit: AuditLog
    public let inbox: ActionInbox
    /// The folder of the audit log's signing key and heads (for ``verifyAudit()``).
    public let keys: String
    public let metrics: ServiceMetrics
    /// The bench's contexts, for requests naming one it lacks; and those that are programs,
    /// which act only through their own system calls and never take a request.
    public let contexts: [String]
    public let programs: Set<String>
    /// The recorder's mailbox: a new trace file, a mark.
    public let trace: TraceControl
    public let started = Date()

    private let lock = NSLock()
    private var latest = Published()
    private var subscribers: [Subscriber] = []

    /// What the last step left: the graph after it, the panel's semantics tree, its decisions.
    public struct Published: Sendable {
        public var step = 0
        public var mode = Mode.real
        public var time: Date?
        public var graph = Graph()
        public var semantics: [Frame.Semantic] = []
        public var context: String?
        public var outcome: ActionOutcome?
    }

    public init(folder: RunFolder, approvals: ApprovalStore, audit: AuditLog, keys: String, contexts: [String], programs: Set<String> = [],
                trace: TraceControl = TraceControl(), metrics: ServiceMetrics = ServiceMetrics()) {
        self.programs = programs
        self.trace = trace
        self.folder = folder
        self.approvals = approvals
        self.audit = audit
        inbox = ActionInbox(directory: folder.requests)
        self.keys = keys
        self.contexts = contexts
        self.metrics = metrics
    }

    // MARK: the loop's side

    /// After each step: what it left, for readers, and each subscriber's share of it; how long
    /// it `took` and whether it began `late`, for the metrics.
    public func publish(_ report: StepReport, graph: Graph, semantics: [Frame.Semantic], took: Duration = .zero, late: Bool = false,
                        now: Date = Date()) {
        metrics.stepSeconds.record(took)
        if late { metrics.stepsLate.increment() }
        if let s = report.surprise { metrics.surprise.record(Double(s.wrongNodes)) }
        metrics.timing(graph)
        for step in report.outcome?.steps ?? [] {
            if let d = step.decision { metrics.decided(d.verdict) }
            if case .performed(.failure) = step.status, let device = step.call?.args["device"]?.string { metrics.deviceError(device) }
        }
        metrics.traceBytes.set(Double(([folder.trace] + folder.mcapTraces()).reduce(into: 0) { total, path in
            var info = stat()
            if stat(path, &info) == 0 { total += Int(info.st_size) }
        }))
        let news = StepNews(report: report, graph: graph, semantics: semantics, time: now)
        lock.lock()
        latest = Published(step: report.step, mode: report.mode, time: now, graph: graph, semantics: semantics,
                           context: report.context, outcome: report.outcome)
        subscribers.removeAll { $0.closed }
        let current = subscribers
        lock.unlock()
        for subscriber in current { subscriber.take(news) }
        metrics.pendingApprovals.set(Double(approvals.waiting(now: now).count))
        metrics.subscribers.set(Double(current.count))
    }

    // MARK: the clients' side

    public func snapshot() -> Published {
        lock.lock()
        defer { lock.unlock() }
        return latest
    }

    /// A new subscription to `topics`, at most one message per topic every `interval`.
    public func subscribe(_ topics: Set<Topic>, interval: Duration, limit: Int = Subscriber.defaultLimit) -> Subscriber {
        let published = snapshot()
        // Before the first step nothing was published: its empty graph is no step's.
        let subscriber = Subscriber(topics: topics, interval: interval, limit: limit, graph: published.graph,
                                    step: published.time == nil ? -1 : published.step)
        lock.lock()
        subscribers.append(subscriber)
        lock.unlock()
        return subscriber
    }

    /// The requests waiting for an approval now, oldest first.
    public func pendingApprovals(now: Date = Date()) -> [Approval] { approvals.waiting(now: now) }

    /// Approve or reject a request as `person`: the same store, binding and audit record as
    /// every other source of approvals.
    public func answer(_ id: String, approve: Bool, by person: Approver) throws -> Approval {
        try approve ? approvals.approve(id, by: person) : approvals.reject(id, by: person)
    }

    /// Acknowledge the latched fault as `person` (the loop records it and resumes at its next step).
    public func acknowledgeFault(by person: Approver) throws -> FaultLatch.Fault {
        try FaultLatch.acknowledge(folder: folder, by: person.name)
    }

    /// The latched fault, if there is one.
    public func fault() -> FaultLatch.Fault? {
        try? JSONRecordFile.read(FaultLatch.Fault.self, from: folder.fault)
    }

    /// Ask for a named action as `context`, and wait up to `timeout` for the guard's decision and
    /// what the device returned. Nil: nothing answered in time (the request was withdrawn before
    /// it was taken, or — `taken` — it is running and its outcome will be in the audit log).
    public func act(context: String, action: String, device: String?, params: [String: String], by person: Approver,
                    timeout: Duration = .seconds(30)) throws -> (reply: ActionReply?, taken: Bool) {
        let id = String(format: "%016llx", UInt64.random(in: .min ... .max))
        try inbox.submit(ActionRequest(id: id, context: context, device: device, action: action, params: params,
                                       requestedBy: "\(person.name) (\(person.via))"))
        let clock = ContinuousClock()
        var deadline = clock.now + timeout, taken = false
        while true {
            if let reply = inbox.reply(to: id) {
                inbox.forget(id)
                return (reply, true)
            }
            if clock.now >= deadline {
                if taken || inbox.withdraw(id) { break }
                taken = true
                deadline = clock.now + timeout
            }
            usleep(10_000)
        }
        if !taken { inbox.forget(id) }
        return (nil, taken)
    }

    /// Begin a new trace file, or mark this moment, as `person`: done by the recorder at the
    /// loop's next step (nil: no step came within `timeout`, and nothing was done), and audited.
    public func control(_ command: TraceControl.Command, by person: Approver, timeout: Duration = .seconds(5)) -> Result<TraceControl.Done, TraceControl.Failure>? {
        let result = trace.submit(command, timeout: timeout)
        if case .success(let done)? = result {
            let (event, call): (String, String) = switch command {
            case .newFile: ("trace-file", done.file)
            case .mark(let label, _): ("trace-mark", label)
            }
            _ = try? audit.append(AuditRecord(time: SystemClock().now().nanoseconds, policy: "", event: event, mode: "", context: person.via,
                                              call: call, decision: "done", reason: "by \(person.description) at step \(done.step) in \(done.file)"))
        }
        return result
    }

    /// The last `count` records of the audit log.
    public func auditTail(_ count: Int) -> [AuditRecord] { AuditLog.lastRecords(path: folder.audit, count: count) }

    /// The audit log's chain and checkpoints checked, as `worldos audit verify` does.
    public func verifyAudit() -> Result<AuditLog.Verified, AuditError> { AuditLog.verify(path: folder.audit, keys: keys) }

    /// A request the service refused (no or a wrong credential, out of scope, a peer it does not
    /// serve): audited, so attempts are on the record beside what was done.
    public func refused(source: String, who: String, request: String, why: String) {
        _ = try? audit.append(AuditRecord(time: SystemClock().now().nanoseconds, policy: "", event: "service-refused", mode: "",
                                          context: source, call: request, decision: "refused", reason: "\(who): \(why)"))
    }
}
