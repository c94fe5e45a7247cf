// `make soak`: `worldos run` (the release build beside this program) asked to step at 100 Hz
// with the simulator attached, for some minutes, while 50 API clients use it — 25 WebSocket
// subscribers to every topic and 25 HTTP clients polling, one of them asking for an action
// through the guard every few seconds. It passes when the supervisor's RSS stays within 10% of
// where it stood after warming up and no trace record is lost (every step the loop made is a
// line of trace.jsonl and a message of the MCAP files); the step latency's p99 is printed.
import Foundation
import Glibc
import MCAP
import Service
import WorldOSTesting

func soak(minutes: Double) throws -> Bool {
    // How many of each client (SOAK_SUBSCRIBERS, SOAK_POLLERS: 25 each), to tell what costs what.
    let environment = ProcessInfo.processInfo.environment
    let (subscribers, pollers) = (environment["SOAK_SUBSCRIBERS"].flatMap(Int.init) ?? 25, environment["SOAK_POLLERS"].flatMap(Int.init) ?? 25)
    let worldos = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("worldos").path
    guard FileManager.default.isExecutableFile(atPath: worldos) else { throw BenchFailure("no \(worldos); make soak builds it") }
    let simulator = try BenchSimulator(arguments: ["--serial", "SIM-SOAK"])
    let dir = NSTemporaryDirectory() + "worldos-soak-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let token = try TokenFile.add(name: "soak", scope: .approve, to: dir + "/tokens.yaml")
    let log = dir + "/run.log"
    FileManager.default.createFile(atPath: log, contents: nil)
    let supervisor = Process()
    supervisor.executableURL = URL(fileURLWithPath: worldos)
    supervisor.arguments = ["run", "--out", dir + "/out", "--interval-ms", "10", "--device", simulator.pty, "--display", "none",
                            "--listen", "127.0.0.1:0", "--tokens", dir + "/tokens.yaml"]
    supervisor.environment = ProcessInfo.processInfo.environment.merging(["WORLDOS_KEYS": dir + "/keys"]) { $1 }
    supervisor.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
    supervisor.standardError = supervisor.standardOutput
    try supervisor.run()
    defer { if supervisor.isRunning { kill(supervisor.processIdentifier, SIGKILL) } }
    func text() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
    var port = 0
    for _ in 0..<600 where port == 0 {
        usleep(100_000)
        if let r = text().range(of: "API and web page on http://127.0.0.1:") { port = Int(text()[r.upperBound...].prefix { $0.isNumber }) ?? 0 }
    }
    guard port != 0 else { throw BenchFailure("the supervisor's API never opened:\n\(text().suffix(2000))") }
    let api = port

    let seconds = minutes * 60
    let started = Date()
    let deadline = started.addingTimeInterval(seconds)
    final class Counts: @unchecked Sendable {
        let lock = NSLock()
        var requests = 0, failed = 0, actions = 0, messages = 0, dropped: [String] = []
        func add(_ body: (Counts) -> Void) { lock.lock(); body(self); lock.unlock() }
    }
    let counts = Counts()
    let clients = DispatchGroup()
    for i in 0..<subscribers {
        clients.enter()
        Thread {
            defer { clients.leave() }
            guard let ws = WebSocketReader(port: api, query: "topics=readings,decisions,events,graph&interval-ms=100", token: token) else {
                counts.add { $0.dropped.append("subscriber \(i): the upgrade was refused") }
                return
            }
            ws.run(until: deadline)
            counts.add { c in
                c.messages += ws.messages
                if let why = ws.closedBecause { c.dropped.append("subscriber \(i): \(why)") }
            }
        }.start()
    }
    let polled = ["/api/v1/status", "/api/v1/graph?kind=sensor", "/api/v1/approvals", "/metrics", "/api/v1/audit?count=10", "/api/v1/trace",
                  "/api/v1/panel/semantics"]
    for i in 0..<pollers {
        clients.enter()
        Thread {
            defer { clients.leave() }
            let connection = HTTPConnection(port: api)
            var n = 0
            while Date() < deadline {
                let status: Int
                if i == 0, n % 50 == 0 {
                    // Reversible and allowed (rate 60/minute): decided by the guard at the operator's turn.
                    status = connection.request("POST", "/api/v1/actions", token: token,
                                                body: #"{"context": "bench-operator", "action": "relay.release", "params": {"relay": "0"}}"#).status
                    counts.add { $0.actions += 1 }
                } else {
                    status = connection.request("GET", polled[(i + n) % polled.count], token: token).status
                }
                n += 1
                counts.add { c in c.requests += 1; if status == 0 || status >= 500 { c.failed += 1 } }
                usleep(100_000)
            }
        }.start()
    }
    // The supervisor's resident set, every 5 s; each minute its heap, in use and free.
    var rss: [(at: Double, kib: Int)] = []
    var minutes: [(rss: Int, inUse: Double, free: Double)] = []
    while Date() < deadline, supervisor.isRunning {
        let status = (try? String(contentsOfFile: "/proc/\(supervisor.processIdentifier)/status", encoding: .utf8)) ?? ""
        if let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
           let kib = Int(line.split(separator: " ").dropFirst().first ?? "") {
            rss.append((Date().timeIntervalSince(started), kib))
            if Int(Date().timeIntervalSince(started) / 60) >= minutes.count {
                let scraped = String(decoding: HTTPConnection(port: port).request("GET", "/metrics", token: token).body, as: UTF8.self)
                minutes.append((kib, gauge("worldos_heap_in_use_bytes", in: scraped), gauge("worldos_heap_free_bytes", in: scraped)))
            }
        }
        usleep(5_000_000)
    }
    clients.wait()
    let metrics = String(decoding: HTTPConnection(port: port).request("GET", "/metrics", token: token).body, as: UTF8.self)
    kill(supervisor.processIdentifier, SIGTERM)
    supervisor.waitUntilExit()
    let ran = Date().timeIntervalSince(started)

    // Every step the loop made, recorded in both traces.
    guard let r = text().range(of: "worldos: stopped on signal after "), let steps = Int(text()[r.upperBound...].prefix { $0.isNumber }) else {
        throw BenchFailure("the supervisor did not say how many steps it made:\n\(text().suffix(2000))")
    }
    let lines = ((try? String(contentsOfFile: dir + "/out/trace.jsonl", encoding: .utf8)) ?? "").split(separator: "\n").count
    var mcap = 0
    for file in ((try? FileManager.default.contentsOfDirectory(atPath: dir + "/out")) ?? []).filter({ $0.hasPrefix("trace-") && $0.hasSuffix(".mcap") }) {
        let reader = try MCAPReader(path: dir + "/out/" + file)
        let channel = reader.channels.values.first { $0.topic == "/worldos/transition" }?.id
        mcap += reader.messages.filter { $0.channel == channel }.count
    }
    // After a warm-up (a fifth of the run, at least 30 s): the RSS against where it then stood.
    let warm = max(30, seconds / 5)
    let settled = rss.filter { $0.at >= warm }
    let base = settled.first?.kib ?? 0, peak = settled.map(\.kib).max() ?? 0, last = settled.last?.kib ?? 0
    let growth = base > 0 ? Double(peak - base) / Double(base) : .infinity
    let p99 = histogramQuantile(0.99, of: "worldos_loop_step_seconds", in: metrics)
    let p50 = histogramQuantile(0.5, of: "worldos_loop_step_seconds", in: metrics)
    let late = metrics.split(separator: "\n").first { $0.hasPrefix("worldos_loop_steps_late_total") }?.split(separator: " ").last ?? "?"

    print(String(format: "soak (%.1f min; worldos run --interval-ms 10, the simulator attached; %d WebSocket subscribers, %d HTTP clients)", ran / 60, subscribers, pollers))
    print(String(format: "  steps:            %d (%.1f a second asked 100; %@ began late)", steps, Double(steps) / ran, String(late)))
    print(String(format: "  step latency:     p50 %.2f ms  p99 %.2f ms  (histogram_quantile over worldos_loop_step_seconds)", p50 * 1000, p99 * 1000))
    print("  trace records:    \(lines) lines of trace.jsonl, \(mcap) MCAP transitions, for \(steps) steps"
          + (lines == steps && mcap == steps ? " — none lost" : " — RECORDS LOST"))
    print(String(format: "  RSS after warm-up: %d KiB, peak %d KiB, last %d KiB (%+.1f%%; goal within 10%%: %@)", base, peak, last, growth * 100,
                 growth <= 0.10 ? "met" : "NOT MET"))
    let mib = { (bytes: Double) in String(format: "%.1f", bytes / 1_048_576) }
    print("  each minute, MiB: RSS " + minutes.map { mib(Double($0.rss) * 1024) }.joined(separator: " ")
          + "; heap in use " + minutes.map { mib($0.inUse) }.joined(separator: " ")
          + "; heap free " + minutes.map { mib($0.free) }.joined(separator: " "))
    counts.lock.lock()
    defer { counts.lock.unlock() }
    print("  HTTP:             \(counts.requests) requests (\(counts.actions) actions through the guard), \(counts.failed) failed (no answer or 5xx)")
    print("  WebSocket:        \(counts.messages) messages to \(subscribers) subscribers; " + (counts.dropped.isEmpty ? "none dropped" : "dropped: \(counts.dropped.prefix(5))"))
    for line in text().split(separator: "\n").filter({ $0.contains("dropped a subscriber") }).prefix(5) { print("  supervisor said:  " + line) }
    return lines == steps && mcap == steps && growth <= 0.10 && counts.failed == 0 && counts.dropped.isEmpty
}

/// A gauge's value in a Prometheus exposition (NaN when it is not there).
func gauge(_ name: String, in exposition: String) -> Double {
    exposition.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { $0.split(separator: " ").last.flatMap { Double($0) } } ?? .nan
}

/// A quantile from a Prometheus histogram's cumulative buckets, interpolated within the bucket
/// as Prometheus's histogram_quantile does.
func histogramQuantile(_ q: Double, of name: String, in exposition: String) -> Double {
    var buckets: [(le: Double, count: Double)] = []
    for line in exposition.split(separator: "\n") where line.hasPrefix(name + "_bucket{") {
        guard let le = line.range(of: "le=\"").map({ line[$0.upperBound...].prefix { $0 != "\"" } }),
              let count = line.split(separator: " ").last.flatMap({ Double($0) }) else { continue }
        buckets.append((le == "+Inf" ? .infinity : Double(le) ?? .infinity, count))
    }
    buckets.sort { $0.le < $1.le }
    guard let total = buckets.last?.count, total > 0 else { return .nan }
    let rank = q * total
    var (lower, below) = (0.0, 0.0)
    for b in buckets {
        if b.count >= rank {
            if b.le == .infinity { return lower }
            return lower + (b.le - lower) * (rank - below) / max(1, b.count - below)
        }
        (lower, below) = (b.le, b.count)
    }
    return lower
}
