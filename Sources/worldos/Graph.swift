import ArgumentParser
import Foundation
import Supervisor

struct GraphCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graph",
        abstract: "Print this machine's graph now: processes, their descriptors and what they opened.")

    @Flag(help: "Print the graph snapshot as JSON instead of a tree.")
    var json = false

    func run() throws {
        let (graph, me) = try Supervisor.observeNow()
        if json {
            FileHandle.standardOutput.write(try graph.snapshot().jsonData())
            print()
        } else {
            print(Supervisor.tree(graph, highlight: me), terminator: "")
        }
    }
}
