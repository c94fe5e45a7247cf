import Config
import Foundation
import LoopCore

/// A bench's macro library (`macros: FILE`, as `worldos train` mines it): named micro-step
/// fragments with parameters, which a task calls as one step (`- macro: { name: N, path: /x }`)
/// and which expand, when the bench is loaded, into the steps the guard then decides one by one.
public struct MacroLibrary: Sendable {
    public struct Macro: Sendable {
        public var parameters: [String]
        public var steps: [MicroStep]
    }
    public var file = ""
    public var macros: [String: Macro] = [:]

    public init() {}

    public static func load(file: String) throws(ConfigError) -> MacroLibrary {
        let root = try ConfigNode.load(file: file)
        var library = MacroLibrary()
        library.file = file
        for (key, value) in try root.mapping(allowed: ["version", "macros"], required: ["version", "macros"]) {
            if key == "version" { _ = try value.int(in: 1...1); continue }
            for (name, body) in try value.namedEntries(what: "macro") {
                var macro = Macro(parameters: [], steps: [])
                for (field, v) in try body.mapping(allowed: ["parameters", "steps", "mined"], required: ["steps"]) {
                    switch field {
                    case "parameters": macro.parameters = try v.strings()
                    case "steps": macro.steps = try Bench.parseSteps(v).steps
                    default: _ = try v.mappingPairs()
                    }
                }
                for step in macro.steps {
                    for case .string(let text) in step.args.values {
                        for p in Self.placeholders(text) where !macro.parameters.contains(p) {
                            throw body.error("macro \(name) uses {\(p)}, which is not one of its parameters", hint: "add \(p) to its parameters")
                        }
                    }
                }
                library.macros[name] = macro
            }
        }
        return library
    }

    static func placeholders(_ text: String) -> [String] {
        text.split(separator: "{", omittingEmptySubsequences: false).dropFirst().compactMap { part in
            part.firstIndex(of: "}").map { String(part[..<$0]) }
        }
    }

    /// A call (`{ name: N, PARAMETER: value, … }`) as the steps it stands for, their references
    /// moved to where they land (`at`).
    func expand(_ node: ConfigNode, at start: Int) throws(ConfigError) -> (MacroUse, [MicroStep]) {
        var values: [String: String] = [:]
        for (key, value) in try node.mappingPairs() { values[key] = try value.string() }
        guard let name = values.removeValue(forKey: "name") else { throw node.error("a macro call needs its name", hint: "- macro: { name: NAME, … }") }
        guard let macro = macros[name] else {
            throw node.error("no macro \(name)" + (file.isEmpty ? " (the bench names no macro library)" : " in \(file)"),
                             hint: file.isEmpty ? "add `macros: FILE` to the bench" : "one of: \(macros.keys.sorted().joined(separator: ", "))")
        }
        for p in macro.parameters where values[p] == nil { throw node.error("macro \(name) needs \(p)") }
        if let extra = values.keys.sorted().first(where: { !macro.parameters.contains($0) }) {
            throw node.error("macro \(name) takes no \(extra)", hint: "its parameters: \(macro.parameters.joined(separator: ", "))")
        }
        let steps = macro.steps.map { step in
            MicroStep(step.op, step.args.mapValues { arg -> Argument in
                switch arg {
                case .result(let n, let field): return .result(of: n + start, field: field)
                case .string(var text):
                    for (p, v) in values { text = text.replacingOccurrences(of: "{\(p)}", with: v) }
                    return .string(text)
                case .int: return arg
                }
            })
        }
        return (MacroUse(name: name, first: start, steps: steps.count), steps)
    }
}
