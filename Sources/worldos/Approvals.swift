import ArgumentParser
import Foundation
import Guard
import Journal
import Supervisor

/// Where a running supervisor keeps its records: the same --out it was started with.
struct RunFolderOption: ParsableArguments {
    @Option(help: "The run folder of the supervisor (its --out).")
    var out: String = SupervisorOptions.defaults.out

    /// The folder and its layout.
    var run: RunFolder { RunFolder(out) }

    func requireApprovals() throws -> String {
        guard FileManager.default.fileExists(atPath: run.approvals) else {
            throw CLIFailure("no approvals in \(out); is a supervisor running with --out \(out)?")
        }
        return run.approvals
    }
}

/// The person running the command, for records the supervisor keeps (a fault's acknowledgement).
func userName() -> String { Approver.ofThisProcess().name }

struct Approvals: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the irreversible actions waiting for an approval.")
    @OptionGroup var folder: RunFolderOption

    func run() throws {
        let now = Date()
        let pending = ApprovalStore.read(directory: try folder.requireApprovals()).filter { $0.state == .pending && $0.expiresAt > now }
        if pending.isEmpty { print("no action is waiting for an approval"); return }
        for a in pending {
            let params = a.binding.params.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            let people = a.required.map { " (\(a.approvedBy?.count ?? 0) of \($0) approvals)" } ?? ""
            print("\(a.id)  \(a.binding.action) \(params) on \(a.binding.device) (\(a.binding.path)) for \(a.binding.context), until \(a.expiresAt)\(people)")
        }
    }
}

struct Approve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Approve one waiting action, once, exactly as requested.")
    @Argument(help: "The request id (worldos approvals lists them).") var id: String
    @Option(help: "A label recorded with your approval; you are counted as the user running this command.") var by: String?
    @OptionGroup var folder: RunFolderOption

    func run() throws {
        try answer(id, approve: true, label: by, folder: folder)
    }
}

struct Reject: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Reject one waiting action.")
    @Argument(help: "The request id.") var id: String
    @Option(help: "A label recorded with your rejection; you are counted as the user running this command.") var by: String?
    @OptionGroup var folder: RunFolderOption

    func run() throws {
        try answer(id, approve: false, label: by, folder: folder)
    }
}

/// Leave the answer for the running supervisor, which records it (as this user) in its audit log.
func answer(_ id: String, approve: Bool, label: String?, folder: RunFolderOption) throws {
    do {
        let a = try ApprovalStore.answer(id, approve: approve, label: label, directory: try folder.requireApprovals())
        let me = Approver.ofThisProcess(label: label)
        print("\(approve ? "approval" : "rejection") of \(a.id) (\(a.binding.action) on \(a.binding.device)) left as \(me); "
              + "the supervisor records it in its audit log at its next ask" + (approve && a.required != nil ? ", and needs \(a.required!) different people" : ""))
    } catch let e as ApprovalError { throw CLIFailure(e.description) }
}

/// A command that failed for a reason the person can act on: the reason, exit status 1, no usage text.
struct CLIFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check the audit log.", subcommands: [Verify.self])

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check the audit log's hash chain; name the first broken record.")
        @OptionGroup var folder: RunFolderOption
        @Option(help: "The folder of the supervisor's signing key and the logs' heads (default: $WORLDOS_KEYS, else /var/lib/worldos for root, ~/.local/state/worldos for others).")
        var keys: String?

        func run() throws {
            let keys = keys ?? AuditSeal.defaultDirectory
            switch AuditLog.verify(path: folder.run.audit, keys: keys) {
            case .success(let v):
                let head = v.head.map { "reaches its head (seq \($0))" } ?? "no head kept for it in \(keys)"
                print("audit log \(folder.run.audit): \(v.records) records, chain intact, \(v.checkpoints) signed checkpoints verify, \(head)")
            case .failure(let e): throw CLIFailure(e.description)
            }
        }
    }
}

struct Ack: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Acknowledge a latched fault, after checking the bench, so physical actions may run again.")
    @Option(help: "Who acknowledges (recorded; default: your user name).") var by: String?
    @OptionGroup var folder: RunFolderOption

    func run() throws {
        do {
            let fault = try FaultLatch.acknowledge(folder: folder.run, by: by ?? userName())
            print("acknowledged: \(fault.reason) (latched \(fault.since)); the supervisor records it and resumes on its next step")
        } catch let e as FaultLatchError { throw CLIFailure(e.description) }
    }
}
