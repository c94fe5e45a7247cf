import Control
import Foundation
import Guard
import Journal
import LoopCore
import StateGraph

/// A named action asked for from the command line (`worldos act`), to run as one of the
/// bench's execution contexts — under that context's policy, through the guard, into the trace
/// and the audit log like anything the context proposes itself.
public struct ActionRequest: Codable, Equatable, Sendable {
    public var id: String
    public var context: String
    /// The device profile to act on; nil: the one attached device that offers the action.
    public var device: String?
    public var action: String
    public var params: [String: String]
    public var requestedBy: String

    public init(id: String, context: String, device: String?, action: String, params: [String: String], requestedBy: String) {
        (self.id, self.context, self.device, self.action, self.params, self.requestedBy) = (id, context, device, action, params, requestedBy)
    }
}

/// What became of a request: the guard's decision and, when it ran, what the device returned.
public struct ActionReply: Codable, Equatable, Sendable {
    public var id: String
    public var verdict: String
    public var rule: String
    public var reason: String?
    public var result: String?

    public init(id: String, verdict: String, rule: String, reason: String? = nil, result: String? = nil) {
        (self.id, self.verdict, self.rule, self.reason, self.result) = (id, verdict, rule, reason, result)
    }
}

/// Requests and replies as files in `<out>/requests` (the run folder, out of every context's
/// reach). Renames make each hand-over atomic: the supervisor takes `ID.json` by renaming it to
/// `ID.taken`; a command that stops waiting withdraws it by renaming it to `ID.withdrawn`, so a
/// request nobody waits for any more never runs.
public final class ActionInbox: @unchecked Sendable {
    public let directory: String
    public init(directory: String) { self.directory = directory }

    /// Leave a request for the supervisor (`worldos act`).
    public func submit(_ request: ActionRequest) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        do { try JSONRecordFile.write(request, to: "\(directory)/\(request.id).json") } catch {
            throw ActionRequestError("cannot leave request \(request.id): \(error)")
        }
    }

    /// Stop waiting: true if the request was withdrawn before the supervisor took it.
    public func withdraw(_ id: String) -> Bool { rename("\(directory)/\(id).json", "\(directory)/\(id).withdrawn") == 0 }

    /// Remove what is left of a request once its asker has the answer (the trace and the audit
    /// log keep the record).
    public func forget(_ id: String) {
        for suffix in ["taken", "reply", "withdrawn"] { unlink("\(directory)/\(id).\(suffix)") }
    }

    /// The reply to a request, once there is one.
    public func reply(to id: String) -> ActionReply? {
        try? JSONRecordFile.read(ActionReply.self, from: "\(directory)/\(id).reply")
    }

    /// Take the oldest waiting request that `wanted` accepts.
    func take(where wanted: (ActionRequest) -> Bool) -> ActionRequest? {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }
        let waiting = names.compactMap { name -> (Date, String, ActionRequest?)? in
            let path = "\(directory)/\(name)"
            let made = (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date) ?? .distantPast
            return (made, String(name.dropLast(5)), try? JSONRecordFile.read(ActionRequest.self, from: path))
        }.sorted { $0.0 < $1.0 }
        for (_, id, request) in waiting {
            guard let request, request.id == id else {
                // Not a request this supervisor can read: answer it rather than let it wait forever.
                if rename("\(directory)/\(id).json", "\(directory)/\(id).taken") == 0 {
                    answer(ActionReply(id: id, verdict: "deny", rule: "request", reason: "\(directory)/\(id).json is not a request worldos act wrote"))
                }
                continue
            }
            guard wanted(request) else { continue }
            if rename("\(directory)/\(id).json", "\(directory)/\(id).taken") == 0 { return request }
        }
        return nil
    }

    func answer(_ reply: ActionReply) {
        try? JSONRecordFile.write(reply, to: "\(directory)/\(reply.id).reply")
    }
}

public struct ActionRequestError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The bench's own proposals, with requested actions first: when a context with a request
/// waiting gets its turn, it proposes the request.
public struct RequestingProposer: Proposing, DescribingNodes {
    public let inbox: ActionInbox
    var bench: ScriptedProposer
    let contexts: Set<String>
    /// The attached devices that offer an action.
    let offering: @Sendable (String) -> [String]
    /// Requests taken and proposed, waiting for their outcome.
    private(set) var running: [String: ActionRequest] = [:]

    public init(bench: Bench, inbox: ActionInbox, offering: @escaping @Sendable (String) -> [String], board: ControlBoard? = nil,
                plans: PlanRunner? = nil) {
        self.bench = ScriptedProposer(bench: bench, board: board, plans: plans)
        self.inbox = inbox
        contexts = Set(bench.contexts.map(\.name))
        self.offering = offering
    }

    public func nodeAttributes() -> [NodeID: Attributes] { bench.nodeAttributes() }

    public mutating func propose(for context: String, posterior: Posterior, at now: Instant) -> Proposal? {
        while let request = inbox.take(where: { $0.context == context }) {
            var device = request.device
            if device == nil {
                let offered = offering(request.action)
                guard offered.count == 1 else {
                    inbox.answer(ActionReply(id: request.id, verdict: "refuse-uncertain", rule: "refuse-uncertain",
                                             reason: offered.isEmpty ? "no attached device offers \(request.action)"
                                                 : "\(offered.joined(separator: " and ")) all offer \(request.action); name one with --device"))
                    continue
                }
                device = offered[0]
            }
            let params = request.params.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            running[request.id] = request
            return Proposal(context: context, task: "request \(request.id)",
                            steps: [MicroStep(.act, ["device": .string(device!), "action": .string(request.action), "params": .string(params)])])
        }
        return bench.propose(for: context, posterior: posterior, at: now)
    }

    /// Answer requests: the outcome of one this step ran, and any for a context the bench lacks.
    public mutating func settle(_ report: StepReport) {
        bench.settle(report)
        if let outcome = report.outcome, outcome.proposal.task.hasPrefix("request "),
           let id = outcome.proposal.task.split(separator: " ").last.map(String.init), running.removeValue(forKey: id) != nil,
           let step = outcome.steps.first, let decision = step.decision {
            inbox.answer(ActionReply(id: id, verdict: decision.verdict, rule: decision.rule, reason: decision.reason,
                                     result: step.result.map { "\($0)" }))
        }
        while let stray = inbox.take(where: { [contexts] in !contexts.contains($0.context) }) {
            inbox.answer(ActionReply(id: stray.id, verdict: "deny", rule: "default-deny",
                                     reason: "this bench has no context \(stray.context); it has \(contexts.sorted().joined(separator: ", "))"))
        }
    }
}
