import ArgumentParser
import Foundation
import Supervisor
import Traces

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Run many short synthetic tasks in sandboxes, with injected faults, and summarise the dataset they make.",
        discussion: """
        Each task is a real supervisor run in a folder of its own: generated files, bench and policy, a program \
        under the seccomp filter, and the bench bridge simulator with a fault (slow replies or lost bytes, a stuck \
        relay, an unplug). The seed decides every task; the traces record what then happened. The generator \
        approves the first irreversible request of each task on its own simulator, as an operator would.
        """)

    @Option(help: "How many tasks.") var tasks: Int = 10
    @Option(help: "The seed every task follows from.") var seed: UInt64 = 1
    @Option(help: "Macro steps per task.") var steps: Int = 14
    @Option(help: "Where the dataset goes: task-NNNN folders and summary.json.") var out: String = ".worldos/dataset"
    @Option(help: "The bench bridge simulator (make sim builds it).") var simulator: String = "Firmware/build/bench-bridge-sim"

    func validate() throws {
        guard tasks > 0 else { throw ValidationError("--tasks must be at least 1") }
        guard steps >= 8 else { throw ValidationError("--steps must be at least 8, so an unplug has steps before and after it") }
    }

    func run() throws {
        var options = Generator.Options()
        options.tasks = tasks
        options.seed = seed
        options.steps = steps
        options.out = out
        options.simulator = simulator
        let summary = try Generator(options: options).run { done, all in progressBar(done, all, "tasks") }
        print("\(summary.tasks) tasks, \(summary.transitions) transitions in \(out) (summary.json)")
        func table(_ title: String, _ counts: [String: Int]) {
            print("\(title):")
            for (k, v) in counts.sorted(by: { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }) { print("  \(String(v).leftPad(5))  \(k)") }
        }
        table("faults injected", summary.faults)
        table("micro-step operations", summary.operations)
        table("guard verdicts", summary.verdicts)
        table("errno values returned", summary.errnos)
        table("device actions", summary.deviceActions)
        table("calls mediated under seccomp", summary.mediatedCalls)
        table("asynchronous events", summary.events)
    }
}

extension String {
    func leftPad(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}
