import LoopCore

/// The macro library (level 1): micro-step fragments that recur across sessions, mined from the
/// proposals the traces hold, with the string arguments that differ between occurrences made
/// parameters (`{path}`). Written as YAML a bench names (`macros: FILE`) and calls
/// (`- macro: { name: open-read-close, path: /x }`).
public enum MacroMiner {
    public struct Macro: Equatable, Sendable {
        public var name: String
        public var parameters: [String]
        /// The steps, a parameter's place written `{name}`, references within the fragment.
        public var steps: [MicroStep]
        /// How many sessions ran it, and how many times in all.
        public var sessions: Int
        public var uses: Int
    }

    /// Fragments of 2…`longest` steps run in at least `least` sessions; of a fragment and a
    /// longer one containing it run as often, only the longer is kept.
    public static func mine(_ sessions: [TraceSession], least: Int = 3, longest: Int = 5) -> [Macro] {
        struct Seen { var steps: [MicroStep]; var parameters: [String]; var sessions = Set<String>(); var uses = 0 }
        var found: [String: Seen] = [:]
        for session in sessions {
            var tasksSeen = Set<String>()
            for t in session.transitions {
                guard let proposal = t.outcome?.proposal, tasksSeen.insert(proposal.context + " " + proposal.task).inserted else { continue }
                let steps = proposal.steps
                for start in steps.indices {
                    for length in 2...max(2, longest) where start + length <= steps.count {
                        guard let (key, general, parameters) = generalize(Array(steps[start..<start + length]), from: start) else { continue }
                        found[key, default: Seen(steps: general, parameters: parameters)].sessions.insert(session.name)
                        found[key]!.uses += 1
                    }
                }
            }
        }
        let frequent = found.filter { $0.value.sessions.count >= least }
        let kept = frequent.filter { key, seen in
            !frequent.contains { other, longer in
                other != key && longer.steps.count > seen.steps.count && longer.sessions.count >= seen.sessions.count && other.contains(key)
            }
        }
        var names = Set<String>()
        return kept.sorted { ($0.value.sessions.count, $0.value.steps.count, $1.key) > ($1.value.sessions.count, $1.value.steps.count, $0.key) }
            .map { _, seen in
                let base = seen.steps.map(\.op.rawValue).joined(separator: "-")
                var name = base, n = 2
                while !names.insert(name).inserted { name = "\(base)-\(n)"; n += 1 }
                return Macro(name: name, parameters: seen.parameters, steps: seen.steps, sessions: seen.sessions.count, uses: seen.uses)
            }
    }

    /// Arguments that say what a step does rather than what it does it to: kept as written.
    static let keywords: Set<String> = ["mode", "whence", "signal", "domain", "type", "events", "request", "action", "device"]

    /// A fragment with its string arguments (but the keywords) as parameters and its references counted from its
    /// start; nil when a step refers to one before the fragment.
    static func generalize(_ steps: [MicroStep], from start: Int) -> (key: String, steps: [MicroStep], parameters: [String])? {
        var parameters: [String] = []
        var out: [MicroStep] = []
        for step in steps {
            var args: [String: Argument] = [:]
            for (name, value) in step.args.sorted(by: { $0.key < $1.key }) {
                switch value {
                case .result(let n, let field):
                    guard n >= start else { return nil }
                    args[name] = .result(of: n - start, field: field)
                case .string where keywords.contains(name):
                    args[name] = value
                case .string:
                    var parameter = name, k = 2
                    while parameters.contains(parameter) { parameter = "\(name)-\(k)"; k += 1 }
                    parameters.append(parameter)
                    args[name] = .string("{\(parameter)}")
                case .int:
                    args[name] = value
                }
            }
            out.append(MicroStep(step.op, args))
        }
        return ("|" + out.map(\.description).joined(separator: "|") + "|", out, parameters)
    }

    /// The library as YAML (a bench's `macros:` file).
    public static func yaml(_ macros: [Macro], from traces: String) -> String {
        var text = "# Macros mined by worldos train from \(traces): micro-step fragments run in several sessions.\n"
        text += "# A bench names this file (macros: FILE) and calls one as a step: - macro: { name: NAME, PARAMETER: value }\nversion: 1\nmacros:\n"
        for m in macros {
            text += "  \(m.name):\n    mined: { sessions: \(m.sessions), uses: \(m.uses) }\n"
            text += "    parameters: [\(m.parameters.joined(separator: ", "))]\n    steps:\n"
            for s in m.steps {
                let args = s.args.sorted { $0.key < $1.key }.map { key, value -> String in
                    switch value {
                    case .int(let v): "\(key): \(v)"
                    case .string(let v): "\(key): \"\(v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\""))\""
                    case .result: "\(key): \(value.description)"
                    }
                }
                text += "      - \(s.op.rawValue): { \(args.joined(separator: ", ")) }\n"
            }
        }
        return text
    }
}
