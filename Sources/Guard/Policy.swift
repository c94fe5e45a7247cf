import Config
import Foundation
import LoopCore

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
        /// `file:line` of the rule, cited in every decision it makes.
        public var location: String

        func matches(_ call: ResolvedCall) -> Bool {
            guard ops.contains(call.op) else { return false }
            if let paths {
                guard let path = call.path, paths.contains(where: { $0.matches(path) }) else { return false }
            }
            if let modes, call.op == .open || call.op == .openat, !modes.contains(call.args["mode"]?.string ?? "read") { return false }
            if let actions {
                guard call.op == .act, let name = call.args["action"]?.string, actions.contains(where: { Policy.glob($0, name) }) else { return false }
            }
            return true
        }
    }

    public struct ContextPolicy: Sendable {
        public var capabilities: [String]
        public var rules: [Rule]
    }

    public var file: String
    /// SHA-256 of the policy file's bytes; written into every audit record.
    public var contentHash: String
    public var contexts: [String: ContextPolicy]

    public static func load(file: String) throws(ConfigError) -> Policy {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ConfigError(file: file, line: 0, column: 0, message: "cannot read the policy file", hint: "check the path")
        }
        return try parse(String(decoding: data, as: UTF8.self), file: file)
    }

    public static func parse(_ text: String, file: String) throws(ConfigError) -> Policy {
        let root = try ConfigNode.parse(text, file: file)
        var contexts: [String: ContextPolicy] = [:]
        for (key, value) in try root.mapping(allowed: ["version", "contexts"], required: ["version", "contexts"]) {
            switch key {
            case "version":
                guard try value.int(in: 1...1) == 1 else { throw value.error("unsupported version") }
            default:
                for (name, body) in try value.namedEntries(what: "context") {
                    contexts[name] = try parseContext(body)
                }
            }
        }
        return Policy(file: file, contentHash: SHA256.hex(Array(text.utf8)), contexts: contexts)
    }

    private static func parseContext(_ node: ConfigNode) throws(ConfigError) -> ContextPolicy {
        var policy = ContextPolicy(capabilities: [], rules: [])
        for (key, value) in try node.mapping(allowed: ["capabilities", "allow", "deny"]) {
            switch key {
            case "capabilities": policy.capabilities = try value.strings()
            default:
                let effect: Rule.Effect = key == "allow" ? .allow : .deny
                for entry in try value.sequence() { policy.rules.append(try parseRule(entry, effect: effect)) }
            }
        }
        // Deny rules are checked first, whatever order they were written in.
        policy.rules.sort { $0.effect == .deny && $1.effect == .allow }
        return policy
    }

    private static func parseRule(_ node: ConfigNode, effect: Rule.Effect) throws(ConfigError) -> Rule {
        var rule = Rule(effect: effect, ops: [], paths: nil, modes: nil, actions: nil, reason: nil, location: node.location)
        for (key, value) in try node.mapping(allowed: ["op", "path", "mode", "action", "reason"], required: ["op"]) {
            switch key {
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
            default: rule.reason = try value.string()
            }
        }
        if rule.actions != nil && rule.ops != [.act] {
            throw node.error("\"action\" applies only to op act")
        }
        let pathOps: Set<MicroOp> = [.open, .openat, .spawn, .watch]
        if rule.paths != nil && !rule.ops.isSubset(of: pathOps) {
            throw node.error("\"path\" applies only to ops that name a path (open, openat, spawn, watch)",
                             hint: "descriptor operations are limited to descriptors the context holds")
        }
        return rule
    }
}

extension Policy {
    /// `*` any run of characters.
    static func glob(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern), t = Array(text)
        func match(_ i: Int, _ j: Int) -> Bool {
            if i == p.count { return j == t.count }
            if p[i] == "*" { return (j...t.count).contains { match(i + 1, $0) } }
            return j < t.count && p[i] == t[j] && match(i + 1, j + 1)
        }
        return match(0, 0)
    }
}

/// An absolute path pattern: `*` matches within one segment, `**` any number of segments.
public struct PathPattern: Sendable, Equatable, CustomStringConvertible {
    public struct Invalid: Error { public var message: String }
    let segments: [Substring]
    public let description: String

    public init(_ text: String) throws(Invalid) {
        guard text.hasPrefix("/") else { throw Invalid(message: "path pattern \"\(text)\" must be absolute (start with /)") }
        let segments = text.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        for s in segments where s == ".." || s == "." || s.isEmpty {
            throw Invalid(message: "path pattern \"\(text)\" must be normalized: no empty, \".\" or \"..\" segments")
        }
        self.segments = Array(segments)
        description = text
    }

    public func matches(_ path: String) -> Bool {
        guard let parts = normalizedSegments(path) else { return false }
        return match(segments[...], parts[...])
    }

    private func match(_ p: ArraySlice<Substring>, _ s: ArraySlice<Substring>) -> Bool {
        guard let head = p.first else { return s.isEmpty }
        if head == "**" {
            var rest = s
            while true {
                if match(p.dropFirst(), rest) { return true }
                guard !rest.isEmpty else { return false }
                rest = rest.dropFirst()
            }
        }
        guard let first = s.first, globMatch(Array(head.utf8)[...], Array(first.utf8)[...]) else { return false }
        return match(p.dropFirst(), s.dropFirst())
    }

    private func globMatch(_ p: ArraySlice<UInt8>, _ s: ArraySlice<UInt8>) -> Bool {
        guard let c = p.first else { return s.isEmpty }
        if c == UInt8(ascii: "*") {
            var rest = s
            while true {
                if globMatch(p.dropFirst(), rest) { return true }
                guard !rest.isEmpty else { return false }
                rest = rest.dropFirst()
            }
        }
        guard let d = s.first, c == UInt8(ascii: "?") || c == d else { return false }
        return globMatch(p.dropFirst(), s.dropFirst())
    }
}

/// The segments of an absolute, normalized path; nil for anything else (relative, `..`, `//`),
/// which the guard refuses rather than resolves.
func normalizedSegments(_ path: String) -> [Substring]? {
    guard path.hasPrefix("/") else { return nil }
    let parts = Array(path.split(separator: "/", omittingEmptySubsequences: false).dropFirst())
    if parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) { return nil }
    return parts
}
