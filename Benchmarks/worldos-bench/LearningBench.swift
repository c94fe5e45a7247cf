import Estimator
import Foundation
import Learning
import LoopCore
import StateGraph
import Traces

/// The outcome predictor's inference per micro-step (predict, then take in the return) against
/// the trivial predictor on the same calls, trained on 200 recorded-shape sessions of 60 calls.
func learningBenchmark() throws {
    func call(_ i: Int, session: Int) -> (ResolvedCall, CallResult) {
        let root = "/bench/session-\(session)"
        switch i % 6 {
        case 0: return (ResolvedCall(.open, ["path": .string("\(root)/in-\(i % 4).csv"), "mode": .string("read")]), .value(5))
        case 1: return (ResolvedCall(.read, ["fd": .int(5), "count": .int(256)]), .value(40, data: Array(repeating: 65, count: 40)))
        case 2: return (ResolvedCall(.close, ["fd": .int(5)]), .value(0))
        case 3: return (ResolvedCall(.open, ["path": .string("\(root)/gone-\(i).csv"), "mode": .string("read")]), .failure(errno: ENOENT))
        case 4: return (ResolvedCall(.act, ["device": .string("bench-bridge"), "action": .string("relay.release"), "params": .string("relay=\(i % 2)")]),
                        i % 12 == 4 ? .value(1) : .value(-1, fields: ["scpi-error": -200]))
        default: return (ResolvedCall(.spawn, ["path": .string("/usr/bin/true")]), .value(Int64(4000 + i)))
        }
    }
    func session(_ n: Int) -> TraceSession {
        let transitions = (0..<20).map { t in
            let steps = (0..<3).map { k in
                let (c, r) = call(t * 3 + k, session: n)
                return StepOutcome(index: k, step: MicroStep(c.op, [:]), call: c, decision: .allow(rule: "bench"), status: .performed(r))
            }
            return Transition(step: t, mode: .real, time: Instant(nanoseconds: UInt64(t)), observedNodes: 0, racedEntries: 0, surprise: nil,
                              frameHash: "", framePNG: nil, stateDelta: GraphDelta(), context: "bench",
                              outcome: ActionOutcome(proposal: Proposal(context: "bench", task: "t\(t % 5)", steps: steps.map(\.step)), steps: steps),
                              nodeCount: 0)
        }
        return TraceSession(name: "s\(n)", sha256: "\(n)", transitions: transitions)
    }
    let sessions = (0..<200).map(session)
    let model = Trainer.train(sessions, holdout: 0.2)
    let calls = (0..<60).map { call($0, session: 9999) }
    let learned = LearnedPredictor(model)
    var trivial = TrivialPredictor()
    let proposal = Proposal(context: "bench", task: "t0", steps: [])
    func perCall(_ body: () -> Void) -> Double {
        var best = Double.infinity
        for _ in 0..<7 {
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<100 { body() }
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1000 / Double(100 * calls.count))
        }
        return best
    }
    let ours = perCall {
        for (i, (c, r)) in calls.enumerated() {
            if i % 3 == 0 { learned.begin(proposal) }
            _ = learned.perform(c)
            _ = learned.observe(r, of: c, real: false)
        }
    }
    let floor = perCall { for (c, _) in calls { _ = trivial.perform(c) } }
    print("learning (outcome predictor: \(model.sources.count) sessions, \(model.trainedOn.map(\.transitions).reduce(0, +)) transitions trained on)")
    print(String(format: "  inference per micro-step:          %6.2f µs  (trivial predictor %5.2f µs, %.0f×; goal ≤ 5 µs: %@)",
                 ours, floor, ours / max(floor, 0.001), ours <= 5 ? "met" : "NOT MET"))
}

/// The grounded arithmetic probe: sums computed by real processes, and the same tasks dreamed.
func probeBenchmark() throws {
    let root = NSTemporaryDirectory() + "worldos-probe-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: root) }
    let r = try ArithmeticProbe.run(in: root, count: 30)
    print("arithmetic probe (\(r.sums.count) sums through dash and expr, then the same tasks dreamed)")
    print(String(format: "  executed: %5.1f%% exact   dreamed: %5.1f%% exact (the dream's answers: %@)",
                 r.realAccuracy * 100, r.dreamAccuracy * 100, Set(r.dreamed).sorted().prefix(4).joined(separator: ", ")))
}
