// What a user sees end to end: `worldos graph --json` as a whole process beside lsof on the
// same load, and one step of the real supervisor's loop on a host of ~14,000 nodes beside a
// step in which the observation changed nothing.
import Foundation
import Glibc
import LoopCore
import Supervisor

/// `worldos graph --json` (the release build beside this program) against `lsof -n -P`, both
/// whole processes with their output thrown away, interleaved, on 300 processes × 20 descriptors.
func graphCommandBenchmark() throws {
    let worldos = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("worldos").path
    guard FileManager.default.isExecutableFile(atPath: worldos) else {
        print("graph --json end to end: SKIPPED — no \(worldos) (make bench builds it)")
        return
    }
    let load = try Load(processes: 300)
    var ratios: [Double] = [], ours: [Double] = [], theirs: [Double] = []
    _ = timeCommand(worldos, ["graph", "--json"])
    for _ in 0..<11 {
        let a = timeCommand(worldos, ["graph", "--json"]), b = timeCommand("/usr/bin/lsof", ["-n", "-P"])
        ours.append(a)
        theirs.append(b)
        ratios.append(a / b)
    }
    let ratio = median(ratios)
    print("end to end (\(load.pids.count) processes × 20 descriptors, whole processes, output discarded)")
    print(String(format: "  worldos graph --json:                      %8.2f ms  (median of %d)", median(ours), ours.count))
    print(String(format: "  lsof -n -P (reference):                    %8.2f ms  (median of %d, interleaved)", median(theirs), theirs.count))
    print(String(format: "  ratio graph --json / lsof:                 %8.4f  (median of pairs; goal ≤ 0.3: %@)", ratio, ratio <= 0.3 ? "met" : "NOT MET"))
}

/// The real supervisor's step (observe, estimate, render, schedule, act, record) on this machine
/// with 380 processes × 20 descriptors added — ~14,000 nodes with the supervisor's own (it keeps
/// two or three descriptors open on each process it watches): steps in which nothing observed
/// changed beside steps in which one process opened or closed a descriptor, alternating. Steps
/// are 150 ms apart, as the loop paces them (500 ms by default): the panel's PNG of one step,
/// encoded on a thread of its own, is done before the next, as in a run. The medians leave out
/// the full rescan every 20th step, which reads everything again and is printed on its own.
func loopStepBenchmark() throws {
    let load = try Load(processes: 380)
    let dir = NSTemporaryDirectory() + "worldos-step-bench-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var options = SupervisorOptions()
    options.out = dir
    options.keys = dir + "/keys"
    var session = try Supervisor.start(options)
    for _ in 0..<3 { try session.loop.step() }  // warm: the first full scans
    let shell = try Toggler()
    try session.loop.step()
    var quiet: [Double] = [], changed: [Double] = [], rescans: [Double] = []
    /// One step, timed; a full rescan's time goes to `rescans`.
    func timed(into times: inout [Double]) throws {
        usleep(150_000)
        let full = (session.loop.stepCount + 1) % 20 == 0  // the observer's refreshes count from 1
        let t = try milliseconds { try session.loop.step() }
        if full { rescans.append(t) } else { times.append(t) }
    }
    for _ in 0..<40 {
        try timed(into: &quiet)
        shell.toggle()
        try timed(into: &changed)
    }
    // Back to back, the previous step's PNG still being encoded on the other core.
    var unpaced: [Double] = []
    for _ in 0..<20 where (session.loop.stepCount + 1) % 20 != 0 {
        shell.toggle()
        unpaced.append(try milliseconds { try session.loop.step() })
    }
    try session.loop.finish()
    let nodes = session.loop.memory.nodeCount
    let q = median(quiet), c = median(changed)
    print("loop step (the real supervisor, \(nodes) nodes; \(load.pids.count) load processes × 20 descriptors)")
    print(String(format: "  step, nothing observed changed (reference): %7.2f ms  (median of %d)", q, quiet.count))
    print(String(format: "  step, one process changed:                  %7.2f ms  (median of %d; goal ≤ 20 ms: %@)", c, changed.count,
                 c <= 20 ? "met" : "NOT MET"))
    print(String(format: "  ratio changed / unchanged:                  %7.3f", c / q))
    print(String(format: "  step with the full rescan (every 20th):     %7.2f ms  (median of %d; every process read again)", median(rescans), rescans.count))
    print(String(format: "  step back to back, one process changed:     %7.2f ms  (median of %d; the last frame's PNG encoding shares the cores)",
                 median(unpaced), unpaced.count))
}
