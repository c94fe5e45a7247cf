import Foundation
import Guard
import LoopCore

/// Decision latency with 1,000 rules: the guard's evaluation of a micro-step (the audit write
/// that follows a decision is measured apart, since it is an fsync).
func guardBenchmark() throws {
    var text = "version: 1\ncontexts:\n  bench:\n    deny:\n      - op: open\n        path: /etc/shadow\n    allow:\n"
    for i in 0..<999 { text += "      - op: open\n        path: /srv/data\(i)/**\n        mode: read\n" }
    let policy = try Policy.parse(text, file: "bench-policy.yaml")
    let audit = try AuditLog(path: NSTemporaryDirectory() + "worldos-guard-bench-\(getpid()).jsonl")
    let g = PolicyGuard(policy: policy, audit: audit, mode: .real)
    let early = ResolvedCall(.open, ["path": .string("/srv/data3/x"), "mode": .string("read")])
    let late = ResolvedCall(.open, ["path": .string("/srv/data998/a/b"), "mode": .string("read")])
    let refused = ResolvedCall(.open, ["path": .string("/home/x"), "mode": .string("read")])
    // The worst case for the rule index: every pattern starts with a wildcard, so all are tried.
    let unindexed = try Policy.parse(text.replacingOccurrences(of: "path: /srv/", with: "path: /*/"), file: "bench-policy-wild.yaml")
    let wild = PolicyGuard(policy: unindexed, audit: audit, mode: .real)
    func percentiles(_ call: ResolvedCall, _ g: PolicyGuard = g) -> (Double, Double) {
        var samples: [Double] = []
        for _ in 0..<2000 {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = g.evaluate(call, context: "bench", held: [])
            samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1000)
        }
        samples.sort()
        return (samples[samples.count / 2], samples[samples.count * 99 / 100])
    }
    let (e50, e99) = percentiles(early), (l50, l99) = percentiles(late), (r50, r99) = percentiles(refused)
    let (w50, w99) = percentiles(late, wild)
    var fsyncs: [Double] = []
    for i in 0..<50 {
        fsyncs.append(milliseconds {
            _ = try? audit.append(AuditRecord(time: UInt64(i), policy: policy.contentHash, event: "decision", mode: "real", context: "bench", call: "x"))
        })
    }
    print("guard (\(policy.contexts["bench"]!.rules.count) rules)")
    print(String(format: "  decision, rule 2 matches:          p50 %6.2f µs  p99 %6.2f µs", e50, e99))
    print(String(format: "  decision, rule 1000 matches:       p50 %6.2f µs  p99 %6.2f µs", l50, l99))
    print(String(format: "  decision, no rule (default deny):  p50 %6.2f µs  p99 %6.2f µs  (goal p50 ≤ 2 µs: %@)", r50, r99, max(e50, l50, r50) <= 2 ? "met" : "NOT MET"))
    print(String(format: "  rule 1000, every pattern /*/…:     p50 %6.2f µs  p99 %6.2f µs  (no literal prefix to index on)", w50, w99))
    print(String(format: "  audit record written and fsync'd:  %6.3f ms median", median(fsyncs)))
}
