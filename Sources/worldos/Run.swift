import ArgumentParser
import Foundation
import HostAdapter
import LoopCore
import Service
import Supervisor

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the supervisor loop until Ctrl-C (or --steps).")

    @OptionGroup var options: LoopOptions

    @Option(help: "Stop after this many macro steps.")
    var steps: Int?

    @Option(name: .customLong("interval-ms"), help: "Milliseconds between macro steps.")
    var intervalMilliseconds: Int = 500

    @Option(help: "The screen the panel is scanned out to: auto (the first DRM card with a display attached, else none), none, or a card such as /dev/dri/card0. The PNG in the run folder is written either way.")
    var display: String = "auto"

    @Option(help: "The connector to drive (such as HDMI-A-1; default: the first connected one).")
    var connector: String?

    @Option(name: .customLong("display-mode"), help: "The display mode as WIDTHxHEIGHT or WIDTHxHEIGHT@HZ (default: the connector's preferred mode).")
    var displayMode: String?

    @Option(name: .customLong("panel-operator"), help: "Who operates the panel's seat: approvals and rejections made at the panel are theirs, audited with the source panel. Without it, nobody may approve at the panel (its buttons say so).")
    var panelOperator: String?

    @Option(name: .customLong("panel-input"), help: "The input devices the panel takes touches and keys from: auto (every /dev/input event device, as they come and go), none, or event devices such as /dev/input/event3,/dev/input/event4.")
    var panelInput: String = "auto"

    @Option(help: "Where the HTTP API and the web page listen, HOST:PORT (port 0: any free one), or none. Every request wants a bearer token (worldos token add).")
    var listen: String = "127.0.0.1:8420"

    @Option(help: "The API's token file (mode 0600; default: api-tokens.yaml in the keys folder, $WORLDOS_KEYS or /var/lib/worldos for root).")
    var tokens: String?

    @Option(help: "The service's configuration file (YAML; see Policies/worldos.yaml): its settings are taken where an option is not given here.")
    var config: String?

    func run() throws {
        let (settings, intervalMilliseconds) = try configured()
        let session = try Supervisor.start(settings)
        say("worldos: supervising this machine in \(settings.mode.rawValue) mode; Ctrl-C stops")
        say("  bench \(settings.bench), policy \(settings.policy)")
        say("  device libraries: \(DeviceLibraries.loaded().summary)")
        for instrument in session.instruments {
            say("  instrument: \(instrument.profile.name) \(instrument.identity.model) \(instrument.identity.serial) on \(instrument.path)")
        }
        for note in session.notes { say("  note: \(note)") }
        say("  writing \(settings.folder.trace), \(settings.folder.audit), \(settings.folder.panel)")
        // A service group: the doors, the bench, the programs and the loop, started in that
        // order and stopped in the reverse (Supervisor.serve).
        let systemd = SystemdNotify()
        let out = settings.out
        _ = try Supervisor.serve(session, settings, steps: steps, interval: .milliseconds(intervalMilliseconds), narration: .init(
            say: say,
            ready: { api in systemd?.ready(status: "supervising in \(settings.mode.rawValue) mode" + (api.map { "; API on http://\($0)/" } ?? "")) },
            stepped: { report in
                say(summary(report, out: out))
                // The loop itself pings the watchdog: a loop that stops stepping is restarted.
                systemd?.stepped("step \(report.step), \(report.posteriorNodes) nodes")
            },
            stopping: { done, interrupted in
                say("worldos: stopped \(interrupted ? "on signal " : "")after \(done) steps; trace \(settings.folder.trace), audit \(settings.folder.audit)")
                systemd?.stopping(status: "stopping: programs, then the bench to its safe state, then the doors")
            }))
    }
}

extension Run {
    /// The supervisor's settings: these options, and the configuration file's where an option
    /// was left at its default.
    func configured() throws -> (SupervisorOptions, Int) {
        var s = supervisorOptions(options)
        (s.display, s.connector, s.displayMode) = (display, connector, displayMode)
        (s.panelOperator, s.panelInput) = (panelOperator, panelInput)
        (s.control, s.listen, s.tokens) = (true, listen == "none" ? nil : listen, tokens)
        var interval = intervalMilliseconds
        guard let config else { return (s, interval) }
        let file: ServiceConfig
        do { file = try ServiceConfig.load(file: config) } catch { throw CLIFailure("\(error)") }
        let d = SupervisorOptions.defaults, run = Run.defaults
        func take<T: Equatable>(_ value: inout T, _ given: T, _ initial: T, _ configured: T?) {
            if given == initial, let configured { value = configured }
        }
        take(&s.bench, options.bench, d.bench, file.bench)
        take(&s.profiles, options.profiles, d.profiles, file.profiles)
        take(&s.policy, options.policy, d.policy, file.policy)
        take(&s.redaction, options.redaction, d.redaction, file.redaction)
        take(&s.out, options.out, d.out, file.runFolder)
        take(&s.devices, options.devices, [], file.devices)
        take(&s.mode, options.mode, .real, file.mode.flatMap(Mode.init(rawValue:)))
        take(&s.display, display, run.display, file.display)
        take(&s.connector, connector, nil, file.connector.map(Optional.some))
        take(&s.displayMode, displayMode, nil, file.displayMode.map(Optional.some))
        take(&s.panelOperator, panelOperator, nil, file.panelOperator.map(Optional.some))
        take(&s.panelInput, panelInput, run.panelInput, file.panelInput)
        if listen == run.listen, let configured = file.listen { s.listen = configured == "none" ? nil : configured }
        take(&s.tokens, tokens, nil, file.tokens.map(Optional.some))
        take(&interval, intervalMilliseconds, run.intervalMilliseconds, file.intervalMilliseconds)
        if let keys = file.keys { s.keys = keys }
        return (s, interval)
    }

    /// The options' defaults, as a run with none given has them.
    static var defaults: Run { try! Run.parse([]) }
}

/// Writes a log line straight to the descriptor, so each step is visible as it happens even when
/// stdout is a pipe or a journal (print would hold it in a 4 KB buffer).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// One line per step for the run log; denials spelled out.
func summary(_ r: StepReport, out: String) -> String {
    var line = "step \(r.step): \(r.posteriorNodes) nodes"
    if let s = r.surprise { line += ", prior wrong on \(s.wrongNodes)" + (s.learned.map { String(format: ", %.1f bits of learned surprise", $0.bits) } ?? "") }
    if let e = r.observationError { line += ", observation FAILED: \(e)" }
    if let c = r.context, let o = r.outcome {
        line += "; \(c) ran \(o.proposal.task)" + (o.proposal.macros ?? []).map { " (macro \($0.name): \($0.steps) steps, \($0.saved) not spelled out)" }.joined()
        for s in o.steps where s.status == .denied {
            guard let d = s.decision else { continue }
            switch d {
            case .needsApproval(let request, let reason):
                line += "\n  WAITING FOR APPROVAL \(s.call?.description ?? ""): \(reason)\n    approve with: worldos approve \(request) --out \(out)"
            default:
                line += "\n  \(d.verdict == "deny" ? "DENIED" : "REFUSED (uncertain)") \(s.call?.description ?? "") by \(d.rule): \(d.reason ?? "")"
            }
        }
        if r.mode == .filtered { line += "; \(o.predictionMisses) returns mispredicted" }
    }
    return line
}

func supervisorOptions(_ o: LoopOptions) -> SupervisorOptions {
    var s = SupervisorOptions()
    s.mode = o.mode
    s.out = o.out
    s.bench = o.bench
    s.policy = o.policy
    s.redaction = o.redaction
    s.profiles = o.profiles
    s.devices = o.devices
    s.model = o.model
    return s
}
