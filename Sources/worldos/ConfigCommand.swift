import ArgumentParser
import Foundation
import Service
import Supervisor

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Check the service's configuration file.", subcommands: [Check.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a configuration file and every file it names (bench, policy, profiles, redaction, tokens), touching no device and writing nothing.")
        @Argument(help: "The configuration file (such as Policies/worldos.yaml).") var file: String

        func run() throws {
            let (settings, interval) = try Run.parse(["--config", file]).configured()
            let lines: [String]
            do { lines = try Supervisor.checkFiles(settings) } catch { throw CLIFailure("\(file) names a file that does not hold: \(error)") }
            print("\(file): ok")
            for line in lines { print("  \(line)") }
            print("  loop every \(interval) ms in \(settings.mode.rawValue) mode")
        }
    }
}
