import Attached
import Benches
import Foundation
import Guard
import Journal
import LoopCore
import Observer
import Renderer
import Service
import StateGraph
import Surface

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
    /// The screen: `none` (the default for a supervisor made in a program or a test), `auto`
    /// (the first DRM card with something attached, else none; what `worldos run` uses), or a
    /// card's path; and, optionally, the connector by name and the mode (`WxH[@Hz]`).
    public var display: String = "none"
    public var connector: String?
    public var displayMode: String?
    /// Who operates the panel's seat (approves and rejects there; nil: nobody may), and which
    /// input devices it takes touches and keys from: `none` (the default for a program or a
    /// test), `auto` (every /dev/input event device, hotplugged; what `worldos run` uses), or
    /// event devices' paths, comma-separated.
    public var panelOperator: String?
    public var panelInput: String = "none"
    /// The service's doors: the control socket in the run folder (`worldos run` opens it; a
    /// supervisor made in a program or a test does not unless asked), and the HTTP API's
    /// address (nil: none) with its token file (default: `api-tokens.yaml` in the keys folder).
    public var control = false
    public var listen: String?
    public var tokens: String?
    /// A trained model (`worldos train`): the outcome predictor in filtered and latent mode and
    /// the dynamics model the surprise is measured against (nil: every call is predicted to succeed).
    public var model: String?
    public init() {}
    /// What a supervisor started without options uses (the CLI's defaults too).
    public static let defaults = SupervisorOptions()

    /// The run folder `out` names, and its layout.
    public var folder: RunFolder { RunFolder(out) }

    /// The API's token file.
    public var tokenFile: String { tokens ?? keys + "/api-tokens.yaml" }
}

/// A supervisor that could not start: which file or setting, and what to do.
public struct SupervisorError: Error, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
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
            var attributes: Attributes = ["priority": .int(context.priority), "interval-ms": .int(context.intervalMilliseconds),
                                          "state": .string(context.program != nil ? "program" : "ready")]
            if let period = context.periodMilliseconds {
                attributes["period-ms"] = .int(period)
                attributes["deadline-ms"] = .int(context.deadlineMilliseconds ?? period)
            }
            delta.append(.addNode(Node(id: .context(context.name), kind: .executionContext, partition: .context(context.name),
                                       observability: .visible, projected: true, capabilities: labels, attributes: attributes)))
        }
        try graph.apply(delta)
        return graph
    }

    /// Load the bench and policy, open the trace and audit files in `options.out`, and build the loop.
    public static func make(_ options: SupervisorOptions, clock: any WorldClock = SystemClock()) throws -> SupervisorLoop {
        try start(options, clock: clock).loop
    }

    /// As ``make(_:clock:)``, and also find the instruments attached to this machine through the
    /// device profiles, and observe them every step: load the configuration (nothing is written
    /// before it all holds), open the run folder's records, then build the loop.
    public static func start(_ options: SupervisorOptions, clock: any WorldClock = SystemClock()) throws -> Session {
        let configuration = try Configuration.load(options)
        let records = try RunRecords.open(options.folder, for: configuration, options: options, clock: clock)
        return try assemble(configuration, records, options: options, clock: clock)
    }

    /// Run until `steps` macro steps are done or SIGINT/SIGTERM arrives (on `signals`, or a
    /// watch of its own), one step per `interval`. `report` sees each step. Descriptors still
    /// open through the host adapter are closed on the way out.
    /// `service`, when given, is told each step (its clients' view, subscriptions and metrics).
    public static func run(_ loop: inout SupervisorLoop, steps: Int?, interval: Duration, signals: SignalWatch? = nil, wakeOn descriptors: [Int32] = [],
                           service: ServiceModel? = nil, report: (StepReport) -> Void) throws -> (steps: Int, interrupted: Bool) {
        let signals = try signals ?? SignalWatch(signals: [SIGINT, SIGTERM])
        defer {
            (loop.host as? BenchHost)?.closeAll()
            do { try loop.finish() } catch {
                FileHandle.standardError.write(Data("warning: the trace or the panel could not be completed: \(error); `worldos trace repair` completes what was written\n".utf8))
            }
        }
        var done = 0
        let clock = ContinuousClock()
        var lastStart: ContinuousClock.Instant?
        while steps.map({ done < $0 }) ?? true {
            if signals.pending { return (done, true) }
            let start = clock.now
            let stepped = try loop.step()
            if var requests = loop.proposer as? RequestingProposer {
                requests.settle(stepped)
                loop.proposer = requests
            }
            if let service {
                // Late: begun more than a tenth of an interval after the one before was due.
                let late = lastStart.map { start - $0 > interval + interval / 10 } ?? false
                service.publish(stepped, graph: loop.memory, semantics: loop.lastSemantics, took: clock.now - start, late: late)
            }
            lastStart = start
            report(stepped)
            sayWhatThePanelDid(&loop)
            lookForAScreen(&loop, after: stepped)
            done += 1
            if let steps, done >= steps { break }
            // Sleep until the next tick, a stop signal, or an asynchronous event (which steps now) —
            // but at least 50 ms between steps, so a busy machine's stream of process events
            // cannot make the loop spin. The screen's flip completions are taken as they come,
            // without stepping; a touch or key that changes the panel steps (after those 50 ms).
            // A context with a period (a controller) is released sooner: the loop wakes for it.
            var wait = interval
            if let release = loop.scheduler.nextDue() {
                wait = min(wait, max(.zero, release.duration(since: loop.clock.now())))
            }
            let gap = min(wait, .milliseconds(50))
            var inputChanged = false
            if pause(&loop, for: gap, signals: signals, wakeOn: [], wakeEarly: false, inputChanged: &inputChanged) { return (done, true) }
            if pause(&loop, for: wait - gap, signals: signals, wakeOn: descriptors, wakeEarly: true,
                     inputChanged: &inputChanged) { return (done, true) }
        }
        return (done, false)
    }

    /// A screen that failed is let go (the run goes on with the PNG), and what the seat did:
    /// said once, on stderr.
    private static func sayWhatThePanelDid(_ loop: inout SupervisorLoop) {
        guard var sink = loop.frameSink as? DisplaySink else { return }
        for line in sink.seat?.take() ?? [] { FileHandle.standardError.write(Data("worldos: \(line)\n".utf8)) }
        guard let lost = sink.takeLost() else { return }
        loop.frameSink = sink
        FileHandle.standardError.write(Data("worldos: \(lost)\n".utf8))
    }

    /// While there is no screen: look again after a DRM hotplug (a uevent of the `drm` subsystem)
    /// or a second gone by, and draw the panel at the size of the one found.
    private static func lookForAScreen(_ loop: inout SupervisorLoop, after step: StepReport) {
        let hotplug = step.events.contains { $0.source == "uevent" && $0.details["SUBSYSTEM"] == "drm" }
        guard let sink = loop.frameSink as? DisplaySink, let (display, note) = sink.screen.reprobe(hotplug: hotplug) else { return }
        FileHandle.standardError.write(Data("worldos: \(note)\n".utf8))
        let mode = display.state.mode
        if let panel = loop.renderer as? PanelRenderer, panel.width != mode.width || panel.height != mode.height {
            do { loop.renderer = try PanelRenderer(width: mode.width, height: mode.height, mode: loop.mode, face: panel.face) } catch {
                FileHandle.standardError.write(Data("worldos: the panel cannot be drawn at \(mode): \(error)\n".utf8))
            }
        }
    }

    /// Wait `duration`, or until a stop signal (true) or one of `wakeOn` is readable; servicing
    /// the display's descriptor whenever it is, and the seat's input: a touch or key that
    /// changes the panel ends the wait (the next step draws it) once `wakeEarly`.
    private static func pause(_ loop: inout SupervisorLoop, for duration: Duration, signals: SignalWatch, wakeOn: [Int32],
                              wakeEarly: Bool, inputChanged: inout Bool) -> Bool {
        let clock = ContinuousClock()
        let end = clock.now + duration
        while true {
            if inputChanged && wakeEarly { return false }
            let (screen, input) = (loop.frameSink as? DisplaySink)?.descriptors ?? (nil, [])
            let (signal, ready) = signals.readiness(within: max(.zero, end - clock.now), of: wakeOn + (screen.map { [$0] } ?? []) + input)
            if signal { return true }
            if let screen, ready.contains(screen), var sink = loop.frameSink as? DisplaySink {
                sink.service()
                loop.frameSink = sink
                sayWhatThePanelDid(&loop)
            }
            if !ready.isDisjoint(with: input), let sink = loop.frameSink as? DisplaySink {
                if sink.serviceInput() { inputChanged = true }
                sayWhatThePanelDid(&loop)
            }
            if !ready.isDisjoint(with: wakeOn) || clock.now >= end { return false }
        }
    }
}
