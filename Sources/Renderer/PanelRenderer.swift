import LoopCore
import StateGraph

extension String {
    func padding(to width: Int) -> String { count >= width ? self + " " : self + String(repeating: " ", count: width - count) }
}

/// Draws the operator panel from the UI-projected subset of a posterior: a header with the
/// step's numbers, the execution contexts with what they last did (denials in red), and the
/// projected processes. Beside the pixels, a semantics tree names every row and the node it shows.
public struct PanelRenderer: Rendering {
    public let width: Int
    public let height: Int
    public let mode: Mode
    static let scale = 2

    enum Color {
        static let background: UInt32 = 0x101418
        static let header: UInt32 = 0x1f3b5c
        static let text: UInt32 = 0xe6e6e6
        static let dim: UInt32 = 0x8a939c
        static let section: UInt32 = 0x6fb3ff
        static let ok: UInt32 = 0x7ddc7d
        static let denied: UInt32 = 0xff5a5a
        static let own: UInt32 = 0xffd75a
        static let stripe: UInt32 = 0x161b21
    }

    public init(width: Int = 1280, height: Int = 800, mode: Mode) {
        self.width = width
        self.height = height
        self.mode = mode
    }

    public func render(_ posterior: Posterior, at now: Instant) -> Frame {
        var canvas = Canvas(width: width, height: height, background: Color.background)
        var semantics: [Frame.Semantic] = []
        let line = Canvas.lineHeight(Self.scale)
        let char = Canvas.advance(Self.scale)
        let columns = max(1, (width - 16) / char)
        func row(_ text: String, y: Int, color: UInt32, role: String, node: NodeID? = nil, x: Int = 8) {
            let clipped = String(text.prefix(columns))
            canvas.text(clipped, x: x, y: y, color: color, scale: Self.scale)
            semantics.append(.init(role: role, label: clipped, node: node, x: x, y: y, width: clipped.count * char, height: line))
        }

        func value(_ sensor: Node) -> String {
            let number: String = switch sensor["value"] {
            case .double(let d)?: d.rounded() == d && abs(d) < 1e15 ? String(Int64(d)) : format2(d)
            case let v?: "\(v)"
            case nil: "?"
            }
            let unit = sensor["unit"]?.stringValue ?? ""
            return unit.isEmpty ? number : "\(number) \(unit)"
        }

        let projected = posterior.graph.uiProjection
        let contexts = projected.filter { $0.kind == .executionContext }
        let processes = projected.filter { $0.kind == .process }
            .sorted { ($0["pid"]?.intValue ?? 0) < ($1["pid"]?.intValue ?? 0) }

        canvas.fill(x: 0, y: 0, width: width, height: line + 8, color: Color.header)
        let surprise = posterior.surprise.map { "prior wrong on \($0.wrongNodes)" } ?? "dreaming: no observation"
        row("WorldOS  step \(posterior.step)  mode \(mode.rawValue)  nodes \(posterior.graph.nodeCount)  edges \(posterior.graph.edgeCount)  \(surprise)",
            y: 5, color: Color.text, role: "header")

        var y = line + 16 - line / 2
        /// A row at the current line, and the next line.
        func emit(_ text: String, color: UInt32, role: String, node: NodeID? = nil) {
            row(text, y: y, color: color, role: role, node: node)
            y += line
        }
        func section(_ title: String) {
            y += line / 2
            emit(title, color: Color.section, role: "section")
        }
        if let fault = projected.lazy.compactMap({ $0["fault"]?.stringValue }).first {
            y += line / 2
            emit("HALTED (latched fault): \(fault)", color: Color.denied, role: "fault")
            emit("  nothing physical runs until a person checks the bench and runs worldos ack", color: Color.denied, role: "fault")
        }
        section("EXECUTION CONTEXTS (\(contexts.count))")
        let programs = Dictionary(projected.filter { $0.kind == .program }.compactMap { p in p["context"]?.stringValue.map { ($0, p) } },
                                  uniquingKeysWith: { a, _ in a })
        for context in contexts {
            guard case .context(let name) = context.partition else { continue }
            if let program = programs[name] {
                // A program context: what its program did, as its mediator decided it.
                let calls = program["calls"]?.intValue ?? 0, refused = program["refused"]?.intValue ?? 0
                let ended = program["ended"]?.stringValue
                let last = program["last-call"]?.stringValue ?? "none yet"
                emit("\(name)  program  calls \(calls)  allowed \(program["allowed"]?.intValue ?? 0)  refused \(refused)  last \(last)",
                     color: ended != nil ? Color.denied : calls == 0 ? Color.dim : Color.ok, role: "context", node: context.id)
                if let ended {
                    emit("  ENDED \(ended)", color: Color.denied, role: "program-exit", node: program.id)
                } else if let refusal = program["last-refusal"]?.stringValue {
                    emit("  REFUSED \(refusal)", color: Color.denied, role: "denial", node: program.id)
                }
                continue
            }
            let priority = context["priority"]?.intValue ?? 0
            let runs = context["runs"]?.intValue ?? 0
            let allowed = context["allowed"]?.intValue ?? 0
            let denied = context["denied"]?.intValue ?? 0
            let last = context["last-task"]?.stringValue ?? "-"
            let result = context["last-result"]?.stringValue ?? "not run yet"
            let color = result == "ok" ? Color.ok : result == "not run yet" ? Color.dim : result == "waiting for approval" ? Color.own : Color.denied
            emit("\(name)  prio \(priority)  runs \(runs)  allowed \(allowed)  denied \(denied)  last \(last): \(result)",
                 color: color, role: "context", node: context.id)
            if let denial = context["last-denial"]?.stringValue {
                emit("  REFUSED \(denial)", color: Color.denied, role: "denial", node: context.id)
            }
        }

        // What waits for a person now, as the approval store has it: used, rejected or expired
        // requests are gone from the graph, and so from here.
        let waiting = projected.filter { $0.kind == .approval }
        if !waiting.isEmpty {
            section("WAITING FOR APPROVAL (\(waiting.count))")
            for request in waiting {
                let id = request.id.rawValue.dropFirst("approval:".count)
                let what = ["action", "params"].compactMap { request[$0]?.stringValue }.filter { !$0.isEmpty }.joined(separator: " ")
                let on = ["device", "path"].compactMap { request[$0]?.stringValue }.joined(separator: " ")
                let people = request["approvals"]?.stringValue.map { ", \($0) approvals" } ?? ""
                emit("\(id)  \(what) on \(on)  \(request["risk"]?.stringValue ?? "")  asked by \(request["context"]?.stringValue ?? "?")"
                    + "  until \(request["until"]?.stringValue ?? "?")\(people)", color: Color.own, role: "approval", node: request.id)
                emit("  worldos approve \(id)", color: Color.own, role: "approval-command", node: request.id)
            }
        }

        let instruments = projected.filter { $0.kind == .instrument }
        if !instruments.isEmpty {
            section("INSTRUMENTS (\(instruments.count))")
            for instrument in instruments {
                let status = instrument["status"]?.stringValue ?? "?"
                let title = ["profile", "model", "serial", "path"].compactMap { instrument[$0]?.stringValue }.joined(separator: "  ")
                emit("\(title)  \(status)", color: status == "ok" ? Color.ok : Color.denied, role: "instrument", node: instrument.id)
                let readings = posterior.graph.owned(by: instrument.id).compactMap { posterior.graph[$0] }.filter { $0.kind == .sensor }
                let cells = readings.map { "\($0["reading"]?.stringValue ?? "?") \(value($0))" }
                for i in stride(from: 0, to: cells.count, by: 3) {
                    emit("  " + cells[i..<min(i + 3, cells.count)].map { $0.padding(to: 30) }.joined(), color: Color.text, role: "reading", node: instrument.id)
                }
            }
        }

        let sensors = projected.filter { $0.kind == .sensor && posterior.graph.owner(of: $0.id) == nil }
        if !sensors.isEmpty {
            section("TELEMETRY (\(sensors.count))")
            // Two sensors to a row; the most telling first: load, memory, pressure, then the rest.
            let order = ["load/", "memory/MemAvailable", "pressure/cpu/some", "pressure/memory/some", "pressure/io/some",
                         "thermal/", "hwmon/", "power/", "cpufreq/"]
            func rank(_ n: Node) -> Int { order.firstIndex { n.id.rawValue.dropFirst(7).hasPrefix($0) } ?? order.count }
            let chosen = sensors.filter { rank($0) < order.count }.sorted { (rank($0), $0.id) < (rank($1), $1.id) }.prefix(8)
            let cells = chosen.map { "\($0.id.rawValue.dropFirst("sensor:".count)) \(value($0))" }
            for i in stride(from: 0, to: cells.count, by: 2) {
                let left = cells[i].padding(to: 44), right = i + 1 < cells.count ? cells[i + 1] : ""
                emit(left + right, color: Color.text, role: "telemetry", node: chosen[chosen.index(chosen.startIndex, offsetBy: i)].id)
            }
        }

        let events = projected.filter { $0.kind == .pendingEvent }
        if !events.isEmpty {
            section("EVENTS THIS STEP (\(events.count))")
            for event in events.prefix(4) {
                let text = ["source", "action", "subject"].compactMap { event[$0]?.stringValue }.joined(separator: " ")
                emit(text, color: Color.dim, role: "event", node: event.id)
            }
        }

        section("PROCESSES (\(processes.count))   pid  state  fds  command")
        let available = max(0, (height - y) / line - 1)
        let shown = processes.count > available + 1 ? Array(processes.prefix(available)) : processes
        for (i, process) in shown.enumerated() {
            if i % 2 == 1 { canvas.fill(x: 0, y: y - 2, width: width, height: line, color: Color.stripe) }
            let pid = process["pid"]?.intValue ?? 0
            let state = process["state"]?.stringValue ?? "?"
            let fds = process["fds"]?.intValue ?? 0
            let comm = process["comm"]?.stringValue ?? "?"
            let own = process.id == posterior.supervisor
            let text = "\(pad(pid, 7))  \(state)  \(pad(fds, 5))  \(comm)" + (own ? "   <- this supervisor" : "")
            emit(text, color: own ? Color.own : Color.text, role: "process", node: process.id)
        }
        if shown.count < processes.count {
            row("... and \(processes.count - shown.count) more", y: y, color: Color.dim, role: "more")
        }
        return Frame(width: width, height: height, pixels: canvas.pixels, semantics: semantics, step: posterior.step, drawList: canvas.drawList)
    }

    private func format2(_ d: Double) -> String {
        let scaled = (d * 100).rounded() / 100
        return String(scaled)
    }

    private func pad(_ v: Int64, _ width: Int) -> String {
        let s = String(v)
        return String(repeating: " ", count: max(0, width - s.count)) + s
    }
}
