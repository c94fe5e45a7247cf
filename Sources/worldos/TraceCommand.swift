import ArgumentParser
import Foundation
import Journal
import MCAP

struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "trace", abstract: "Work with recorded MCAP traces, and the running supervisor's recording.",
                                                    subcommands: [Repair.self, NewFile.self, Mark.self])

    struct NewFile: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "new-file",
            abstract: "Have the running supervisor close its MCAP file (complete) and go on in a new one.",
            discussion: "Done at the loop's next step, and audited with your name. Needs a supervisor running on --out.")
        @OptionGroup var folder: RunFolderOption

        func run() throws {
            let done = try folder.requireRunning(["op": "trace-file"], toDo: "begin a new trace file")
            print("recording into \(done["file"] ?? "?") from step \(done["step"] ?? "?") (by \(done["by"] ?? "?"))")
        }
    }

    struct Mark: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Mark this moment in the running supervisor's trace with a label (/worldos/mark).",
            discussion: "The mark lands beside the loop's next step, with your name; the label is redacted as the trace is.")
        @Argument(help: "What happened (1 to 200 characters, one line).") var label: String
        @OptionGroup var folder: RunFolderOption

        func run() throws {
            let done = try folder.requireRunning(["op": "trace-mark", "label": label], toDo: "mark the trace")
            print("marked step \(done["step"] ?? "?") in \(done["file"] ?? "?") (by \(done["by"] ?? "?"))")
        }
    }

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
    /// Ask the running supervisor; there is no file drop for what only a running one can do.
    func requireRunning(_ request: [String: Any], toDo what: String) throws -> [String: Any] {
        guard let answer = try ask(request) else {
            throw CLIFailure("no supervisor runs on \(out) (no control socket at \(run.control)); start one to \(what)")
        }
        return answer
    }

    /// The run folder's MCAP traces, oldest first; none is an error naming what to do instead.
    func traces(toDo what: String) throws -> [String] {
        let found = run.mcapTraces()
        if found.isEmpty { throw ValidationError("no trace-*.mcap in \(out); name the traces to \(what)") }
        return found
    }
}
