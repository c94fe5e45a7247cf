import DataEngine
import Foundation
import Guard
import Journal
import LoopCore
import Supervisor

/// `worldos generate`: many short synthetic tasks, each a real supervisor run in a sandbox of its
/// own — a temporary folder of files, a generated bench and policy, a program context under the
/// seccomp filter, and the bench bridge simulator with a fault (slow replies, lost bytes, a
/// stuck relay, an unplug) — so the dataset holds failures and recoveries, not only the happy
/// path. What each task is (its files, bench, policy, fault and when it strikes) follows from
/// the seed alone; what the machine then does (pids, timings) is recorded as it happened.
///
/// The generator plays the operator for its own simulator only: it approves the first
/// irreversible request of a task through the approval store, as `worldos approve` would, so
/// approved actions are in the data too. The guard checks those approvals like any other.
public struct Generator {
    public struct Options: Sendable {
        public var tasks = 10
        public var seed: UInt64 = 1
        public var steps = 14
        public var out = ".worldos/dataset"
        public var simulator = "Firmware/build/bench-bridge-sim"
        public var profiles = SupervisorOptions.defaults.profiles
        public init() {}
    }

    public enum Fault: String, CaseIterable, Sendable, Codable { case none, slow, drop, stuckRelay = "stuck-relay", unplug }

    /// One task, as the seed makes it.
    public struct Task: Sendable, Codable, Equatable {
        public var index: Int
        public var fault: Fault
        /// Simulator arguments for the fault.
        public var simulatorArguments: [String]
        /// The step after which the simulator is unplugged (killed), for `unplug`.
        public var unplugAfter: Int?
        public var files: [String: String]
        public var bench: String
        public var policy: String
    }

    public struct Summary: Codable, Sendable {
        public var tasks = 0
        public var transitions = 0
        public var faults: [String: Int] = [:]
        public var operations: [String: Int] = [:]
        public var errnos: [String: Int] = [:]
        public var verdicts: [String: Int] = [:]
        public var deviceActions: [String: Int] = [:]
        public var mediatedCalls: [String: Int] = [:]
        public var events: [String: Int] = [:]
    }

    public let options: Options
    public init(options: Options) { self.options = options }

    /// The journals' encoder (sorted keys), indented: task.json and summary.json are for people too.
    static var encoder: JSONEncoder {
        let e = AppendOnlyFile.encoder()
        e.outputFormatting.insert(.prettyPrinted)
        return e
    }

    /// The tasks the seed makes; faults are dealt from a shuffled deck so a few tasks cover all.
    public func plan(sandboxRoot: String) -> [Task] {
        var random = SeededRandom(seed: options.seed)
        var deck: [Fault] = []
        return (0..<options.tasks).map { i in
            if deck.isEmpty { deck = Fault.allCases.shuffled(using: &random) }
            return task(i, fault: deck.removeLast(), sandbox: sandboxRoot + String(format: "/task-%04d/sandbox", i), random: &random)
        }
    }

    private func task(_ index: Int, fault: Fault, sandbox: String, random: inout SeededRandom) -> Task {
        var files: [String: String] = [:]
        for k in 0..<3 { files["data-\(k).txt"] = (0..<Int.random(in: 1...4, using: &random)).map { _ in "line \(Int.random(in: 0..<1000, using: &random))" }.joined(separator: "\n") + "\n" }
        files["secret.txt"] = "not for any context\n"
        var arguments: [String] = []
        var unplug: Int?
        switch fault {
        case .none: break
        case .slow: arguments = ["--slow", "\(Int.random(in: 50...400, using: &random))"]
        case .drop: arguments = ["--drop", "\(Int.random(in: 3...12, using: &random))", "--seed", "\(Int.random(in: 1...1_000_000, using: &random))"]
        case .stuckRelay: arguments = ["--stuck-relay", "\(Int.random(in: 0...1, using: &random))"]
        case .unplug: unplug = Int.random(in: 3...(max(4, options.steps - 4)), using: &random)
        }
        // Micro-step traces drawn from templates, each with what can go wrong in it.
        let relay = Int.random(in: 0...1, using: &random)
        let templates: [(String, String)] = [
            ("read-data", "        - open: { path: \(sandbox)/data-\(Int.random(in: 0...2, using: &random)).txt }\n        - read: { fd: $0, count: 64 }\n        - close: { fd: $0 }\n"),
            ("read-missing", "        - open: { path: \(sandbox)/missing-\(Int.random(in: 0...9, using: &random)).txt }\n        - read: { fd: $0, count: 64 }\n"),
            ("read-secret", "        - open: { path: \(sandbox)/secret.txt }\n        - read: { fd: $0, count: 64 }\n"),
            ("create-output", "        - open: { path: \(sandbox)/out-\(Int.random(in: 0...1, using: &random)).txt, mode: create }\n        - write: { fd: $0, data: generated }\n        - close: { fd: $0 }\n"),
            ("seek-data", "        - open: { path: \(sandbox)/data-0.txt }\n        - lseek: { fd: $0, offset: \(Int.random(in: -8...64, using: &random)) }\n        - close: { fd: $0 }\n"),
            ("run-child", "        - spawn: { path: /bin/\(Bool.random(using: &random) ? "true" : "false") }\n        - waitpid: { pid: $0 }\n"),
            ("stop-child", "        - spawn: { path: /bin/sleep, args: \"5\" }\n        - kill: { pid: $0, signal: TERM }\n        - waitpid: { pid: $0 }\n"),
            ("pipe", "        - pipe: {}\n        - close: { fd: $0 }\n"),
            ("release-relay", "        - act: { device: bench-bridge, action: relay.release, params: \"relay=\(relay)\" }\n"),
            ("energise-relay", "        - act: { device: bench-bridge, action: relay.energise, params: \"relay=\(relay)\" }\n"),
            ("heater-off", "        - act: { device: bench-bridge, action: heater.off }\n"),
        ]
        // The irreversible action is in every task (approvals belong in the data), and few enough
        // traces are chosen that each comes round at least twice: asked, approved, then run.
        let others = templates.filter { $0.0 != "energise-relay" }.shuffled(using: &random)
        let count = Int.random(in: 2...max(2, min(others.count, options.steps / 2 - 1)), using: &random)
        let chosen = ([templates.first { $0.0 == "energise-relay" }!] + others.prefix(count)).shuffled(using: &random)
        let bench = """
            version: 1
            contexts:
              task:
                interval-ms: 0
                tasks:
            \(chosen.map { "      \($0.0):\n\($0.1)" }.joined())
              program:
                program: [/bin/sh, -c, "cat \(sandbox)/data-1.txt; cat \(sandbox)/secret.txt; echo x > \(sandbox)/from-program.txt"]

            """
        let policy = """
            version: 1
            contexts:
              task:
                deny:
                  - op: open
                    path: \(sandbox)/secret.txt
                    reason: the secret stays closed
                allow:
                  - op: open
                    path: \(sandbox)/*
                  - op: [read, write, close, lseek, pipe, waitpid, kill]
                  - op: spawn
                    path: [/usr/bin/true, /usr/bin/false, /usr/bin/sleep]
                  - op: act
                    action: [relay.*, heater.*]
              program:
                deny:
                  - op: open
                    path: \(sandbox)/secret.txt
                    reason: the secret stays closed
                allow:
                  - op: spawn
                    path: [/usr/bin/dash, /usr/bin/cat]
                  - op: open
                    path: [/etc/ld.so.cache, /usr/lib/**, \(sandbox)/*]

            """
        return Task(index: index, fault: fault, simulatorArguments: arguments, unplugAfter: unplug, files: files, bench: bench, policy: policy)
    }

    /// Plan and run every task into `options.out`, then summarise what the dataset covers.
    /// `progress` sees (tasks done, tasks in all) after each.
    public func run(progress: (Int, Int) -> Void = { _, _ in }) throws -> Summary {
        let root = URL(fileURLWithPath: options.out).standardizedFileURL.path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let tasks = plan(sandboxRoot: root)
        var summary = Summary()
        for task in tasks {
            try run(task, root: root)
            try summarise(task, root: root, into: &summary)
            progress(task.index + 1, tasks.count)
        }
        let data = try Self.encoder.encode(summary)
        try data.write(to: URL(fileURLWithPath: root + "/summary.json"))
        return summary
    }

    private func run(_ task: Task, root: String) throws {
        let dir = root + String(format: "/task-%04d", task.index)
        try? FileManager.default.removeItem(atPath: dir)
        let sandbox = dir + "/sandbox"
        try FileManager.default.createDirectory(atPath: sandbox, withIntermediateDirectories: true)
        chmod(sandbox, 0o777)
        for (name, text) in task.files { try text.write(toFile: sandbox + "/" + name, atomically: false, encoding: .utf8) }
        try task.bench.write(toFile: dir + "/bench.yaml", atomically: false, encoding: .utf8)
        try task.policy.write(toFile: dir + "/policy.yaml", atomically: false, encoding: .utf8)
        try Self.encoder.encode(task).write(to: URL(fileURLWithPath: dir + "/task.json"))

        let simulator = Process()
        simulator.executableURL = URL(fileURLWithPath: options.simulator)
        simulator.arguments = task.simulatorArguments + ["--serial", String(format: "GEN-%04d", task.index)]
        let output = Pipe()
        simulator.standardOutput = output
        do { try simulator.run() } catch {
            throw SupervisorError(message: "cannot start the simulator \(options.simulator): \(error); build it with `make sim`")
        }
        defer { if simulator.isRunning { simulator.terminate(); simulator.waitUntilExit() } }
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { throw SupervisorError(message: "the simulator exited before naming its port") }
            line += chunk
        }
        let pty = String(decoding: line.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)

        var settings = SupervisorOptions()
        settings.bench = dir + "/bench.yaml"
        settings.policy = dir + "/policy.yaml"
        settings.profiles = options.profiles
        settings.out = dir + "/run"
        settings.devices = [pty]
        settings.redaction = dir + "/no-redaction.yaml"
        var session = try Supervisor.start(settings)
        _ = session.launchPrograms()
        defer {
            session.stopPrograms()
            _ = session.returnToSafeState()
        }
        var approved = false
        _ = try Supervisor.run(&session.loop, steps: options.steps, interval: .milliseconds(20)) { report in
            // As `worldos approve` would: an answer the supervisor takes and records at its next ask.
            if !approved, let request = ApprovalStore.read(directory: settings.folder.approvals).first(where: { $0.state == .pending }) {
                _ = try? ApprovalStore.answer(request.id, approve: true, label: "generator", directory: settings.folder.approvals)
                approved = true
            }
            if let unplug = task.unplugAfter, report.step == unplug, simulator.isRunning {
                simulator.interrupt()
                simulator.waitUntilExit()
            }
        }
    }

    private func summarise(_ task: Task, root: String, into summary: inout Summary) throws {
        let run = RunFolder(root + String(format: "/task-%04d/run", task.index))
        let transitions = try TraceWriter.read(path: run.trace)
        summary.tasks += 1
        summary.transitions += transitions.count
        summary.faults[task.fault.rawValue, default: 0] += 1
        for t in transitions {
            for event in t.events { summary.events["\(event.source)/\(event.action)", default: 0] += 1 }
            for step in t.outcome?.steps ?? [] {
                summary.operations[step.step.op.rawValue, default: 0] += 1
                if let d = step.decision { summary.verdicts[d.verdict, default: 0] += 1 }
                if case .performed(.failure(let e)) = step.status { summary.errnos[String(cString: strerror(e)), default: 0] += 1 }
                if step.step.op == .act, let action = step.call?.string(.action) {
                    summary.deviceActions["\(action) \(step.decision?.verdict ?? "?")", default: 0] += 1
                }
            }
        }
        // The program context's calls, mediated under seccomp, are in the audit log.
        let audit = (try? String(contentsOfFile: run.audit, encoding: .utf8)) ?? ""
        for line in audit.split(separator: "\n") {
            guard let record = try? JSONDecoder().decode(AuditRecord.self, from: Data(line.utf8)), record.context == "program",
                  let verdict = record.decision else { continue }
            let call = record.call.prefix { $0 != "(" }
            summary.mediatedCalls["\(call) \(verdict)", default: 0] += 1
        }
    }
}
