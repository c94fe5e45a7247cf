import ArgumentParser
import Foundation
import Guard

/// Where a running supervisor keeps its records: the same --out it was started with.
struct RunFolder: ParsableArguments {
    @Option(help: "The run folder of the supervisor (its --out).")
    var out: String = ".worldos/run"

    func store() throws -> ApprovalStore {
        guard FileManager.default.fileExists(atPath: out + "/approvals") else {
            throw ValidationError("no approvals in \(out); is a supervisor running with --out \(out)?")
        }
        return try ApprovalStore(directory: out + "/approvals")
    }
}

/// The person running the command, for the approval record.
func userName() -> String {
    ProcessInfo.processInfo.environment["SUDO_USER"] ?? ProcessInfo.processInfo.environment["USER"] ?? String(getuid())
}

struct Approvals: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the irreversible actions waiting for an approval.")
    @OptionGroup var folder: RunFolder

    func run() throws {
        let pending = try folder.store().pending()
        if pending.isEmpty { print("no action is waiting for an approval"); return }
        for a in pending {
            let params = a.binding.params.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            print("\(a.id)  \(a.binding.action) \(params) on \(a.binding.device) (\(a.binding.path)) for \(a.binding.context), until \(a.expiresAt)")
        }
    }
}

struct Approve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Approve one waiting action, once, exactly as requested.")
    @Argument(help: "The request id (worldos approvals lists them).") var id: String
    @Option(help: "Who approves (recorded; default: your user name).") var by: String?
    @OptionGroup var folder: RunFolder

    func run() throws {
        do {
            let a = try folder.store().approve(id, by: by ?? userName())
            if a.state == .pending, let required = a.required, let people = a.approvedBy {
                print("recorded \(people.last!)'s approval of \(a.id) (\(people.count) of \(required)): \(a.binding.action) on \(a.binding.device) "
                      + "needs \(required - people.count) more, from someone else, before \(a.expiresAt)")
            } else {
                print("approved \(a.id): \(a.binding.action) on \(a.binding.device)\(a.decidedBy.map { " by \($0)" } ?? ""), once, until \(a.expiresAt)")
            }
        } catch let e as ApprovalError { throw ValidationError(e.description) }
    }
}

struct Reject: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Reject one waiting action.")
    @Argument(help: "The request id.") var id: String
    @Option(help: "Who rejects (recorded; default: your user name).") var by: String?
    @OptionGroup var folder: RunFolder

    func run() throws {
        do {
            let a = try folder.store().reject(id, by: by ?? userName())
            print("rejected \(a.id): \(a.binding.action) on \(a.binding.device)")
        } catch let e as ApprovalError { throw ValidationError(e.description) }
    }
}

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check the audit log.", subcommands: [Verify.self])

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check the audit log's hash chain; name the first broken record.")
        @OptionGroup var folder: RunFolder

        func run() throws {
            switch AuditLog.verify(path: folder.out + "/audit.jsonl") {
            case .success(let n): print("audit log \(folder.out)/audit.jsonl: \(n) records, chain intact")
            case .failure(let e): throw ValidationError(e.description)
            }
        }
    }
}

struct Ack: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Acknowledge a latched fault, after checking the bench, so physical actions may run again.")
    @Option(help: "Who acknowledges (recorded; default: your user name).") var by: String?
    @OptionGroup var folder: RunFolder

    func run() throws {
        do {
            let fault = try FaultLatch.acknowledge(out: folder.out, by: by ?? userName())
            print("acknowledged: \(fault.reason) (latched \(fault.since)); the supervisor records it and resumes on its next step")
        } catch let e as FaultLatchError { throw ValidationError(e.description) }
    }
}
