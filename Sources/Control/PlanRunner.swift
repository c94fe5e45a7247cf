import Config
import DataEngine
import Foundation
import Guard
import LoopCore
import StateGraph

/// Runs the plans people submit (`worldos plan run`) as the bench's plan contexts propose: one
/// plan per context at a time, one step at a time, every action an `act` micro-step the guard
/// decides as it runs. Before a plan starts the guard checks all of it (``PolicyGuard/preflight``);
/// an abort or a failed step runs the plan's cleanup and then the safe state of its devices. A
/// plan found active when the supervisor starts was interrupted: it waits for a person to
/// resume it (from its last checkpoint, checked again) or abort it.
public struct PlanRunner: DescribingNodes {
    public typealias Preflight = (_ plan: PlanSummary, _ id: String, _ context: String, _ now: Instant) -> PlanCheck
    public let files: PlanFiles
    public let board: PlanBoard
    /// The bench's contexts that run plans.
    public let contexts: Set<String>
    private let preflight: Preflight
    /// Drive these devices to their safe state; what failed.
    private let makeSafe: ([String]) -> [String]
    private let measurements: MeasurementLog?
    private var active: [String: Active] = [:]
    /// The submissions already taken (each has a status): only new ones are read.
    private var known: Set<String>
    /// How often a plan waiting for its approval is checked again.
    public static let checkAgain = Duration.seconds(1)
    /// How long a measurement waits for its readings to be read after the last action.
    public static let measureTimeout = Duration.seconds(5)

    struct Active {
        var status: PlanStatus
        var plan: Plan
        /// What the guard is shown of it (each preflight, and the board while it runs).
        let summary: PlanSummary
        /// Proposed and not yet settled.
        var awaiting: PlanCall?
        /// When it was proposed (the action runs in the same step).
        var proposedAt: Instant?
        var stepBegan: Instant?
        var lastAct: Instant?
        /// The observation the last measurement was taken from: the next one takes a newer.
        var lastMeasured: Instant?
        var checked: Instant?
        var cleanupAt = 0
        /// What the plan ends as once its cleanup is done.
        var ending: PlanStatus.State = .aborted
        var problems: [String] = []
        var series: [String: Int] = [:]

        init(status: PlanStatus, plan: Plan) {
            (self.status, self.plan, summary) = (status, plan, plan.summary)
        }
    }

    public init(files: PlanFiles, board: PlanBoard, contexts: Set<String>, measurements: MeasurementLog?,
                preflight: @escaping Preflight, makeSafe: @escaping ([String]) -> [String]) {
        (self.files, self.board, self.contexts, self.measurements) = (files, board, contexts, measurements)
        (self.preflight, self.makeSafe) = (preflight, makeSafe)
        let statuses = files.statuses()
        known = Set(statuses.map(\.id))
        // Plans the last run left active were interrupted: nothing of them runs until a person says so.
        for var status in statuses where !status.state.isFinal && status.state != .interrupted {
            status.message = "the supervisor stopped while the plan was \(status.state.rawValue) at step \(status.position); "
                + "resume from step \(status.resumeAt)" + (status.checkpoint.map { " (checkpoint \($0))" } ?? " (the beginning)")
                + " with worldos plan resume \(status.id), or abort it"
            status.state = .interrupted
            status.updated = Date()
            files.write(status)
        }
    }

    public func runs(_ context: String) -> Bool { contexts.contains(context) }

    /// The attributes it keeps on its contexts' nodes (a replay serves them from the recording).
    public static let describedKeys: Set<String> = ["plan", "state"]

    /// Its contexts' plans, and what each waits on: the context's `state` is the plan's
    /// (`waiting-for-approval` while its preflight waits for a person; `ready` with none).
    public func nodeAttributes() -> [NodeID: Attributes] {
        var shown: [NodeID: Attributes] = [:]
        for context in contexts {
            guard let a = active[context] else { shown[.context(context)] = ["plan": .string("none"), "state": .string("ready")]; continue }
            let state = a.status.state
            shown[.context(context)] = [
                "plan": .string("\(a.plan.name) \(a.status.id) \(state.rawValue) step \(a.status.position)/\(a.status.total)"),
                "state": .string(state == .checking || state.isFinal ? "ready" : state.rawValue),
            ]
        }
        return shown
    }

    public mutating func propose(for context: String, posterior: Posterior, at now: Instant) -> Proposal? {
        take(now: now)
        guard var a = active[context] else { return nil }
        defer { active[context] = a }
        board.propose(nil, context: context)
        for _ in 0..<64 {
            switch a.status.state {
            case .checking, .waitingForApproval:
                if let checked = a.checked, now.duration(since: checked) < Self.checkAgain { return nil }
                a.checked = now
                let check = preflight(a.summary, a.status.id, context, now)
                if !check.refusals.isEmpty {
                    a.status.message = "the guard refuses it: " + check.refusals.joined(separator: "; ")
                    end(&a, .refused)
                    return nil
                }
                if let waiting = check.waiting {
                    a.status.approval = waiting.id
                    if a.status.state != .waitingForApproval {
                        a.status.message = "\(waiting.reason); approve with worldos approve \(waiting.id)"
                        update(&a, .waitingForApproval)
                    }
                    return nil
                }
                a.status.grant = check.grant
                board.start(context: context, id: a.status.id, summary: a.summary, grant: check.grant)
                a.status.message = check.grant.map { "running on \($0)" }
                update(&a, .running)
            case .paused, .interrupted, .done, .aborted, .failed, .refused:
                return nil
            case .cleaning:
                guard a.awaiting == nil else { return nil }
                if a.cleanupAt < a.plan.cleanup.count {
                    return propose(a.plan.cleanup[a.cleanupAt], as: "cleanup \(a.cleanupAt)", &a, context: context, at: now)
                }
                let unsafe = makeSafe(a.plan.devices)
                a.problems += unsafe.map { "safe state: \($0)" }
                a.status.message = ([a.status.message].compactMap { $0 } + a.problems).joined(separator: "; ")
                    + "; \(a.plan.devices.joined(separator: ", ")) driven to the safe state"
                end(&a, a.ending)
                return nil
            case .running:
                guard a.awaiting == nil else { return nil }
                guard a.status.position < a.plan.steps.count else {
                    a.status.message = "all \(a.plan.steps.count) steps done"
                    end(&a, .done)
                    return nil
                }
                let at = a.status.position
                switch a.plan.steps[at] {
                case .set(let call):
                    return propose(call, as: "step \(at)", &a, context: context, at: now)
                case .wait(let condition, let timeout):
                    let began = a.stepBegan ?? now
                    a.stepBegan = began
                    if let v = value(condition.reading, a.plan, posterior.graph), condition.holds(v) {
                        advance(&a)
                        continue
                    }
                    if now.duration(since: began) > timeout {
                        fail(&a, "step \(at) (\(a.plan.locations[at])): \(condition) did not hold within \(timeout)")
                        continue
                    }
                    return nil
                case .measure(let name, let readings, let point, let settle):
                    let began = a.stepBegan ?? now
                    a.stepBegan = began
                    let since = a.lastAct ?? began
                    // Readings observed after the last action, `settle` after it, and after the last measurement.
                    guard let seen = posterior.observedAt, seen > since, seen.duration(since: since) >= settle,
                          a.lastMeasured.map({ seen > $0 }) ?? true else {
                        if now.duration(since: began) > settle + Self.measureTimeout {
                            fail(&a, "step \(at) (\(a.plan.locations[at])): no observation came in time to measure \(name)")
                            continue
                        }
                        return nil
                    }
                    var values: [String: Double] = [:]
                    for reading in readings {
                        guard let v = value(reading, a.plan, posterior.graph) else {
                            fail(&a, "step \(at) (\(a.plan.locations[at])): \(reading) is not a reading in the graph")
                            break
                        }
                        values[reading] = v
                    }
                    guard a.status.state == .running else { continue }
                    let index = a.series[name, default: 0]
                    a.series[name] = index + 1
                    measurements?.post(Measurement(plan: a.plan.name, planID: a.status.id, series: name, index: index, point: point,
                                                   readings: values, time: seen.nanoseconds))
                    a.status.measurements += 1
                    a.lastMeasured = seen
                    advance(&a)
                case .checkpoint(let label):
                    a.status.checkpoint = label
                    a.status.resumeAt = at + 1
                    advance(&a)
                    files.write(a.status)
                }
            }
        }
        return nil
    }

    /// What a step of the loop did with a plan's proposal.
    public mutating func settle(_ report: StepReport) {
        guard let outcome = report.outcome, let context = report.context, var a = active[context],
              let call = a.awaiting, outcome.proposal.task.hasPrefix("plan \(a.status.id) ") else { return }
        defer { active[context] = a }
        a.awaiting = nil
        board.propose(nil, context: context)
        let step = outcome.steps.first
        var why: String?
        switch (step?.decision, step?.status) {
        case (let d?, .performed(let result)?) where d.isAllowed:
            if case .failure(let e) = result { why = "\(call) failed: \(e)" }
        case (let d?, _): why = "\(call): \(d.verdict) (\(d.rule))" + (d.reason.map { ": \($0)" } ?? "")
        default: why = "\(call) did not run"
        }
        a.lastAct = a.proposedAt
        if a.status.state == .cleaning {
            if let why { a.problems.append("cleanup \(why)") }
            a.cleanupAt += 1
            return
        }
        guard let why else { return advance(&a) }
        fail(&a, "step \(a.status.position) (\(a.plan.locations[a.status.position])): \(why)")
    }

    private func propose(_ call: PlanCall, as what: String, _ a: inout Active, context: String, at now: Instant) -> Proposal {
        a.awaiting = call
        a.proposedAt = now
        board.propose(call, context: context)
        return Proposal(context: context, task: "plan \(a.status.id) \(what)", steps: [call.step])
    }

    private func value(_ reading: String, _ plan: Plan, _ graph: Graph) -> Double? {
        let name = reading.contains("/") ? reading : "\(plan.device ?? "")/\(reading)"
        return SafetyEnvelope.sensor(name, in: graph)?["value"]?.doubleValue
    }

    private func advance(_ a: inout Active) {
        a.status.position += 1
        a.stepBegan = nil
        a.status.updated = Date()
        files.write(a.status)
    }

    private func fail(_ a: inout Active, _ why: String) {
        a.status.message = why
        a.ending = .failed
        update(&a, .cleaning)
    }

    private func update(_ a: inout Active, _ state: PlanStatus.State) {
        a.status.state = state
        a.status.updated = Date()
        files.write(a.status)
    }

    private mutating func end(_ a: inout Active, _ state: PlanStatus.State) {
        board.finish(context: a.status.context)
        update(&a, state)
        a.awaiting = nil
    }

    // MARK: submissions and commands

    private mutating func take(now: Instant) {
        for (id, submission) in files.newSubmissions(besides: known) {
            known.insert(id)
            guard let submission, submission.id == id else {
                files.write(Self.refused(id: id, file: "?", context: "?", by: "?", "\(files.directory)/\(id).plan.json is not a plan worldos plan run wrote"))
                continue
            }
            let plan: Plan
            do { plan = try Plan.parse(submission.text, file: submission.file) } catch {
                files.write(Self.refused(id: id, file: submission.file, context: submission.context ?? "?", by: submission.requestedBy, "\(error)"))
                continue
            }
            let context = submission.context ?? plan.context ?? (contexts.count == 1 ? contexts.first! : "")
            guard contexts.contains(context) else {
                let which = contexts.isEmpty ? "this bench has no plan context (plans: true)" : "the bench's plan contexts are \(contexts.sorted().joined(separator: ", "))"
                files.write(Self.refused(id: id, file: submission.file, context: context, by: submission.requestedBy,
                                         (context.isEmpty ? "the plan names no context" : "\(context) does not run plans") + "; \(which)"))
                continue
            }
            if let busy = active[context], !busy.status.state.isFinal {
                files.write(Self.refused(id: id, file: submission.file, context: context, by: submission.requestedBy,
                                         "\(context) is running plan \(busy.plan.name) \(busy.status.id); abort it or wait"))
                continue
            }
            let status = PlanStatus(id: id, plan: plan.name, file: submission.file, hash: plan.hash, context: context, requestedBy: submission.requestedBy,
                                    state: .checking, position: 0, total: plan.steps.count, resumeAt: 0, measurements: 0, updated: Date())
            files.write(status)
            active[context] = Active(status: status, plan: plan)
        }
        for (id, command) in files.takeCommands() {
            guard let command else { continue }
            if let context = active.first(where: { $0.value.status.id == id })?.key, var a = active[context] {
                apply(command, to: &a)
                active[context] = a
            } else if let status = files.status(id), status.state == .interrupted {
                wake(status, command)
            }
        }
    }

    private func apply(_ command: PlanCommand, to a: inout Active) {
        switch (command.op, a.status.state) {
        case (.pause, .running), (.pause, .checking), (.pause, .waitingForApproval):
            a.status.message = "paused by \(command.by) before step \(a.status.position)"
            update(&a, .paused)
        case (.resume, .paused):
            a.status.message = "resumed by \(command.by)"
            // A plan paused before its preflight passed goes back to it.
            update(&a, a.status.grant == nil && board.plan(of: a.status.context) == nil ? .checking : .running)
        case (.abort, let s) where !s.isFinal && s != .cleaning:
            a.status.message = "aborted by \(command.by) at step \(a.status.position)"
            a.ending = .aborted
            update(&a, .cleaning)
        default:
            break
        }
    }

    /// A person's word on a plan the last run left interrupted: resume it from its last
    /// checkpoint (the plan's text checked against the hash it was accepted with, and the whole
    /// plan checked again by the guard), or abort it (cleanup and safe state).
    private mutating func wake(_ old: PlanStatus, _ command: PlanCommand) {
        guard command.op != .pause else { return }
        var status = old
        guard contexts.contains(status.context), active[status.context].map({ $0.status.state.isFinal }) ?? true else { return }
        let plan: Plan
        do {
            guard let submission = try files.submission(status.id) else { throw PlanFileError("its plan file is gone") }
            plan = try Plan.parse(submission.text, file: submission.file)
            guard plan.hash == status.hash else { throw PlanFileError("its plan file was changed since it was accepted (sha256 \(plan.hash), accepted \(status.hash))") }
        } catch {
            status.message = "not resumed: \(error)"
            status.state = .refused
            status.updated = Date()
            files.write(status)
            return
        }
        status.position = status.resumeAt
        var a = Active(status: status, plan: plan)
        if command.op == .abort {
            a.status.message = "aborted by \(command.by) after an interruption"
            update(&a, .cleaning)
        } else {
            a.status.message = "resumed by \(command.by) from step \(status.resumeAt)" + (status.checkpoint.map { " (checkpoint \($0))" } ?? "")
            a.status.grant = nil
            update(&a, .checking)
        }
        active[status.context] = a
    }

    static func refused(id: String, file: String, context: String, by: String, _ why: String) -> PlanStatus {
        PlanStatus(id: id, plan: "?", file: file, hash: "", context: context, requestedBy: by, state: .refused, position: 0, total: 0,
                   resumeAt: 0, message: why, measurements: 0, updated: Date())
    }
}
