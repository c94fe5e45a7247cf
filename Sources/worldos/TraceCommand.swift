import ArgumentParser
import Foundation
import Journal
import MCAP

struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "trace", abstract: "Work with recorded MCAP traces.", subcommands: [Repair.self])

    struct Repair: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Complete MCAP traces cut short by a crash: keep every whole chunk, rewrite the summary.",
            discussion: """
            A supervisor killed mid-run leaves its last trace file without a summary; every chunk written \
            before the kill is whole. This keeps each whole chunk whose CRC matches, cuts what follows, and \
            writes the summary and footer. A complete file is left as it is. With no files, every \
            trace-*.mcap in the run folder.
            """)
        @Argument(help: "MCAP files to repair.") var files: [String] = []
        @OptionGroup var folder: RunFolderOption

        func run() throws {
            let targets = files.isEmpty ? try folder.traces(toDo: "repair") : files
            var failed = false
            for path in targets {
                do {
                    let r = try MCAPWriter.repair(path: path)
                    if r.wasComplete {
                        print("\(path): complete, \(r.messages) messages in \(r.chunks) chunks; unchanged")
                    } else {
                        print("\(path): repaired, \(r.messages) messages in \(r.chunks) chunks kept, \(r.bytesCut) bytes of a torn chunk cut")
                    }
                } catch {
                    FileHandle.standardError.write(Data("worldos: \(error)\n".utf8))
                    failed = true
                }
            }
            if failed { throw ExitCode(1) }
        }
    }
}

extension RunFolderOption {
    /// The run folder's MCAP traces, oldest first; none is an error naming what to do instead.
    func traces(toDo what: String) throws -> [String] {
        let found = run.mcapTraces()
        if found.isEmpty { throw ValidationError("no trace-*.mcap in \(out); name the traces to \(what)") }
        return found
    }
}
