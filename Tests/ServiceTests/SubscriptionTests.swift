import Foundation
import Glibc
import LoopCore
import Service
import StateGraph
import WebAPI
import XCTest

/// WebSocket subscriptions: what a subscriber is sent, at what rate, and what becomes of one
/// that does not keep up (dropped, not waited for).
final class SubscriptionTests: XCTestCase {
    func graph(temperature: Double) throws -> Graph {
        var graph = Graph()
        try graph.apply(GraphDelta([.addNode(Node(id: NodeID("sensor:bench-bridge/SIM-0001/heater-temperature"), kind: .sensor,
                                                  attributes: ["value": .double(temperature), "unit": .string("°C"), "reading": .string("heater-temperature")]))]))
        return graph
    }

    func decision(step: Int) -> StepReport {
        let call = MicroStep(.act, ["device": .string("bench-bridge"), "action": .string("relay.energise"), "params": .string("relay=0")])
        let outcome = ActionOutcome(proposal: Proposal(context: "bench-operator", task: "energise-relay", steps: [call]),
                                    steps: [StepOutcome(index: 0, step: call, call: nil, decision: .needsApproval(request: "0123456789abcdef", reason: "irreversible"), status: .denied)])
        return StepReport(step: step, mode: .real, events: [ObservedEvent(source: "uevent", action: "add", subject: "/devices/usb1", time: Instant(nanoseconds: 1))],
                          context: "bench-operator", outcome: outcome)
    }

    func testASubscriber_getsReadingsDecisionsEventsAndGraphDeltas_overAWebSocket() throws {
        let f = try ServiceFixture()
        let (server, port) = try serve(f)
        defer { server.stop() }

        // The browser's way: the token as a subprotocol beside worldos.
        let ws = RawWebSocket(port: port, path: "/api/v1/subscribe?topics=readings,decisions,events,graph&interval-ms=10",
                              headers: ["Sec-WebSocket-Protocol: worldos, bearer.\(f.secrets["reader"]!)"])
        XCTAssertEqual(ws.status, 101)
        XCTAssertEqual(ws.headers["sec-websocket-protocol"], "worldos")
        // The subscription is made at the upgrade; wait for it before publishing.
        untilSubscribed(f)
        f.model.publish(decision(step: 1), graph: try graph(temperature: 24.5), semantics: [])
        var topics: [String: [String: Any]] = [:]
        while topics.count < 4, let message = ws.nextJSON() { topics[message["topic"] as? String ?? "?"] = message }
        XCTAssertEqual(Set(topics.keys), ["readings", "decisions", "events", "graph"])
        let reading = (topics["readings"]?["readings"] as? [[String: Any]])?.first
        XCTAssertEqual(reading?["value"] as? Double, 24.5)
        XCTAssertEqual(reading?["unit"] as? String, "°C")
        let decided = (topics["decisions"]?["decisions"] as? [[String: Any]])?.first
        XCTAssertEqual(decided?["verdict"] as? String, "needs-approval")
        XCTAssertEqual(decided?["context"] as? String, "bench-operator")
        XCTAssertEqual(((topics["events"]?["events"] as? [[String: Any]])?.first)?["subject"] as? String, "/devices/usb1")
        XCTAssertFalse((topics["graph"]?["delta"] as? [Any] ?? []).isEmpty)

        // Only what changed comes again: a new temperature is a reading, an unchanged graph no delta.
        usleep(20_000)
        f.model.publish(StepReport(step: 2, mode: .real), graph: try graph(temperature: 25.0), semantics: [])
        let next = try XCTUnwrap(ws.nextJSON())
        XCTAssertEqual(next["topic"] as? String, "readings")
        XCTAssertEqual((next["readings"] as? [[String: Any]])?.first?["value"] as? Double, 25.0)
    }

    /// The panel, live: a message when the frame changed (its hash and semantics tree), none
    /// while it stays the same.
    func testAPanelSubscriber_getsEachNewFrame_andNothingWhileItStays() throws {
        let f = try ServiceFixture()
        let (server, port) = try serve(f)
        defer { server.stop() }
        let ws = RawWebSocket(port: port, path: "/api/v1/subscribe?topics=panel&interval-ms=10",
                              headers: ["Sec-WebSocket-Protocol: worldos, bearer.\(f.secrets["reader"]!)"])
        XCTAssertEqual(ws.status, 101)
        untilSubscribed(f)
        let button = Frame.Semantic(role: "button", label: "APPROVE", node: NodeID("approval:1"), x: 1, y: 2, width: 3, height: 4, actions: ["approve"])
        f.model.publish(StepReport(step: 1, mode: .real, frameHash: "aaaa"), graph: Graph(), semantics: [button])
        var first = ws.nextJSON()
        while let m = first, m["frame"] as? String != "aaaa" { first = ws.nextJSON() }  // the empty frame of step 0 came first
        XCTAssertEqual(first?["topic"] as? String, "panel")
        XCTAssertEqual(((first?["semantics"] as? [[String: Any]])?.first)?["label"] as? String, "APPROVE")
        usleep(20_000)
        f.model.publish(StepReport(step: 2, mode: .real, frameHash: "aaaa"), graph: Graph(), semantics: [button])
        usleep(20_000)
        f.model.publish(StepReport(step: 3, mode: .real, frameHash: "bbbb"), graph: Graph(), semantics: [])
        let next = ws.nextJSON()
        XCTAssertEqual(next?["frame"] as? String, "bbbb", "step 2 drew the same frame: nothing was sent for it")
        XCTAssertEqual(next?["step"] as? Int, 3)
    }

    func testASubscription_endsWhenItsTokenIsRevoked() throws {
        let f = try ServiceFixture()
        let (server, port) = try serve(f)
        defer { server.stop() }
        let ws = RawWebSocket(port: port, path: "/api/v1/subscribe?topics=readings&interval-ms=10",
                              headers: ["Authorization: Bearer \(f.secrets["reader"]!)"])
        XCTAssertEqual(ws.status, 101)
        untilSubscribed(f, graph: try graph(temperature: 20))
        f.model.publish(StepReport(step: 1, mode: .real), graph: try graph(temperature: 21), semantics: [])
        XCTAssertEqual(ws.nextJSON()?["topic"] as? String, "readings", "subscribed and sent")
        // The reader's entry taken out of the file: its open subscription ends at the next message.
        let text = try String(contentsOfFile: f.tokenPath, encoding: .utf8)
        try text.components(separatedBy: "  - name: ").filter { !$0.hasPrefix("reader\n") }.joined(separator: "  - name: ")
            .write(toFile: f.tokenPath, atomically: false, encoding: .utf8)
        usleep(20_000)  // past the subscription's interval: a message is due
        f.model.publish(StepReport(step: 2, mode: .real), graph: try graph(temperature: 22), semantics: [])
        var frame = ws.next()
        while case .text? = frame { frame = ws.next() }
        guard case .close(_, let reason)? = frame else { return XCTFail("not closed: \(String(describing: frame))") }
        XCTAssertTrue(reason.contains("no longer in the token file"), reason)
    }

    func testASubscriptionWithoutAToken_orAskingForWhatIsNot_isNotUpgraded_andSaysWhy() throws {
        let f = try ServiceFixture()
        let (server, port) = try serve(f)
        defer { server.stop() }
        // Upgraded and closed at once with the reason, which a browser can show; audited.
        for (headers, says) in [([String](), "401 send Authorization"), (["Sec-WebSocket-Protocol: worldos, bearer.wos_nope"], "401 that token"),
                                (["Authorization: Bearer \(f.secrets["reader"]!)"], "")] {
            let path = says.isEmpty ? "/api/v1/subscribe?topics=gossip" : "/api/v1/subscribe"
            let ws = RawWebSocket(port: port, path: path, headers: headers)
            XCTAssertEqual(ws.status, 101)
            guard case .close(let code, let reason)? = ws.next() else { XCTFail("\(headers): not closed"); continue }
            XCTAssertEqual(code, 1008)
            XCTAssertTrue(reason.hasPrefix(says.isEmpty ? "400 query: topic \"gossip\"" : says), "\(headers): \(reason)")
        }
        XCTAssertTrue(f.records().contains { $0.event == "service-refused" && $0.call == "GET /api/v1/subscribe" })
        let http = RawHTTP(port: port)
        let token = f.secrets["reader"]!
        let badTopic = http.request("GET", "/api/v1/subscribe?topics=gossip", token: token)
        XCTAssertEqual(badTopic.status, 400)
        XCTAssertTrue((badTopic.json["error"] as? String)?.contains("topic \"gossip\"") == true, badTopic.text)
        XCTAssertEqual(http.request("GET", "/api/v1/subscribe?interval-ms=1", token: token).status, 400)
        XCTAssertEqual(http.request("GET", "/api/v1/subscribe", token: token).status, 426, "a plain GET is told to upgrade")
    }

    func testASubscriberThatDoesNotKeepUp_isDropped_andTheLoopNeverWaits() throws {
        let f = try ServiceFixture()
        let slow = f.model.subscribe([.readings, .decisions], interval: .zero, limit: 4)
        var closedBy: String?
        let closed = expectation(description: "closed")
        slow.onClose = { closed.fulfill() }
        // Steps keep coming and nobody takes the messages: publishing goes on regardless.
        for step in 0..<20 { f.model.publish(decision(step: step), graph: try graph(temperature: Double(step)), semantics: []) }
        wait(for: [closed], timeout: 5)
        closedBy = slow.closedBecause
        XCTAssertTrue(closedBy?.hasPrefix("too slow") == true, closedBy ?? "not closed")
        // A subscriber that keeps up on the same steps is not touched.
        let keen = f.model.subscribe([.readings], interval: .zero)
        let taking = Task { await keen.next() }
        f.model.publish(StepReport(step: 21, mode: .real), graph: try graph(temperature: 99), semantics: [])
        let got = try XCTUnwrap(waitFor(taking))
        XCTAssertTrue(String(decoding: got, as: UTF8.self).contains("99"))
    }

    /// Subscribers that last had the graph at the same step share the delta made for them; each
    /// one's deltas, applied to the graph it subscribed on, still make every step's graph.
    func testGraphDeltas_sharedOrNot_eachRebuildTheGraphPublished() throws {
        let f = try ServiceFixture()
        func graph(_ step: Int) throws -> Graph {
            var g = Graph()
            var changes = (0..<3).map { n in
                GraphChange.addNode(Node(id: NodeID("sensor:bench/\(n)"), kind: .sensor, attributes: ["value": .int(Int64(step * (n + 1)))]))
            }
            if (2...3).contains(step) { changes.append(.addNode(Node(id: NodeID("sensor:bench/extra"), kind: .sensor, attributes: ["value": .int(Int64(step))]))) }
            try g.apply(GraphDelta(changes))
            return g
        }
        struct Message: Decodable { var topic: String; var step: Int; var delta: GraphDelta }
        // Every step, every 30 ms (so it skips steps: its deltas are from other steps than the
        // others'), and every step from step 4 on.
        var subscribed: [(subscriber: Subscriber, graph: Graph)] = [(f.model.subscribe([.graph], interval: .zero), Graph()),
                                                                    (f.model.subscribe([.graph], interval: .milliseconds(30)), Graph())]
        for step in 1...9 {
            if step == 4 { subscribed.append((f.model.subscribe([.graph], interval: .zero), try graph(3))) }
            usleep(step == 9 ? 60_000 : 12_000)
            f.model.publish(StepReport(step: step, mode: .real), graph: try graph(step), semantics: [])
        }
        var counts: [Int] = []
        for (i, s) in subscribed.enumerated() {
            var (last, count) = (0, 0)
            while last < 9 {
                let bytes = try XCTUnwrap(waitFor(Task { await s.subscriber.next() }), "subscriber \(i) after step \(last)")
                let message = try JSONDecoder().decode(Message.self, from: Data(bytes))
                XCTAssertEqual(message.topic, "graph")
                try subscribed[i].graph.apply(message.delta)
                XCTAssertEqual(subscribed[i].graph.snapshot(), try graph(message.step).snapshot(), "subscriber \(i), step \(message.step)")
                (last, count) = (message.step, count + 1)
            }
            counts.append(count)
        }
        XCTAssertEqual(counts[0], 9)
        XCTAssertLessThan(counts[1], 9, "the 30 ms subscriber skipped steps")
        XCTAssertEqual(counts[2], 6, "steps 4 to 9")
    }

    /// A server on loopback for the fixture's model, and its port.
    func serve(_ f: ServiceFixture) throws -> (APIServer, Int) {
        let server = try APIServer(model: f.model, tokens: try f.makeTokens(), listen: "127.0.0.1:0")
        return (server, Int(try server.start().split(separator: ":").last!)!)
    }

    /// The subscription is made at the upgrade, after the client has its 101: publish steps
    /// (of `graph`) until the model counts it, for at most 10 s.
    func untilSubscribed(_ f: ServiceFixture, graph: Graph = Graph()) {
        let deadline = Date().addingTimeInterval(10)
        while !String(decoding: f.model.metrics.exposition(), as: UTF8.self).contains("worldos_api_subscribers 1"), Date() < deadline {
            f.model.publish(StepReport(step: 0, mode: .real), graph: graph, semantics: [])
            usleep(20_000)
        }
    }

    func waitFor(_ task: Task<[UInt8]?, Never>) -> [UInt8]? {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: [UInt8]?
        Task { result = await task.value; done.signal() }
        _ = done.wait(timeout: .now() + 5)
        return result
    }
}
