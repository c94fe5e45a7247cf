import DevicePorts
import Foundation
import Glibc
import Guard
import HostAdapter
import LoopCore
import StateGraph

/// GPIO set latency through the guard (a decision with its fsync'd audit record, then the set
/// on a held line) vs libgpiod's `gpioset` tool, per set. Needs a GPIO chip: `make bench` runs
/// this section inside the hardware rig, on gpio-sim.
func gpioBenchmark() throws {
    guard let chip = GPIO.chips().first(where: { $0.label == "worldos-rig" }) ?? GPIO.chips().first else {
        print("gpio: SKIPPED — no GPIO chip on this machine (make bench runs this section in the rig)")
        return
    }
    let n = 200
    let policy = try Policy.parse("version: 1\ncontexts:\n  bench:\n    allow:\n      - op: act\n        action: [gpio.*]\n", file: "bench-policy.yaml")
    let audit = try AuditLog(path: NSTemporaryDirectory() + "worldos-gpio-bench-\(getpid()).jsonl")
    var policyGuard = PolicyGuard(policy: policy, audit: audit, mode: .real, risk: { _, _ in "reversible" })
    let context = Node(id: .context("bench"), kind: .executionContext, partition: .context("bench"))
    let line = try GPIOLineRequest(chip: chip.path, offset: 0, kind: .output(initial: 0, safe: 0))
    var guarded: [Double] = []
    for i in 0..<n {
        let call = ResolvedCall(.act, ["device": .string("gpio"), "action": .string("gpio.set"), "params": .string("line=0,value=\(i & 1)")])
        guarded.append(try milliseconds {
            guard policyGuard.decide(call, context: context, held: [], at: Instant(nanoseconds: UInt64(i))).isAllowed else { fatalError("denied") }
            try line.set(Int32(i & 1))
        })
    }
    _ = line
    var tool: [Double] = []
    let gpioset = ["/usr/bin/gpioset", "/bin/gpioset"].first { FileManager.default.isExecutableFile(atPath: $0) }
    if let gpioset {
        for i in 0..<50 { tool.append(timeCommand(gpioset, [chip.name, "1=\(i & 1)"])) }
    }
    print("gpio (\(chip.label), \(n) sets through the guard; \(tool.count) gpioset runs)")
    print(String(format: "  through the guard (decide + audit fsync + set): %7.3f ms median", median(guarded)))
    guard !tool.isEmpty else { print("  gpioset: not installed (gpiod package)"); return }
    print(String(format: "  gpioset (reference):                            %7.3f ms median", median(tool)))
    print(String(format: "  ratio guarded / gpioset:                        %7.3f  (goal ≤ 1: %@)", median(guarded) / median(tool), median(guarded) <= median(tool) ? "met" : "NOT MET"))
}
