import DataEngine
import Foundation
import Guard
import Journal
import LoopCore

/// The run folder's records, opened for one writer: the audit log (with what a crash left
/// unfinished reported and recorded), the policy history, the fault latch, the trace and the
/// approval store.
struct RunRecords {
    var audit: AuditLog
    var fault: FaultLatch
    var trace: TraceWriter
    var approvals: ApprovalStore
    /// The configuration's redaction, salted with the run folder's secret.
    var redaction: Redaction
    var notes: [String] = []

    static func open(_ folder: RunFolder, for configuration: Configuration, options: SupervisorOptions, clock: any WorldClock) throws -> RunRecords {
        let policy = configuration.policy
        var notes: [String] = []
        do {
            try FileManager.default.createDirectory(atPath: folder.path, withIntermediateDirectories: true)
        } catch {
            throw SupervisorError(message: "cannot create the output folder \(folder): \(error.localizedDescription); choose another with --out")
        }
        try folder.lock()
        let audit = try AuditLog(path: folder.audit, seal: try AuditSeal(directory: options.keys))
        // An approved action that started before a crash is never repeated (its approval was
        // used): it is reported, once, for a person to check, and recorded as such.
        for intent in AuditLog.unfinishedApprovedActions(path: folder.audit) {
            notes.append("OUTCOME UNKNOWN: \(intent.call) for \(intent.context), \(intent.rule ?? ""), started (audit seq \(intent.seq)) "
                         + "but the supervisor stopped before its outcome was recorded; check the device")
            try audit.append(AuditRecord(time: clock.now().nanoseconds, policy: policy.contentHash, event: "outcome-unknown", mode: options.mode.rawValue, context: intent.context,
                                         call: intent.call, result: "unknown after a restart", decisionSeq: intent.seq))
        }
        // Every policy the supervisor runs under is kept and its loading audited; a change from
        // the last one is a note naming both, for `worldos policy diff`.
        let previous = AuditLog.loadedPolicies(path: folder.audit).last
        if previous != policy.contentHash {
            try PolicyHistory(directory: folder.policies).keep(policy)
            let change = previous.map { "policy changed from \($0.prefix(12)) to \(policy.contentHash.prefix(12)); see worldos policy diff \($0.prefix(12)) \(policy.contentHash.prefix(12))" }
            if let change { notes.append("\(options.policy): \(change)") }
            try audit.append(AuditRecord(time: clock.now().nanoseconds, policy: policy.contentHash, event: "policy", mode: options.mode.rawValue, context: "supervisor",
                                         call: "load(\(options.policy))", reason: change ?? "first policy of this run folder"))
        }
        let fault = FaultLatch(folder: folder, audit: audit, policyHash: policy.contentHash)
        if let latched = fault.current {
            notes.append("HALTED by a fault latched \(latched.since): \(latched.reason); nothing physical runs until a person "
                         + "checks the bench and runs worldos ack --out \(folder)")
        }
        var redaction = Redaction()
        if var rules = configuration.redaction {
            rules.salt = try Redaction.salt(in: folder)
            redaction = rules
        }
        let trace = try TraceWriter(path: folder.trace, redaction: redaction)
        for (path, torn) in [(folder.audit, audit.tornTailBytes), (folder.trace, trace.tornTailBytes)] where torn > 0 {
            FileHandle.standardError.write(Data("note: \(path): cut \(torn) bytes of a torn last record (a crash mid-write); every complete record is kept\n".utf8))
        }
        let approvals = try ApprovalStore(directory: folder.approvals, audit: audit, policyHash: policy.contentHash)
        return RunRecords(audit: audit, fault: fault, trace: trace, approvals: approvals, redaction: redaction, notes: notes)
    }
}
