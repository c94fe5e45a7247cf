import ArgumentParser
import Foundation
import Guard
import Journal

struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "policy", abstract: "Inspect guard policies.", subcommands: [Diff.self])

    struct Diff: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show what changed between two policies: contexts, capabilities and rules added (+) or removed (-).",
            discussion: """
            Each side is a policy file or the hash (at least 8 hex digits) of a policy the supervisor ran under, \
            as its audit log names them. With no sides, the last two policies the run folder's audit log records. \
            Exits 0 when every context may do exactly what it could, 1 when something changed.
            """)
        @Argument(help: "The older policy: a file or a hash.") var old: String?
        @Argument(help: "The newer policy: a file or a hash.") var new: String?
        @OptionGroup var folder: RunFolderOption

        func run() throws {
            let history = PolicyHistory(directory: folder.run.policies)
            let (before, after): (Policy, Policy)
            do {
                switch (old, new) {
                case let (old?, new?): (before, after) = (try load(old, history), try load(new, history))
                case (_?, nil): throw ValidationError("give both policies, or neither to compare the last two this run folder ran under")
                default:
                    let hashes = AuditLog.loadedPolicies(path: folder.run.audit)
                    guard hashes.count >= 2 else {
                        throw ValidationError("the audit log in \(folder.out) records \(hashes.count) polic\(hashes.count == 1 ? "y" : "ies"); nothing to compare")
                    }
                    (before, after) = (try history.load(hash: hashes[hashes.count - 2]), try history.load(hash: hashes[hashes.count - 1]))
                }
            } catch let e as PolicyHistoryError { throw ValidationError(e.description) }
            print("--- \(before.file) (\(before.contentHash.prefix(12)))\n+++ \(after.file) (\(after.contentHash.prefix(12)))")
            let changes = after.changes(since: before)
            if changes.isEmpty { print("no change in what any context may do"); return }
            changes.forEach { print($0) }
            throw ExitCode(1)
        }

        private func load(_ side: String, _ history: PolicyHistory) throws -> Policy {
            FileManager.default.fileExists(atPath: side) ? try Policy.load(file: side) : try history.load(hash: side)
        }
    }
}
