import LoopCore
import StateGraph

/// A trained model in the loop: the host's stand-in while dreaming (its returns are the most
/// likely labels, with synthetic values no real object has: descriptors from 1000, processes
/// from 100000), its shadow in filtered mode (where each real return also adds to the counts —
/// online learning, not retraining), and the dynamics model the surprise is measured against.
/// It never touches the machine: it holds no descriptor and calls nothing.
///
/// Used from the loop's thread only (the guard's preview of an approval runs there too).
public final class LearnedPredictor: Predicting, Anticipating, @unchecked Sendable {
    public private(set) var model: Model
    private var states: [String: SessionState] = [:]
    private var context = ""
    /// The last prediction: its call, its features and its distribution's best label.
    private var pending: (call: ResolvedCall, features: [String], label: String, probability: Double)?
    private var made = SyntheticValues()
    /// Calls learned from since the model was loaded (filtered mode).
    public private(set) var learned = 0

    public init(_ model: Model) { self.model = model }

    public func begin(_ proposal: Proposal) {
        context = proposal.context
        states[context, default: SessionState()].previous = "start"
        pending = nil
    }

    /// The most likely return of a call now, and its probability.
    public func predict(_ call: ResolvedCall) -> (label: String, probability: Double) {
        model.outcomes.best(states[context, default: SessionState()].features(call, context: context))
    }

    public func perform(_ call: ResolvedCall) -> CallResult {
        let features = states[context, default: SessionState()].features(call, context: context)
        let (label, probability) = model.outcomes.best(features)
        pending = (call, features, label, probability)
        return synthesize(label, for: call, payload: model.payloads[features[2]])
    }

    public func observe(_ result: CallResult, of call: ResolvedCall, real: Bool) -> Double {
        let features = pending?.call == call ? pending!.features : states[context, default: SessionState()].features(call, context: context)
        let label = OutcomeLabel.of(call, result)
        let probability = real ? model.outcomes.probability(label, features) : pending?.probability ?? model.outcomes.probability(label, features)
        if real {
            model.outcomes.add(features, label)
            learned += 1
        }
        states[context, default: SessionState()].record(call, result, label: label)
        pending = nil
        return probability
    }

    public func surprise(of observed: GraphDelta, after outcome: ActionOutcome?) -> LearnedSurprise {
        model.dynamics.surprise(of: observed, after: outcome)
    }

    /// What the model expects of an action before it runs: its most likely returns, the readings
    /// it expects after, and its confidence (the probability of the most likely return).
    public func preview(_ call: ResolvedCall, context: String) -> (returns: [(label: String, probability: Double)], readings: [String: Double]) {
        let features = states[context, default: SessionState()].features(call, context: context)
        return (Array(model.outcomes.distribution(features).prefix(3).filter { $0.probability >= 0.01 }), model.dynamics.readings(after: call))
    }

    /// A return of the label's class with values no real object has.
    func synthesize(_ label: String, for call: ResolvedCall, payload: String?) -> CallResult {
        if let errno = errnoNumber(label), !label.hasPrefix("ok"), !label.hasPrefix("scpi") { return .failure(errno: errno) }
        if let opened = made.descriptors(for: call.op) { return opened }
        switch call.op {
        case .read, .pread, .recvfrom:
            let asked = Int(call.int(.count) ?? 0)
            let bytes: [UInt8] = switch label {
            case "ok:eof": []
            case "ok:full": Array((payload.map { Array($0.utf8) } ?? []).prefix(asked)) + [UInt8](repeating: 0, count: max(0, asked - (payload?.utf8.count ?? 0)))
            default: Array((payload.map { Array($0.utf8) } ?? [UInt8](repeating: 0, count: asked / 2)).prefix(max(0, asked - 1)))
            }
            return .value(Int64(bytes.count), data: bytes)
        case .write, .pwrite, .sendto:
            let asked = Int64(call.string(.data)?.utf8.count ?? 0)
            return .value(label == "ok:full" ? asked : label == "ok:none" ? 0 : asked / 2)
        case .spawn:
            return .value(made.process())
        case .waitpid:
            let pid = call.int(.pid) ?? 0
            if label.hasPrefix("ok:exit="), let code = Int64(label.dropFirst(8)) { return .value(pid, fields: ["exit-code": code]) }
            if label.hasPrefix("ok:signal="), let signal = Int64(label.dropFirst(10)) { return .value(pid, fields: ["signal": signal]) }
            return .value(label == "ok:running" ? 0 : pid)
        case .act:
            return label == "scpi-error" ? .value(-1, fields: ["scpi-error": -200]) : .value(1)
        case .gpioGet:
            return .value(label.hasPrefix("ok:=") ? Int64(label.dropFirst(4)) ?? 0 : 0)
        case .poll:
            return .value(label == "ok:timeout" ? 0 : 1)
        default:
            return .value(0)
        }
    }
}
