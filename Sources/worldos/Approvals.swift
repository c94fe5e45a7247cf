import ArgumentParser
import Foundation
import Guard
import Journal
import Service
import Supervisor

/// Where a running supervisor keeps its records: the same --out it was started with.
struct RunFolderOption: ParsableArguments {
    @Option(help: "The run folder of the supervisor (its --out).")
    var out: String = SupervisorOptions.defaults.out

    init() {}
    init(out: String) { self.out = out }

    /// The folder and its layout.
    var run: RunFolder { RunFolder(out) }

    /// Ask the supervisor running here over its control socket: its answer's fields, or nil when
    /// none runs (the caller falls back to the run folder's files). An answer that says no is
    /// the command's failure.
    func ask(_ request: [String: Any]) throws -> [String: Any]? {
        do {
            let answer = try ControlClient.ask(run.control, request)
            guard answer["ok"] as? Bool == true else {
                throw CLIFailure(answer["error"] as? String ?? "the supervisor refused without saying why")
            }
            return answer
        } catch is ControlClient.NotRunning { return nil } catch let e as ServiceError { throw CLIFailure(e.description) }
    }

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
        if let answer = try folder.ask(["op": "approvals"]) {
            let pending = answer["approvals"] as? [[String: Any]] ?? []
            if pending.isEmpty { print("no action is waiting for an approval"); return }
            for a in pending {
                let params = (a["params"] as? [String: String] ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
                let required = a["required"] as? Int ?? 1
                let people = required > 1 ? " (\((a["approved-by"] as? [String])?.count ?? 0) of \(required) approvals)" : ""
                let until = Date(timeIntervalSince1970: a["expires"] as? Double ?? 0)
                print("\(a["id"] ?? "?")  \(a["action"] ?? "?") \(params) on \(a["device"] ?? "?") (\(a["path"] ?? "?")) for \(a["context"] ?? "?"), until \(until)\(people)")
                if let dream = (a["dream"] as? [String: Any])?["summary"] as? String { print("    \(dream)") }
            }
            return
        }
        let now = Date()
        let pending = ApprovalStore.read(directory: try folder.requireApprovals()).filter { $0.state == .pending && $0.expiresAt > now }
        if pending.isEmpty { print("no action is waiting for an approval"); return }
        for a in pending {
            let params = a.binding.params.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            let people = a.required.map { " (\(a.approvedBy?.count ?? 0) of \($0) approvals)" } ?? ""
            print("\(a.id)  \(a.binding.action) \(params) on \(a.binding.device) (\(a.binding.path)) for \(a.binding.context), until \(a.expiresAt)\(people)")
            if let dream = a.dream { print("    \(dream.summary)") }
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

/// Give the answer to the running supervisor over its control socket, which records it (as the
/// user the kernel says this is) in its audit log at once; with none running, leave it in the
/// run folder for the supervisor's next ask.
func answer(_ id: String, approve: Bool, label: String?, folder: RunFolderOption) throws {
    var request: [String: Any] = ["op": approve ? "approve" : "reject", "id": id]
    if let label { request["label"] = label }
    if let answer = try folder.ask(request) {
        let a = answer["approval"] as? [String: Any] ?? [:]
        let state = a["state"] as? String ?? "?"
        print("\(approve ? "approved" : "rejected") \(id) (\(a["action"] ?? "?") on \(a["device"] ?? "?")) as \(answer["by"] ?? "?"); recorded in the audit log"
              + (state == "pending" ? "; it needs \(a["required"] ?? "more") different people" : ""))
        return
    }
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
            if keys == nil, let answer = try folder.ask(["op": "audit-verify"]) {
                let head = (answer["head"] as? Int).map { "reaches its head (seq \($0))" } ?? "no head kept for it"
                print("audit log \(folder.run.audit): \(answer["records"] ?? "?") records, chain intact, \(answer["checkpoints"] ?? "?") signed checkpoints verify, \(head) (checked by the running supervisor)")
                return
            }
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
        if by == nil, let answer = try folder.ask(["op": "ack"]) {
            print("acknowledged as \(answer["by"] ?? "?"): \(answer["fault"] ?? "?"); the supervisor records it and resumes on its next step")
            return
        }
        do {
            let fault = try FaultLatch.acknowledge(folder: folder.run, by: by ?? userName())
            print("acknowledged: \(fault.reason) (latched \(fault.since)); the supervisor records it and resumes on its next step")
        } catch let e as FaultLatchError { throw CLIFailure(e.description) }
    }
}
