import ArgumentParser
import Foundation
import Glibc
import Journal
import StateGraph
import Supervisor
import SystemCalls

struct GraphCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graph",
        abstract: "Print this machine's graph now: processes, their descriptors and what they opened.")

    @Flag(help: "Print the graph snapshot as JSON instead of a tree: one object with \"edges\" and \"nodes\", a node or edge a line.")
    var json = false

    @Option(help: "The run folder of a running supervisor: print the graph it holds (its instruments, contexts and panel too) as JSON, indented unless --json, instead of observing this machine now.")
    var out: String?

    func run() throws {
        if let out {
            guard let answer = try RunFolderOption(out: out).ask(["op": "graph"]), let graph = answer["graph"] else {
                throw CLIFailure("no supervisor answers on \(RunFolder(out).control); is one running with --out \(out)?")
            }
            let data = try JSONSerialization.data(withJSONObject: graph, options: json ? [.sortedKeys] : [.sortedKeys, .prettyPrinted])
            FileHandle.standardOutput.write(data + Data("\n".utf8))
            return
        }
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
