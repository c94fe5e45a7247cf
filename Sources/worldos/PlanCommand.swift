import ArgumentParser
import Control
import DataEngine
import Foundation
import Learning

struct PlanCommandGroup: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Run an experiment plan on the running supervisor, and pause, resume or abort it.",
        discussion: """
        A plan (Devices/benches/plans/*.yaml) is steps over the bench's actions and readings: set, \
        wait-until, measure, scan, repeat and checkpoints. The supervisor's guard checks the whole plan \
        before it starts; when some of its steps are irreversible, one approval bound to the plan's hash \
        and ranges covers them (worldos approve). Every step is decided again as it runs. An abort runs \
        the plan's cleanup, then drives its devices to their safe state. A plan the supervisor was \
        running when it stopped resumes only from its last checkpoint, and only with worldos plan resume.
        """,
        subcommands: [PlanRun.self, PlanStatusCommand.self, PlanPause.self, PlanResume.self, PlanAbort.self])
}

struct PlanRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Submit a plan and print what the guard made of it; with --wait, follow it to its end and export its measurements.",
        discussion: "Exits 0 when the plan was accepted (or, with --wait, finished), 1 when it was refused, aborted or failed, 2 when no supervisor took it in time.")
    @Argument(help: "The plan file.") var file: String
    @Option(help: "The bench context to run it as (default: the plan's context:).") var context: String?
    @Flag(help: "Follow the plan until it ends, then write its measurements (CSV, Parquet) and scan plots (PNG).") var wait = false
    @Option(help: "With --wait: the folder for the measurements (default: PLAN-ID in the current folder).") var to: String?
    @Option(help: "Seconds to wait for the supervisor to take the plan.") var timeout: Double = 30
    @OptionGroup var folder: RunFolderOption

    func run() throws {
        guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
            throw CLIFailure("cannot read plan \(file)")
        }
        // Checked here first, so a mistake is named at once with its line.
        let plan: Plan
        do { plan = try Plan.parse(text, file: file) } catch { throw CLIFailure("\(error)") }
        let files = PlanFiles(directory: folder.run.plans)
        let id = String(format: "%012llx", UInt64.random(in: 0...0xffff_ffff_ffff))
        try files.submit(PlanSubmission(id: id, file: file, text: text, context: context, requestedBy: userName()))
        say("plan \(plan.name) \(id): \(plan.steps.count) steps, sha256 \(plan.hash.prefix(16))…")
        let deadline = Date().addingTimeInterval(timeout)
        var status: PlanStatus?
        while status.map({ $0.state == .checking }) ?? true {
            guard Date() < deadline else {
                if status == nil { unlink("\(folder.run.plans)/\(id).plan.json") }
                FileHandle.standardError.write(Data("worldos plan: no supervisor with --out \(folder.out) took plan \(id) within \(timeout) s\(status == nil ? "; withdrawn" : "")\n".utf8))
                throw ExitCode(2)
            }
            usleep(50_000)
            status = files.status(id)
        }
        var shown = status!
        say(shown.line)
        if shown.state == .waitingForApproval, let approval = shown.approval {
            say("approve with: worldos approve \(approval) --out \(folder.out)")
        }
        guard wait else { throw ExitCode(shown.state == .refused ? 1 : 0) }
        while !shown.state.isFinal {
            usleep(100_000)
            guard let now = files.status(id) else { continue }
            if now.state != shown.state || now.checkpoint != shown.checkpoint { say(now.line) }
            shown = now
        }
        if shown.measurements > 0 {
            let out = to ?? "\(plan.name)-\(id)"
            let written = try MeasurementFiles.write(traces: folder.run.mcapTraces(), plan: id, to: out)
            for line in written { say(line) }
        }
        throw ExitCode(shown.state == .done ? 0 : 1)
    }
}

struct PlanStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Where the run folder's plans stand (one, or all).")
    @Argument(help: "A plan's id.") var id: String?
    @OptionGroup var folder: RunFolderOption

    func run() throws {
        let files = PlanFiles(directory: folder.run.plans)
        if let id {
            guard let status = files.status(id) else { throw CLIFailure("no plan \(id) in \(folder.run.plans)") }
            say(status.line)
            say("file \(status.file), sha256 \(status.hash), context \(status.context), by \(status.requestedBy)")
            if let grant = status.grant { say("approved: \(grant)") }
            return
        }
        let all = files.statuses()
        if all.isEmpty { say("no plans in \(folder.run.plans)") }
        for status in all { say(status.line) }
    }
}

/// pause, resume and abort: the same hand-over, one verb each.
protocol PlanVerb: ParsableCommand {
    static var op: PlanCommand.Op { get }
    var id: String { get }
    var folder: RunFolderOption { get }
}

extension PlanVerb {
    func run() throws {
        let files = PlanFiles(directory: folder.run.plans)
        guard let before = files.status(id) else { throw CLIFailure("no plan \(id) in \(folder.run.plans)") }
        guard !before.state.isFinal else { throw CLIFailure("plan \(id) has ended (\(before.state.rawValue)); there is nothing to \(Self.op.rawValue)") }
        try files.ask(id, PlanCommand(op: Self.op, by: userName()))
        // Shown once the supervisor has taken it (its status changes), or after 10 s.
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            usleep(50_000)
            if let now = files.status(id), now.state != before.state || now.message != before.message {
                say(now.line)
                return
            }
        }
        FileHandle.standardError.write(Data("worldos plan: the supervisor has not taken the \(Self.op.rawValue) of \(id) yet; it will at its next turn (worldos plan status \(id))\n".utf8))
        throw ExitCode(2)
    }
}

struct PlanPause: PlanVerb {
    static let configuration = CommandConfiguration(commandName: "pause", abstract: "Hold a plan before its next step (what it set stays set).")
    static let op = PlanCommand.Op.pause
    @Argument(help: "The plan's id.") var id: String
    @OptionGroup var folder: RunFolderOption
}

struct PlanResume: PlanVerb {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Go on with a paused plan; or, after the supervisor stopped, run an interrupted one again from its last checkpoint (checked again by the guard).")
    static let op = PlanCommand.Op.resume
    @Argument(help: "The plan's id.") var id: String
    @OptionGroup var folder: RunFolderOption
}

struct PlanAbort: PlanVerb {
    static let configuration = CommandConfiguration(commandName: "abort", abstract: "Stop a plan: its cleanup runs, then its devices go to their safe state.")
    static let op = PlanCommand.Op.abort
    @Argument(help: "The plan's id.") var id: String
    @OptionGroup var folder: RunFolderOption
}

/// The measurements of recorded traces as files: `measurements.csv`, `measurements.parquet`, and a PNG per scan.
enum MeasurementFiles {
    static func write(traces: [String], plan: String?, to folder: String) throws -> [String] {
        let found = try MeasurementExport.read(traces: traces, plan: plan)
        guard !found.isEmpty else { throw CLIFailure("no measurements" + (plan.map { " of plan \($0)" } ?? "") + " in \(traces.count) trace file(s)") }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let csv = folder + "/measurements.csv"
        try MeasurementExport.csv(found).write(toFile: csv, atomically: true, encoding: .utf8)
        let parquet = folder + "/measurements.parquet"
        try Data(try MeasurementExport.parquet(found)).write(to: URL(fileURLWithPath: parquet))
        var lines = ["\(found.count) measurements in \(csv) and \(parquet)"]
        let scans = MeasurementExport.scans(found)
        let severalRuns = Set(scans.map(\.planID)).count > 1
        for scan in scans {
            let png = folder + "/" + (severalRuns ? "\(scan.planID)-" : "") + "\(scan.series).png"
            let bytes = try ScanPlot.png(parameter: scan.parameter, points: scan.points.map { ($0.point[scan.parameter]!, $0.readings) },
                                         title: "\(scan.points[0].plan) \(scan.planID): \(scan.series) over \(scan.parameter)")
            try Data(bytes).write(to: URL(fileURLWithPath: png))
            lines.append("scan \(scan.series): \(scan.points.count) points, plot in \(png)")
        }
        return lines
    }
}
