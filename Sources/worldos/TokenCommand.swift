import ArgumentParser
import Foundation
import Service
import Supervisor

/// The API's bearer tokens: made here, each shown once.
struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Make and list the bearer tokens of the HTTP API.", subcommands: [Add.self, List.self])

    struct File: ParsableArguments {
        @Option(help: "The token file (default: api-tokens.yaml in the keys folder, $WORLDOS_KEYS or /var/lib/worldos for root). A running supervisor takes a change at its next request.")
        var tokens: String?
        var path: String {
            var options = SupervisorOptions()
            options.tokens = tokens
            return options.tokenFile
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a token for NAME with a scope; print its secret, which is kept nowhere else (the file holds its SHA-256).")
        @Argument(help: "Who holds it: the name its approvals are recorded under.") var name: String
        @Option(help: "read (look), operate (also act and acknowledge), approve (also approve and reject).") var scope: String
        @OptionGroup var file: File

        func run() throws {
            guard let scope = Scope(rawValue: scope) else { throw ValidationError("scope \(scope) is not one of read, operate, approve") }
            let path = file.path
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            do {
                let secret = try TokenFile.add(name: name, scope: scope, to: path)
                print(secret)
                FileHandle.standardError.write(Data("worldos token: \(name) (\(scope.rawValue)) added to \(path) (a running supervisor takes it at its next request)\n".utf8))
            } catch { throw CLIFailure("\(error)") }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Name each token's holder and scope (never the secrets, which are not kept).")
        @OptionGroup var file: File

        func run() throws {
            let tokens: TokenFile
            do { tokens = try TokenFile.load(file.path) } catch { throw CLIFailure("\(error)") }
            if tokens.tokens.isEmpty { print("no tokens in \(file.path); make one with worldos token add NAME --scope approve") }
            for t in tokens.tokens { print("\(t.name)  \(t.scope.rawValue)") }
        }
    }
}
