import CShim
import Foundation
import Guard
import LoopCore
import Sandbox

/// Supervised programs: a syscall-heavy program on its allow path (read/write, never mediated)
/// under the filter vs the same unsandboxed (goal ≤ 1.05×), and a mediated workload (open,
/// read, close of a file, each open decided by the guard, audited, and opened by the
/// supervisor) vs the same under `strace -f` (goal ≤ 1/3 of strace's time). Each run prints the
/// time of its own loop, so process start and the dynamic loader are not in the numbers.
func sandboxBenchmark() throws {
    let helper = SupervisedProgram.defaultHelper()
    let probe = URL(fileURLWithPath: helper).deletingLastPathComponent().appendingPathComponent("sandbox-probe").path
    guard FileManager.default.isExecutableFile(atPath: probe), FileManager.default.isExecutableFile(atPath: helper) else {
        print("sandbox: SKIPPED LOUDLY — \(probe) or \(helper) is not built (make bench builds both)")
        return
    }
    let dir = NSTemporaryDirectory() + "worldos-sandbox-bench-\(getpid())"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let file = dir + "/sample"
    try "a line of sample data\n".write(toFile: file, atomically: false, encoding: .utf8)
    let runtime = try String(decoding: FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/self/maps")).readToEnd() ?? Data(), as: UTF8.self)
        .split(separator: "\n").first { $0.hasSuffix("/libswiftCore.so") }
        .map { URL(fileURLWithPath: String($0[$0.firstIndex(of: "/")!...])).deletingLastPathComponent().path } ?? "/usr/lib"
    let policy = try Policy.parse("""
        version: 1
        contexts:
          bench:
            allow:
              - op: spawn
                path: \(probe)
              - op: open
                path: [/usr/lib/**, \(runtime)/**, /proc/*/maps, /etc/ld.so.cache, /dev/zero, \(file), \(dir)/big]
                mode: read
              - op: open
                path: /dev/null
                mode: write
        """, file: "sandbox-bench-policy.yaml")
    let judge = ProgramGuard(policy: policy, audit: try AuditLog(path: dir + "/audit.jsonl"), mode: .real, protectedPaths: [])

    /// The loop time the probe reports, in seconds.
    func loopTime(_ output: Data) -> Double {
        let line = String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard line.hasPrefix("ok "), let t = Double(line.dropFirst(3)) else { fatalError("sandbox-probe said: \(line)") }
        return t
    }
    func plain(_ arguments: [String], under prefix: [String] = []) throws -> Double {
        let process = Process()
        let pipe = Pipe()
        process.executableURL = URL(fileURLWithPath: prefix.first ?? probe)
        process.arguments = Array(prefix.dropFirst()) + (prefix.isEmpty ? [] : [probe]) + arguments
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return loopTime(output)
    }
    func sandboxed(_ arguments: [String]) throws -> Double {
        let pipe = Pipe()
        let program = try SupervisedProgram.launch([probe] + arguments, context: "bench", guard: judge,
                                                   stdio: (0, pipe.fileHandleForWriting.fileDescriptor, 2))
        try pipe.fileHandleForWriting.close()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        _ = program.wait()
        program.waitForMediator()
        return loopTime(output)
    }

    // Alternate the runs so drift in the machine's load hits both sides alike. The floor is the
    // same loop under an allow-everything filter: what enabling seccomp at all costs per call.
    print("sandbox (a supervised program under the seccomp filter)")
    let big = dir + "/big"
    guard FileManager.default.createFile(atPath: big, contents: Data(count: 1 << 20)) else { throw NSError(domain: "cannot create \(big)", code: 0) }
    let workloads: [(String, [String])] = [
        ("1M read+write of 64 B /dev/zero ", ["loop-rw", "500000", "64"]),
        ("1M read+write of 4 KiB /dev/zero", ["loop-rw", "500000", "4096"]),
        ("40k pread+write of 64 KiB (copy)", ["loop-copy", big, "20000"]),
    ]
    // Ratios are the median of each round's own (sandboxed or floor over the unsandboxed run
    // beside it), so a slow moment falls inside one round instead of on one side. Every run is
    // pinned to one CPU (the last): on this 2-vCPU machine a loop that migrates runs ±10% apart.
    let unpinned = worldos_affinity_get()
    let lastCPU = 63 - unpinned.leadingZeroBitCount
    if unpinned != 0 { _ = worldos_affinity_set(1 << UInt64(lastCPU)) }
    for (label, arguments) in workloads {
        var free: [Double] = [], floor: [Double] = [], filtered: [Double] = []
        for _ in 0..<9 {
            free.append(try plain(arguments))
            floor.append(try plain(["allow-all-filter"] + arguments))
            filtered.append(try sandboxed(arguments))
        }
        let ratio = median(zip(filtered, free).map { $0 / $1 }), floorRatio = median(zip(floor, free).map { $0 / $1 })
        print(String(format: "  allow path, %@: unsandboxed %6.1f ms  allow-all filter %6.1f ms (%.3f×)  sandboxed %6.1f ms  ratio %.3f× (goal ≤ 1.05×: %@)",
                     label, median(free) * 1000, median(floor) * 1000, floorRatio,
                     median(filtered) * 1000, ratio, ratio <= 1.05 ? "met" : "NOT MET"))
    }
    if unpinned != 0 { _ = worldos_affinity_set(unpinned) }

    let strace = ["/usr/bin/strace", "/bin/strace"].first { FileManager.default.isExecutableFile(atPath: $0) }
    let opens = "20000"
    var direct: [Double] = [], mediated: [Double] = [], traced: [Double] = []
    for _ in 0..<3 {
        direct.append(try plain(["loop-open", file, opens]))
        mediated.append(try sandboxed(["loop-open", file, opens]))
        if let strace { traced.append(try plain(["loop-open", file, opens], under: [strace, "-f", "-o", "/dev/null"])) }
    }
    let perOpen = { (t: Double) in t / Double(opens)! * 1e6 }
    if traced.isEmpty {
        print("  mediated workload: SKIPPED LOUDLY — no strace on this machine (make setup installs it)")
    } else {
        let ratio = median(mediated) / median(traced)
        print(String(format: "  20,000 × open+read+close:          unsandboxed %6.1f ms  mediated %6.1f ms  strace -f %6.1f ms",
                     median(direct) * 1000, median(mediated) * 1000, median(traced) * 1000))
        print(String(format: "    per iteration %.1f / %.1f / %.1f µs; mediated / strace = %.3f (goal ≤ 0.333: %@)",
                     perOpen(median(direct)), perOpen(median(mediated)), perOpen(median(traced)), ratio, ratio <= 1.0 / 3 ? "met" : "NOT MET"))
    }
}
