import LoopCore
import StateGraph

/// The bench's program contexts as their programs are doing: a `program` node each (calls the
/// seccomp mediator decided, allowed, refused, the last call and the last refusal, how the
/// program ended), from the program guard's own tally — the panel shows a program context's
/// real activity, which the loop's proposals never touch.
public struct ProgramObserver: Observing {
    public let programs: ProgramGuard
    public let contexts: [String]
    public init(programs: ProgramGuard, contexts: [String]) {
        self.programs = programs
        self.contexts = contexts
    }

    public static func node(_ context: String) -> NodeID { NodeID("program:\(context)") }

    public func observe(at now: Instant) throws -> Observation {
        let activity = programs.activity()
        let nodes = contexts.map { context in
            let a = activity[context] ?? ProgramActivity()
            var attributes: Attributes = ["context": .string(context), "calls": .int(Int64(a.calls)), "allowed": .int(Int64(a.allowed)),
                                          "refused": .int(Int64(a.refused))]
            if let last = a.lastCall { attributes["last-call"] = .string(last) }
            if let refusal = a.lastRefusal { attributes["last-refusal"] = .string(refusal) }
            if let ended = a.ended { attributes["ended"] = .string(ended) }
            return Node(id: Self.node(context), kind: .program, projected: true, attributes: attributes)
        }
        return Observation(time: now, scope: [.program], nodes: nodes, edges: [], supervisor: nil)
    }
}
