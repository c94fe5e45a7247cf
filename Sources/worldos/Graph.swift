import ArgumentParser
import Foundation
import Glibc
import Journal
import StateGraph
import Supervisor
import System

struct GraphCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graph",
        abstract: "Print this machine's graph now: processes, their descriptors and what they opened.")

    @Flag(help: "Print the graph snapshot as JSON instead of a tree: one object with \"edges\" and \"nodes\", a node or edge a line.")
    var json = false

    func run() throws {
        if json {
            // Streamed to standard output as it is written, in 64 KiB pieces.
            func put(_ bytes: [UInt8]) throws {
                if let failed = Syscall.writeAll(STDOUT_FILENO, bytes) { throw CLIFailure("cannot write the graph: \(failed)") }
            }
            try Supervisor.observedSnapshot().write(lines: true, sink: put)
            try put([UInt8(ascii: "\n")])
            // Done: the ten thousand nodes need not be taken apart one by one before the exit.
            Glibc.exit(EXIT_SUCCESS)
        } else {
            let (graph, me) = try Supervisor.observeNow()
            print(Supervisor.tree(graph, highlight: me), terminator: "")
        }
    }
}
