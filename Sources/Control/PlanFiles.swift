import Foundation
import Journal

/// A plan as `worldos plan run` hands it over: the file's text, kept whole (its hash is what an
/// approval binds; a resume reads it again and checks the hash).
public struct PlanSubmission: Codable, Equatable, Sendable {
    public var id: String
    public var file: String
    public var text: String
    /// The context to run it as, when the command names one (otherwise the plan's own).
    public var context: String?
    public var requestedBy: String
    public init(id: String, file: String, text: String, context: String?, requestedBy: String) {
        (self.id, self.file, self.text, self.context, self.requestedBy) = (id, file, text, context, requestedBy)
    }
}

/// What a person asks of a submitted plan.
public struct PlanCommand: Codable, Equatable, Sendable {
    public enum Op: String, Codable, Sendable, CaseIterable { case pause, resume, abort }
    public var op: Op
    public var by: String
    public init(op: Op, by: String) { (self.op, self.by) = (op, by) }
}

/// Where a plan stands, as the supervisor last wrote it.
public struct PlanStatus: Codable, Equatable, Sendable {
    public enum State: String, Codable, Sendable {
        /// Being checked by the guard, or waiting for the approval its preflight asked for.
        case checking, waitingForApproval = "waiting-for-approval"
        case running, paused
        /// Running its cleanup, then the safe state (after an abort or a failed step).
        case cleaning
        case done, aborted, failed, refused
        /// The supervisor stopped while it was active: it resumes only from its last
        /// checkpoint, and only when a person says so (`worldos plan resume ID`).
        case interrupted

        public var isFinal: Bool { [.done, .aborted, .failed, .refused].contains(self) }
    }

    public var id: String
    public var plan: String
    public var file: String
    public var hash: String
    public var context: String
    public var requestedBy: String
    public var state: State
    /// The next step to run, of `total`.
    public var position: Int
    public var total: Int
    public var checkpoint: String?
    /// Where a resume starts: the step after the last checkpoint passed (0: the beginning).
    public var resumeAt: Int
    public var approval: String?
    public var grant: String?
    public var message: String?
    public var measurements: Int
    public var updated: Date

    public var line: String {
        "\(id) \(plan) \(state.rawValue) step \(position)/\(total)" + (checkpoint.map { " checkpoint \($0)" } ?? "")
            + " \(measurements) measurement\(measurements == 1 ? "" : "s")" + (message.map { ": \($0)" } ?? "")
    }
}

/// The run folder's `plans/` (out of every context's reach, as the rest of the run folder):
/// `ID.plan.json` submitted, `ID.NONCE.command.json` asked, `ID.status.json` written by the
/// supervisor. Renames make each hand-over atomic.
public struct PlanFiles: Sendable {
    public let directory: String
    public init(directory: String) { self.directory = directory }

    public func submit(_ s: PlanSubmission) throws {
        try make()
        do { try JSONRecordFile.write(s, to: "\(directory)/\(s.id).plan.json") } catch { throw PlanFileError("cannot leave plan \(s.id): \(error)") }
    }

    public func ask(_ id: String, _ command: PlanCommand) throws {
        try make()
        let nonce = String(format: "%08x", UInt32.random(in: .min ... .max))
        do { try JSONRecordFile.write(command, to: "\(directory)/\(id).\(nonce).command.json") } catch {
            throw PlanFileError("cannot leave the \(command.op.rawValue) of plan \(id): \(error)")
        }
    }

    public func status(_ id: String) -> PlanStatus? { try? JSONRecordFile.read(PlanStatus.self, from: "\(directory)/\(id).status.json") }

    public func submission(_ id: String) throws(JournalError) -> PlanSubmission? {
        try JSONRecordFile.read(PlanSubmission.self, from: "\(directory)/\(id).plan.json")
    }

    /// Every plan's status, oldest first.
    public func statuses() -> [PlanStatus] {
        names(ending: ".status.json").compactMap { status(String($0.dropLast(12))) }.sorted { $0.updated < $1.updated }
    }

    func write(_ status: PlanStatus) { try? JSONRecordFile.write(status, to: "\(directory)/\(status.id).status.json") }

    /// Plans submitted that are not among `known` (taken already), by id (an unreadable one as nil).
    func newSubmissions(besides known: Set<String>) -> [(id: String, submission: PlanSubmission?)] {
        names(ending: ".plan.json").map { String($0.dropLast(10)) }.filter { !known.contains($0) }.sorted().map { id in
            (id, (try? submission(id)) ?? nil)
        }
    }

    /// Commands waiting, each taken (removed) as it is read.
    func takeCommands() -> [(id: String, command: PlanCommand?)] {
        names(ending: ".command.json").sorted().compactMap { name in
            let path = "\(directory)/\(name)", taken = path + ".taken"
            guard rename(path, taken) == 0 else { return nil }
            defer { unlink(taken) }
            return (String(name.split(separator: ".")[0]), (try? JSONRecordFile.read(PlanCommand.self, from: taken)) ?? nil)
        }
    }

    private func names(ending suffix: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(suffix) && !$0.hasPrefix(".") }
    }

    private func make() throws {
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) } catch {
            throw PlanFileError("cannot make \(directory): \(error.localizedDescription)")
        }
    }
}

public struct PlanFileError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
