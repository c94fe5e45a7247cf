import Config
import Control
import Guard
import Glibc
import LoopCore
import StateGraph

/// A bench: the execution contexts that run on this machine, their priorities, and the tasks
/// (micro-step traces) each one proposes in turn.
public struct Bench: Sendable {
    public struct Context: Sendable {
        public var name: String
        public var priority: Int64
        public var intervalMilliseconds: Int64
        public var tasks: [(name: String, steps: [MicroStep])]
        /// The macros each task calls (by task name), where they expand.
        public var macros: [String: [MacroUse]] = [:]
        /// A real program run as this context under the seccomp filter (absolute path, arguments).
        public var program: [String]? = nil
        /// The user it runs as (uid, gid), from `user: nobody` or `user: 65534:65534`.
        public var user: (uid: UInt32, gid: UInt32)? = nil
        /// A controller run as this context, at its period (a context has tasks, a program or a controller).
        public var controller: ControllerSpec? = nil
        /// Released every `period-ms`, each release due within `deadline-ms` (default: the
        /// period): the scheduler runs such contexts earliest deadline first, ahead of the rest.
        public var periodMilliseconds: Int64? = nil
        public var deadlineMilliseconds: Int64? = nil
        /// It runs the plans people submit (`plans: true`), one at a time, a step each turn.
        public var runsPlans = false
    }

    /// The contexts that run plans.
    public var planContexts: Set<String> { Set(contexts.filter(\.runsPlans).map(\.name)) }

    /// The controllers, by the context each runs as.
    public var controllers: [String: ControllerSpec] {
        Dictionary(uniqueKeysWithValues: contexts.compactMap { c in c.controller.map { (c.name, $0) } })
    }
    public var file: String
    public var contexts: [Context]

    public static func load(file: String) throws(ConfigError) -> Bench {
        try parse(ConfigNode.load(file: file))
    }

    public static func parse(_ text: String, file: String) throws(ConfigError) -> Bench {
        try parse(ConfigNode.parse(text, file: file))
    }

    static func parse(_ root: ConfigNode) throws(ConfigError) -> Bench {
        var bench = Bench(file: root.file, contexts: [])
        let entries = try root.mapping(allowed: ["version", "macros", "contexts"], required: ["version", "contexts"])
        // The macro library first: the tasks below call it.
        var library = MacroLibrary()
        if let node = entries.first(where: { $0.key == "macros" })?.value {
            let named = try node.string()
            // A relative name is the bench file's neighbour.
            let folder = root.file.lastIndex(of: "/").map { String(root.file[..<$0]) } ?? "."
            let path = named.hasPrefix("/") ? named : folder + "/" + named
            library = try MacroLibrary.load(file: path)
        }
        for (key, value) in entries where key != "macros" {
            if key == "version" { _ = try value.int(in: 1...1); continue }
            for (name, body) in try value.namedEntries(what: "context") {
                var context = Context(name: name, priority: 0, intervalMilliseconds: 1000, tasks: [])
                for (field, v) in try body.mapping(allowed: ["priority", "interval-ms", "period-ms", "deadline-ms", "tasks", "program", "user", "controller", "plans"]) {
                    switch field {
                    case "priority": context.priority = try v.int(in: -100...100)
                    case "interval-ms": context.intervalMilliseconds = try v.int(in: 0...86_400_000)
                    case "period-ms": context.periodMilliseconds = try v.int(in: 10...10_000)
                    case "deadline-ms": context.deadlineMilliseconds = try v.int(in: 1...10_000)
                    case "controller": context.controller = try ControllerSpec.parse(v, context: name)
                    case "program":
                        let argv = try v.strings()
                        guard let first = argv.first, first.hasPrefix("/") else {
                            throw v.error("a program is a list whose first item is an absolute path", hint: "such as [/usr/bin/python3, logger.py]")
                        }
                        context.program = argv
                    case "user": context.user = try user(v)
                    case "plans":
                        guard try v.bool() else { throw v.error("plans: false is the same as leaving it out", hint: "remove it") }
                        context.runsPlans = true
                    default:
                        for (task, steps) in try v.namedEntries(what: "task") {
                            let (expanded, uses) = try parseSteps(steps, macros: library)
                            context.tasks.append((task, expanded))
                            if !uses.isEmpty { context.macros[task] = uses }
                        }
                    }
                }
                let kinds = [!context.tasks.isEmpty, context.program != nil, context.controller != nil, context.runsPlans].filter { $0 }.count
                if kinds == 0 {
                    throw body.error("context \(name) has no tasks, no program, no controller and no plans", hint: "give it at least one task, a program to run, a controller, or plans: true")
                }
                if kinds > 1 { throw body.error("context \(name) has more than one of tasks, program, controller and plans", hint: "give each its own context") }
                if context.runsPlans && context.periodMilliseconds != nil { throw body.error("a plan context runs at its interval-ms, not a period", hint: "remove period-ms") }
                if context.controller != nil && context.periodMilliseconds == nil {
                    throw body.error("context \(name) runs a controller and has no period-ms", hint: "a controller runs at a period, 10...10000 ms")
                }
                if let d = context.deadlineMilliseconds {
                    guard let p = context.periodMilliseconds else { throw body.error("deadline-ms applies only to a context with a period-ms") }
                    if d > p { throw body.error("deadline-ms \(d) is longer than period-ms \(p)", hint: "a release is due before the next one") }
                }
                if context.user != nil && context.program == nil { throw body.error("\"user\" applies only to a context with a program") }
                bench.contexts.append(context)
            }
        }
        if bench.contexts.isEmpty { throw root.error("the bench has no contexts") }
        var names: [String: String] = [:]
        for context in bench.contexts {
            guard let spec = context.controller else { continue }
            if let other = names.updateValue(context.name, forKey: spec.name) {
                throw root.error("controller \(spec.name) is declared by both \(other) and \(context.name)", hint: "give each controller its own name")
            }
        }
        return bench
    }

    /// `nobody` (looked up on this machine) or `UID:GID`.
    static func user(_ node: ConfigNode) throws(ConfigError) -> (uid: UInt32, gid: UInt32) {
        let text = try node.string()
        let numbers = text.split(separator: ":").compactMap { UInt32($0) }
        if numbers.count == 2 { return (numbers[0], numbers[1]) }
        guard let entry = getpwnam(text) else {
            throw node.error("no user \"\(text)\" on this machine", hint: "name an existing user, or give UID:GID")
        }
        return (entry.pointee.pw_uid, entry.pointee.pw_gid)
    }

    /// A task's steps, each macro call expanded in place. `$N` counts the entries as written: a
    /// macro's return is its last step's.
    static func parseSteps(_ node: ConfigNode, macros: MacroLibrary = MacroLibrary()) throws(ConfigError) -> (steps: [MicroStep], uses: [MacroUse]) {
        let entries = try node.sequence()
        if entries.isEmpty { throw node.error("a task needs at least one micro-step") }
        var steps: [MicroStep] = []
        var uses: [MacroUse] = []
        // Where each entry as written ends among the expanded steps.
        var ends: [Int] = []
        for (index, entry) in entries.enumerated() {
            if let call = try? entry.mapping(allowed: ["macro"]), let (_, argsNode) = call.first {
                let (use, expanded) = try macros.expand(argsNode, at: steps.count)
                uses.append(use)
                steps += expanded
                ends.append(steps.count - 1)
                continue
            }
            let ops = try entry.mapping(allowed: MicroOp.allCases.map(\.rawValue) + ["macro"])
            guard ops.count == 1, let (opName, argsNode) = ops.first, let op = MicroOp(rawValue: opName) else {
                throw entry.error("each micro-step is one operation, such as `open: { path: /proc/loadavg }`")
            }
            let parameters = op.parameters
            var args: [String: Argument] = [:]
            for (name, value) in try argsNode.mapping(allowed: parameters.map(\.name.rawValue), required: parameters.filter(\.required).map(\.name.rawValue)) {
                let text = try value.string()
                let type = parameters.first { $0.name.rawValue == name }!.type
                if text.hasPrefix("$") {
                    guard let (n, field) = Argument.reference(text) else {
                        throw value.error("\"\(text)\" is not a step reference", hint: "write $N for the return of step N (0-based), or $N.field for one of its fields")
                    }
                    guard n < index else {
                        throw value.error("$\(n) refers to step \(n), which does not run before step \(index)", hint: "refer only to earlier steps")
                    }
                    guard type == .int else { throw value.error("\(name) takes a \(type.rawValue), not a step's return") }
                    args[name] = .result(of: ends[n], field: field)
                } else if type == .int {
                    guard value.isInteger, let v = Int64(text) else { throw value.error("\(name) must be a whole number, not \"\(text)\"") }
                    if op == .read, name == Parameter.count.rawValue, !(0...MicroOp.maximumReadCount).contains(v) {
                        throw value.error("count \(v) is out of range", hint: "use 0...\(MicroOp.maximumReadCount)")
                    }
                    args[name] = .int(v)
                } else {
                    if op == .open || op == .openat, name == "mode", !MicroOp.openModes.contains(text) {
                        throw value.error("unknown open mode \"\(text)\"", hint: "use one of: \(MicroOp.openModes.sorted().joined(separator: ", "))")
                    }
                    args[name] = .string(text)
                }
            }
            steps.append(MicroStep(op, args))
            ends.append(steps.count - 1)
        }
        return (steps, uses)
    }
}

/// Proposes each context's tasks in turn, round-robin. The learned proposer of later issues
/// replaces this behind the same protocol.
public struct ScriptedProposer: Proposing, DescribingNodes {
    private let tasks: [String: [(name: String, steps: [MicroStep])]]
    private let macros: [String: [String: [MacroUse]]]
    private var next: [String: Int] = [:]
    /// The bench's controllers: their contexts propose what their laws compute.
    public private(set) var controllers: ControlProposer
    /// The plans people submit, run by the bench's plan contexts (nil: a bench without them, or
    /// a loop that takes no plans, such as a replay).
    public private(set) var plans: PlanRunner?

    /// `board` is the controllers' record the guard and the host share (default: one of its own).
    public init(bench: Bench, board: ControlBoard? = nil, plans: PlanRunner? = nil) {
        tasks = Dictionary(uniqueKeysWithValues: bench.contexts.map { ($0.name, $0.tasks) })
        macros = Dictionary(uniqueKeysWithValues: bench.contexts.map { ($0.name, $0.macros) })
        let specs = bench.controllers
        controllers = ControlProposer(specs: specs, board: board ?? ControlBoard(specs.values.map(\.envelope)))
        self.plans = plans
    }

    public func nodeAttributes() -> [NodeID: Attributes] { controllers.nodeAttributes().merging(plans?.nodeAttributes() ?? [:]) { $1 } }

    /// What the step did with a plan's proposal.
    public mutating func settle(_ report: StepReport) { plans?.settle(report) }

    public mutating func propose(for context: String, posterior: Posterior, at now: Instant) -> Proposal? {
        if controllers.controls(context) { return controllers.propose(for: context, posterior: posterior, at: now) }
        if let runner = plans, runner.runs(context) { return plans!.propose(for: context, posterior: posterior, at: now) }
        guard let list = tasks[context], !list.isEmpty else { return nil }
        let i = next[context, default: 0]
        next[context] = (i + 1) % list.count
        var proposal = Proposal(context: context, task: list[i].name, steps: list[i].steps)
        proposal.macros = macros[context]?[list[i].name]
        return proposal
    }
}
