import Attached
import Benches
import Control
import DevicePorts
import DataEngine
import Estimator
import Executor
import Foundation
import Guard
import HostAdapter
import Journal
import Learning
import LoopCore
import Observer
import Renderer
import Sandbox
import Scheduler
import Service
import Surface
import Typeface

extension Supervisor {
    /// The loop built from a loaded configuration and the run folder's open records: the real
    /// stages, one guard for the loop's steps and one for its programs, the device routing.
    static func assemble(_ configuration: Configuration, _ records: RunRecords, options: SupervisorOptions,
                         clock: any WorldClock) throws -> Session {
        let (bench, policy, fault, audit) = (configuration.bench, configuration.policy, records.fault, records.audit)
        let (instruments, gpio, usb) = (configuration.instruments, configuration.gpioDevices, configuration.usb)
        var notes = configuration.notes + records.notes
        var (events, unavailable) = EventObserver.standard()
        for device in gpio {
            for name in device.profile.edges {
                do { events.sources.append(try GPIOEdgeSource(device: device, line: name)) } catch { notes.append("edges of \(name): \(error)") }
            }
        }
        for reason in unavailable {
            FileHandle.standardError.write(Data("note: event source unavailable, continuing without it: \(reason)\n".utf8))
        }
        // The controllers' record: the guard decides against it, the host takes setpoints into it.
        let controls = ControlBoard(bench.controllers.values.sorted { $0.name < $1.name }.map(\.envelope))
        let host = BenchHost(instruments: instruments, gpioDevices: gpio, usb: usb, catalog: configuration.catalog, controls: controls)
        host.makeSafe(on: fault)
        // A latched fault withdraws every setpoint and drives the controlled actuators' devices
        // to their safe state (a person approves a setpoint again after the acknowledgement).
        let controlled = instruments.filter { instrument in controls.envelopes.contains { host.instrument(named: $0.device) === instrument } }
        fault.onLatch.append { [controls] in
            controls.revokeAll()
            for instrument in controlled { _ = instrument.returnToSafeState() }
        }
        let attached = AttachedDevices(instruments: instruments, gpio: gpio)
        let screen = options.mode == .latent || options.display == "none" ? Screen(nil)
            : Screen(finding: { [options] in
                let (display, note) = DisplayChoice.open(options.display, connector: options.connector, mode: options.displayMode)
                return (display, note)
            }, attached: { [option = options.display] in DisplayChoice.attached(option) })
        notes.append(options.mode == .latent ? "display: none while dreaming" : screen.note)
        let devices = BenchHost.owner(instruments: instruments, gpio: gpio, usb: usb, catalog: configuration.catalog)
        // The operator's seat: touches and keys from the input devices, approvals as its operator.
        let seat = options.mode == .latent ? PanelSeat.none(clock: clock)
            : PanelSeat(operator: options.panelOperator, store: records.approvals, clock: clock,
                        discover: { [choice = options.panelInput] in
                            switch choice {
                            case "none": []
                            case "auto": EvdevInput.devices()
                            default: choice.split(separator: ",").map(String.init)
                            }
                        }, open: { [named = options.panelInput != "auto"] path throws(DeviceError) in try EvdevInput(path: path, allowVirtual: named) })
        seat.refresh()
        let owner: @Sendable (UInt64) -> DeviceOwner? = { screen.owner(of: $0) ?? seat.owner(of: $0) ?? devices($0) }
        // The run folder (audit log, approvals, trace, control socket), the folder of the audit
        // log's signing key and heads, and the API's tokens: no context, loop or program, touches them.
        let protected = [options.folder, RunFolder(options.keys), RunFolder(options.tokenFile)].map(\.resolved)
        let programGuard = ProgramGuard(policy: policy, audit: audit, mode: options.mode, protectedPaths: protected, fault: fault, owner: owner)
        let exits = ProgramExits(judge: programGuard)
        events.sources.append(exits)
        let programContexts = bench.contexts.filter { $0.program != nil }
        let panel = PNGSink(path: options.folder.panel)
        let traceControl = TraceControl()
        // The panel is drawn at the screen's size (or the PNG's default without one).
        let renderer: PanelRenderer
        do {
            renderer = try screen.display.map { d throws(TypefaceError) in
                try PanelRenderer(width: d.state.mode.width, height: d.state.mode.height, mode: options.mode)
            } ?? PanelRenderer(mode: options.mode)
        } catch { throw SupervisorError(message: "the panel cannot draw text: \(error)") }
        let predictor: any Effecting
        do { predictor = try options.model.map { LearnedPredictor(try Model.read(from: $0)) } ?? TrivialPredictor() } catch {
            throw SupervisorError(message: "\(error)")
        }
        var policyGuard = PolicyGuard(policy: policy, audit: audit, mode: options.mode, risk: BenchHost.risk(instruments: instruments, gpio: gpio),
                                      identity: BenchHost.identity(instruments: instruments, gpio: gpio),
                                      approvals: records.approvals,
                                      approvers: BenchHost.approvers(instruments: instruments, gpio: gpio),
                                      protectedPaths: protected, fault: fault, owner: owner,
                                      stepRisk: BenchHost.stepRisk(gpio: gpio, usb: usb, catalog: configuration.catalog))
        policyGuard.controls = controls
        // The plans running now: the guard lets a plan's own steps through on the plan's approval.
        let planBoard = PlanBoard()
        policyGuard.plans = planBoard
        let measurements = MeasurementLog()
        let plans = options.mode == .latent || bench.planContexts.isEmpty ? nil
            : PlanRunner(files: PlanFiles(directory: options.folder.plans), board: planBoard, contexts: bench.planContexts, measurements: measurements,
                         preflight: { [checker = policyGuard] plan, id, context, now in checker.preflight(plan, id: id, context: context, at: now) },
                         makeSafe: { devices in
                             devices.flatMap { name in host.instrument(named: name).map { $0.returnToSafeState() } ?? ["\(name) is not attached"] }
                         })
        // With a model, a request for approval carries the dream of its action.
        if let learned = predictor as? LearnedPredictor, let file = options.model {
            policyGuard.dream = { call, context in
                let (returns, readings) = learned.preview(call, context: context)
                return ApprovalDream(returns: returns.map { .init(label: $0.label, probability: $0.probability) }, readings: readings, model: file)
            }
        }
        let loop = SupervisorLoop(
            mode: options.mode, clock: clock, initial: try initialGraph(bench: bench, policy: policy),
            observer: CompositeObserver([ProcObserver(), TelemetryObserver(), InstrumentObserver(instruments, fault: fault), DeviceObserver(usb: usb),
                                          ApprovalObserver(store: records.approvals),
                                          ProgramObserver(programs: programGuard, contexts: programContexts.map(\.name)),
                                          events, DisplayObserver(screen), PanelObserver(seat)]),
            estimator: LiveEstimator(), renderer: renderer,
            frameSink: DisplaySink(png: panel, screen: screen, seat: seat), scheduler: ContextScheduler(),
            proposer: RequestingProposer(bench: bench, inbox: ActionInbox(directory: options.folder.requests),
                                         offering: { [offering = attached.offering] action in
                                             offering(action) + controls.envelopes.filter { $0.setpointAction == action }.map(\.deviceName)
                                         }, board: controls, plans: plans),
            policyGuard: policyGuard,
            executor: TraceExecutor(names: options.mode == .latent ? nil : LinuxNames()), host: host,
            predictor: predictor, recorder: RecorderSet([records.trace, MCAPRecorder(folder: options.folder, redaction: records.redaction,
                                                                                             frames: { [encoder = panel.encoder] in encoder.png(hash: $0, wait: $1) },
                                                                                             control: traceControl, measurements: measurements)]))
        let model = ServiceModel(folder: options.folder, approvals: records.approvals, audit: audit, keys: options.keys,
                                 contexts: bench.contexts.map(\.name), programs: Set(programContexts.map(\.name)), trace: traceControl)
        return Session(loop: loop, instruments: instruments, notes: notes, wakeDescriptors: events.descriptors,
                       programContexts: programContexts, programGuard: programGuard, exits: exits, service: model)
    }

}
