/// Counts of labels by feature key, at several levels of detail, and the distribution they give
/// with interpolated Witten–Bell backoff: at each level, the label's count plus the number of
/// distinct labels seen there times the next level's probability, over the level's total plus
/// that number — so a detailed context seen often speaks for itself, and one seen rarely or
/// never leans on the coarser ones. Below the coarsest level, every label seen anywhere, with
/// one more count each, and one for a label never seen (so nothing gets probability 0).
struct CountModel: Codable, Equatable, Sendable {
    /// Feature key → label → count. A key carries its level (`0|open|read data-#.txt|…`).
    var counts: [String: [String: Int]] = [:]
    /// Every label, over all training.
    var labels: [String: Int] = [:]
    var levels: Int

    init(levels: Int) { self.levels = levels }

    static let unseen = "(unseen)"

    mutating func add(_ features: [String], _ label: String, weight: Int = 1) {
        for (level, key) in features.enumerated() { counts["\(level)|\(key)", default: [:]][label, default: 0] += weight }
        labels[label, default: 0] += weight
    }

    /// The base distribution: every label seen, with one more count each, and one for unseen.
    func base(_ label: String) -> Double { base(label, total: baseTotal) }

    private var baseTotal: Int { labels.values.reduce(0, +) + labels.count + 1 }
    private func base(_ label: String, total: Int) -> Double { Double((labels[label] ?? 0) + 1) / Double(total) }

    /// P(label | features).
    func probability(_ label: String, _ features: [String]) -> Double {
        score(label, found(features), total: baseTotal)
    }

    /// The counts at each level for these features, coarsest first, with their totals.
    private func found(_ features: [String]) -> [(seen: [String: Int], total: Int)] {
        features.indices.reversed().compactMap { level in
            counts["\(level)|\(features[level])"].map { ($0, $0.values.reduce(0, +)) }
        }
    }

    private func score(_ label: String, _ found: [(seen: [String: Int], total: Int)], total: Int) -> Double {
        var p = base(label, total: total)
        for (seen, total) in found {
            p = (Double(seen[label] ?? 0) + Double(seen.count) * p) / Double(total + seen.count)
        }
        return p
    }

    /// The whole distribution over the labels ever seen (and the unseen rest), most likely
    /// first; ties go to the label first in code-point order, so a prediction is deterministic.
    func distribution(_ features: [String]) -> [(label: String, probability: Double)] {
        let levels = found(features), total = baseTotal
        var out = labels.keys.map { ($0, score($0, levels, total: total)) }
        let rest = 1 - out.reduce(0) { $0 + $1.1 }
        if rest > 0 { out.append((Self.unseen, rest)) }
        return out.sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }
    }

    /// The most likely label and its probability.
    func best(_ features: [String]) -> (label: String, probability: Double) {
        let levels = found(features), total = baseTotal
        var top = (label: Self.unseen, probability: -1.0)
        for label in labels.keys {
            let p = score(label, levels, total: total)
            if p > top.probability || (p == top.probability && label < top.label) { top = (label, p) }
        }
        return top
    }
}
