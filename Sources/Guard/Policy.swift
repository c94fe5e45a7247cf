import Config
import Foundation
import LoopCore
import StateGraph

/// A guard policy: for each execution context, what it may do. Anything no rule allows is denied.
public struct Policy: Sendable {
    public struct Rule: Sendable, Equatable {
        public enum Effect: String, Sendable { case allow, deny }
        public var effect: Effect
        public var ops: Set<MicroOp>
        /// Path patterns for `open` (`*` within one segment, `**` across segments). nil: any path.
        public var paths: [PathPattern]?
        /// Open modes allowed (`read`, `write`, `append`, `create`). nil: any.
        public var modes: Set<String>?
        /// For `act`: action name patterns (`relay.*`). nil: any.
        public var actions: [String]?
        public var reason: String?
        /// For `act`: numeric limits on the action's parameters (`params: { relay: { min: 0, max: 1 } }`).
        public var limits: [String: ClosedRange<Double>]? = nil
        /// How often the rule may allow (`rate: 10/minute`), counted per context.
        public var rate: Rate? = nil
        /// `file:line` of the rule, cited in every decision it makes.
        public var location: String
        /// The kinds of graph node the call must touch (`kind: [file, fd]`). nil: any.
        public var kinds: Set<NodeKind>? = nil
        /// For `act`: the device's profile identity (`profile:serial`) must match one of these
        /// patterns (`bench-bridge:*`), not just its name. nil: any attached device.
        public var devices: [String]? = nil
        /// When the rule applies, in the machine's local time. nil: always.
        public var window: TimeWindow? = nil

        /// `segments`: the call's path split by `normalizedSegments`, nil when it names none.
        func matches(_ call: ResolvedCall, segments: [[UInt8]]?, facts: CallFacts) -> Bool {
            guard ops.contains(call.op) else { return false }
            if let kinds, kinds.isDisjoint(with: call.op.touches) { return false }
            if let devices {
                guard let id = facts.deviceIdentity, devices.contains(where: { globMatches($0, id) }) else { return false }
            }
            if let window, !window.contains(facts.localTime) { return false }
            if let paths {
                guard let segments, paths.contains(where: { $0.matches(segments: segments) }) else { return false }
            }
            if let modes, call.op == .open || call.op == .openat, !modes.contains(call.string(.mode) ?? "read") { return false }
            if let actions {
                guard call.op == .act, let name = call.string(.action), actions.contains(where: { globMatches($0, name) }) else { return false }
            }
            return true
        }
    }

    /// What a rule may ask about a call beyond its arguments: the identity of the device it
    /// acts on and the local time of day it is decided at.
    struct CallFacts {
        var deviceIdentity: String?
        var localTime: (weekday: Int, minute: Int)
    }

    /// Days of the week (0 Sunday … 6 Saturday) and a span of minutes of the day, which may
    /// wrap past midnight (`22:00-06:00`).
    public struct TimeWindow: Sendable, Equatable {
        public var days: Set<Int>
        public var from: Int
        public var to: Int

        func contains(_ time: (weekday: Int, minute: Int)) -> Bool {
            if from <= to { return days.contains(time.weekday) && time.minute >= from && time.minute < to }
            // Past midnight: the early part belongs to the day the window started.
            if time.minute >= from { return days.contains(time.weekday) }
            return time.minute < to && days.contains((time.weekday + 6) % 7)
        }

        static let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
    }

    public struct Rate: Sendable, Equatable, CustomStringConvertible {
        public var count: Int
        public var seconds: Int
        public var description: String { "\(count)/\(["1": "second", "60": "minute", "3600": "hour"]["\(seconds)"] ?? "\(seconds)s")" }
    }

    public struct ContextPolicy: Sendable {
        public var capabilities: [String]
        public let rules: [Rule]
        let index: RuleIndex
        /// The rate-limited rules by location, which is what an allow decision cites.
        let rates: [String: Rate]
        /// Whether any rule has a time window: only then is a decision's local time looked up.
        let timed: Bool

        public init(capabilities: [String], rules: [Rule]) {
            self.capabilities = capabilities
            self.rules = rules
            index = RuleIndex(rules)
            rates = Dictionary(rules.compactMap { r in r.rate.map { (r.location, $0) } }, uniquingKeysWith: { a, _ in a })
            timed = rules.contains { $0.window != nil }
        }

        /// The first rule, in order, that matches the call (its index in `rules`). The rules are
        /// read in place: a decision copies none of them.
        func firstMatch(_ call: ResolvedCall, segments: [[UInt8]]?, facts: CallFacts) -> Int? {
            let candidates = index.candidates(call.op, path: segments)
            return rules.withUnsafeBufferPointer { rules in
                candidates.first { rules[$0].matches(call, segments: segments, facts: facts) }
            }
        }
    }

    public var file: String
    /// SHA-256 of the policy file's bytes; written into every audit record.
    public var contentHash: String
    public var contexts: [String: ContextPolicy]
    /// The policy file's text, kept with the run so a later change can be shown against it.
    public var source: String
    /// Physical steps are refused as uncertain when the last observation of the machine is older
    /// than this (default 5 s)…
    public var maxObservationAge: Duration = .seconds(5)
    /// …or when the estimator's prediction was wrong on more nodes than this (nil: no limit).
    public var maxSurprise: Int?
    /// With a learned model: a context's next physical action needs an approval after one of its
    /// calls returned what the model gave less than this probability…
    public var minOutcomeProbability: Double?
    /// …or after its action was followed by an observation more surprising than this many bits
    /// under the dynamics model (nil: no such escalation).
    public var maxLearnedSurprise: Double?

    public static func load(file: String) throws(ConfigError) -> Policy {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ConfigError(file: file, line: 0, column: 0, message: "cannot read the policy file", hint: "check the path")
        }
        return try parse(String(decoding: data, as: UTF8.self), file: file)
    }

    public static func parse(_ text: String, file: String) throws(ConfigError) -> Policy {
        let root = try ConfigNode.parse(text, file: file)
        var contexts: [String: ContextPolicy] = [:]
        var age: Duration = .seconds(5), surprise: Int?, probability: Double?, bits: Double?
        for (key, value) in try root.mapping(allowed: ["version", "uncertainty", "contexts"], required: ["version", "contexts"]) {
            switch key {
            case "version":
                guard try value.int(in: 1...1) == 1 else { throw value.error("unsupported version") }
            case "uncertainty":
                for (limit, number) in try value.mapping(allowed: ["max-observation-age-ms", "max-surprise", "min-outcome-probability", "max-learned-surprise-bits"]) {
                    switch limit {
                    case "max-surprise": surprise = Int(try number.int(in: 0...10_000_000))
                    case "min-outcome-probability": probability = try number.double(in: 0...1)
                    case "max-learned-surprise-bits": bits = try number.double(in: 0...1_000_000)
                    default: age = .milliseconds(try number.int(in: 1...3_600_000))
                    }
                }
            default:
                for (name, body) in try value.namedEntries(what: "context") {
                    contexts[name] = try parseContext(body)
                }
            }
        }
        return Policy(file: file, contentHash: SHA256.hex(Array(text.utf8)), contexts: contexts, source: text,
                      maxObservationAge: age, maxSurprise: surprise, minOutcomeProbability: probability, maxLearnedSurprise: bits)
    }

    private static func parseContext(_ node: ConfigNode) throws(ConfigError) -> ContextPolicy {
        var capabilities: [String] = [], rules: [Rule] = []
        for (key, value) in try node.mapping(allowed: ["capabilities", "allow", "deny"]) {
            switch key {
            case "capabilities": capabilities = try value.strings()
            default:
                let effect: Rule.Effect = key == "allow" ? .allow : .deny
                for entry in try value.sequence() { rules.append(try parseRule(entry, effect: effect)) }
            }
        }
        // Deny rules are checked first, whatever order they were written in.
        return ContextPolicy(capabilities: capabilities, rules: rules.filter { $0.effect == .deny } + rules.filter { $0.effect == .allow })
    }

    private static func parseRule(_ node: ConfigNode, effect: Rule.Effect) throws(ConfigError) -> Rule {
        var rule = Rule(effect: effect, ops: [], paths: nil, modes: nil, actions: nil, reason: nil, location: node.location)
        var hours: (from: Int, to: Int)?, days: Set<Int>?
        for (key, value) in try node.mapping(allowed: ["op", "path", "mode", "action", "params", "rate", "reason", "kind", "device", "hours", "days"],
                                             required: ["op"]) {
            switch key {
            case "kind":
                var kinds = Set<NodeKind>()
                for name in try value.strings() {
                    guard let kind = NodeKind(rawValue: name) else {
                        throw value.error("unknown node kind \"\(name)\"", hint: "use one of: \(NodeKind.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                    kinds.insert(kind)
                }
                rule.kinds = kinds
            case "device":
                let patterns = try value.strings()
                for p in patterns where !p.contains(":") || !p.allSatisfy({ $0.isLetter || $0.isNumber || "._-*:".contains($0) }) {
                    throw value.error("device \"\(p)\" is not a profile identity pattern", hint: "write PROFILE:SERIAL, such as bench-bridge:BB-0001 or bench-bridge:*")
                }
                rule.devices = patterns
            case "hours":
                let text = try value.string()
                func minute(_ s: Substring) -> Int? {
                    let hm = s.split(separator: ":")
                    guard hm.count == 2, hm[0].count == 2, hm[1].count == 2, let h = Int(hm[0]), let m = Int(hm[1]),
                          (0...24).contains(h), (0..<60).contains(m), h * 60 + m <= 1440 else { return nil }
                    return h * 60 + m
                }
                let ends = text.split(separator: "-")
                guard ends.count == 2, let from = minute(ends[0]), let to = minute(ends[1]), from != to else {
                    throw value.error("hours \"\(text)\" is not HH:MM-HH:MM", hint: "such as 08:00-18:00, or 22:00-06:00 across midnight")
                }
                hours = (from, to)
            case "days":
                var set = Set<Int>()
                for name in try value.strings() {
                    guard let day = TimeWindow.dayNames.firstIndex(of: name.lowercased()) else {
                        throw value.error("unknown day \"\(name)\"", hint: "use mon, tue, wed, thu, fri, sat, sun")
                    }
                    set.insert(day)
                }
                days = set
            case "op":
                for name in try value.strings() {
                    guard let op = MicroOp(rawValue: name) else {
                        throw value.error("unknown operation \"\(name)\"", hint: "use one of: \(MicroOp.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                    rule.ops.insert(op)
                }
            case "path":
                rule.paths = try value.strings().map { text throws(ConfigError) in
                    do throws(PathPattern.Invalid) { return try PathPattern(text) } catch { throw value.error(error.message) }
                }
            case "mode":
                let modes = try value.strings()
                for m in modes where !MicroOp.openModes.contains(m) {
                    throw value.error("unknown open mode \"\(m)\"", hint: "use one of: \(MicroOp.openModes.sorted().joined(separator: ", "))")
                }
                rule.modes = Set(modes)
            case "action":
                let names = try value.strings()
                for n in names where !n.allSatisfy({ $0.isLetter || $0.isNumber || "._-*".contains($0) }) {
                    throw value.error("action pattern \"\(n)\" may use letters, digits, . _ - and *")
                }
                rule.actions = names
            case "params":
                var limits: [String: ClosedRange<Double>] = [:]
                for (name, range) in try value.mappingPairs() {
                    var bounds: [String: Double] = [:]
                    for (end, number) in try range.mapping(allowed: ["min", "max"], required: ["min", "max"]) {
                        let text = try number.string()
                        guard let v = Double(text), v.isFinite else { throw number.error("\"\(text)\" is not a number") }
                        bounds[end] = v
                    }
                    guard bounds["min"]! <= bounds["max"]! else { throw range.error("min \(bounds["min"]!) is above max \(bounds["max"]!)") }
                    limits[name] = bounds["min"]!...bounds["max"]!
                }
                rule.limits = limits
            case "rate":
                let text = try value.string()
                let parts = text.split(separator: "/")
                let units = ["second": 1, "minute": 60, "hour": 3600]
                guard parts.count == 2, let count = Int(parts[0]), count > 0, let seconds = units[String(parts[1])] else {
                    throw value.error("rate \"\(text)\" is not COUNT/UNIT", hint: "such as 10/minute; units: second, minute, hour")
                }
                rule.rate = Rate(count: count, seconds: seconds)
            default: rule.reason = try value.string()
            }
        }
        if rule.actions != nil && rule.ops != [.act] {
            throw node.error("\"action\" applies only to op act")
        }
        if rule.devices != nil && rule.ops != [.act] {
            throw node.error("\"device\" applies only to op act")
        }
        if hours != nil || days != nil {
            rule.window = TimeWindow(days: days ?? Set(0..<7), from: hours?.from ?? 0, to: hours?.to ?? 1440)
        }
        if rule.limits != nil && rule.ops != [.act] {
            throw node.error("\"params\" applies only to op act")
        }
        if (rule.limits != nil || rule.rate != nil) && effect == .deny {
            throw node.error("\"params\" and \"rate\" limit what an allow rule allows; a deny rule denies outright")
        }
        let pathOps: Set<MicroOp> = [.open, .openat, .spawn, .watch]
        if rule.paths != nil && !rule.ops.isSubset(of: pathOps) {
            throw node.error("\"path\" applies only to ops that name a path (open, openat, spawn, watch)",
                             hint: "descriptor operations are limited to descriptors the context holds")
        }
        return rule
    }
}

/// An absolute path pattern: `*` matches within one segment, `**` any number of segments.
public struct PathPattern: Sendable, Equatable, CustomStringConvertible {
    public struct Invalid: Error { public var message: String }
    /// The pattern's segments as bytes, matched without allocating.
    let segments: [[UInt8]]
    /// The leading segments with no wildcard: a path can match only if it starts with them,
    /// which is how the rule index finds candidates without trying every rule.
    let literalPrefix: [[UInt8]]
    public let description: String

    public init(_ text: String) throws(Invalid) {
        guard text.hasPrefix("/") else { throw Invalid(message: "path pattern \"\(text)\" must be absolute (start with /)") }
        let segments = text.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        for s in segments where s == ".." || s == "." || s.isEmpty {
            throw Invalid(message: "path pattern \"\(text)\" must be normalized: no empty, \".\" or \"..\" segments")
        }
        self.segments = segments.map { Array($0.utf8) }
        literalPrefix = Array(self.segments.prefix { !$0.contains(UInt8(ascii: "*")) && !$0.contains(UInt8(ascii: "?")) })
        description = text
    }

    /// No wildcard in it: it names one path.
    public var isLiteral: Bool { literalPrefix.count == segments.count }

    public func matches(_ path: String) -> Bool {
        guard let parts = normalizedSegments(path) else { return false }
        return matches(segments: parts)
    }

    /// Matches the segments of a normalized path (see `normalizedSegments`).
    func matches(segments path: [[UInt8]]) -> Bool { pathGlobMatches(segments, path) }
}

/// The rules of one context by operation and literal path prefix, so a decision tries only
/// the rules that could match rather than all of them; candidates keep the policy's order.
struct RuleIndex: Sendable {
    private struct Node: Sendable { var rules: [Int] = []; var children: [[UInt8]: Int] = [:] }
    private var tries: [MicroOp: [Node]] = [:]

    init(_ rules: [Policy.Rule]) {
        for (n, rule) in rules.enumerated() {
            for op in rule.ops {
                var nodes = tries[op] ?? [Node()]
                // A rule without paths sits at the root: every call of its op is a candidate.
                for prefix in rule.paths.map({ Set($0.map(\.literalPrefix)) }) ?? [[]] {
                    var at = 0
                    for segment in prefix {
                        if let next = nodes[at].children[segment] { at = next; continue }
                        nodes.append(Node())
                        nodes[at].children[segment] = nodes.count - 1
                        at = nodes.count - 1
                    }
                    nodes[at].rules.append(n)
                }
                tries[op] = nodes
            }
        }
    }

    /// Indices of the rules that may match `op` on a path with these segments, in order.
    func candidates(_ op: MicroOp, path: [[UInt8]]?) -> [Int] {
        guard let nodes = tries[op] else { return [] }
        var found = nodes[0].rules, at = 0
        for segment in path ?? [] {
            guard let next = nodes[at].children[segment] else { break }
            at = next
            found += nodes[at].rules
        }
        guard found.count > 1 else { return found }
        // A rule with several patterns along one path is listed once, in rule order.
        found.sort()
        var kept = 1
        for i in 1..<found.count where found[i] != found[kept - 1] {
            found[kept] = found[i]
            kept += 1
        }
        found.removeLast(found.count - kept)
        return found
    }
}

/// The segments of an absolute, normalized path, as bytes; nil for anything else (relative,
/// `..`, `.`, `//`, a trailing `/`, a NUL byte, where the kernel would stop reading and open a
/// shorter path than the one decided on), which the guard refuses rather than resolves.
func normalizedSegments(_ path: String) -> [[UInt8]]? {
    var parts: [[UInt8]] = [], current: [UInt8] = [], started = false
    for byte in path.utf8 {
        guard started else {
            guard byte == UInt8(ascii: "/") else { return nil }
            started = true
            continue
        }
        if byte == 0 { return nil }
        guard byte == UInt8(ascii: "/") else { current.append(byte); continue }
        parts.append(current)
        current.removeAll(keepingCapacity: true)
    }
    guard started else { return nil }
    parts.append(current)
    let dot = [UInt8(ascii: ".")], dotdot = [UInt8(ascii: "."), UInt8(ascii: ".")]
    return parts.contains { $0.isEmpty || $0 == dot || $0 == dotdot } ? nil : parts
}
