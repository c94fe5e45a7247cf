import ArgumentParser
import LoopCore
import Supervisor

@main
struct WorldOS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worldos",
        abstract: "A supervisory runtime for Linux machines that drive hardware.",
        discussion: """
        One loop supervises the machine: predict its state, correct it from /proc, draw the \
        panel, pick an execution context, and run its micro-steps through the guard.
        """,
        subcommands: [Run.self, GraphCommand.self, Step.self, Approvals.self, Approve.self, Reject.self, Audit.self, PolicyCommand.self, Ack.self, Act.self, PlanCommandGroup.self, TraceCommand.self, ReplayCommand.self, ExportCommand.self, GenerateCommand.self, TrainCommand.self, EvalCommand.self, DreamCommand.self, TokenCommand.self, ConfigCommand.self])
}

/// Options shared by the commands that run the loop.
struct LoopOptions: ParsableArguments {
    @Option(help: "Folder for the trace, the audit log and the panel PNG.")
    var out: String = SupervisorOptions.defaults.out

    @Option(help: "The bench: execution contexts and their tasks.")
    var bench: String = SupervisorOptions.defaults.bench

    @Option(help: "The guard policy.")
    var policy: String = SupervisorOptions.defaults.policy

    @Option(help: "Redaction rules applied to every transition before it is recorded (none if the file is absent).")
    var redaction: String = SupervisorOptions.defaults.redaction

    @Option(help: "real; filtered: also predict every return and report the gap; latent: dream, no host calls.")
    var mode: Mode = .real

    @Option(help: "Device profiles: what hardware is and what may be done to it.")
    var profiles: String = SupervisorOptions.defaults.profiles

    @Option(help: "A trained model (worldos train): it predicts every return in filtered and latent mode, and the surprise is measured against what it expects.")
    var model: String?

    @Option(name: .customLong("device"), help: "A serial port to try besides the ones found (such as a simulator's pty); repeatable.")
    var devices: [String] = []
}

extension Mode: ExpressibleByArgument {}
