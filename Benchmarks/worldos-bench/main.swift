// `make bench`: every speed and size target, each printed as a ratio against its reference
// measured in the same process on the same machine and load.
//
//   worldos-bench            all sections
//   worldos-bench graph      the state graph: 1,000-node delta vs building 100,000 nodes
//   worldos-bench observer   /proc refresh vs lsof -n -P and ps -e on ~500 processes × 20 fds, beside the
//                            kernel-only floor (a readlink per descriptor)
//   worldos-bench serial     request/response through our serial adapter vs pyserial
//   worldos-bench gpio       GPIO set through the guard vs gpioset (needs a GPIO chip: run in the rig)
//   worldos-bench guard      decision latency with 1,000 rules
//   worldos-bench recording  micro-step records/s into MCAP; bytes per transition, idle and busy panel;
//                            the loop's slowdown with recording on
//   worldos-bench sandbox    a supervised program's allow path vs unsandboxed; mediated opens vs strace -f
//   worldos-bench end-to-end `worldos graph --json` vs lsof -n -P as whole processes; the supervisor's loop
//                            step on a ~14,000-node host beside a step with no observation change
//   worldos-bench panel      a 1920×1080 frame from nothing and one reading's damage vs a memcpy of the
//                            frame; the panel's share of a loop step
//   worldos-bench api        a graph query and an action through the guard over HTTP vs a plain
//                            Hummingbird hello route in the same process
//   worldos-bench learning   the outcome predictor's inference per micro-step vs the trivial predictor
//   worldos-bench soak [MIN] `make soak`: worldos run at 100 Hz with 50 API clients for MIN minutes (10)
import Foundation

func milliseconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
}

func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

let sections = CommandLine.arguments.dropFirst()
if sections.isEmpty || sections.contains("graph") { try graphBenchmark() }
if sections.isEmpty || sections.contains("observer") { try observerBenchmark() }
if sections.isEmpty || sections.contains("serial") { try serialBenchmark() }
if sections.isEmpty || sections.contains("guard") { try guardBenchmark() }
if sections.isEmpty || sections.contains("recording") { try recordingBenchmark(); try recordingOverheadBenchmark() }
if sections.isEmpty || sections.contains("sandbox") { try sandboxBenchmark() }
if sections.isEmpty || sections.contains("end-to-end") { try graphCommandBenchmark(); try loopStepBenchmark() }
if sections.isEmpty || sections.contains("panel") { try panelBenchmark() }
if sections.isEmpty || sections.contains("api") { try apiBenchmark() }
if sections.isEmpty || sections.contains("learning") { try learningBenchmark(); try probeBenchmark() }
if sections.isEmpty || sections.contains("control") { try controlBenchmark() }
if sections.contains("loop-step") { try loopStepBenchmark() }
if sections.contains("json") { try snapshotJSONBenchmark(benchGraph().snapshot()) }
if sections.contains("gpio") { try gpioBenchmark() }
if sections.first == "soak" {
    let minutes = sections.dropFirst().first.flatMap(Double.init) ?? 10
    if try !soak(minutes: minutes) { exit(1) }
}
