import Foundation

/// Every policy a supervisor has run under, kept by content hash in its run folder
/// (`<out>/policies/<hash>.yaml`), so a change recorded in the audit log can be shown.
public struct PolicyHistory {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    /// Keep this policy's text, if it is not kept already.
    public func keep(_ policy: Policy) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let path = "\(directory)/\(policy.contentHash).yaml"
        if !FileManager.default.fileExists(atPath: path) { try Data(policy.source.utf8).write(to: URL(fileURLWithPath: path), options: .atomic) }
    }

    /// A kept policy named by its hash or a unique prefix of at least 8 hex digits.
    public func load(hash prefix: String) throws -> Policy {
        guard prefix.count >= 8, prefix.allSatisfy(\.isHexDigit) else {
            throw PolicyHistoryError("\(prefix) is neither a policy file nor a policy hash (8 to 64 hex digits)")
        }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasPrefix(prefix.lowercased()) && $0.hasSuffix(".yaml") }
        guard names.count == 1 else {
            throw PolicyHistoryError(names.isEmpty ? "no policy \(prefix) kept in \(directory)" : "policy hash \(prefix) is ambiguous in \(directory); give more digits")
        }
        return try Policy.load(file: "\(directory)/\(names[0])")
    }
}

public struct PolicyHistoryError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

extension Policy.Rule {
    /// The rule without its location: what it allows or denies, so moving it is not a change.
    public var summary: String {
        var text = "\(effect.rawValue) \(ops.map(\.rawValue).sorted().joined(separator: ","))"
        if let paths { text += " path \(paths.map(\.description).joined(separator: ","))" }
        if let modes { text += " mode \(modes.sorted().joined(separator: ","))" }
        if let actions { text += " action \(actions.joined(separator: ","))" }
        if let limits { text += " params " + limits.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.lowerBound)...\($0.value.upperBound)" }.joined(separator: ",") }
        if let rate { text += " rate \(rate)" }
        if let kinds { text += " kind \(kinds.map(\.rawValue).sorted().joined(separator: ","))" }
        if let devices { text += " device \(devices.joined(separator: ","))" }
        if let window {
            let hhmm = { (m: Int) in String(format: "%02d:%02d", m / 60, m % 60) }
            text += " days \(window.days.sorted().map { Policy.TimeWindow.dayNames[$0] }.joined(separator: ",")) hours \(hhmm(window.from))-\(hhmm(window.to))"
        }
        if let reason { text += " (\(reason))" }
        return text
    }
}

extension Policy {
    /// What changed from `old` to this policy, context by context: contexts, capabilities and
    /// rules added (`+`) or removed (`-`). Empty when every context may do exactly what it could.
    public func changes(since old: Policy) -> [String] {
        var lines: [String] = []
        for name in Set(old.contexts.keys).union(contexts.keys).sorted() {
            switch (old.contexts[name], contexts[name]) {
            case (nil, let added?):
                lines.append("+ context \(name)")
                lines += added.capabilities.sorted().map { "+   capability \($0)" } + added.rules.map { "+   \($0.summary)" }
            case (let removed?, nil):
                lines.append("- context \(name)")
                lines += removed.capabilities.sorted().map { "-   capability \($0)" } + removed.rules.map { "-   \($0.summary)" }
            case (let before?, let after?):
                var changed: [String] = []
                changed += Self.difference(before.capabilities.map { "capability \($0)" }, after.capabilities.map { "capability \($0)" })
                changed += Self.difference(before.rules.map(\.summary), after.rules.map(\.summary))
                if !changed.isEmpty { lines += ["  context \(name)"] + changed }
            default: break
            }
        }
        return lines
    }

    /// Lines only in `old` (`-`) and only in `new` (`+`), counting repeats.
    private static func difference(_ old: [String], _ new: [String]) -> [String] {
        var remaining = new
        var lines: [String] = []
        for line in old {
            if let i = remaining.firstIndex(of: line) { remaining.remove(at: i) } else { lines.append("-   \(line)") }
        }
        return lines + remaining.map { "+   \($0)" }
    }
}
