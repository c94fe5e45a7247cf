import DataEngine
import Foundation
import Learning
import LoopCore
import Supervisor

/// The grounded arithmetic probe: the difference between executing and dreaming, measured. A
/// bench of tasks that each compute a sum through real processes (`dash` runs a script that
/// runs `expr`, into a file the task then opens and reads) runs on a real supervisor; a model is
/// trained on that run; then the same tasks are dreamed in it. The real sums are exact; a dream
/// can only say the bytes such a read usually returned.
public enum ArithmeticProbe {
    public struct Result: Sendable {
        public var sums: [(a: Int, b: Int)]
        /// What each task read, really and dreamed.
        public var real: [String]
        public var dreamed: [String]
        public var realAccuracy: Double { accuracy(real) }
        public var dreamAccuracy: Double { accuracy(dreamed) }
        func accuracy(_ answers: [String]) -> Double {
            Double(zip(sums, answers).filter { "\($0.a + $0.b)" == $1 }.count) / Double(max(sums.count, 1))
        }
    }

    /// Run the probe in `root` (made if missing): `count` sums from `seed`.
    public static func run(in root: String, count: Int = 30, seed: UInt64 = 1, profiles: String = SupervisorOptions.defaults.profiles) throws -> Result {
        var random = SeededRandom(seed: seed)
        let sums = (0..<count).map { _ in (a: Int.random(in: 0..<500, using: &random), b: Int.random(in: 0..<500, using: &random)) }
        let calc = root + "/calc"
        try FileManager.default.createDirectory(atPath: calc, withIntermediateDirectories: true)
        try "#!/bin/sh\nexpr \"$1\" + \"$2\" > \"$3\"\n".write(toFile: calc + "/sum.sh", atomically: false, encoding: .utf8)
        chmod(calc + "/sum.sh", 0o755)
        let tasks = sums.enumerated().map { i, s in
            """
                  sum-\(i):
                    - spawn: { path: /usr/bin/dash, args: "\(calc)/sum.sh \(s.a) \(s.b) \(calc)/out-\(i).txt" }
                    - waitpid: { pid: $0 }
                    - open: { path: \(calc)/out-\(i).txt }
                    - read: { fd: $2, count: 32 }
                    - close: { fd: $2 }

            """
        }.joined()
        try "version: 1\ncontexts:\n  calc:\n    interval-ms: 0\n    tasks:\n\(tasks)".write(toFile: root + "/bench.yaml", atomically: false, encoding: .utf8)
        try """
            version: 1
            contexts:
              calc:
                allow:
                  - op: spawn
                    path: /usr/bin/dash
                  - op: open
                    path: \(calc)/*
                  - op: [read, close, waitpid]

            """.write(toFile: root + "/policy.yaml", atomically: false, encoding: .utf8)

        var settings = SupervisorOptions()
        (settings.bench, settings.policy, settings.profiles) = (root + "/bench.yaml", root + "/policy.yaml", profiles)
        (settings.out, settings.keys, settings.redaction) = (root + "/run", root + "/keys", root + "/no-redaction.yaml")
        var session = try Supervisor.start(settings)
        _ = try Supervisor.run(&session.loop, steps: count, interval: .zero) { _ in }
        let transitions = try TraceWriter.read(path: settings.folder.trace)
        let real = answers(transitions.compactMap(\.outcome))

        let model = LearnedPredictor(Trainer.train([TraceSession(name: "probe/run/trace.jsonl", sha256: "", transitions: transitions)], holdout: 0))
        var dream = Dream.Options(bench: settings.bench)
        (dream.policy, dream.profiles, dream.out, dream.steps) = (settings.policy, profiles, root + "/dream", count)
        let dreamed = answers(try Dream.run(dream, model: model).compactMap(\.report.outcome))
        return Result(sums: sums, real: real, dreamed: dreamed)
    }

    /// What each task's read returned, in task order (empty: nothing read).
    static func answers(_ outcomes: [ActionOutcome]) -> [String] {
        var byTask: [String: String] = [:]
        for o in outcomes {
            let data = o.steps.first { $0.call?.op == .read }?.result?.data ?? []
            byTask[o.proposal.task] = String(decoding: data.prefix { $0 != 0 }, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return (0..<byTask.count).map { byTask["sum-\($0)"] ?? "" }
    }
}
