import DataEngine
import Foundation
import Journal
import LoopCore
import MCAP
import StateGraph
import WorldOSTesting
import XCTest

/// The trace's lines come from the project's JSON writer: the bytes JSONEncoder gives with the
/// journals' settings, for every transition of the golden run (contexts acting, denials,
/// approvals, events, panel semantics) and for one with every optional member missing.
final class TransitionJSONTests: XCTestCase {
    func testEveryGoldenTransition_isEncodedAsJSONEncoderEncodesIt() throws {
        let golden = repositoryRoot.appendingPathComponent("Tests/SupervisorTests/Golden/traces/default-bench.mcap").path
        let reader = try MCAPReader(path: golden)
        let channel = try XCTUnwrap(reader.channels.values.first { $0.topic == "/worldos/transition" })
        let transitions = try reader.messages.filter { $0.channel == channel.id }.map { try JSONDecoder().decode(Transition.self, from: Data($0.data)) }
        XCTAssertGreaterThan(transitions.count, 20)
        XCTAssertTrue(transitions.contains { $0.outcome != nil && $0.semanticsAdded != nil && !$0.stateDelta.isEmpty })
        let bare = Transition(step: 0, mode: .latent, time: Instant(nanoseconds: 1), observedNodes: nil, racedEntries: nil, surprise: nil,
                              frameHash: "\"quoted\"/\\", framePNG: nil, stateDelta: GraphDelta(), context: nil, outcome: nil, nodeCount: 1)
        for t in transitions + [bare] {
            XCTAssertEqual(String(decoding: try TransitionJSON.encode(t), as: UTF8.self),
                           String(decoding: try AppendOnlyFile.encoder().encode(t), as: UTF8.self), "step \(t.step)")
        }
    }
}
