import Foundation
import Yams

/// A configuration file that could not be loaded: where, what, and what to do about it.
public struct ConfigError: Error, CustomStringConvertible, Equatable, Sendable {
    public var file: String
    public var line: Int
    public var column: Int
    public var message: String
    public var hint: String

    public init(file: String, line: Int, column: Int, message: String, hint: String) {
        self.file = file
        self.line = line
        self.column = column
        self.message = message
        self.hint = hint
    }
    public var description: String { "\(file):\(line):\(column): \(message)" + (hint.isEmpty ? "" : " (\(hint))") }
}

/// One node of a YAML configuration file, read strictly: every accessor checks the type, every
/// mapping rejects unknown and duplicate keys, and every error names the file and line.
public struct ConfigNode: @unchecked Sendable {
    let node: Yams.Node
    public let file: String
    /// Where in the document this node is, such as `contexts.telemetry.allow[0]`.
    public let path: String

    public var line: Int { node.mark?.line ?? 1 }
    public var column: Int { node.mark?.column ?? 1 }
    /// `file:line`, to cite this node in decisions and messages.
    public var location: String { "\(file):\(line)" }

    public func error(_ message: String, hint: String = "") -> ConfigError {
        ConfigError(file: file, line: line, column: column, message: "\(path.isEmpty ? "document" : path): \(message)", hint: hint)
    }

    /// Parse a YAML document. An empty document is an error: a config file says something.
    public static func parse(_ text: String, file: String) throws(ConfigError) -> ConfigNode {
        let root: Yams.Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigError.from(error, file: file)
        } catch {
            throw ConfigError(file: file, line: 1, column: 1, message: "cannot parse: \(error)", hint: "check the YAML syntax")
        }
        guard let root else {
            throw ConfigError(file: file, line: 1, column: 1, message: "the file is empty", hint: "see the examples beside it")
        }
        return ConfigNode(node: root, file: file, path: "")
    }

    public static func load(file: String) throws(ConfigError) -> ConfigNode {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ConfigError(file: file, line: 0, column: 0, message: "cannot read the file", hint: "check the path and its permissions")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: file, line: 0, column: 0, message: "the file is not UTF-8 text", hint: "save it as UTF-8")
        }
        return try parse(text, file: file)
    }

    /// The mapping's entries, in file order. Keys outside `allowed` and repeated keys are errors;
    /// keys in `required` must be present.
    public func mapping(allowed: [String], required: [String] = []) throws(ConfigError) -> [(key: String, value: ConfigNode)] {
        guard case .mapping(let m) = node else { throw error("expected a mapping of \(allowed.joined(separator: ", "))") }
        var seen: Set<String> = []
        var out: [(String, ConfigNode)] = []
        for (k, v) in m {
            let keyNode = ConfigNode(node: k, file: file, path: path)
            guard case .scalar(let s) = k else { throw keyNode.error("keys must be plain words") }
            guard allowed.contains(s.string) else {
                throw keyNode.error("unknown key \"\(s.string)\"", hint: "expected one of: \(allowed.joined(separator: ", "))")
            }
            guard seen.insert(s.string).inserted else { throw keyNode.error("key \"\(s.string)\" appears twice", hint: "keep one") }
            out.append((s.string, ConfigNode(node: v, file: file, path: path.isEmpty ? s.string : "\(path).\(s.string)")))
        }
        for key in required where !seen.contains(key) {
            throw error("missing required key \"\(key)\"")
        }
        return out
    }

    /// A mapping whose keys are names chosen by the author (context names, task names).
    public func namedEntries(what: String) throws(ConfigError) -> [(name: String, value: ConfigNode)] {
        guard case .mapping(let m) = node else { throw error("expected a mapping of \(what) by name") }
        var seen: Set<String> = []
        var out: [(String, ConfigNode)] = []
        for (k, v) in m {
            let keyNode = ConfigNode(node: k, file: file, path: path)
            guard case .scalar(let s) = k, !s.string.isEmpty else { throw keyNode.error("\(what) names must be plain words") }
            let name = s.string
            guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                throw keyNode.error("\(what) name \"\(name)\" may use only letters, digits, - and _")
            }
            guard seen.insert(name).inserted else { throw keyNode.error("\(what) \"\(name)\" is defined twice", hint: "keep one") }
            out.append((name, ConfigNode(node: v, file: file, path: path.isEmpty ? name : "\(path).\(name)")))
        }
        return out
    }

    /// A mapping's entries by key, in file order, with no restriction on the keys' spelling
    /// (the caller checks them); repeated keys are still an error.
    public func mappingPairs() throws(ConfigError) -> [(key: String, value: ConfigNode)] {
        guard case .mapping(let m) = node else { throw error("expected a mapping") }
        var seen: Set<String> = []
        var out: [(String, ConfigNode)] = []
        for (k, v) in m {
            let keyNode = ConfigNode(node: k, file: file, path: path)
            guard case .scalar(let s) = k else { throw keyNode.error("keys must be plain words") }
            guard seen.insert(s.string).inserted else { throw keyNode.error("key \"\(s.string)\" appears twice", hint: "keep one") }
            out.append((s.string, ConfigNode(node: v, file: file, path: path.isEmpty ? s.string : "\(path).\(s.string)")))
        }
        return out
    }

    /// True when this node is a list (for fields that take one item or several).
    public var isSequence: Bool { if case .sequence = node { true } else { false } }

    public func sequence() throws(ConfigError) -> [ConfigNode] {
        guard case .sequence(let s) = node else { throw error("expected a list") }
        return s.enumerated().map { ConfigNode(node: $1, file: file, path: "\(path)[\($0)]") }
    }

    public func string() throws(ConfigError) -> String {
        guard case .scalar(let s) = node else { throw error("expected a single value") }
        return s.string
    }

    /// A single word or a list of words.
    public func strings() throws(ConfigError) -> [String] {
        if case .scalar(let s) = node { return [s.string] }
        return try sequence().map { n throws(ConfigError) in try n.string() }
    }

    public func int(in range: ClosedRange<Int64>) throws(ConfigError) -> Int64 {
        let text = try string()
        guard let v = Int64(text) else { throw error("\"\(text)\" is not a whole number") }
        guard range.contains(v) else { throw error("\(v) is out of range", hint: "use \(range.lowerBound)...\(range.upperBound)") }
        return v
    }

    public func double(in range: ClosedRange<Double>) throws(ConfigError) -> Double {
        let text = try string()
        guard let v = Double(text), v.isFinite else { throw error("\"\(text)\" is not a number") }
        guard range.contains(v) else { throw error("\(text) is out of range", hint: "use \(range.lowerBound)...\(range.upperBound)") }
        return v
    }

    public func bool() throws(ConfigError) -> Bool {
        switch try string() {
        case "true": return true
        case "false": return false
        case let other: throw error("\"\(other)\" is not true or false")
        }
    }

    /// Scalar as written: an integer if it reads as one, else a string. For micro-step arguments.
    public var isInteger: Bool {
        guard case .scalar(let s) = node, s.style == .plain || s.style == .any else { return false }
        return Int64(s.string) != nil
    }
}

extension ConfigError {
    static func from(_ error: YamlError, file: String) -> ConfigError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return ConfigError(file: file, line: mark.line, column: mark.column, message: "YAML syntax: \(problem)",
                               hint: "check indentation and quoting near this line")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return ConfigError(file: file, line: context.mark.line, column: context.mark.column,
                               message: "key \(duplicates.map { "\"\($0)\"" }.joined(separator: ", ")) appears twice", hint: "keep one")
        default:
            return ConfigError(file: file, line: 1, column: 1, message: "YAML: \(error)", hint: "check the file is valid YAML")
        }
    }
}
