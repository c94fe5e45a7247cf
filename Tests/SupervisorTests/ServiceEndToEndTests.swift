import Foundation
import Glibc
import Guard
import Journal
import MCAP
import WorldOSTesting
import XCTest

/// `worldos run` as a service, spoken to by real clients: the CLI over the control socket, the
/// HTTP API, Prometheus's own text parser, schemathesis fuzzing from the API's description, and
/// a real headless Chromium operating the web page. Every door drives the one approval flow.
final class ServiceEndToEndTests: XCTestCase {
    var directory: String!
    var simulator: BenchSimulator!
    var supervisor: Process!
    var out: String { directory + "/out" }
    var tokens: String { directory + "/tokens.yaml" }
    var port = 0
    var secrets: [String: String] = [:]

    override func setUpWithError() throws {
        directory = try temporaryDirectory("service")
        for (name, scope) in [("reader", "read"), ("approver", "approve"), ("erin", "approve")] {
            let made = try runWorldOS(["token", "add", name, "--scope", scope, "--tokens", tokens])
            XCTAssertEqual(made.status, 0, made.stderr)
            secrets[name] = made.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        simulator = try BenchSimulator(arguments: ["--serial", "SIM-API"])
        let log = directory + "/run.log"
        FileManager.default.createFile(atPath: log, contents: nil)
        supervisor = try startWorldOS(["run", "--out", out, "--interval-ms", "100", "--device", simulator.pty, "--display", "none",
                                       "--listen", "127.0.0.1:0", "--tokens", tokens], output: try FileHandle(forWritingTo: URL(fileURLWithPath: log)))
        let deadline = Date().addingTimeInterval(60)
        while port == 0, Date() < deadline {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            if let range = text.range(of: "API and web page on http://127.0.0.1:") {
                port = Int(text[range.upperBound...].prefix { $0.isNumber }) ?? 0
            }
            usleep(100_000)
        }
        XCTAssertNotEqual(port, 0, "the API's address was never printed: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
    }

    override func tearDownWithError() throws {
        if let supervisor, supervisor.isRunning {
            kill(supervisor.processIdentifier, SIGTERM)
            supervisor.waitUntilExit()
            XCTAssertEqual(supervisor.terminationStatus, 0, "SIGTERM ends the service cleanly")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: RunFolder(out).control), "the control socket goes with the service")
        simulator = nil
    }

    var python: String { repositoryRoot.appendingPathComponent(".venv-tests/bin/python").path }

    func requirePython(_ module: String) throws {
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw XCTSkip("FAIL LOUDLY: \(python) is missing; run make setup")
        }
        let check = try run(python, ["-c", "import \(module)"])
        if check.status != 0 { throw XCTSkip("FAIL LOUDLY: the Python module \(module) is missing from .venv-tests; run make setup") }
    }

    func run(_ tool: String, _ arguments: [String], environment: [String: String] = [:]) throws -> CommandResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        process.currentDirectoryURL = repositoryRoot
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let stdout = Pipe(), stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        let o = stdout.fileHandleForReading.readDataToEndOfFile(), e = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CommandResult(status: process.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    func get(_ path: String, token: String?) throws -> (status: Int, body: Data) {
        try request("GET", path, token: token)
    }

    func request(_ method: String, _ path: String, token: String?, body: String? = nil) throws -> (status: Int, body: Data) {
        let script = """
        import sys, urllib.request, urllib.error
        r = urllib.request.Request(sys.argv[1], method=sys.argv[2], data=sys.argv[4].encode() if sys.argv[4] else None)
        if sys.argv[3]: r.add_header("Authorization", "Bearer " + sys.argv[3])
        if sys.argv[4]: r.add_header("Content-Type", "application/json")
        try:
            resp = urllib.request.urlopen(r, timeout=60); code, data = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            code, data = e.code, e.read()
        sys.stdout.write(str(code) + "\\n"); sys.stdout.flush(); sys.stdout.buffer.write(data)
        """
        let result = try run("/usr/bin/python3", ["-c", script, "http://127.0.0.1:\(port)\(path)", method, token ?? "", body ?? ""])
        let newline = result.stdout.firstIndex(of: "\n") ?? result.stdout.endIndex
        return (Int(result.stdout[..<newline]) ?? 0, Data(result.stdout[newline...].dropFirst().utf8))
    }

    func json(_ data: Data) -> [String: Any] { (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:] }

    /// The pending request for the default bench's energise, once the bench operator has asked.
    func waitForApproval() throws -> String {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if let first = (json(try get("/api/v1/approvals", token: secrets["reader"]).body)["approvals"] as? [[String: Any]])?.first,
               let id = first["id"] as? String { return id }
            usleep(200_000)
        }
        throw XCTSkip("FAIL LOUDLY: the default bench never asked for an approval")
    }

    /// The approval request `worldos act` printed (`approve with: worldos approve ID …`).
    static func request(in output: String) -> String? {
        guard let range = output.range(of: "worldos approve ") else { return nil }
        return String(output[range.upperBound...].prefix { $0.isHexDigit })
    }

    func auditRecords() -> [AuditRecord] { AuditLog.records(path: RunFolder(out).audit) }

    func testEveryDoor_drivesTheOneApprovalFlow_andEachApprovalRunsOnce() throws {
        // The CLI over the control socket: the action is asked for and waits.
        let asked = try runWorldOS(["act", "relay.energise", "relay=1", "--context", "bench-operator", "--out", out, "--timeout", "30"])
        XCTAssertEqual(asked.status, 1, asked.stdout + asked.stderr)
        XCTAssertTrue(asked.stdout.hasPrefix("needs-approval (approval "), asked.stdout)
        let id = try XCTUnwrap(Self.request(in: asked.stdout), asked.stdout)
        // The CLI lists it from the running supervisor, and a read token cannot approve it.
        XCTAssertTrue(try runWorldOS(["approvals", "--out", out]).stdout.contains(String(id)))
        XCTAssertEqual(try request("POST", "/api/v1/approvals/\(id)/approve", token: secrets["reader"]).status, 403)
        // The API approves it as the token's holder.
        let approved = try request("POST", "/api/v1/approvals/\(id)/approve", token: secrets["approver"], body: "{}")
        XCTAssertEqual(approved.status, 200, String(decoding: approved.body, as: UTF8.self))
        // The same act through the API now runs, once: the approval is used.
        let ran = try request("POST", "/api/v1/actions", token: secrets["approver"],
                              body: #"{"context": "bench-operator", "action": "relay.energise", "params": {"relay": "1"}}"#)
        XCTAssertEqual(ran.status, 200, String(decoding: ran.body, as: UTF8.self))
        XCTAssertEqual(json(ran.body)["rule"] as? String, "approval \(id) by approver")
        let again = try runWorldOS(["act", "relay.energise", "relay=1", "--context", "bench-operator", "--out", out, "--timeout", "30"])
        XCTAssertTrue(again.stdout.hasPrefix("needs-approval"), "used once: \(again.stdout)")
        // The next request is rejected over the control socket, as this user.
        let next = try XCTUnwrap(Self.request(in: again.stdout), again.stdout)
        let rejected = try runWorldOS(["reject", String(next), "--out", out])
        XCTAssertEqual(rejected.status, 0, rejected.stdout + rejected.stderr)
        XCTAssertTrue(rejected.stdout.contains("recorded in the audit log"), rejected.stdout)

        let records = auditRecords()
        XCTAssertEqual(records.filter { $0.event == "decision" && $0.rule == "approval \(id) by approver" }.count, 1, "ran exactly once")
        XCTAssertTrue(records.contains { $0.event == "approval" && $0.rule == "request \(id)" && $0.reason?.hasPrefix("by approver (api)") == true })
        XCTAssertTrue(records.contains { $0.event == "approval" && $0.rule == "request \(next)" && $0.decision == "rejected"
                                         && $0.reason?.contains("control socket") == true })
        XCTAssertTrue(records.contains { $0.event == "service-refused" && $0.reason?.hasPrefix("reader:") == true })
        XCTAssertEqual(try runWorldOS(["audit", "verify", "--out", out]).status, 0)
    }

    /// Trace control from the CLI and the API: a mark beside the loop's next step, a new file
    /// begun with it (the one before complete), each audited with its source; a read token
    /// may look but not mark; with no supervisor the CLI says so.
    func testTraceControl_fromTheCLIAndTheAPI_marksAndNewFiles() throws {
        let marked = try runWorldOS(["trace", "mark", "relay check by hand", "--out", out])
        XCTAssertEqual(marked.status, 0, marked.stdout + marked.stderr)
        XCTAssertTrue(marked.stdout.hasPrefix("marked step ") && marked.stdout.contains("in trace-0001.mcap"), marked.stdout)
        XCTAssertEqual(try request("POST", "/api/v1/trace/marks", token: secrets["reader"], body: #"{"label": "x"}"#).status, 403)
        XCTAssertEqual(try request("POST", "/api/v1/trace/marks", token: secrets["approver"], body: #"{"label": "two\nlines"}"#).status, 400)
        let begun = try request("POST", "/api/v1/trace/files", token: secrets["approver"], body: "{}")
        XCTAssertEqual(begun.status, 200, String(decoding: begun.body, as: UTF8.self))
        XCTAssertEqual(json(begun.body)["file"] as? String, "trace-0002.mcap")
        XCTAssertEqual(json(begun.body)["by"] as? String, "approver (api)")
        XCTAssertEqual(json(try get("/api/v1/trace", token: secrets["reader"]).body)["recording"] as? String, "trace-0002.mcap")
        let nowhere = try runWorldOS(["trace", "new-file", "--out", directory + "/none"])
        XCTAssertEqual(nowhere.status, 1)
        XCTAssertTrue(nowhere.stderr.contains("no supervisor runs on"), nowhere.stderr)

        let first = try MCAPReader(path: RunFolder(out).path + "/trace-0001.mcap")
        XCTAssertTrue(first.complete, "closed with its summary when the new file began")
        let markChannel = try XCTUnwrap(first.channels.values.first { $0.topic == "/worldos/mark" }).id
        let marks = first.messages.filter { $0.channel == markChannel }.compactMap { try? JSONSerialization.jsonObject(with: Data($0.data)) as? [String: Any] }
        XCTAssertEqual(marks.map { $0["label"] as? String }, ["relay check by hand"])
        XCTAssertTrue((marks.first?["by"] as? String)?.hasSuffix("control socket)") == true, "\(marks)")
        let records = auditRecords()
        XCTAssertTrue(records.contains { $0.event == "trace-mark" && $0.call == "relay check by hand" && $0.context == "control socket" })
        XCTAssertTrue(records.contains { $0.event == "trace-file" && $0.call == "trace-0002.mcap" && $0.reason?.hasPrefix("by approver (api)") == true })
    }

    func testMetrics_scrapeWithPrometheusClientsOwnParser() throws {
        try requirePython("prometheus_client")
        usleep(600_000)
        let scraped = try get("/metrics", token: secrets["reader"])
        XCTAssertEqual(scraped.status, 200)
        let file = directory + "/metrics.txt"
        try scraped.body.write(to: URL(fileURLWithPath: file))
        let parse = """
        import sys, json
        from prometheus_client.parser import text_string_to_metric_families
        families = {f.name: (f.type, [(s.name, s.labels, s.value) for s in f.samples]) for f in text_string_to_metric_families(open(sys.argv[1]).read())}
        print(json.dumps(families))
        """
        let result = try run(python, ["-c", parse, file])
        XCTAssertEqual(result.status, 0, result.stderr)
        let families = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: [Any]])
        for (name, type) in [("worldos_loop_step_seconds", "histogram"), ("worldos_loop_steps_late", "counter"), ("worldos_loop_surprise_nodes", "histogram"),
                             ("worldos_approvals_pending", "gauge"), ("worldos_trace_written_bytes", "gauge"), ("worldos_guard_decisions", "counter"),
                             ("worldos_api_requests", "counter"), ("worldos_heap_in_use_bytes", "gauge"), ("worldos_heap_free_bytes", "gauge"),
                             ("process_resident_memory_bytes", "gauge")] {
            XCTAssertEqual(families[name]?.first as? String, type, "\(name) in \(families.keys.sorted())")
        }
        let steps = (families["worldos_loop_step_seconds"]?.last as? [[Any]])?.first { $0.first as? String == "worldos_loop_step_seconds_count" }
        XCTAssertGreaterThan(steps?.last as? Double ?? 0, 0, "steps were timed")
        let decisions = (families["worldos_guard_decisions"]?.last as? [[Any]]) ?? []
        XCTAssertTrue(decisions.contains { ($0[1] as? [String: String])?["verdict"] == "allow" }, "\(decisions)")
        for name in ["worldos_heap_in_use_bytes", "process_resident_memory_bytes"] {
            XCTAssertGreaterThan(families[name].flatMap { ($0.last as? [[Any]])?.first?.last as? Double } ?? 0, 1_048_576.0, name)
        }
        XCTAssertGreaterThan(families["worldos_trace_written_bytes"].flatMap { ($0.last as? [[Any]])?.first?.last as? Double } ?? 0, 0)
    }

    func testTheAPI_fuzzedFromItsDescription_findsNo5xxAndKeepsToItsSchema() throws {
        try requirePython("schemathesis")
        let result = try run(repositoryRoot.appendingPathComponent(".venv-tests/bin/schemathesis").path,
                             ["run", "Sources/WebAPI/Web/openapi.json", "--url", "http://127.0.0.1:\(port)", "-H", "Authorization: Bearer \(secrets["approver"]!)",
                              "--checks", "all", "--max-examples", "25", "--workers", "2", "--seed", "20261207", "--no-color"],
                             environment: ["SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"])
        let summary = result.stdout.split(separator: "\n").filter { $0.contains("generated") || $0.contains("passed") || $0.contains("failures") }
        print("schemathesis: " + summary.joined(separator: " | "))
        XCTAssertEqual(result.status, 0, String(result.stdout.suffix(6000)))
        XCTAssertTrue(result.stdout.contains("generated"), "the count of cases is printed")
        // Still supervising afterwards. The token may approve, and the fuzzer finds pending
        // requests through the API's links: whatever it approved ran at most once, each with
        // its approval on the record first.
        XCTAssertTrue(supervisor.isRunning)
        let records = auditRecords()
        for (i, ran) in records.enumerated() where ran.event == "decision" && ran.rule?.hasPrefix("approval ") == true && ran.rule?.contains(" by ") == true {
            let id = ran.rule!.split(separator: " ")[1]
            XCTAssertTrue(records[..<i].contains { $0.event == "approval" && $0.rule == "request \(id)" && $0.decision == "approved" }, "\(ran)")
            XCTAssertEqual(records.filter { $0.event == "decision" && $0.rule == ran.rule }.count, 1, "approval \(id) used once")
        }
    }
}

/// The web page in a real browser: Debian's Chromium, headless, driven by selenium.
extension ServiceEndToEndTests {
    func testTheWebPage_inChromium_approvesThePendingAction_whichRunsOnce() throws {
        try requirePython("selenium")
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium"), FileManager.default.isExecutableFile(atPath: "/usr/bin/chromedriver") else {
            throw XCTSkip("FAIL LOUDLY: Chromium or chromedriver is missing; run make setup")
        }
        let id = try waitForApproval()
        let shots = repositoryRoot.appendingPathComponent(".build/test-output").path
        try FileManager.default.createDirectory(atPath: shots, withIntermediateDirectories: true)
        let script = repositoryRoot.appendingPathComponent("Tests/SupervisorTests/Web/operate-page.py").path
        func operate(_ token: String, _ mode: String, _ shot: String) throws -> [String: Any] {
            let result = try run(python, [script, "http://127.0.0.1:\(port)/", token, id, mode, "\(shots)/\(shot)"])
            XCTAssertEqual(result.status, 0, result.stderr)
            return json(Data(result.stdout.utf8))
        }
        // A read token sees the request, the panel and the readings; its Approve says why it is off.
        let looked = try operate(secrets["reader"]!, "approve", "web-page-read-only.png")
        XCTAssertEqual(looked["who"] as? String, "reader (read)")
        XCTAssertEqual(looked["disabled"] as? Bool, true)
        XCTAssertTrue((looked["title"] as? String)?.contains("needs approve") == true, "\(looked)")
        XCTAssertNil(looked["answer"], "a disabled button was not pressed")
        XCTAssertGreaterThan(looked["readings"] as? Int ?? 0, 0, "the live readings came over the WebSocket")
        // An approve token approves it through the page.
        let approved = try operate(secrets["erin"]!, "approve", "web-page.png")
        XCTAssertEqual(approved["disabled"] as? Bool, false)
        XCTAssertEqual(approved["answer"] as? String, "approved \(id) as erin (api)")
        print("web page screenshots: \(shots)/web-page.png, \(shots)/web-page-read-only.png")

        // The bench operator's next turn runs it: once, on the record as erin's, from the API.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, !auditRecords().contains(where: { $0.event == "decision" && $0.rule == "approval \(id) by erin" }) { usleep(200_000) }
        usleep(3_500_000)  // one more turn of the bench operator: it asks again rather than run twice
        let records = auditRecords()
        XCTAssertEqual(records.filter { $0.event == "decision" && $0.rule == "approval \(id) by erin" }.count, 1)
        XCTAssertTrue(records.contains { $0.event == "approval" && $0.rule == "request \(id)" && $0.reason?.hasPrefix("by erin (api)") == true })
    }
}
