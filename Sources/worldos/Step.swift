import ArgumentParser
import Supervisor

struct Step: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run N macro steps back to back and print what each stage did.")

    @Argument(help: "How many macro steps to run.")
    var count: Int

    @OptionGroup var options: LoopOptions

    func validate() throws {
        guard count > 0 else { throw ValidationError("the step count must be at least 1") }
    }

    func run() throws {
        var session = try Supervisor.start(supervisorOptions(options))
        defer { _ = session.returnToSafeState() }
        _ = try Supervisor.run(&session.loop, steps: count, interval: .zero) { report in
            print(report.lines.joined(separator: "\n"))
        }
    }
}
