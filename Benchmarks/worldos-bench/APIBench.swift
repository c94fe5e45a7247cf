// The HTTP API under load: a graph query and an action through the guard, beside a plain
// Hummingbird hello route served in the same process — the framework's floor.
import Foundation
import Glibc
import Hummingbird
import Logging
import Observer
import Service
import ServiceLifecycle
import Supervisor
import WorldOSTesting

/// A real supervisor (the simulator attached, its loop stepping every 10 ms on its own thread)
/// with its API on loopback, and a hello route on another port; each driven by 4 keep-alive
/// clients for 3 s, the hello route before and after.
func apiBenchmark() throws {
    let simulator: BenchSimulator
    do { simulator = try BenchSimulator(arguments: ["--serial", "SIM-API-BENCH"]) } catch {
        print("api: SKIPPED — \(error) (make bench builds the simulator)")
        return
    }
    let dir = NSTemporaryDirectory() + "worldos-api-bench-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    // One context that takes requests at every step (its own task, when none waits, the same
    // reversible action), allowed that action.
    try "version: 1\ncontexts:\n  operator:\n    priority: 3\n    interval-ms: 0\n    tasks:\n      ack:\n        - act: { device: bench-bridge, action: watchdog.acknowledge }\n".write(toFile: dir + "/bench.yaml", atomically: true, encoding: .utf8)
    try "version: 1\ncontexts:\n  operator:\n    capabilities: [operate-bench]\n    allow:\n      - op: act\n        action: [watchdog.acknowledge]\n"
        .write(toFile: dir + "/policy.yaml", atomically: true, encoding: .utf8)
    var options = SupervisorOptions()
    (options.out, options.keys, options.bench, options.policy) = (dir + "/out", dir + "/keys", dir + "/bench.yaml", dir + "/policy.yaml")
    (options.devices, options.display, options.control, options.listen, options.tokens) = ([simulator.pty], "none", false, "127.0.0.1:0", dir + "/tokens.yaml")
    let token = try TokenFile.add(name: "bench", scope: .approve, to: dir + "/tokens.yaml")
    let running = SessionBox(try Supervisor.start(options))
    let opened = running.session.openService(options)
    guard let address = running.session.apiAddress, let port = Int(address.split(separator: ":").last ?? "") else {
        print("api: SKIPPED — the API did not open: \(opened)")
        return
    }
    let signals = try SignalWatch(signals: [SIGINT, SIGTERM])
    let loopEnded = DispatchSemaphore(value: 0)
    Thread {
        _ = try? Supervisor.run(&running.session.loop, steps: nil, interval: .milliseconds(10), signals: signals, service: running.session.service) { _ in }
        loopEnded.signal()
    }.start()
    defer {
        signals.deliver(SIGTERM)
        loopEnded.wait()
        running.session.closeService()
    }
    let hello = try HelloServer()
    defer { hello.stop() }
    // Wait for the first steps: a graph to query, the instrument attached.
    var graph = (status: 0, body: [UInt8]())
    for _ in 0..<100 where graph.status != 200 || graph.body.count < 100 {
        usleep(50_000)
        graph = HTTPConnection(port: port).request("GET", "/api/v1/graph?kind=process", token: token)
    }
    let processes = ((try? JSONSerialization.jsonObject(with: Data(graph.body))) as? [String: Any])?["nodes"] as? [[String: Any]] ?? []
    guard let node = (processes.first?["id"] as? String)?.addingPercentEncoding(withAllowedCharacters: .alphanumerics) else {
        print("api: SKIPPED — no process in the supervisor's graph: \(String(decoding: graph.body.prefix(200), as: UTF8.self))")
        return
    }

    let (threads, seconds) = (4, 3.0)
    let before = drive(threads: threads, seconds: seconds, port: hello.port) { $0.request("GET", "/hello", token: nil).status == 200 }
    let byID = drive(threads: threads, seconds: seconds, port: port) { $0.request("GET", "/api/v1/graph?id=\(node)", token: token).status == 200 }
    let byKind = drive(threads: threads, seconds: seconds, port: port) { $0.request("GET", "/api/v1/graph?kind=process", token: token).status == 200 }
    let acted = drive(threads: threads, seconds: seconds, port: port) {
        $0.request("POST", "/api/v1/actions", token: token, body: #"{"context": "operator", "action": "watchdog.acknowledge"}"#).status == 200
    }
    let after = drive(threads: threads, seconds: seconds, port: hello.port) { $0.request("GET", "/hello", token: nil).status == 200 }
    let floor = (perSecond: (before.perSecond + after.perSecond) / 2, p99: (before.p99 + after.p99) / 2)
    func row(_ name: String, _ r: (perSecond: Double, p50: Double, p99: Double, failed: Int), ratio: Bool = true) -> String {
        String(format: "  %@ %8.0f req/s  p50 %7.2f ms  p99 %7.2f ms", name.padding(toLength: 38, withPad: " ", startingAt: 0), r.perSecond, r.p50, r.p99)
            + (ratio ? String(format: "  (%.3f× the floor's rate, p99 %.1f× its p99)", r.perSecond / floor.perSecond, r.p99 / floor.p99) : "")
            + (r.failed > 0 ? "  \(r.failed) FAILED" : "")
    }
    print("api (\(threads) keep-alive clients × \(Int(seconds)) s each, in this process; the loop stepping every 10 ms)")
    print(row("hello route, plain Hummingbird (floor):", before, ratio: false))
    print(row("graph query by id:", byID))
    print(row("graph query by kind (\(processes.count) processes):", byKind))
    print(row("action through the guard (ran):", acted) + "; each waits for its context's turn at a step")
    print(row("hello route again (floor):", after, ratio: false))
}

/// The session shared with the loop's thread.
final class SessionBox: @unchecked Sendable {
    var session: Supervisor.Session
    init(_ session: Supervisor.Session) { self.session = session }
}

/// `GET /hello` on a plain Hummingbird application: nothing but the framework.
final class HelloServer: @unchecked Sendable {
    private(set) var port = 0
    private let group: ServiceGroup
    private let ended = DispatchSemaphore(value: 0)

    init() throws {
        let router = Router()
        router.get("/hello") { _, _ in "hello" }
        let bound = DispatchSemaphore(value: 0)
        let box = SessionlessPort()
        let logger = Logger(label: "hello", factory: { _ in SwiftLogNoOpLogHandler() })
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in box.port = channel.localAddress?.port ?? 0; bound.signal() }, logger: logger)
        group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        Task.detached { [group, ended] in
            try? await group.run()
            ended.signal()
        }
        guard bound.wait(timeout: .now() + 20) == .success else { throw BenchFailure("the hello server did not start") }
        port = box.port
    }

    func stop() {
        Task.detached { [group] in await group.triggerGracefulShutdown() }
        _ = ended.wait(timeout: .now() + 10)
    }

    final class SessionlessPort: @unchecked Sendable { var port = 0 }
}

struct BenchFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
