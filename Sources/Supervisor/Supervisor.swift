import Config
import DataEngine
import DevicePorts
import Devices
import Estimator
import Executor
import Foundation
import Guard
import HostAdapter
import Journal
import LoopCore
import Observer
import Renderer
import Sandbox
import Scheduler
import StateGraph
import System

/// Where the supervisor reads its configuration and writes its records.
public struct SupervisorOptions: Sendable {
    public var mode: Mode = .real
    public var out: String = ".worldos/run"
    public var bench: String = "Devices/benches/default.yaml"
    public var policy: String = "Policies/default.yaml"
    /// Redaction rules for what is recorded; none when the file does not exist.
    public var redaction: String = "Policies/redaction.yaml"
    /// Device profiles (Devices/*.yaml).
    public var profiles: String = "Devices"
    /// Serial ports to try besides those libserialport lists (a simulator's pseudo-terminal).
    public var devices: [String] = []
    /// The folder of the key that signs the audit log's checkpoints and of the logs' heads
    /// (outside the run folder; see ``AuditSeal``).
    public var keys: String = AuditSeal.defaultDirectory
    public init() {}
    /// What a supervisor started without options uses (the CLI's defaults too).
    public static let defaults = SupervisorOptions()

    /// The run folder `out` names, and its layout.
    public var folder: RunFolder { RunFolder(out) }
}

/// A supervisor that could not start: which file or setting, and what to do.
public struct SupervisorError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// The real supervisor: the real stages assembled into one loop.
public enum Supervisor {
    /// The graph a run starts from: the kernel root, plus one execution context per bench
    /// context, carrying the capability labels its policy grants.
    public static func initialGraph(bench: Bench, policy: Policy) throws -> Graph {
        var graph = Graph()
        var delta = GraphDelta()
        for context in bench.contexts {
            let labels = policy.contexts[context.name].map { p in
                Set(p.capabilities + p.rules.filter { $0.effect == .allow }.map { r in
                    r.ops.map(\.rawValue).sorted().joined(separator: "|") + (r.paths.map { " " + $0.map(\.description).joined(separator: ",") } ?? "")
                })
            } ?? []
            delta.append(.addNode(Node(id: .context(context.name), kind: .executionContext, partition: .context(context.name),
                                       observability: .visible, projected: true, capabilities: labels,
                                       attributes: ["priority": .int(context.priority), "interval-ms": .int(context.intervalMilliseconds),
                                                    "state": .string(context.tasks.isEmpty ? "program" : "ready")])))
        }
        try graph.apply(delta)
        return graph
    }

    /// A started supervisor: its loop, the instruments it found, and what it noticed on the way.
    public struct Session {
        public var loop: SupervisorLoop
        public var instruments: [AttachedInstrument]
        public var notes: [String]
        /// The event sources' descriptors: the run loop wakes early when one is readable.
        public var wakeDescriptors: [Int32] = []

        /// The bench's contexts that are real programs, and the guard their mediators ask.
        public var programContexts: [Bench.Context] = []
        public var programGuard: ProgramGuard?
        public private(set) var programs: [SupervisedProgram] = []
        /// Their ends, reaped and audited as events of the loop.
        public var exits: ProgramExits?

        /// Every instrument back to its profile's safe state (on stop, fault or crash recovery).
        public func returnToSafeState() -> [String] { instruments.flatMap { $0.returnToSafeState() } }

        /// Start the bench's program contexts under the seccomp filter; a line for each, started
        /// or not (a program that cannot start is reported and the supervisor goes on).
        public mutating func launchPrograms() -> [String] {
            guard let programGuard else { return [] }
            return programContexts.compactMap { context in
                guard let argv = context.program else { return nil }
                if context.user != nil && getuid() != 0 {
                    return "context \(context.name): NOT STARTED: its bench gives it a user, and only root can run a program as another user"
                }
                do {
                    let program = try SupervisedProgram.launch(argv, context: context.name, guard: programGuard, user: context.user)
                    programs.append(program)
                    exits?.watch(program, argv: argv)
                    let who = context.user.map { " as \($0.uid):\($0.gid)" } ?? ""
                    return "context \(context.name): \(argv.joined(separator: " ")) (pid \(program.pid)\(who)) under the seccomp filter"
                } catch {
                    return "context \(context.name): NOT STARTED: \(error)"
                }
            }
        }

        /// Stop every program context (SIGTERM to its session, SIGKILL after 2 s); how each ended
        /// is audited, one line each.
        @discardableResult
        public mutating func stopPrograms(at now: Instant = SystemClock().now()) -> [String] {
            let ended = exits?.drain(at: now) ?? []
            for program in programs {
                program.stop()
                program.waitForMediator()
            }
            programs = []
            return (ended + (exits?.stopped(at: now) ?? [])).map { "context \($0.subject): \($0.details["cause"] ?? "ended")" }
        }
    }

    /// Load the bench and policy, open the trace and audit files in `options.out`, and build the loop.
    public static func make(_ options: SupervisorOptions, clock: any WorldClock = SystemClock()) throws -> SupervisorLoop {
        try start(options, clock: clock).loop
    }

    /// As ``make(_:clock:)``, and also find the instruments attached to this machine through the
    /// device profiles, and observe them every step.
    public static func start(_ options: SupervisorOptions, clock: any WorldClock = SystemClock()) throws -> Session {
        var notes: [String] = []
        var instruments: [AttachedInstrument] = []
        var gpioDevices: [AttachedGPIODevice] = []
        var catalog: DeviceCatalog?
        if FileManager.default.fileExists(atPath: options.profiles) {
            let loaded = try DeviceCatalog.load(directory: options.profiles)
            let found = DeviceDiscovery.discover(loaded, explicit: options.devices)
            instruments = found.attached
            gpioDevices = AttachedGPIODevice.discover(loaded)
            notes += found.notes
            catalog = loaded
        } else if !options.devices.isEmpty {
            throw SupervisorError(message: "no device profiles at \(options.profiles); pass --profiles DIR")
        }
        for path in options.devices where !FileManager.default.fileExists(atPath: path) {
            throw SupervisorError(message: "--device \(path): no such device; give the path of a serial port or pseudo-terminal that exists "
                                  + "(the simulator prints its own when it starts)")
        }
        let bench = try Bench.load(file: options.bench)
        // libusb starts a thread of its own; a missing USB subsystem is a note, not a failure.
        var usb: USBContext?
        do { usb = try USBContext() } catch { notes.append("USB is not observed: \(error)") }
        let policy = try Policy.load(file: options.policy)
        for context in bench.contexts where policy.contexts[context.name] == nil {
            FileHandle.standardError.write(Data("warning: \(options.policy): no policy for context \(context.name); everything it proposes will be denied\n".utf8))
        }
        do {
            try FileManager.default.createDirectory(atPath: options.out, withIntermediateDirectories: true)
        } catch {
            throw SupervisorError(message: "cannot create the output folder \(options.out): \(error.localizedDescription); choose another with --out")
        }
        try options.folder.lock()
        var (events, unavailable) = EventObserver.standard()
        for device in gpioDevices {
            for name in device.profile.edges {
                do { events.sources.append(try GPIOEdgeSource(device: device, line: name)) } catch { notes.append("edges of \(name): \(error)") }
            }
        }
        for reason in unavailable {
            FileHandle.standardError.write(Data("note: event source unavailable, continuing without it: \(reason)\n".utf8))
        }
        let audit = try AuditLog(path: options.folder.audit, seal: try AuditSeal(directory: options.keys))
        // An approved action that started before a crash is never repeated (its approval was
        // used): it is reported, once, for a person to check, and recorded as such.
        for intent in AuditLog.unfinishedApprovedActions(path: options.folder.audit) {
            notes.append("OUTCOME UNKNOWN: \(intent.call) for \(intent.context), \(intent.rule ?? ""), started (audit seq \(intent.seq)) "
                         + "but the supervisor stopped before its outcome was recorded; check the device")
            try audit.append(AuditRecord(time: clock.now().nanoseconds, policy: policy.contentHash, event: "outcome-unknown", mode: options.mode.rawValue, context: intent.context,
                                         call: intent.call, result: "unknown after a restart", decisionSeq: intent.seq))
        }
        // Every policy the supervisor runs under is kept and its loading audited; a change from
        // the last one is a note naming both, for `worldos policy diff`.
        let previous = AuditLog.loadedPolicies(path: options.folder.audit).last
        if previous != policy.contentHash {
            try PolicyHistory(directory: options.folder.policies).keep(policy)
            let change = previous.map { "policy changed from \($0.prefix(12)) to \(policy.contentHash.prefix(12)); see worldos policy diff \($0.prefix(12)) \(policy.contentHash.prefix(12))" }
            if let change { notes.append("\(options.policy): \(change)") }
            try audit.append(AuditRecord(time: clock.now().nanoseconds, policy: policy.contentHash, event: "policy", mode: options.mode.rawValue, context: "supervisor",
                                         call: "load(\(options.policy))", reason: change ?? "first policy of this run folder"))
        }
        let fault = FaultLatch(folder: options.folder, audit: audit, policyHash: policy.contentHash)
        if let latched = fault.current {
            notes.append("HALTED by a fault latched \(latched.since): \(latched.reason); nothing physical runs until a person "
                         + "checks the bench and runs worldos ack --out \(options.out)")
        }
        var redaction = Redaction()
        if FileManager.default.fileExists(atPath: options.redaction) {
            redaction = try Redaction.load(file: options.redaction)
            redaction.salt = try Redaction.salt(in: options.folder)
        } else {
            notes.append("no redaction rules at \(options.redaction): transitions are recorded as they are")
        }
        let trace = try TraceWriter(path: options.folder.trace, redaction: redaction)
        for (path, torn) in [(options.folder.audit, audit.tornTailBytes), (options.folder.trace, trace.tornTailBytes)] where torn > 0 {
            FileHandle.standardError.write(Data("note: \(path): cut \(torn) bytes of a torn last record (a crash mid-write); every complete record is kept\n".utf8))
        }
        let host = SupervisorHost(instruments: instruments, gpioDevices: gpioDevices, usb: usb, catalog: catalog)
        host.makeSafe(on: fault)
        let attached = AttachedDevices(instruments: instruments, gpio: gpioDevices)
        let owner = SupervisorHost.owner(instruments: instruments, gpio: gpioDevices)
        // The run folder (audit log, approvals, trace): no context, loop or program, touches it.
        let protected = options.folder.resolved
        let programGuard = ProgramGuard(policy: policy, audit: audit, mode: options.mode, protectedPaths: [protected], fault: fault, owner: owner)
        let exits = ProgramExits(judge: programGuard)
        let approvals = try ApprovalStore(directory: options.folder.approvals, audit: audit, policyHash: policy.contentHash)
        events.sources.append(exits)
        let panel = PNGSink(path: options.folder.panel)
        let loop = SupervisorLoop(
            mode: options.mode, clock: clock, initial: try initialGraph(bench: bench, policy: policy),
            observer: CompositeObserver([ProcObserver(), TelemetryObserver(), InstrumentObserver(instruments, fault: fault), DeviceObserver(usb: usb),
                                          ApprovalObserver(store: approvals),
                                          ProgramObserver(programs: programGuard, contexts: bench.contexts.filter { $0.program != nil }.map(\.name)),
                                          events]),
            estimator: LiveEstimator(), renderer: PanelRenderer(mode: options.mode),
            frameSink: panel, scheduler: PriorityScheduler(),
            proposer: RequestingProposer(bench: bench, inbox: ActionInbox(directory: options.folder.requests), offering: attached.offering),
            policyGuard: PolicyGuard(policy: policy, audit: audit, mode: options.mode, risk: SupervisorHost.risk(instruments: instruments, gpio: gpioDevices),
                                     identity: SupervisorHost.identity(instruments: instruments, gpio: gpioDevices),
                                     approvals: approvals,
                                     approvers: SupervisorHost.approvers(instruments: instruments, gpio: gpioDevices),
                                     protectedPaths: [protected], fault: fault, owner: owner,
                                     stepRisk: SupervisorHost.stepRisk(gpio: gpioDevices, usb: usb, catalog: catalog)),
            executor: TraceExecutor(names: options.mode == .latent ? nil : LinuxNames()), host: host,
            predictor: TrivialPredictor(), recorder: RecorderSet([trace, MCAPRecorder(folder: options.folder, redaction: redaction,
                                                                                     frames: { [encoder = panel.encoder] in encoder.png(hash: $0) })]))
        return Session(loop: loop, instruments: instruments, notes: notes, wakeDescriptors: events.descriptors,
                       programContexts: bench.contexts.filter { $0.program != nil },
                       programGuard: programGuard, exits: exits)
    }

    /// Run until `steps` macro steps are done or SIGINT/SIGTERM arrives, one step per
    /// `interval`. `report` sees each step. Descriptors still open through the host adapter are
    /// closed on the way out.
    public static func run(_ loop: inout SupervisorLoop, steps: Int?, interval: Duration, wakeOn descriptors: [Int32] = [],
                           report: (StepReport) -> Void) throws -> (steps: Int, interrupted: Bool) {
        let signals = try SignalWatch(signals: [SIGINT, SIGTERM])
        defer {
            (loop.host as? SupervisorHost)?.closeAll()
            do { try loop.finish() } catch {
                FileHandle.standardError.write(Data("warning: the trace or the panel could not be completed: \(error); `worldos trace repair` completes what was written\n".utf8))
            }
        }
        var done = 0
        while steps.map({ done < $0 }) ?? true {
            if signals.pending { return (done, true) }
            let stepped = try loop.step()
            if var requests = loop.proposer as? RequestingProposer {
                requests.settle(stepped)
                loop.proposer = requests
            }
            report(stepped)
            done += 1
            if let steps, done >= steps { break }
            // Sleep until the next tick, a stop signal, or an asynchronous event (which steps now) —
            // but at least 50 ms between steps, so a busy machine's stream of process events
            // cannot make the loop spin.
            let gap = min(interval, .milliseconds(50))
            if signals.wait(for: gap) { return (done, true) }
            if signals.wait(for: interval - gap, orAnyOf: descriptors) == .signal { return (done, true) }
        }
        return (done, false)
    }

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
