import Foundation
import Glibc
import Guard
import Journal
import LoopCore
import Service
import StateGraph
import WebAPI
import WorldOSTesting
import XCTest

/// The HTTP API on a real Hummingbird server on loopback, spoken to over plain TCP.
final class APITests: XCTestCase {
    var f: ServiceFixture!
    var server: APIServer!
    var http: RawHTTP!

    override func setUpWithError() throws {
        f = try ServiceFixture()
        server = try APIServer(model: f.model, tokens: try f.makeTokens(), listen: "127.0.0.1:0")
        let address = try server.start()
        http = RawHTTP(port: Int(address.split(separator: ":").last!)!)
    }

    override func tearDown() {
        server.stop()
        server = nil
        f = nil
    }

    func testWithoutARightToken_nothingIsServed_andTheRefusalIsAudited() throws {
        let none = http.request("GET", "/api/v1/status")
        XCTAssertEqual(none.status, 401)
        XCTAssertEqual(none.headers["www-authenticate"], "Bearer realm=\"worldos\"")
        XCTAssertEqual(none.json["ok"] as? Bool, false)
        XCTAssertEqual(http.request("GET", "/api/v1/status", token: "wos_" + String(repeating: "0", count: 64)).status, 401)
        XCTAssertEqual(http.request("GET", "/api/v1/status", headers: ["Authorization: Basic YWxpY2U6c2VjcmV0"]).status, 401)
        XCTAssertEqual(http.request("GET", "/metrics").status, 401)
        XCTAssertEqual(http.request("GET", "/api/v1/panel.png").status, 401)
        let refused = f.records().filter { $0.event == "service-refused" }
        XCTAssertFalse(refused.isEmpty, "refusals are on the record")
        XCTAssertEqual(refused.first?.context, "api")
        XCTAssertTrue(refused.first?.reason?.contains("anonymous: no bearer token") == true, "\(refused)")
        XCTAssertEqual(http.request("GET", "/api/v1/status", token: f.secrets["reader"]).status, 200)
        // The page and the API's description are open: they hold nothing of the machine.
        XCTAssertEqual(http.request("GET", "/").status, 200)
        XCTAssertEqual(http.request("GET", "/api/v1/openapi.json").json["openapi"] as? String, "3.1.0")
    }

    /// The token file edited while the supervisor runs: a token removed stops working at the next
    /// request, one added works at once, and a file that no longer loads accepts no token at all.
    func testTheTokenFile_editedWhileRunning_takesEffectAtTheNextRequest() throws {
        let (reader, approver) = (f.secrets["reader"]!, f.secrets["approver"]!)
        XCTAssertEqual(http.request("GET", "/api/v1/status", token: reader).status, 200)
        // Revoked by hand: the reader's entry taken out of the file, in place.
        let text = try String(contentsOfFile: f.tokenPath, encoding: .utf8)
        let kept = text.components(separatedBy: "  - name: ").filter { !$0.hasPrefix("reader\n") }.joined(separator: "  - name: ")
        try kept.write(toFile: f.tokenPath, atomically: false, encoding: .utf8)
        XCTAssertEqual(http.request("GET", "/api/v1/status", token: reader).status, 401, "a revoked token works no more")
        XCTAssertEqual(http.request("GET", "/api/v1/status", token: approver).status, 200)
        // Added by worldos token add (a new file renamed over the old): works at once.
        let newcomer = try TokenFile.add(name: "newcomer", scope: .read, to: f.tokenPath)
        XCTAssertEqual(http.request("GET", "/api/v1/status", token: newcomer).status, 200)
        // Made readable to others, then malformed: no token is accepted, saying so, until fixed.
        usleep(1_100_000)  // refusals are audited one a second: the revoked reader's was the last
        let path = f.tokenPath
        for spoil: () -> Void in [{ chmod(path, 0o644) }, { chmod(path, 0o600); try? "tokens: [".write(toFile: path, atomically: false, encoding: .utf8) }] {
            spoil()
            let refused = http.request("GET", "/api/v1/status", token: approver)
            XCTAssertEqual(refused.status, 401)
            XCTAssertTrue((refused.json["error"] as? String)?.contains("token file is fixed") == true, refused.text)
        }
        XCTAssertTrue(f.records().contains { $0.event == "service-refused" && ($0.reason ?? "").contains("the token file does not load") },
                      "the refusal is audited")
        try kept.write(toFile: f.tokenPath, atomically: false, encoding: .utf8)
        XCTAssertEqual(http.request("GET", "/api/v1/status", token: approver).status, 200, "fixed: accepted again")
        XCTAssertEqual(http.request("GET", "/api/v1/status", token: newcomer).status, 401, "the fixed file does not hold the newcomer")
    }

    func testScopes_readOperateApprove_eachIncludingTheOneBefore() throws {
        let pending = try f.pendingApproval()
        let reader = f.secrets["reader"]!, operate = f.secrets["operator"]!, approver = f.secrets["approver"]!
        let approve = "/api/v1/approvals/\(pending.id)/approve"
        let denied = http.request("POST", approve, token: reader, body: Array("{}".utf8))
        XCTAssertEqual(denied.status, 403)
        XCTAssertTrue((denied.json["error"] as? String)?.contains("scope read") == true)
        XCTAssertEqual(http.request("POST", approve, token: operate, body: Array("{}".utf8)).status, 403)
        XCTAssertEqual(f.approvals.all().first?.state, .pending, "refused requests change nothing")
        XCTAssertTrue(f.records().contains { $0.event == "service-refused" && $0.reason?.hasPrefix("reader:") == true })

        let who = http.request("GET", "/api/v1/whoami", token: reader).json
        XCTAssertEqual(who["name"] as? String, "reader")
        let may = try XCTUnwrap(who["may"] as? [String: Any])
        XCTAssertTrue((may["approve"] as? String)?.contains("needs approve") == true, "the page shows why its buttons are off")
        XCTAssertTrue(may["graph"] is NSNull)

        let approved = http.request("POST", approve, token: approver, body: Array(#"{"label": "from the control room"}"#.utf8))
        XCTAssertEqual(approved.status, 200, approved.text)
        XCTAssertEqual(approved.json["by"] as? String, "approver (api) labelled \"from the control room\"")
        XCTAssertEqual(f.approvals.all().first?.state, .approved)
        let record = try XCTUnwrap(f.records().last { $0.event == "approval" })
        XCTAssertEqual(record.rule, "request \(pending.id)")
        XCTAssertTrue(record.reason?.hasPrefix("by approver (api)") == true, record.reason ?? "")
        XCTAssertEqual(http.request("POST", approve, token: approver).status, 409, "an approval is given once")
    }

    func testTheTwoPersonRule_countsTokensAsPeople() throws {
        let pending = try f.approvals.request(ApprovalBinding(context: "bench-operator", action: "heater.enable", device: "bench-bridge:SIM-0001",
                                                              path: "/dev/pts/9", params: [:]), approvers: 2)
        let path = "/api/v1/approvals/\(pending.id)/approve"
        XCTAssertEqual(http.request("POST", path, token: f.secrets["approver"]).status, 200)
        XCTAssertEqual(f.approvals.all().first?.state, .pending)
        XCTAssertEqual(http.request("POST", path, token: f.secrets["approver"]).status, 409, "the same token is the same person")
        let second = try TokenFile.add(name: "dana", scope: .approve, to: f.tokenPath)
        server.stop()
        server = try APIServer(model: f.model, tokens: try TokenFile.load(f.tokenPath), listen: "127.0.0.1:0")
        http = RawHTTP(port: Int(try server.start().split(separator: ":").last!)!)
        XCTAssertEqual(http.request("POST", path, token: second).status, 200)
        XCTAssertEqual(f.approvals.all().first?.state, .approved)
    }

    func testMalformedRequests_getA4xxThatSaysWhat() throws {
        let token = f.secrets["approver"]!
        let cases: [(String, String, [UInt8]?, Int, String)] = [
            ("POST", "/api/v1/actions", Array("{not json".utf8), 400, "is not JSON"),
            ("POST", "/api/v1/actions", Array("[]".utf8), 400, "must be a JSON object"),
            ("POST", "/api/v1/actions", Array(#"{"context": "bench-operator"}"#.utf8), 400, "field \"action\" is required"),
            ("POST", "/api/v1/actions", Array(#"{"context": "bench-operator", "action": "relay.energise", "force": true}"#.utf8), 400, "unknown field \"force\""),
            ("POST", "/api/v1/actions", Array(#"{"context": "bench-operator", "action": "relay.energise", "timeout-s": 9999}"#.utf8), 400, "timeout-s"),
            ("POST", "/api/v1/actions", Array(#"{"context": "bench-operator", "action": "relay.energise", "params": [1]}"#.utf8), 400, "must be an object"),
            ("POST", "/api/v1/actions", [UInt8](repeating: UInt8(ascii: " "), count: 100_000), 413, "larger than"),
            ("GET", "/api/v1/graph?kind=dragon", nil, 400, "not a node kind"),
            ("GET", "/api/v1/graph?color=red", nil, 400, "unknown field \"color\""),
            ("GET", "/api/v1/audit?count=0", nil, 400, "from 1 to 10000"),
            ("GET", "/api/v1/audit?count=lots", nil, 400, "whole number"),
            ("GET", "/api/v1/graph?id=process:1", nil, 404, "no node process:1"),
            ("POST", "/api/v1/approvals/ffffffffffffffff/approve", nil, 404, "no approval request"),
            ("POST", "/api/v1/approvals/x/reject", Array(#"{"label": 5}"#.utf8), 400, "must be a string"),
            ("POST", "/api/v1/fault/ack", nil, 409, "no fault"),
        ]
        for (method, path, body, status, says) in cases {
            let r = http.request(method, path, token: token, body: body)
            XCTAssertEqual(r.status, status, "\(method) \(path): \(r.text.prefix(200))")
            XCTAssertEqual(r.json["ok"] as? Bool, false, "\(method) \(path)")
            XCTAssertTrue((r.json["error"] as? String)?.contains(says) == true, "\(method) \(path) → \(r.text.prefix(300))")
        }
        // A context the bench lacks is the guard's default deny, as from the run folder's inbox.
        let elsewhere = http.request("POST", "/api/v1/actions", token: token, body: Array(#"{"context": "elsewhere", "action": "relay.energise"}"#.utf8))
        XCTAssertEqual(elsewhere.status, 409)
        XCTAssertEqual(elsewhere.json["verdict"] as? String, "deny")
        XCTAssertEqual(elsewhere.json["rule"] as? String, "default-deny")
        XCTAssertTrue((elsewhere.json["reason"] as? String)?.contains("no context elsewhere") == true, elsewhere.text)
        // Not HTTP at all: the connection is answered with 400 or closed (at the latest when it
        // has been idle 10 s); the server serves on.
        let garbage = http.exchange(Array("\u{1}\u{2}GARBAGE\r\n\r\n".utf8))
        XCTAssertTrue(garbage.status == 400 || garbage.status == 0, "\(garbage.status)")
        XCTAssertEqual(http.request("GET", "/api/v1/status", token: token).status, 200)
    }

    func testAnActionNoContextTakes_isWithdrawnAndSaysSo() throws {
        // No loop runs here: nothing takes the request, which is withdrawn and never runs.
        let r = http.request("POST", "/api/v1/actions", token: f.secrets["operator"],
                             body: Array(#"{"context": "bench-operator", "action": "relay.release", "params": {"relay": "0"}, "timeout-s": 1}"#.utf8))
        XCTAssertEqual(r.status, 409, r.text)
        XCTAssertTrue((r.json["error"] as? String)?.contains("withdrawn, it will not run") == true, r.text)
        let left = (try? FileManager.default.contentsOfDirectory(atPath: f.folder.requests)) ?? []
        XCTAssertTrue(left.allSatisfy { $0.hasSuffix(".withdrawn") == false && $0.hasSuffix(".json") == false }, "\(left)")
    }

    func testAFloodOfActions_isShedWith503_whileReadsAreStillAnswered() throws {
        // No loop runs here: each action holds a worker for its 2 s and is withdrawn (409).
        let flood = APIServer.waitingThreads + APIServer.waitingQueued + 12
        let body = Array(#"{"context": "bench-operator", "action": "relay.release", "params": {"relay": "0"}, "timeout-s": 2}"#.utf8)
        let (http, token) = (http!, f.secrets["operator"]!)
        let answered = Locked([RawHTTP.Response]())
        let group = DispatchGroup()
        for _ in 0..<flood {
            group.enter()
            Thread.detachNewThread {
                let r = http.request("POST", "/api/v1/actions", token: token, body: body)
                answered.withLock { $0.append(r) }
                group.leave()
            }
        }
        usleep(500_000)
        XCTAssertEqual(http.request("GET", "/api/v1/status", token: token).status, 200, "a read is not queued behind the actions")
        XCTAssertEqual(group.wait(timeout: .now() + 60), .success)
        let answers = answered.current
        let shed = answers.filter { $0.status == 503 }
        XCTAssertGreaterThan(shed.count, 0, "more actions than the pool takes: some are refused at once")
        XCTAssertTrue(shed.allSatisfy { $0.headers["retry-after"] == "1" && $0.text.contains("retry") }, "\(shed.first?.text ?? "")")
        XCTAssertGreaterThanOrEqual(answers.filter { $0.status == 409 }.count, APIServer.waitingThreads + APIServer.waitingQueued,
                                    "every action the pool took was answered (withdrawn: no loop runs)")
        XCTAssertEqual(answers.count - shed.count, answers.filter { $0.status == 409 }.count, "\(Set(answers.map(\.status)))")
    }

    func testTheGraphAndThePanel_areTheLastStepsAndTheirSemantics() throws {
        var graph = Graph()
        try graph.apply(GraphDelta([.addNode(Node(id: NodeID("sensor:bench/1/temperature"), kind: .sensor, attributes: ["value": .double(24.5), "unit": .string("°C")]))]))
        let semantics = [Frame.Semantic(role: "button", label: "APPROVE", node: NodeID("approval:1"), x: 10, y: 20, width: 100, height: 40,
                                        actions: ["approve"], disabled: "nobody operates this panel")]
        f.model.publish(StepReport(step: 7, mode: .real), graph: graph, semantics: semantics)
        let token = f.secrets["reader"]!
        let nodes = http.request("GET", "/api/v1/graph?kind=sensor", token: token).json["nodes"] as? [[String: Any]]
        XCTAssertEqual(nodes?.first?["id"] as? String, "sensor:bench/1/temperature")
        let one = http.request("GET", "/api/v1/graph?id=sensor:bench/1/temperature", token: token).json
        XCTAssertEqual((one["node"] as? [String: Any])?["kind"] as? String, "sensor")
        let whole = http.request("GET", "/api/v1/graph", token: token).json["graph"] as? [String: Any]
        XCTAssertEqual((whole?["nodes"] as? [Any])?.count, graph.nodeCount)
        let panel = http.request("GET", "/api/v1/panel/semantics", token: token).json
        XCTAssertEqual(panel["step"] as? Int, 7)
        XCTAssertEqual((panel["semantics"] as? [[String: Any]])?.first?["disabled"] as? String, "nobody operates this panel")
        XCTAssertEqual(http.request("GET", "/api/v1/status", token: token).json["step"] as? Int, 7)
        // No frame drawn into this run folder: said, not faked.
        XCTAssertEqual(http.request("GET", "/api/v1/panel.png", token: token).status, 404)
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3]
        FileManager.default.createFile(atPath: f.folder.panel, contents: Data(png))
        let drawn = http.request("GET", "/api/v1/panel.png", token: token)
        XCTAssertEqual(drawn.headers["content-type"], "image/png")
        XCTAssertEqual(drawn.body, png)
    }

    func testTheAuditLog_tailAndVerify() throws {
        _ = try f.pendingApproval()
        let pending = try f.pendingApproval(action: "heater.enable")
        _ = try f.model.answer(pending.id, approve: false, by: Approver("erin", via: "api"))
        let token = f.secrets["reader"]!
        let tail = http.request("GET", "/api/v1/audit?count=1", token: token).json["records"] as? [[String: Any]]
        XCTAssertEqual(tail?.count, 1)
        XCTAssertEqual(tail?.first?["decision"] as? String, "rejected")
        let verified = http.request("GET", "/api/v1/audit/verify", token: token)
        XCTAssertEqual(verified.status, 200, verified.text)
        XCTAssertEqual(verified.json["intact"] as? Bool, true)
        // A record edited behind the supervisor's back: the API says where the chain breaks.
        var text = try String(contentsOfFile: f.folder.audit, encoding: .utf8)
        text = text.replacingOccurrences(of: "\"rejected\"", with: "\"approved\"")
        try text.write(toFile: f.folder.audit, atomically: false, encoding: .utf8)
        let broken = http.request("GET", "/api/v1/audit/verify", token: token)
        XCTAssertEqual(broken.status, 409)
        XCTAssertTrue((broken.json["error"] as? String)?.contains("seq") == true, broken.text)
    }
}
