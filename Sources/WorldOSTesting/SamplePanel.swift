import LoopCore
import StateGraph

/// A fixed bench as the panel sees it — the bench bridge with its readings and actuators, an
/// energise waiting for approval, four contexts (one refused, one a program), telemetry, the
/// screen and a touchscreen, twenty processes, and the panel's own surface node — for the golden
/// images, the panel's tests and the rendering bench. Everything in it is fixed, so its frames
/// are too.
public enum SamplePanel {
    public static let approval = "5a17c0ffee5a17c0"
    public static let instrument = NodeID("instrument:bench-bridge:SIM-0001")
    public static let temperature = NodeID("sensor:bench-bridge/SIM-0001/heater-temperature")

    /// The surface node's attributes: who operates the seat, what has the focus, what waits for
    /// a confirmation.
    public static func posterior(step: Int = 42, temperature celsius: Double = 25.5, operator seat: String? = "alice",
                                 focus: String? = nil, armed: String? = nil, fault: String? = nil) -> Posterior {
        var nodes: [Node] = []
        var edges: [Edge] = []
        var bench: Attributes = ["profile": .string("bench-bridge"), "model": .string("BenchBridge"), "serial": .string("SIM-0001"),
                                 "path": .string("/dev/ttyUSB0"), "status": .string(fault == nil ? "ok" : "lost"), "safe-state": .string("*RST")]
        if let fault { bench["fault"] = .string(fault) }
        nodes.append(Node(id: instrument, kind: .instrument, projected: true, attributes: bench))
        let readings: [(String, Double, String, Bool)] = [
            ("heater-temperature", celsius, "°C", false), ("heater-power", 0, "%", true), ("relay-0", 0, "", true), ("relay-1", 1, "", true),
            ("axis-position", 120, "steps", false), ("supply-output", 0, "", true), ("supply-voltage", 4.98, "V", false),
            ("supply-current", 0.12, "A", false), ("watchdog", 3000, "", false),
        ]
        for (name, value, unit, actuator) in readings {
            let id = NodeID("sensor:bench-bridge/SIM-0001/\(name)")
            nodes.append(Node(id: id, kind: .sensor, projected: true, attributes: [
                "reading": .string(name), "value": .double(value), "unit": .string(unit), "role": .string(actuator ? "actuator" : "sensor"),
            ]))
            edges.append(Edge(instrument, .owns, id))
        }
        nodes.append(Node(id: NodeID("approval:\(approval)"), kind: .approval, projected: true, attributes: [
            "action": .string("relay.energise"), "params": .string("relay=1"), "device": .string("bench-bridge:SIM-0001"),
            "path": .string("/dev/ttyUSB0"), "context": .string("bench-operator"), "until": .string("14:05:00Z"),
            "risk": .string("irreversible-physical"),
        ]))
        let contexts: [(String, Int64, Attributes)] = [
            ("bench-operator", 3, ["runs": .int(4), "allowed": .int(3), "denied": .int(1), "last-task": .string("energise-relay"),
                                   "last-result": .string("waiting for approval")]),
            ("maintenance", 5, ["runs": .int(2), "allowed": .int(4), "denied": .int(1), "last-task": .string("read-shadow"), "last-result": .string("denied"),
                                "last-denial": .string("open(path: \"/etc/shadow\"): credentials are never read by an execution context [Policies/default.yaml:24]")]),
            ("telemetry", 10, ["runs": .int(12), "allowed": .int(36), "denied": .int(0), "last-task": .string("read-loadavg"), "last-result": .string("ok")]),
            ("sampler", 1, [:]),
        ]
        for (name, priority, attributes) in contexts {
            var a = attributes
            a["priority"] = .int(priority)
            nodes.append(Node(id: .context(name), kind: .executionContext, partition: .context(name), projected: true, attributes: a))
        }
        nodes.append(Node(id: NodeID("program:sampler"), kind: .program, partition: .context("sampler"), projected: true, attributes: [
            "context": .string("sampler"), "calls": .int(10), "allowed": .int(10), "refused": .int(0), "last-call": .string("openat(\"/proc/loadavg\")"),
        ]))
        for (name, value, unit) in [("load/1m", 0.42, ""), ("load/5m", 0.3, ""), ("memory/MemAvailable", 23_800_512, "kB"), ("pressure/cpu/some", 0.93, "%")] {
            nodes.append(Node(id: NodeID("sensor:\(name)"), kind: .sensor, projected: true, attributes: ["value": .double(value), "unit": .string(unit)]))
        }
        nodes.append(Node(id: NodeID("display:card0/Virtual-1"), kind: .displayConnector, projected: true, attributes: [
            "device": .string("/dev/dri/card0"), "connector": .string("Virtual-1"), "mode": .string("1920x1080@60"), "driver": .string("bochs-drm"),
        ]))
        nodes.append(Node(id: NodeID("input:event3"), kind: .inputDevice, projected: true, attributes: [
            "path": .string("/dev/input/event3"), "name": .string("QEMU Virtio Tablet"), "capabilities": .string("touch"),
        ]))
        let supervisor = NodeID.process(pid: 656, startTime: 9)
        for i in 0..<20 {
            let pid = i == 4 ? 656 : 700 + i * 7
            let comm = i == 4 ? "worldos" : ["bash", "sshd", "systemd-journal", "bench-bridge-si", "tail"][i % 5]
            nodes.append(Node(id: i == 4 ? supervisor : .process(pid: Int32(pid), startTime: 1), kind: .process, projected: true, attributes: [
                "pid": .int(Int64(pid)), "comm": .string(comm), "state": .string(i == 4 ? "R" : "S"), "fds": .int(Int64(i == 4 ? 184 : (i * 3) % 11)),
            ]))
        }
        var surface: Attributes = [:]
        if let seat { surface["operator"] = .string(seat) }
        if let focus { surface["focus"] = .string(focus) }
        if let armed { surface["armed"] = .string(armed) }
        nodes.append(Node(id: NodeID("surface:panel"), kind: .surface, projected: true, attributes: surface))
        var graph = Graph()
        // Fixed content: a failure here is a mistake in this file.
        try! graph.apply(GraphDelta(nodes.map { .addNode($0) } + edges.map { .addEdge($0) }))
        return Posterior(step: step, graph: graph, surprise: Surprise(missing: 2), observedAt: nil, supervisor: supervisor)
    }
}
