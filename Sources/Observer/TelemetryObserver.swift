import Glibc
import LoopCore
import StateGraph
import SystemCalls

/// Telemetry as sensor nodes: hwmon (temperatures, fans, voltages, currents, power), thermal
/// zones, power supplies, CPU frequency, pressure stall information, meminfo and loadavg —
/// whatever this machine has. Values are converted to SI-ish units (°C, RPM, V, A, W, MHz, %, kB).
/// A file that cannot be read or parsed is skipped and counted in `raced`; the rest stands.
public struct TelemetryObserver: Observing {
    public let sysRoot: String
    public let procRoot: String

    public init(sysRoot: String = "/sys", procRoot: String = "/proc") {
        self.sysRoot = sysRoot
        self.procRoot = procRoot
    }

    public func observe(at now: Instant) throws -> Observation {
        var sensors: [Node] = []
        var skipped = 0
        func add(_ id: String, _ value: Double, unit: String, _ extra: Attributes = [:]) {
            var attributes = extra
            attributes["value"] = .double(value)
            attributes["unit"] = .string(unit)
            sensors.append(Node(id: NodeID("sensor:\(id)"), kind: .sensor, projected: true, attributes: attributes))
        }

        // hwmon: <kind><n>_input with an optional <kind><n>_label.
        let units: [(prefix: String, unit: String, divisor: Double)] = [("temp", "°C", 1e3), ("fan", "RPM", 1), ("in", "V", 1e3),
                                                                         ("curr", "A", 1e3), ("power", "W", 1e6)]
        var names: [String: Int] = [:]
        for hwmon in sortedEntries("\(sysRoot)/class/hwmon") {
            let dir = "\(sysRoot)/class/hwmon/\(hwmon)"
            let base = text("\(dir)/name") ?? hwmon
            names[base, default: 0] += 1
            let name = names[base]! > 1 ? "\(base)-\(hwmon)" : base
            for file in sortedEntries(dir) where file.hasSuffix("_input") {
                let channel = String(file.dropLast("_input".count))
                guard let kind = units.first(where: { channel.hasPrefix($0.prefix) && Int(channel.dropFirst($0.prefix.count)) != nil }) else { continue }
                guard let raw = text("\(dir)/\(file)").flatMap(Double.init) else { skipped += 1; continue }
                var extra: Attributes = ["source": .string("hwmon"), "chip": .string(base)]
                if let label = text("\(dir)/\(channel)_label") { extra["label"] = .string(label) }
                add("hwmon/\(name)/\(channel)", raw / kind.divisor, unit: kind.unit, extra)
            }
        }
        // Thermal zones.
        for zone in sortedEntries("\(sysRoot)/class/thermal") where zone.hasPrefix("thermal_zone") {
            let dir = "\(sysRoot)/class/thermal/\(zone)"
            guard let raw = text("\(dir)/temp").flatMap(Double.init) else { skipped += 1; continue }
            add("thermal/\(zone)", raw / 1000, unit: "°C", ["source": .string("thermal"), "label": .string(text("\(dir)/type") ?? zone)])
        }
        // Power supplies.
        let supplyFields: [(file: String, unit: String, divisor: Double)] = [("capacity", "%", 1), ("voltage_now", "V", 1e6),
                                                                             ("current_now", "A", 1e6), ("power_now", "W", 1e6), ("online", "", 1)]
        for supply in sortedEntries("\(sysRoot)/class/power_supply") {
            let dir = "\(sysRoot)/class/power_supply/\(supply)"
            var extra: Attributes = ["source": .string("power_supply")]
            if let type = text("\(dir)/type") { extra["supply-type"] = .string(type) }
            if let status = text("\(dir)/status") { extra["status"] = .string(status) }
            for field in supplyFields {
                guard let value = text("\(dir)/\(field.file)") else { continue }
                guard let number = Double(value) else { skipped += 1; continue }
                add("power/\(supply)/\(field.file)", number / field.divisor, unit: field.unit, extra)
            }
        }
        // CPU frequency.
        for cpu in sortedEntries("\(sysRoot)/devices/system/cpu") where cpu.hasPrefix("cpu") && Int(cpu.dropFirst(3)) != nil {
            guard let raw = text("\(sysRoot)/devices/system/cpu/\(cpu)/cpufreq/scaling_cur_freq") else { continue }
            guard let khz = Double(raw) else { skipped += 1; continue }
            add("cpufreq/\(cpu)", khz / 1000, unit: "MHz", ["source": .string("cpufreq")])
        }
        // Pressure stall information.
        for resource in ["cpu", "memory", "io"] {
            guard let content = text("\(procRoot)/pressure/\(resource)") else { continue }
            let (lines, bad) = Telemetry.parsePressure(content)
            skipped += bad
            for p in lines {
                add("pressure/\(resource)/\(p.kind)", p.avg10, unit: "%", ["source": .string("psi"), "avg60": .double(p.avg60),
                                                                           "avg300": .double(p.avg300), "total-us": .int(p.total)])
            }
        }
        // Memory and load.
        if let content = text("\(procRoot)/meminfo") {
            let (fields, bad) = Telemetry.parseMeminfo(content)
            skipped += bad
            for key in ["MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapTotal", "SwapFree"] {
                if let kb = fields[key] { add("memory/\(key)", Double(kb), unit: "kB", ["source": .string("meminfo")]) }
            }
        }
        if let content = text("\(procRoot)/loadavg") {
            if let load = Telemetry.parseLoadavg(content) {
                add("load/1m", load.one, unit: "", ["source": .string("loadavg")])
                add("load/5m", load.five, unit: "", ["source": .string("loadavg")])
                add("load/15m", load.fifteen, unit: "", ["source": .string("loadavg"), "running": .int(load.running), "tasks": .int(load.tasks)])
            } else {
                skipped += 1
            }
        }
        return Observation(time: now, scope: [.sensor], nodes: sensors, edges: [], supervisor: nil, raced: skipped)
    }

    private func text(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard let bytes = preadAll(fd) else { return nil }
        let s = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: " \n\t")
        return s.isEmpty ? nil : s
    }

    private func sortedEntries(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let e = readdir(dir) {
            let name = entryName(e)
            if !name.hasPrefix(".") { names.append(name) }
        }
        return names.sorted()
    }
}

/// Parsers of the telemetry text files.
public enum Telemetry {
    public struct Pressure: Equatable, Sendable {
        public var kind: String
        public var avg10: Double, avg60: Double, avg300: Double
        public var total: Int64
    }

    /// `some avg10=0.00 avg60=0.00 avg300=0.00 total=0` lines; malformed lines are counted.
    public static func parsePressure(_ text: String) -> (lines: [Pressure], malformed: Int) {
        var out: [Pressure] = []
        var bad = 0
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            var values: [String: Substring] = [:]
            for p in parts.dropFirst() {
                let kv = p.split(separator: "=", maxSplits: 1)
                if kv.count == 2 { values[String(kv[0])] = kv[1] }
            }
            guard let kind = parts.first, kind == "some" || kind == "full",
                  let a10 = values["avg10"].flatMap({ Double($0) }), let a60 = values["avg60"].flatMap({ Double($0) }),
                  let a300 = values["avg300"].flatMap({ Double($0) }), let total = values["total"].flatMap({ Int64($0) }) else {
                bad += 1
                continue
            }
            out.append(Pressure(kind: String(kind), avg10: a10, avg60: a60, avg300: a300, total: total))
        }
        return (out, bad)
    }

    /// `MemTotal:       24591292 kB` lines; malformed lines are counted.
    public static func parseMeminfo(_ text: String) -> (fields: [String: Int64], malformed: Int) {
        var out: [String: Int64] = [:]
        var bad = 0
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count >= 2, parts[0].hasSuffix(":"), let v = Int64(parts[1]) else { bad += 1; continue }
            out[String(parts[0].dropLast())] = v
        }
        return (out, bad)
    }

    public struct Load: Equatable, Sendable {
        public var one: Double, five: Double, fifteen: Double
        public var running: Int64, tasks: Int64
    }

    /// `0.52 0.58 0.59 3/412 12345`.
    public static func parseLoadavg(_ text: String) -> Load? {
        let f = text.split(separator: " ")
        guard f.count >= 4, let a = Double(f[0]), let b = Double(f[1]), let c = Double(f[2]) else { return nil }
        let rt = f[3].split(separator: "/")
        guard rt.count == 2, let r = Int64(rt[0]), let t = Int64(rt[1]) else { return nil }
        return Load(one: a, five: b, fifteen: c, running: r, tasks: t)
    }
}
