import Attached
import Benches
import DataEngine
import DevicePorts
import Foundation
import Guard
import HostAdapter
import LoopCore
import Renderer
import StateGraph
import Supervisor
import WorldOSTesting
import XCTest

/// The real stages assembled, on this machine.
final class SupervisorTests: XCTestCase {
    var directory: String!
    override func setUpWithError() throws { directory = try temporaryDirectory("supervisor") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    /// A bench whose only task creates a file: the clearest sign of touching the machine.
    func creatingBench(target: String) throws -> SupervisorOptions {
        try write("""
        version: 1
        contexts:
          maker:
            interval-ms: 0
            tasks:
              make-file:
                - open: { path: \(target), mode: create }
                - write: { fd: $0, data: touched }
                - close: { fd: $0 }
        """, to: directory + "/bench.yaml")
        try write("""
        version: 1
        contexts:
          maker:
            allow:
              - op: open
                path: \(directory!)/*
              - op: [write, close]
        """, to: directory + "/policy.yaml")
        var o = SupervisorOptions()
        o.bench = directory + "/bench.yaml"
        o.policy = directory + "/policy.yaml"
        o.out = directory + "/out"
        return o
    }

    func testRealMode_actsOnTheMachine() throws {
        let target = directory + "/made-real"
        var loop = try Supervisor.make(creatingBench(target: target), clock: ManualClock())
        try loop.step()
        XCTAssertEqual(try String(contentsOfFile: target, encoding: .utf8), "touched")
    }

    func testLatentMode_neverTouchesTheMachine_evenWithTheRealHostAdapterInPlace() throws {
        let target = directory + "/made-latent"
        var options = try creatingBench(target: target)
        options.mode = .latent
        var loop = try Supervisor.make(options, clock: ManualClock())
        XCTAssertTrue(loop.host is BenchHost, "the real host adapter is in place")
        for _ in 0..<3 { try loop.step() }
        XCTAssertFalse(FileManager.default.fileExists(atPath: target), "a dream created a real file")
        XCTAssertEqual((loop.host as? BenchHost)?.linux.open, [])
        let transitions = try TraceWriter.read(path: options.folder.trace)
        XCTAssertEqual(transitions.map(\.mode), [.latent, .latent, .latent])
        XCTAssertEqual(transitions.map(\.observedNodes), [nil, nil, nil])
    }

    func testDefaultBench_deniesShadow_audits_andTheHostNeverSeesIt() throws {
        var options = SupervisorOptions()
        options.bench = repositoryRoot.appendingPathComponent("Devices/benches/default.yaml").path
        options.policy = repositoryRoot.appendingPathComponent("Policies/default.yaml").path
        options.out = directory + "/out"
        let clock = ManualClock()
        var loop = try Supervisor.make(options, clock: clock)
        let host = SpyHost { call in call.op == .open ? .value(5) : .value(0) }
        loop.host = host
        var reports: [StepReport] = []
        var denialShown: String?
        // The heater's controller takes its turns every 250 ms beside the others.
        for _ in 0..<30 {
            let report = try loop.step()
            reports.append(report)
            if report.outcome?.proposal.task == "read-shadow" { denialShown = loop.memory[.context("maintenance")]?["last-denial"]?.stringValue }
            clock.advance(by: .milliseconds(500))
        }
        let shadow = try XCTUnwrap(reports.compactMap(\.outcome).first { $0.proposal.task == "read-shadow" })
        XCTAssertEqual(shadow.steps[0].status, .denied)
        XCTAssertFalse(host.calls.contains { $0.path == "/etc/shadow" })
        XCTAssertTrue(host.calls.contains { $0.path == "/etc/hostname" })
        let audit = try String(contentsOfFile: options.folder.audit, encoding: .utf8)
        XCTAssertTrue(audit.contains(#""call":"open(path: \"/etc/shadow\")","context":"maintenance","decision":"deny""#))
        XCTAssertGreaterThan(try AuditLog.verify(path: options.folder.audit).get(), 10)
        // The refusal is on the panel's state after the run that was refused.
        XCTAssertEqual(denialShown?.hasPrefix("open(path: \"/etc/shadow\")"), true)
    }

    func testRun_recordsEveryStep_writesThePanel_andKeepsTheChain() throws {
        var options = try creatingBench(target: directory + "/run-target")
        options.out = directory + "/run"
        var loop = try Supervisor.make(options)
        var seen = 0
        let (done, interrupted) = try Supervisor.run(&loop, steps: 3, interval: .zero) { _ in seen += 1 }
        XCTAssertEqual(done, 3)
        XCTAssertFalse(interrupted)
        XCTAssertEqual(seen, 3)
        let transitions = try TraceWriter.read(path: options.folder.trace)
        XCTAssertEqual(transitions.map(\.step), [0, 1, 2])
        XCTAssertEqual(transitions[0].outcome?.steps.first?.result, .value(transitions[0].outcome!.steps.first!.result!.value!))
        XCTAssertGreaterThan(transitions[0].observedNodes ?? 0, 1)
        XCTAssertTrue(FileManager.default.fileExists(atPath: options.folder.panel))
        XCTAssertNoThrow(try AuditLog.verify(path: options.folder.audit).get())
        let records = try String(contentsOfFile: options.folder.audit, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(records.filter { $0.contains("\"decision\":\"allow\"") }.count, records.filter { $0.contains("\"event\":\"outcome\"") }.count,
                       "each allowed call has its decision and its outcome")
        XCTAssertEqual(records.filter { $0.contains("\"event\":\"policy\"") }.count, 1, "the policy it ran under is recorded once")
        // A second run appends to the same records and the chain still verifies.
        var again = try Supervisor.make(options)
        _ = try Supervisor.run(&again, steps: 1, interval: .zero) { _ in }
        XCTAssertEqual(try TraceWriter.read(path: options.folder.trace).count, 4)
        XCTAssertNoThrow(try AuditLog.verify(path: options.folder.audit).get())
    }

    func testMissingOrBrokenConfiguration_failsWithTheFileAndLine() throws {
        var options = SupervisorOptions()
        options.out = directory + "/out"
        options.bench = directory + "/absent.yaml"
        XCTAssertThrowsError(try Supervisor.make(options)) { XCTAssertTrue("\($0)".hasPrefix(self.directory + "/absent.yaml:0:0: cannot read the file"), "\($0)") }
        try write("version: 1\ncontexts:\n  a:\n    tasks:\n      t:\n        - open: { path: /x, mode: fly }\n", to: directory + "/bad.yaml")
        options.bench = directory + "/bad.yaml"
        XCTAssertThrowsError(try Supervisor.make(options)) { XCTAssertTrue("\($0)".contains("bad.yaml:6:"), "\($0)") }
    }
}

/// Malformed bench files: each error names the file and line and says what to do.
final class BenchParsingTests: XCTestCase {
    func message(_ body: String) -> String? {
        do { _ = try Bench.parse("version: 1\ncontexts:\n  c:\n    tasks:\n      t:\n" + body, file: "b.yaml"); return nil }
        catch { return "\(error)" }
    }

    func testShippedBench_loads() throws {
        let bench = try Bench.load(file: repositoryRoot.appendingPathComponent("Devices/benches/default.yaml").path)
        XCTAssertEqual(bench.contexts.map(\.name), ["telemetry", "maintenance", "bench-operator", "heater-control", "plan-runner", "sampler"])
        XCTAssertEqual(bench.contexts[5].program?.first, "/bin/sh")
        XCTAssertEqual(bench.contexts[5].user?.uid, getpwnam("nobody").map { $0.pointee.pw_uid })
        XCTAssertEqual(bench.contexts[1].tasks.map(\.name), ["read-hostname", "read-shadow"])
        XCTAssertEqual(bench.contexts[0].tasks[0].steps[1], MicroStep(.read, ["fd": .result(of: 0), "count": .int(128)]))
    }

    func testMalformedSteps_areRejectedPrecisely() {
        XCTAssertEqual(message("        - launch: { path: /x }\n"),
                       "b.yaml:6:11: contexts.c.tasks.t[0]: unknown key \"launch\" (expected one of: \(MicroOp.allCases.map(\.rawValue).joined(separator: ", ")), macro)")
        XCTAssertEqual(message("        - read: { fd: $1, count: 1 }\n        - close: { fd: 3 }\n"),
                       "b.yaml:6:23: contexts.c.tasks.t[0].read.fd: $1 refers to step 1, which does not run before step 0 (refer only to earlier steps)")
        XCTAssertEqual(message("        - read: { fd: 3, count: 99999999 }\n"),
                       "b.yaml:6:33: contexts.c.tasks.t[0].read.count: count 99999999 is out of range (use 0...1048576)")
        XCTAssertEqual(message("        - read: { fd: three, count: 1 }\n"),
                       "b.yaml:6:23: contexts.c.tasks.t[0].read.fd: fd must be a whole number, not \"three\"")
        XCTAssertEqual(message("        - read: { fd: \"3\", count: 1 }\n"),
                       "b.yaml:6:23: contexts.c.tasks.t[0].read.fd: fd must be a whole number, not \"3\"")
        XCTAssertEqual(message("        - close: {}\n"), "b.yaml:6:18: contexts.c.tasks.t[0].close: missing required key \"fd\"")
        XCTAssertEqual(message("        - open: { path: /x }\n          close: { fd: 1 }\n"),
                       "b.yaml:6:11: contexts.c.tasks.t[0]: each micro-step is one operation, such as `open: { path: /proc/loadavg }`")
        XCTAssertEqual(message("        []\n"), "b.yaml:6:9: contexts.c.tasks.t: a task needs at least one micro-step")
        XCTAssertEqual(message("        - write: { fd: $x, data: hi }\n"),
                       "b.yaml:6:24: contexts.c.tasks.t[0].write.fd: \"$x\" is not a step reference (write $N for the return of step N (0-based), or $N.field for one of its fields)")
    }

    /// The default bench's controller fits the bench bridge's profile, and its plan context is there.
    func testTheDefaultBenchsControllerAndPlanContext_load() throws {
        let bench = try Bench.load(file: repositoryRoot.appendingPathComponent("Devices/benches/default.yaml").path)
        XCTAssertEqual(bench.controllers["heater-control"]?.envelope.maximumOutput, 100)
        XCTAssertEqual(bench.contexts.first { $0.name == "heater-control" }?.periodMilliseconds, 250)
        XCTAssertEqual(bench.planContexts, ["plan-runner"])
    }

    func testMalformedContexts_areRejectedPrecisely() {
        XCTAssertEqual(try? Bench.parse("version: 1\ncontexts: {}\n", file: "b.yaml").file, nil)
        do { _ = try Bench.parse("version: 1\ncontexts:\n  c:\n    priority: 1000\n    tasks: {}\n", file: "b.yaml"); XCTFail() }
        catch { XCTAssertEqual("\(error)", "b.yaml:4:15: contexts.c.priority: 1000 is out of range (use -100...100)") }
        do { _ = try Bench.parse("version: 1\ncontexts:\n  c:\n    tasks: {}\n", file: "b.yaml"); XCTFail() }
        catch { XCTAssertEqual("\(error)", "b.yaml:4:5: contexts.c: context c has no tasks, no program, no controller and no plans (give it at least one task, a program to run, a controller, or plans: true)") }
        do { _ = try Bench.parse("version: 1\ncontexts:\n  c:\n    prio: 1\n    tasks: {}\n", file: "b.yaml"); XCTFail() }
        catch { XCTAssertEqual("\(error)", "b.yaml:4:5: contexts.c: unknown key \"prio\" (expected one of: priority, interval-ms, period-ms, deadline-ms, tasks, program, user, controller, plans)") }
        do { _ = try Bench.parse("version: 1\ncontexts:\n  c:\n    plans: true\n    period-ms: 100\n", file: "b.yaml"); XCTFail() }
        catch { XCTAssertEqual("\(error)", "b.yaml:4:5: contexts.c: a plan context runs at its interval-ms, not a period (remove period-ms)") }
        do { _ = try Bench.parse("version: 1\ncontexts:\n  c:\n    plans: true\n    tasks: { t: [ { close: { fd: 3 } } ] }\n", file: "b.yaml"); XCTFail() }
        catch { XCTAssertEqual("\(error)", "b.yaml:4:5: contexts.c: context c has more than one of tasks, program, controller and plans (give each its own context)") }
        XCTAssertEqual(try Bench.parse("version: 1\ncontexts:\n  c:\n    plans: true\n", file: "b.yaml").planContexts, ["c"])
    }

    func testMalformedProgramContexts_areRejectedPrecisely() {
        func message(_ body: String) -> String {
            do { _ = try Bench.parse("version: 1\ncontexts:\n  c:\n" + body, file: "b.yaml"); return "accepted" } catch { return "\(error)" }
        }
        XCTAssertEqual(message("    program: [sh, -c, true]\n"),
                       "b.yaml:4:14: contexts.c.program: a program is a list whose first item is an absolute path (such as [/usr/bin/python3, logger.py])")
        XCTAssertEqual(message("    program: []\n"),
                       "b.yaml:4:14: contexts.c.program: a program is a list whose first item is an absolute path (such as [/usr/bin/python3, logger.py])")
        XCTAssertEqual(message("    program: [/bin/true]\n    user: no-such-user-here\n"),
                       "b.yaml:5:11: contexts.c.user: no user \"no-such-user-here\" on this machine (name an existing user, or give UID:GID)")
        XCTAssertEqual(message("    user: nobody\n    tasks:\n      t:\n        - close: { fd: 1 }\n"),
                       "b.yaml:4:5: contexts.c: \"user\" applies only to a context with a program")
        XCTAssertEqual(message("    program: [/bin/true]\n    user: 1000:1000\n"), "accepted")
    }
}

/// The bench's program contexts, started the way `worldos run` starts them.
final class ProgramContextTests: XCTestCase {
    func testTheDefaultBenchsProgram_runsUnderTheFilter_itsCallsAudited_andStopsWithTheSession() throws {
        guard getuid() == 0 else { throw XCTSkip("FAIL LOUDLY: the default bench runs its program as nobody, which needs root") }
        var options = SupervisorOptions()
        options.bench = repositoryRoot.appendingPathComponent("Devices/benches/default.yaml").path
        options.policy = repositoryRoot.appendingPathComponent("Policies/default.yaml").path
        options.profiles = repositoryRoot.appendingPathComponent("Devices").path
        options.out = try temporaryDirectory("programs")
        var session = try Supervisor.start(options, clock: ManualClock())
        let lines = session.launchPrograms()
        XCTAssertEqual(lines.count, 1)
        XCTAssertTrue(lines[0].hasPrefix("context sampler: /bin/sh -c"), lines[0])
        let pid = try XCTUnwrap(session.programs.first?.pid)
        // The shell execs cat within its first loop: wait for the guard to have decided it.
        let deadline = Date().addingTimeInterval(10)
        var calls: [String] = []
        while Date() < deadline && !calls.contains("execve(/usr/bin/cat)") {
            usleep(50_000)
            let text = (try? String(contentsOfFile: options.folder.audit, encoding: .utf8)) ?? ""
            calls = text.split(separator: "\n").compactMap { try? JSONDecoder().decode(AuditRecord.self, from: Data($0.utf8)) }
                .filter { $0.context == "sampler" && $0.decision == "allow" }.map(\.call)
        }
        XCTAssertEqual(calls.first, "execve(/usr/bin/dash)", "the program's own start is the first decision")
        XCTAssertTrue(calls.contains("execve(/usr/bin/cat)"), "\(calls)")
        XCTAssertTrue(calls.contains { $0.contains("→ /proc/loadavg, read)") }, "\(calls)")
        // Its activity is in the graph and on the panel, not "not run yet".
        try session.loop.step()
        func panel() throws -> [Frame.Semantic] {
            try PanelRenderer.frame(of: Posterior(step: session.loop.stepCount, graph: session.loop.memory, surprise: nil, observedAt: nil),
                                    mode: .real).semantics
        }
        let program = try XCTUnwrap(session.loop.memory[ProgramObserver.node("sampler")])
        XCTAssertGreaterThanOrEqual(program["calls"]?.intValue ?? 0, Int64(calls.count))
        XCTAssertEqual(program["refused"], .int(0))
        let row = try XCTUnwrap(panel().first { $0.role == "context" && $0.label.hasPrefix("sampler") }).label
        XCTAssertTrue(row.contains("program  calls ") && !row.contains("not run yet"), row)
        session.stopPrograms()
        XCTAssertEqual(kill(pid, 0), -1, "the program is gone after the session stops it")
        XCTAssertEqual(try AuditLog.verify(path: options.folder.audit).get() > calls.count, true)
        try session.loop.step()
        XCTAssertNotNil(session.loop.memory[ProgramObserver.node("sampler")]?["ended"])
        let ended = try panel()
        XCTAssertTrue(ended.contains { $0.role == "program-exit" && $0.label.contains("ENDED") }, "\(ended.map(\.label))")
    }

    /// A program's refused calls are counted and the last is on the panel.
    func testAProgramsRefusals_areCounted_andTheLastIsShown() throws {
        guard getuid() == 0 else { throw XCTSkip("FAIL LOUDLY: needs root for the seccomp filter and a user of its own") }
        let directory = try temporaryDirectory("prober")
        try write("version: 1\ncontexts:\n  prober:\n    program: [/bin/sh, -c, \"cat /etc/shadow; sleep 30\"]\n", to: directory + "/bench.yaml")
        try write("version: 1\ncontexts:\n  prober:\n    allow:\n      - op: spawn\n        path: [/usr/bin/dash, /usr/bin/cat, /usr/bin/sleep]\n"
                  + "      - op: open\n        path: [/usr/**, /etc/ld.so.cache]\n", to: directory + "/policy.yaml")
        var options = SupervisorOptions()
        options.bench = directory + "/bench.yaml"
        options.policy = directory + "/policy.yaml"
        options.out = directory + "/out"
        var session = try Supervisor.start(options, clock: ManualClock())
        XCTAssertEqual(session.launchPrograms().count, 1)
        defer { session.stopPrograms() }
        let deadline = Date().addingTimeInterval(10)
        var program: Node?
        while Date() < deadline {
            try session.loop.step()
            program = session.loop.memory[ProgramObserver.node("prober")]
            if program?["last-refusal"]?.stringValue?.contains("/etc/shadow") == true { break }
            usleep(50_000)
        }
        XCTAssertGreaterThan(program?["refused"]?.intValue ?? 0, 0, "\(String(describing: program))")
        XCTAssertTrue(program?["last-refusal"]?.stringValue?.contains("/etc/shadow") == true, "\(String(describing: program))")
        let panel = try PanelRenderer.frame(of: Posterior(step: 0, graph: session.loop.memory, surprise: nil, observedAt: nil), mode: .real).semantics
        XCTAssertTrue(panel.contains { $0.role == "denial" && $0.label.contains("REFUSED") && $0.label.contains("/etc/shadow") }, "\(panel.map(\.label))")
    }
}

final class TraceRecoveryTests: XCTestCase {
    func testReopenedTrace_cutsATornLastTransition_andKeepsTheRest() throws {
        let dir = try temporaryDirectory("trace")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var options = SupervisorOptions()
        options.bench = repositoryRoot.appendingPathComponent("Devices/benches/default.yaml").path
        options.policy = repositoryRoot.appendingPathComponent("Policies/default.yaml").path
        options.out = dir
        var loop = try Supervisor.make(options, clock: ManualClock())
        try loop.step()
        try loop.step()
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: options.folder.trace))
        handle.seekToEndOfFile()
        handle.write(Data(#"{"step":2,"mo"#.utf8))
        handle.closeFile()
        XCTAssertThrowsError(try TraceWriter.read(path: options.folder.trace)) { XCTAssertTrue("\($0)".contains("line 3 is not a transition"), "\($0)") }
        let reopened = try TraceWriter(path: options.folder.trace)
        XCTAssertEqual(reopened.tornTailBytes, 13)
        XCTAssertEqual(try TraceWriter.read(path: options.folder.trace).map(\.step), [0, 1])
    }
}
