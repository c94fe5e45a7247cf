import Attached
import Control
import Devices
import Foundation
import Glibc
import Guard
import LoopCore
import StateGraph
import WorldOSTesting

/// A controller's step at 100 Hz and 1 kHz on this machine, beside a plain `clock_nanosleep`
/// loop at the same rate (the floor): how late each wake is against its release (p50/p99/max),
/// how many releases were late or missed, and the share of a step spent in the guard and its
/// fsync'd audit write. The step is the real one: the reading queried from the firmware
/// simulator over its pty, the PID law, the guard's decision against the envelope (the
/// setpoint's grant covering the write), the write to the simulator, the outcome audited.
func controlBenchmark() throws {
    let simulator: BenchSimulator
    do { simulator = try BenchSimulator(arguments: ["--serial", "SIM-CTL-BENCH", "--speed", "50"]) } catch {
        print("control: SKIPPED — \(error)")
        return
    }
    let catalog = try DeviceCatalog.load(directory: "Devices")
    let (instruments, _) = DeviceDiscovery.discover(catalog, explicit: [simulator.pty])
    guard let instrument = instruments.first else { print("control: SKIPPED — the simulator did not answer"); return }
    var envelope = SafetyEnvelope(controller: "heater", context: "bench", input: "bench-bridge/heater-temperature", device: "bench-bridge",
                                  action: "heater.set_power", parameter: "percent", maximumOutput: 100, setpoints: 0...120)
    envelope.runaway = .init(outputAbove: 50, minimumRise: 2, window: .seconds(20), hysteresis: 5)
    let board = ControlBoard([envelope])
    board.apply(controller: "heater", value: 80, grant: "bench")
    let spec = ControllerSpec(law: .pid(PID(kp: 8, ki: 2, kd: 0, minimum: 0, maximum: 100)), initialSetpoint: 80, outputRange: 0...100,
                              envelope: envelope, location: "bench")
    let policy = try Policy.parse("version: 1\ncontexts:\n  bench:\n    allow:\n      - op: act\n        action: [heater.*]\n", file: "bench-policy.yaml")
    let auditPath = NSTemporaryDirectory() + "worldos-control-bench-\(getpid()).jsonl"
    defer { unlink(auditPath) }
    var policyGuard = PolicyGuard(policy: policy, audit: try AuditLog(path: auditPath), mode: .real,
                                  risk: BenchHost.risk(instruments: instruments, gpio: []), identity: BenchHost.identity(instruments: instruments, gpio: []))
    policyGuard.controls = board
    let host = BenchHost(instruments: instruments, controls: board)
    let context = Node(id: .context("bench"), kind: .executionContext, partition: .context("bench"))
    let sensor = NodeID("sensor:bench-bridge/\(instrument.identity.serial)/heater-temperature")
    var graph = Graph()
    try graph.apply(.addNode(Node(id: sensor, kind: .sensor, attributes: ["value": .double(25)])))
    var proposer = ControlProposer(specs: ["bench": spec], board: board)
    let clock = SystemClock()

    print("control (a PID step on the simulator's heater: query, law, guard + audit fsync, write; 2 s at each rate)")
    for hz in [100, 1000] {
        let period = 1_000_000_000 / hz
        let floor = paced(period: period, seconds: 2) { _ in }
        var guardShare: [Double] = []
        var failures = 0
        let ours = paced(period: period, seconds: 2) { _ in
            let t0 = DispatchTime.now().uptimeNanoseconds
            if let reply = try? instrument.scpi.query("MEAS:TEMP?"), let value = Double(reply) {
                var node = graph[sensor]!
                node["value"] = .double(value)
                try? graph.apply(.updateNode(node))
            }
            let now = clock.now()
            guard let proposal = proposer.propose(for: "bench", posterior: Posterior(step: 0, graph: graph, surprise: nil, observedAt: now), at: now),
                  let step = proposal.steps.first else { failures += 1; return }
            let call = ResolvedCall(step.op, step.args.compactMapValues { if case .string(let s) = $0 { .string(s) } else { nil } })
            let t1 = DispatchTime.now().uptimeNanoseconds
            guard policyGuard.decide(call, context: context, held: [], at: now).isAllowed else { failures += 1; return }
            let t2 = DispatchTime.now().uptimeNanoseconds
            let result = host.perform(call)
            let t3 = DispatchTime.now().uptimeNanoseconds
            policyGuard.recordOutcome(call, context: "bench", result: result, at: now)
            let t4 = DispatchTime.now().uptimeNanoseconds
            guardShare.append(Double((t2 - t1) + (t4 - t3)) / Double(t4 - t0))
        }
        func line(_ name: String, _ r: PacedRun) -> String {
            String(format: "  %@ %4d Hz: wake late p50 %7.3f  p99 %7.3f  max %7.3f ms; %d of %d releases late or missed",
                   name, hz, r.p50, r.p99, r.max, r.late, r.releases)
        }
        print(line("clock_nanosleep loop (floor):", floor))
        print(line("controller step:             ", ours))
        print(String(format: "    ratio p99 controller / floor: %.1f×; step took p50 %.3f ms; guard + audit write %.0f%% of a step (median)%@",
                     ours.p99 / max(floor.p99, 0.001), ours.stepP50, (guardShare.sorted().dropFirst(guardShare.count / 2).first ?? 0) * 100,
                     failures > 0 ? "; \(failures) steps refused or empty" : ""))
    }
    _ = instrument.returnToSafeState()
}

struct PacedRun {
    var p50: Double, p99: Double, max: Double
    var late: Int, releases: Int
    var stepP50: Double
}

/// Run `body` once per `period` ns for `seconds`, each at an absolute release (clock_nanosleep,
/// TIMER_ABSTIME, CLOCK_MONOTONIC): how late each wake was (ms), and releases that came and went
/// while a step still ran (late: its wake later than one period; missed ones skipped and counted).
func paced(period: Int, seconds: Int, _ body: (Int) -> Void) -> PacedRun {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    var release = Int(now.tv_sec) * 1_000_000_000 + Int(now.tv_nsec) + period
    let end = release + seconds * 1_000_000_000
    var lateness: [Double] = [], steps: [Double] = []
    var late = 0, releases = 0, k = 0
    while release < end {
        var at = timespec(tv_sec: release / 1_000_000_000, tv_nsec: release % 1_000_000_000)
        while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, nil) == EINTR {}
        clock_gettime(CLOCK_MONOTONIC, &now)
        let woke = Int(now.tv_sec) * 1_000_000_000 + Int(now.tv_nsec)
        lateness.append(Double(woke - release) / 1e6)
        releases += 1
        body(k)
        k += 1
        clock_gettime(CLOCK_MONOTONIC, &now)
        let done = Int(now.tv_sec) * 1_000_000_000 + Int(now.tv_nsec)
        steps.append(Double(done - woke) / 1e6)
        if woke - release > period { late += 1 }
        release += period
        // Releases that passed while this step ran: never run, counted late.
        while release < done && release < end { release += period; late += 1; releases += 1 }
    }
    let sorted = lateness.sorted(), st = steps.sorted()
    return PacedRun(p50: sorted[sorted.count / 2], p99: sorted[min(sorted.count - 1, Int(Double(sorted.count) * 0.99))], max: sorted.last ?? 0,
                    late: late, releases: releases, stepP50: st[st.count / 2])
}
