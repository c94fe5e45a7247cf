import ArgumentParser
import Foundation
import Supervisor
import Traces

struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Run the core against a recorded trace and compare every frame, decision and micro-step with it.",
        discussion: """
        Observations, proposals, device and syscall returns and approvals are served from the trace; the \
        renderer, scheduler, guard, executor and estimator run for real and touch nothing. Give the bench, \
        policy and profiles the recording ran under. Exits 0 when everything matches, 1 when something differs.
        """)

    @Argument(help: "A trace: trace-NNNN.mcap or trace.jsonl.") var trace: String
    @Option(help: "The bench the recording ran.") var bench: String = SupervisorOptions.defaults.bench
    @Option(help: "The guard policy it ran under.") var policy: String = SupervisorOptions.defaults.policy
    @Option(help: "Device profiles.") var profiles: String = SupervisorOptions.defaults.profiles

    func run() throws {
        var options = SupervisorOptions()
        options.bench = bench
        options.policy = policy
        options.profiles = profiles
        let report = try Replay.run(try Replay.transitions(from: trace), options: options)
        if report.mismatches.isEmpty {
            print("replayed \(report.steps) steps of \(trace): every frame, context, decision, micro-step and state as recorded")
            return
        }
        print("replayed \(report.steps) steps of \(trace): \(report.mismatches.count) differences")
        for m in report.mismatches.prefix(30) { print("  \(m)") }
        if report.mismatches.count > 30 { print("  … and \(report.mismatches.count - 30) more") }
        throw ExitCode(1)
    }
}
