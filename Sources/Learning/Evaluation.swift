import Foundation
import LoopCore

/// A model measured on sessions it was not trained on, beside two baselines: the majority label
/// of training, and "same as last time" (what the same call on the same object returned last in
/// this session; the majority label before it ever ran).
public struct Evaluation: Codable, Equatable, Sendable {
    public struct Scores: Codable, Equatable, Sendable {
        public var model: Double
        public var majority: Double
        public var sameAsLast: Double
    }

    public var sessions: [String]
    public var calls: Int
    public var steps: Int
    /// Next-return accuracy, and log-loss in bits per call (majority: training's label frequencies).
    public var accuracy: Scores
    public var logLoss: Scores
    /// Graph-delta precision and recall over the kinds of change each step's observation shows.
    public var deltaPrecision: Scores
    public var deltaRecall: Scores
    /// Accuracy of the k-th return predicted from a position, feeding the model its own
    /// predictions in between (k = 1…16); the baselines know only what happened before the position.
    public var rollout: [Scores]
    /// Labels the held-out sessions returned, and how many times.
    public var labels: [String: Int]

    public static let horizon = 16

    /// eval.json: indented, sorted keys; a score there is none of is `"nan"`.
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try encoder.encode(self)
    }

    public static func read(_ data: Data) throws -> Evaluation {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try decoder.decode(Evaluation.self, from: data)
    }

    /// The sessions to evaluate on: those the model held out, and any it never saw.
    public static func heldOut(_ sessions: [TraceSession], by model: Model) -> [TraceSession] {
        let trained = Set(model.trainedOn.map(\.sha256))
        return sessions.filter { !trained.contains($0.sha256) }
    }

    public static func run(_ model: Model, on sessions: [TraceSession]) -> Evaluation {
        let majority = model.outcomes.labels.max { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key }?.key ?? "ok"
        var right = (model: 0, majority: 0, last: 0), loss = (model: 0.0, majority: 0.0)
        var rolled = [(model: Int, majority: Int, last: Int, n: Int)](repeating: (0, 0, 0, 0), count: horizon)
        var labels: [String: Int] = [:]
        var calls = 0
        for session in sessions {
            var records: [Record] = []
            var last: [String: String] = [:]
            session.calls { features, call, result, label, context in
                let key = features[2] + " " + SessionState().describe(call).object
                let best = model.outcomes.best(features).label
                let said = last[key] ?? majority
                right.model += best == label ? 1 : 0
                right.majority += majority == label ? 1 : 0
                right.last += said == label ? 1 : 0
                loss.model -= log2(model.outcomes.probability(label, features))
                loss.majority -= log2(model.outcomes.base(label))
                labels[label, default: 0] += 1
                records.append(Record(context: context, call: call, result: result, label: label, starts: features[0].hasSuffix("|start"), key: key))
                last[key] = label
                calls += 1
            }
            rollout(model, records, majority: majority, into: &rolled)
        }
        var delta = (model: Counts(), majority: Counts(), last: Counts())
        var steps = 0
        let usual = Set((model.dynamics.items["all"] ?? [:]).filter { Double($0.value) > Double(model.dynamics.steps["all"] ?? 0) / 2 }.keys)
        for session in sessions {
            var previous = Set<String>()
            for (t, next) in zip(session.transitions, session.transitions.dropFirst()) {
                let seen = DynamicsModel.items(of: next.observationDelta ?? .init())
                delta.model.add(model.dynamics.predicted(after: t.outcome), seen)
                delta.majority.add(usual, seen)
                delta.last.add(previous, seen)
                previous = seen
                steps += 1
            }
        }
        let n = Double(max(calls, 1))
        return Evaluation(
            sessions: sessions.map(\.name), calls: calls, steps: steps,
            accuracy: Scores(model: Double(right.model) / n, majority: Double(right.majority) / n, sameAsLast: Double(right.last) / n),
            logLoss: Scores(model: loss.model / n, majority: loss.majority / n, sameAsLast: .nan),
            deltaPrecision: Scores(model: delta.model.precision, majority: delta.majority.precision, sameAsLast: delta.last.precision),
            deltaRecall: Scores(model: delta.model.recall, majority: delta.majority.recall, sameAsLast: delta.last.recall),
            // A horizon no session is long enough for has no score (nan).
            rollout: rolled.map { r in
                let d = r.n == 0 ? .nan : Double(r.n)
                return Scores(model: Double(r.model) / d, majority: Double(r.majority) / d, sameAsLast: Double(r.last) / d)
            },
            labels: labels)
    }

    struct Record {
        var context: String
        var call: ResolvedCall
        var result: CallResult
        var label: String
        var starts: Bool
        /// The call on its object: what "same as last time" remembers a label for.
        var key: String
    }

    struct Counts {
        var truePositive = 0, falsePositive = 0, falseNegative = 0
        mutating func add(_ predicted: Set<String>, _ seen: Set<String>) {
            truePositive += predicted.intersection(seen).count
            falsePositive += predicted.subtracting(seen).count
            falseNegative += seen.subtracting(predicted).count
        }
        var precision: Double { truePositive + falsePositive == 0 ? 1 : Double(truePositive) / Double(truePositive + falsePositive) }
        var recall: Double { truePositive + falseNegative == 0 ? 1 : Double(truePositive) / Double(truePositive + falseNegative) }
    }

    /// From every position, the next `horizon` calls predicted with the model's own predictions
    /// as the returns before them (each context's state rolled forward on them); the calls
    /// themselves, and the descriptors and children they name, are the recorded ones.
    static func rollout(_ model: Model, _ records: [Record], majority: String,
                        into rolled: inout [(model: Int, majority: Int, last: Int, n: Int)]) {
        // Each context's state before each record, on the real returns.
        var states: [String: SessionState] = [:]
        var before: [[String: SessionState]] = []
        before.reserveCapacity(records.count)
        for r in records {
            before.append(states)
            var state = states[r.context] ?? SessionState()
            if r.starts { state.previous = "start" }
            state.record(r.call, r.result, label: r.label)
            states[r.context] = state
        }
        // What each object returned last before the position: all the baseline knows.
        var lastReal: [String: String] = [:]
        for i in records.indices {
            var dream = before[i]
            for k in 0..<min(horizon, records.count - i) {
                let r = records[i + k]
                var state = dream[r.context] ?? SessionState()
                if r.starts { state.previous = "start" }
                let predicted = model.outcomes.best(state.features(r.call, context: r.context)).label
                rolled[k].model += predicted == r.label ? 1 : 0
                rolled[k].majority += majority == r.label ? 1 : 0
                rolled[k].last += (lastReal[r.key] ?? majority) == r.label ? 1 : 0
                rolled[k].n += 1
                state.record(r.call, r.result, label: predicted)
                dream[r.context] = state
            }
            lastReal[records[i].key] = records[i].label
        }
    }
}
