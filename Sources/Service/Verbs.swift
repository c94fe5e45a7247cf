import Benches
import DataEngine
import Foundation
import Guard
import JSONWriter
import LoopCore
import StateGraph

/// What a client may ask of a running supervisor, whichever door it comes through: the control
/// socket sends `{"op": verb, …fields}`, the HTTP API maps a route to a verb and its fields. One
/// implementation answers both, so a right, a binding or an audit record cannot differ by door.
public enum Verb: String, CaseIterable, Sendable {
    case status, approvals, approve, reject, ack, act, audit, auditVerify = "audit-verify", graph, panel
    case trace, traceFile = "trace-file", traceMark = "trace-mark"

    /// What a token needs to use it (the control socket's peers, vouched for by the kernel and
    /// the socket's mode, may use every verb).
    public var scope: Scope {
        switch self {
        case .status, .approvals, .audit, .auditVerify, .graph, .panel, .trace: .read
        case .act, .ack, .traceFile, .traceMark: .operate
        case .approve, .reject: .approve
        }
    }

    /// Whether answering it may wait: on the loop (an action, trace control), on the disk (an
    /// audit record written and synced, the whole log verified). The others read what the loop
    /// last published, or a short tail.
    public var waits: Bool {
        switch self {
        case .act, .traceFile, .traceMark, .approve, .reject, .ack, .auditVerify: true
        case .status, .approvals, .audit, .graph, .panel, .trace: false
        }
    }

    /// The fields its request may carry.
    public var fields: Set<String> {
        switch self {
        case .approve, .reject: ["id", "label"]
        case .act: ["context", "action", "device", "params", "timeout-s"]
        case .audit: ["count"]
        case .graph: ["kind", "id"]
        case .traceMark: ["label"]
        case .status, .approvals, .ack, .auditVerify, .panel, .trace, .traceFile: []
        }
    }
}

/// What a token may do: each scope includes the ones before it.
public enum Scope: String, Comparable, CaseIterable, Sendable {
    case read, operate, approve
    public static func < (a: Scope, b: Scope) -> Bool { allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)! }
}

/// A verb's answer: the HTTP status it maps to and a JSON object (`"ok"` true or false).
public struct Answer: Sendable {
    public var status: Int
    public var body: [UInt8]
    public var ok: Bool { status < 400 }
    public init(status: Int, body: [UInt8]) { (self.status, self.body) = (status, body) }

    public static func failure(_ status: Int, _ message: String) -> Answer {
        var json = JSONWriter()
        json.beginObject()
        json.key("ok"); json.bool(false)
        json.key("error"); json.string(message)
        json.endObject()
        return Answer(status: status, body: json.bytes)
    }

    static func success(_ fill: (inout JSONWriter) -> Void) -> Answer {
        var json = JSONWriter(reserving: 1024)
        json.beginObject()
        json.key("ok"); json.bool(true)
        fill(&json)
        json.endObject()
        return Answer(status: 200, body: json.bytes)
    }
}

extension ServiceModel {
    /// Do what `verb` asks with `request`'s fields, as `person`.
    public func perform(_ verb: Verb, _ request: StrictJSON, as person: Approver) -> Answer {
        do throws(RequestError) {
            switch verb {
            case .status: return status()
            case .approvals:
                let pending = pendingApprovals()
                return .success { json in
                    json.key("approvals")
                    json.beginArray()
                    for a in pending { Self.write(a, &json) }
                    json.endArray()
                }
            case .approve, .reject:
                let id = try request.requiredString("id")
                let label = try request.string("label")
                if let label, label.count > 200 { throw RequestError(status: 400, "\(request.source): field \"label\" is at most 200 characters") }
                var who = person
                who.label = label ?? person.label
                do {
                    let a = try answer(id, approve: verb == .approve, by: who)
                    return .success { json in
                        json.key("approval"); Self.write(a, &json)
                        json.key("by"); json.string(who.description)
                    }
                } catch {
                    let message = "\(error)"
                    return .failure(message.hasPrefix("no approval request") ? 404 : 409, message)
                }
            case .ack:
                do {
                    let fault = try acknowledgeFault(by: person)
                    return .success { json in
                        json.key("fault"); json.string(fault.reason)
                        json.key("by"); json.string(person.name)
                    }
                } catch { return .failure(409, "\(error)") }
            case .act: return try act(request, as: person)
            case .audit:
                let count = try request.int("count", in: 1...10_000) ?? 50
                let records = auditTail(count)
                return .success { json in
                    json.key("records")
                    json.beginArray()
                    for r in records { Self.write(r, &json) }
                    json.endArray()
                }
            case .auditVerify:
                switch verifyAudit() {
                case .success(let v):
                    return .success { json in
                        json.key("records"); json.int(v.records)
                        json.key("checkpoints"); json.int(v.checkpoints)
                        json.key("head"); v.head.map { json.int($0) } ?? json.null()
                        json.key("intact"); json.bool(true)
                    }
                case .failure(let e): return .failure(409, e.description)
                }
            case .graph: return try graph(request)
            case .trace: return traceFiles()
            case .traceFile: return traceControl(.newFile(by: person.description), as: person)
            case .traceMark:
                let label = try request.requiredString("label")
                // Counted and checked as the API's description says (code points; no C0/C1 control, no line separator).
                guard (1...200).contains(label.unicodeScalars.count),
                      !label.unicodeScalars.contains(where: { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || $0.value == 0x2028 || $0.value == 0x2029 }) else {
                    throw RequestError(status: 400, "\(request.source): field \"label\" is 1 to 200 characters on one line, no control characters")
                }
                return traceControl(.mark(label: label, by: person.description), as: person)
            case .panel:
                let now = snapshot()
                return .success { json in
                    json.key("step"); json.int(now.step)
                    json.key("semantics")
                    json.beginArray()
                    for s in now.semantics { Self.write(s, &json) }
                    json.endArray()
                }
            }
        } catch { return .failure(error.status, error.description) }
    }

    private func status() -> Answer {
        let now = snapshot()
        let fault = fault()
        let pending = pendingApprovals().count
        return .success { json in
            json.key("step"); json.int(now.step)
            json.key("mode"); json.string(now.mode.rawValue)
            json.key("time"); now.time.map { json.double($0.timeIntervalSince1970) } ?? json.null()
            json.key("started"); json.double(started.timeIntervalSince1970)
            json.key("nodes"); json.int(now.graph.nodeCount)
            json.key("contexts"); json.array(contexts)
            json.key("approvals-pending"); json.int(pending)
            json.key("fault")
            if let fault, fault.acknowledgedBy == nil { json.string(fault.reason) } else { json.null() }
        }
    }

    /// The run folder's trace files, oldest first, with their sizes; the last is being written.
    private func traceFiles() -> Answer {
        let traces = folder.mcapTraces()
        return .success { json in
            json.key("files")
            json.beginArray()
            for path in [folder.trace] + traces {
                var info = stat()
                guard stat(path, &info) == 0 else { continue }
                json.beginObject()
                json.key("file"); json.string(URL(fileURLWithPath: path).lastPathComponent)
                json.key("bytes"); json.int(Int(info.st_size))
                json.endObject()
            }
            json.endArray()
            json.key("recording"); traces.last.map { json.string(URL(fileURLWithPath: $0).lastPathComponent) } ?? json.null()
        }
    }

    private func traceControl(_ command: TraceControl.Command, as person: Approver) -> Answer {
        switch control(command, by: person) {
        case nil: return .failure(503, "the loop recorded no step in 5 s; nothing was done, ask again")
        case .failure(let e)?: return .failure(500, e.description)
        case .success(let done)?:
            return .success { json in
                json.key("file"); json.string(done.file)
                json.key("step"); json.int(done.step)
                json.key("by"); json.string(person.description)
            }
        }
    }

    private func act(_ request: StrictJSON, as person: Approver) throws(RequestError) -> Answer {
        let context = try request.requiredString("context")
        let action = try request.requiredString("action")
        let device = try request.string("device")
        let params = try request.strings("params")
        let seconds = try request.int("timeout-s", in: 1...300) ?? 30
        guard action.allSatisfy({ $0.isLetter || $0.isNumber || "._-".contains($0) }) else {
            throw RequestError(status: 400, "action \"\(action)\" may use letters, digits, . _ and -")
        }
        if let bad = params.first(where: { $0.key.isEmpty || $0.value.contains(",") || $0.key.contains("=") || $0.key.contains(",") }) {
            throw RequestError(status: 400, "parameter \"\(bad.key)\" cannot be sent (no empty names, no = or , in a name, no , in a value)")
        }
        guard contexts.contains(context) else {
            // Decided as the run folder's inbox decides it, so every door says the same.
            return Self.decision(ActionReply(id: "", verdict: "deny", rule: "default-deny",
                                             reason: "this bench has no context \(context); it has \(contexts.joined(separator: ", "))"))
        }
        guard !programs.contains(context) else {
            return Self.decision(ActionReply(id: "", verdict: "deny", rule: "default-deny",
                                             reason: "context \(context) is a program; it acts only through its own system calls, which the guard decides"))
        }
        let outcome: (reply: ActionReply?, taken: Bool)
        do { outcome = try act(context: context, action: action, device: device, params: params, by: person, timeout: .seconds(seconds)) } catch {
            return .failure(500, "the request could not be left for the supervisor: \(error)")
        }
        guard let reply = outcome.reply else {
            // Taken and still running: accepted, its outcome in the audit log. Never taken: withdrawn.
            return outcome.taken ? .failure(202, "the supervisor took the request but gave no answer in \(seconds) s; its outcome will be in the audit log")
                                 : .failure(409, "\(context) did not take the request within \(seconds) s; withdrawn, it will not run")
        }
        return Self.decision(reply)
    }

    /// The guard's decision on an action: 200 it ran, 202 it waits for an approval (named), 409
    /// the guard refused it (denied, or uncertain).
    static func decision(_ reply: ActionReply) -> Answer {
        var json = JSONWriter()
        json.beginObject()
        json.key("ok"); json.bool(reply.verdict == "allow")
        json.key("verdict"); json.string(reply.verdict)
        json.key("rule"); json.string(reply.rule)
        if let reason = reply.reason { json.key("reason"); json.string(reason) }
        if let result = reply.result { json.key("result"); json.string(result) }
        if reply.verdict == "needs-approval", let request = reply.rule.split(separator: " ").last {
            json.key("approval"); json.string(String(request))
        }
        json.endObject()
        return Answer(status: reply.verdict == "allow" ? 200 : reply.verdict == "needs-approval" ? 202 : 409, body: json.bytes)
    }

    private func graph(_ request: StrictJSON) throws(RequestError) -> Answer {
        let graph = snapshot().graph
        if let id = try request.string("id") {
            guard let node = graph[NodeID(id)] else { return .failure(404, "no node \(id) in the graph") }
            return .success { json in
                json.key("node"); json.value(node)
                json.key("edges")
                json.beginArray()
                for e in graph.edges(from: node.id) { json.value(e) }
                for e in graph.edges(to: node.id) { json.value(e) }
                json.endArray()
            }
        }
        if let kind = try request.string("kind") {
            guard let k = NodeKind(rawValue: kind) else {
                throw RequestError(status: 400, "kind \"\(kind)\" is not a node kind; kinds: \(NodeKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let nodes = graph.nodes(ofKind: k)
            return .success { json in
                json.key("nodes")
                json.beginArray()
                for n in nodes { json.value(n) }
                json.endArray()
            }
        }
        let snapshot = graph.snapshot()
        return .success { json in
            json.key("graph"); json.value(snapshot)
        }
    }

    /// An approval request as clients see it.
    public static func write(_ a: Approval, _ json: inout JSONWriter) {
        json.beginObject()
        json.key("id"); json.string(a.id)
        json.key("state"); json.string(a.state.rawValue)
        json.key("context"); json.string(a.binding.context)
        json.key("action"); json.string(a.binding.action)
        json.key("device"); json.string(a.binding.device)
        json.key("path"); json.string(a.binding.path)
        json.key("params")
        json.beginObject()
        for (k, v) in a.binding.params.sorted(by: { $0.key < $1.key }) { json.key(k); json.string(v) }
        json.endObject()
        json.key("digest"); json.string(a.digest)
        json.key("risk"); a.risk.map { json.string($0) } ?? json.null()
        json.key("requested"); json.double(a.requestedAt.timeIntervalSince1970)
        json.key("expires"); json.double(a.expiresAt.timeIntervalSince1970)
        json.key("required"); json.int(a.required ?? 1)
        json.key("approved-by"); json.array(a.approvedBy ?? [])
        json.key("dream")
        if let d = a.dream {
            json.beginObject()
            json.key("summary"); json.string(d.summary)
            json.key("confidence"); json.double(d.confidence)
            json.key("model"); json.string(d.model)
            json.key("returns")
            json.beginArray()
            for r in d.returns {
                json.beginObject()
                json.key("label"); json.string(r.label)
                json.key("probability"); json.double(r.probability)
                json.endObject()
            }
            json.endArray()
            json.key("readings")
            json.beginObject()
            for (k, v) in d.readings.sorted(by: { $0.key < $1.key }) { json.key(k); json.double(v) }
            json.endObject()
            json.endObject()
        } else {
            json.null()
        }
        json.endObject()
    }

    /// One element of the panel's semantics tree.
    static func write(_ s: Frame.Semantic, _ json: inout JSONWriter) {
        json.beginObject()
        json.key("role"); json.string(s.role)
        json.key("label"); json.string(s.label)
        json.key("node"); s.node.map { json.value($0) } ?? json.null()
        json.key("x"); json.int(s.x)
        json.key("y"); json.int(s.y)
        json.key("width"); json.int(s.width)
        json.key("height"); json.int(s.height)
        json.key("value"); s.value.map { json.string($0) } ?? json.null()
        json.key("actions"); s.actions.map { json.array($0) } ?? json.null()
        json.key("disabled"); s.disabled.map { json.string($0) } ?? json.null()
        json.endObject()
    }

    static func write(_ r: AuditRecord, _ json: inout JSONWriter) {
        json.beginObject()
        json.key("seq"); json.int(r.seq)
        json.key("time"); json.int(r.time)
        json.key("event"); json.string(r.event)
        json.key("context"); json.string(r.context)
        json.key("call"); json.string(r.call)
        for (key, value) in [("decision", r.decision), ("rule", r.rule), ("reason", r.reason), ("result", r.result), ("hash", r.hash)] {
            json.key(key); value.map { json.string($0) } ?? json.null()
        }
        json.endObject()
    }
}
