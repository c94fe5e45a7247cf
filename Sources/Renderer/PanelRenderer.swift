import Foundation
import LoopCore
import StateGraph
import Typeface

/// Draws the operator panel from the UI-projected subset of a posterior, laid out for the
/// screen's size: a header with the step's numbers and who operates this seat; a latched fault
/// across the top; then, down one or two columns, what waits for a person (each approval with
/// its buttons — disabled, with the reason, when the seat's operator may not press them), the
/// instruments with their readings and their actuators' states, the execution contexts with
/// their last decision and its rule, the telemetry, the screen and input devices, and the
/// busiest processes. The scene is retained: a frame redraws only the widgets that changed.
///
/// The panel's own state — the seat's operator, the focused widget, a pending confirmation —
/// is the `surface` node of the graph (Surface's PanelObserver), so the frame is a function of
/// the posterior alone.
public struct PanelRenderer: Rendering {
    public let width: Int
    public let height: Int
    public let mode: Mode
    public let face: Typeface
    private var raster: SceneRaster

    public init(width: Int = 1280, height: Int = 800, mode: Mode, face: Typeface? = nil) throws(TypefaceError) {
        self.width = width
        self.height = height
        self.mode = mode
        if let face { self.face = face } else { self.face = try Typeface.named() }
        raster = SceneRaster(face: self.face)
    }

    public mutating func render(_ posterior: Posterior, at now: Instant) -> Frame {
        let scene = Self.scene(posterior, width: width, height: height, mode: mode, face: face)
        let (pixels, damage) = raster.draw(scene)
        return Frame(width: width, height: height, pixels: pixels, semantics: scene.widgets.compactMap(\.semantic), step: posterior.step,
                     drawList: scene.encoded(), damage: damage)
    }

    /// One frame of one posterior, drawn whole.
    public static func frame(of posterior: Posterior, width: Int = 1280, height: Int = 800, mode: Mode) throws(TypefaceError) -> Frame {
        var renderer = try PanelRenderer(width: width, height: height, mode: mode)
        return renderer.render(posterior, at: Instant(nanoseconds: 0))
    }

    /// The panel's identity in the graph: its state (operator, focus, confirmation) is this node's.
    public static let surfaceNode = NodeID("surface:panel")

    /// The widget keys a press acts on: `approve:ID` and `reject:ID` ask for the confirmation,
    /// `confirm-approve:ID`, `confirm-reject:ID` and `cancel:ID` answer it.
    public enum Key {
        public static func approve(_ id: String) -> String { "approve:\(id)" }
        public static func reject(_ id: String) -> String { "reject:\(id)" }
        public static func confirm(_ key: String) -> String { "confirm-\(key)" }
        public static func cancel(_ id: String) -> String { "cancel:\(id)" }
    }

    public static func scene(_ posterior: Posterior, width: Int, height: Int, mode: Mode, face: Typeface) -> Scene {
        let graph = posterior.graph
        let projected = graph.uiProjection
        let surface = graph[surfaceNode]
        let seat = surface?["operator"]?.stringValue
        var layout = PanelLayout(width: width, height: height, face: face, top: 0, focus: surface?["focus"]?.stringValue)
        let m = layout.m

        // Header: across the screen, above the columns.
        let header = PixelRect(x: 0, y: 0, width: width, height: m.line + m.margin)
        let surprise = posterior.surprise.map { s in "prior wrong on \(s.wrongNodes)" + (s.learned.map { String(format: ", %.0f bits unusual", $0.bits) } ?? "") }
            ?? "dreaming: no observation"
        let who = seat.map { "operator \($0)" } ?? "no operator at this seat"
        let title = "WorldOS  step \(posterior.step)  \(mode == .latent ? "DREAM (latent): not the machine" : mode.rawValue)  \(graph.nodeCount) nodes  \(graph.edgeCount) edges  \(surprise)"
        let room = max(1, (width - 2 * m.margin) / m.advance - who.count - 2)
        let shownTitle = title.count <= room ? title : String(title.prefix(room - 1)) + "…"
        layout.scene.widgets.append(Widget(bounds: header, fill: Palette.header, runs: [
            TextRun(shownTitle, x: m.margin, baseline: m.margin / 2 + m.ascender, color: Palette.text, size: m.size),
            TextRun(who, x: width - m.margin - who.count * m.advance, baseline: m.margin / 2 + m.ascender,
                    color: seat == nil ? Palette.dim : Palette.own, size: m.size),
        ], semantic: .init(role: "header", label: shownTitle, node: nil, x: 0, y: 0, width: width, height: header.height, value: who)))
        var top = header.maxY + m.margin / 2

        // A latched fault: across the screen, in red, before anything else.
        if let (node, fault) = projected.lazy.compactMap({ n in n["fault"]?.stringValue.map { (n.id, $0) } }).first {
            let banner = PixelRect(x: 0, y: top, width: width, height: 2 * m.line + m.margin)
            let chars = max(1, (width - 2 * m.margin) / m.advance)
            let first = "HALTED (latched fault): \(fault)"
            layout.scene.widgets.append(Widget(bounds: banner, fill: Palette.fault, runs: [
                TextRun(String(first.prefix(chars)), x: m.margin, baseline: top + m.margin / 2 + m.ascender, color: Palette.text, size: m.size),
                TextRun(String("nothing physical runs until a person checks the bench and runs worldos ack".prefix(chars)), x: m.margin,
                        baseline: top + m.margin / 2 + m.line + m.ascender, color: Palette.text, size: m.size),
            ], semantic: .init(role: "fault", label: first, node: node, x: 0, y: top, width: width, height: banner.height, value: fault)))
            top = banner.maxY + m.margin / 2
        }
        layout.start(at: top)

        approvals(projected.filter { $0.kind == .approval }, seat: seat, armed: surface?["armed"]?.stringValue, into: &layout)
        instruments(projected.filter { $0.kind == .instrument }, graph: graph, into: &layout)
        contexts(projected, into: &layout)
        if m.columns > 1 { layout.breakColumn() }
        telemetry(projected.filter { $0.kind == .sensor && graph.owner(of: $0.id) == nil }, into: &layout)
        screenAndInput(projected, into: &layout)
        processes(projected.filter { $0.kind == .process }, supervisor: posterior.supervisor, into: &layout)
        return layout.scene
    }

    // MARK: sections

    static func approvals(_ waiting: [Node], seat: String?, armed: String?, into layout: inout PanelLayout) {
        guard !waiting.isEmpty, layout.section("WAITING FOR APPROVAL (\(waiting.count))") else { return }
        for request in waiting {
            let id = String(request.id.rawValue.dropFirst("approval:".count))
            let what = ["action", "params"].compactMap { request[$0]?.stringValue }.filter { !$0.isEmpty }.joined(separator: " ")
            let on = request["device"]?.stringValue ?? "?"
            let risk = request["risk"]?.stringValue ?? "irreversible"
            let count = request["approvals"]?.stringValue.map { "  approvals \($0)" } ?? ""
            guard layout.line("\(what)  on \(on)", color: Palette.own, role: "approval", node: request.id, value: risk, fill: Palette.card),
                  layout.line("\(risk)  asked by \(request["context"]?.stringValue ?? "?")  until \(request["until"]?.stringValue ?? "?")\(count)  [\(id.prefix(8))]",
                              color: Palette.text, role: "approval-detail", node: request.id, fill: Palette.card) else { return }
            if let dream = request["dream"]?.stringValue,
               !layout.line(dream, color: Palette.dim, role: "approval-dream", node: request.id, fill: Palette.card) { return }
            let approvedBy = Set((request["approved-by"]?.stringValue ?? "").split(separator: ",").map(String.init))
            let mayNot: String? = if let seat {
                approvedBy.contains(seat) ? "\(seat) has approved this; it needs another person" : nil
            } else {
                "no operator at this seat: start with worldos run --panel-operator NAME"
            }
            let approve = Key.approve(id), reject = Key.reject(id)
            if armed == approve || armed == reject {
                let confirm = Key.confirm(armed!)
                layout.buttons([.init(label: "CANCEL", value: Key.cancel(id), color: Palette.button), nil,
                                .init(label: armed == approve ? "CONFIRM APPROVE" : "CONFIRM REJECT", value: confirm, color: Palette.confirm,
                                      disabled: armed == approve ? mayNot : nil)], node: request.id)
            } else {
                layout.buttons([.init(label: "APPROVE", value: approve, color: Palette.button, disabled: mayNot),
                                .init(label: "REJECT", value: reject, color: Palette.button,
                                      disabled: seat == nil ? mayNot : nil), nil], node: request.id)
            }
        }
    }

    static func instruments(_ instruments: [Node], graph: Graph, into layout: inout PanelLayout) {
        guard !instruments.isEmpty, layout.section("INSTRUMENTS (\(instruments.count))") else { return }
        for instrument in instruments {
            let status = instrument["status"]?.stringValue ?? "?"
            let title = ["profile", "model", "serial", "path"].compactMap { instrument[$0]?.stringValue }.joined(separator: "  ")
            guard layout.line("\(title)  \(status)", color: status == "ok" ? Palette.ok : Palette.denied, role: "instrument",
                              node: instrument.id, value: status) else { return }
            let readings = graph.owned(by: instrument.id).compactMap { graph[$0] }.filter { $0.kind == .sensor }
            let sensors = readings.filter { $0["role"]?.stringValue != "actuator" }
            let actuators = readings.filter { $0["role"]?.stringValue == "actuator" }
            cells(sensors, role: "reading", color: Palette.text, into: &layout)
            if !actuators.isEmpty {
                let safe = instrument["safe-state"]?.stringValue.map { "  safe state: \($0)" } ?? ""
                layout.line("  actuators\(safe)", color: Palette.dim, role: "actuators", node: instrument.id)
                cells(actuators, role: "actuator", color: Palette.own, into: &layout)
            }
        }
    }

    /// Readings two or three to a row (as wide as the column allows), each its own widget: one
    /// reading that changes redraws only its cell.
    static func cells(_ nodes: [Node], role: String, color: UInt32, into layout: inout PanelLayout) {
        let m = layout.m
        let texts = nodes.map { "\($0["reading"]?.stringValue ?? $0.id.rawValue) \(value($0))" }
        let across = (layout.current.width - 2 * m.margin) / m.advance
        // As wide as the longest name and a value of twelve: a value that changes never moves a cell.
        let names = nodes.map { ($0["reading"]?.stringValue ?? $0.id.rawValue).count }
        let chars = min(across, (names.max() ?? 0) + 14)
        let cell = chars * m.advance
        let perRow = max(1, across / max(1, chars))
        for start in stride(from: 0, to: nodes.count, by: perRow) {
            guard layout.room(m.line) else { return }
            let (x0, y) = (layout.current.x + 2 * m.margin, layout.y)
            for (i, node) in nodes[start..<min(start + perRow, nodes.count)].enumerated() {
                let name = node["reading"]?.stringValue ?? node.id.rawValue
                let text = String(texts[start + i].prefix(chars - 1))
                let bounds = PixelRect(x: x0 + i * cell, y: y, width: cell, height: m.line)
                layout.scene.widgets.append(Widget(bounds: bounds, runs: [TextRun(text, x: bounds.x, baseline: y + m.ascender, color: color, size: m.size)],
                                                   semantic: .init(role: role, label: name, node: node.id, x: bounds.x, y: y, width: cell,
                                                                   height: m.line, value: value(node))))
            }
            layout.gap(m.line)
        }
    }

    static func contexts(_ projected: [Node], into layout: inout PanelLayout) {
        let contexts = projected.filter { $0.kind == .executionContext }
        guard !contexts.isEmpty, layout.section("CONTEXTS AND THEIR LAST DECISIONS (\(contexts.count))") else { return }
        let programs = Dictionary(projected.filter { $0.kind == .program }.compactMap { p in p["context"]?.stringValue.map { ($0, p) } },
                                  uniquingKeysWith: { a, _ in a })
        for context in contexts {
            guard case .context(let name) = context.partition else { continue }
            if let program = programs[name] {
                let calls = program["calls"]?.intValue ?? 0, refused = program["refused"]?.intValue ?? 0
                let ended = program["ended"]?.stringValue
                layout.line("\(name)  program  calls \(calls)  allowed \(program["allowed"]?.intValue ?? 0)  refused \(refused)",
                            color: ended != nil ? Palette.denied : calls == 0 ? Palette.dim : Palette.ok, role: "context", node: context.id)
                if let ended {
                    layout.line("  ENDED \(ended)", color: Palette.denied, role: "program-exit", node: program.id, indent: layout.m.advance)
                } else if let refusal = program["last-refusal"]?.stringValue {
                    layout.line("  REFUSED \(refusal)", color: Palette.denied, role: "denial", node: program.id, value: refusal)
                } else {
                    layout.line("  last \(program["last-call"]?.stringValue ?? "none yet")", color: Palette.dim, role: "decision", node: program.id)
                }
                continue
            }
            let result = context["last-result"]?.stringValue ?? "not run yet"
            let color = result == "ok" ? Palette.ok : result == "not run yet" ? Palette.dim : result == "waiting for approval" ? Palette.own : Palette.denied
            layout.line("\(name)  prio \(context["priority"]?.intValue ?? 0)  runs \(context["runs"]?.intValue ?? 0)  allowed "
                        + "\(context["allowed"]?.intValue ?? 0)  denied \(context["denied"]?.intValue ?? 0)",
                        color: color, role: "context", node: context.id, value: result)
            if let controller = context["controller"]?.stringValue {
                Self.controller(controller, context, into: &layout)
            }
            // A plan context: its plan and what the plan waits on.
            if let plan = context["plan"]?.stringValue {
                let state = context["state"]?.stringValue ?? "ready"
                layout.line("  plan \(plan)", color: state == "waiting-for-approval" || state == "paused" ? Palette.own : Palette.text,
                            role: "plan", node: context.id, value: state)
            }
            if let denial = context["last-denial"]?.stringValue {
                layout.line("  REFUSED \(denial)", color: Palette.denied, role: "denial", node: context.id, value: denial)
            } else {
                layout.line("  \(context["last-task"]?.stringValue ?? "-"): \(result)", color: Palette.dim, role: "decision", node: context.id, value: result)
            }
        }
    }

    /// A controller's line: its reading against its setpoint, its output; its period's jitter
    /// (p50/p99/max against the release) and late steps.
    static func controller(_ name: String, _ context: Node, into layout: inout PanelLayout) {
        func number(_ key: String) -> String {
            switch context[key] {
            // One spelling whichever way the number was kept (25 and 25.0 both as 25.0): a
            // recorded attribute reads back from JSON as a whole number.
            case .double(let v)?: String(format: "%.1f", v)
            case .int(let v)?: String(format: "%.1f", Double(v))
            case .string(let s)?: s
            default: "-"
            }
        }
        let reading = number("reading"), setpoint = number("setpoint")
        layout.line("  \(name): \(reading) -> setpoint \(setpoint)  output \(number("output"))", color: Palette.text, role: "controller",
                    node: context.id, value: "\(reading)/\(setpoint)")
        guard let period = context["period-ms"]?.intValue else { return }
        let ms = { (key: String) in context[key].map { v in String(format: "%.2f", v.doubleValue ?? 0) } ?? "-" }
        let late = context["late"]?.intValue ?? 0
        layout.line("  every \(period) ms  jitter p50 \(ms("jitter-p50-ms"))  p99 \(ms("jitter-p99-ms"))  max \(ms("jitter-max-ms")) ms  late \(late)",
                    color: late > 0 ? Palette.own : Palette.dim, role: "jitter", node: context.id, value: ms("jitter-p99-ms"))
    }

    static func telemetry(_ sensors: [Node], into layout: inout PanelLayout) {
        // The most telling first: load, memory, pressure, then temperatures and power.
        let order = ["load/", "memory/MemAvailable", "pressure/cpu/some", "pressure/memory/some", "pressure/io/some",
                     "thermal/", "hwmon/", "power/", "cpufreq/"]
        func rank(_ n: Node) -> Int { order.firstIndex { n.id.rawValue.dropFirst(7).hasPrefix($0) } ?? order.count }
        let chosen = sensors.filter { rank($0) < order.count }.sorted { (rank($0), $0.id) < (rank($1), $1.id) }.prefix(8)
        guard !chosen.isEmpty, layout.section("TELEMETRY (\(sensors.count))") else { return }
        let named = chosen.map { n -> Node in
            var n = n
            n["reading"] = .string(String(n.id.rawValue.dropFirst("sensor:".count)))
            return n
        }
        cells(Array(named), role: "telemetry", color: Palette.text, into: &layout)
    }

    static func screenAndInput(_ projected: [Node], into layout: inout PanelLayout) {
        let screens = projected.filter { $0.kind == .displayConnector }
        let inputs = projected.filter { $0.kind == .inputDevice }
        guard !(screens.isEmpty && inputs.isEmpty), layout.section("SCREEN AND INPUT") else { return }
        for s in screens {
            layout.line("\(s["device"]?.stringValue ?? "?") \(s["connector"]?.stringValue ?? "?")  \(s["mode"]?.stringValue ?? "?")  \(s["driver"]?.stringValue ?? "")",
                        color: Palette.text, role: "display", node: s.id)
        }
        for i in inputs {
            layout.line("\(i["path"]?.stringValue ?? "?")  \(i["name"]?.stringValue ?? "?")  \(i["capabilities"]?.stringValue ?? "")",
                        color: Palette.text, role: "input-device", node: i.id)
        }
    }

    /// The busiest first: running before sleeping, then by open descriptors.
    static func processes(_ all: [Node], supervisor: NodeID?, into layout: inout PanelLayout) {
        let processes = all.sorted {
            let (a, b) = ($0["state"]?.stringValue == "R" ? 0 : 1, $1["state"]?.stringValue == "R" ? 0 : 1)
            let (fa, fb) = ($0["fds"]?.intValue ?? 0, $1["fds"]?.intValue ?? 0)
            return (a, -fa, $0["pid"]?.intValue ?? 0) < (b, -fb, $1["pid"]?.intValue ?? 0)
        }
        guard !processes.isEmpty, layout.section("BUSIEST PROCESSES (\(processes.count))    pid  state  fds  command") else { return }
        var shown = 0
        for process in processes {
            let pid = process["pid"]?.intValue ?? 0
            let own = process.id == supervisor
            let text = "\(pad(pid, 7))  \(process["state"]?.stringValue ?? "?")  \(pad(process["fds"]?.intValue ?? 0, 5))  "
                + (process["comm"]?.stringValue ?? "?") + (own ? "   <- this supervisor" : "")
            let last = shown == processes.count - 1
            // Keep the last line for the count of those left out.
            if !last, !layout.room(2 * layout.m.line) { break }
            layout.line(text, color: own ? Palette.own : Palette.text, role: "process", node: process.id,
                        fill: shown % 2 == 1 ? Palette.stripe : nil)
            shown += 1
        }
        if shown < processes.count {
            layout.line("... and \(processes.count - shown) more", color: Palette.dim, role: "more")
        }
    }

    static func value(_ sensor: Node) -> String {
        let number: String = switch sensor["value"] {
        case .double(let d)?: d.rounded() == d && abs(d) < 1e15 ? String(Int64(d)) : String((d * 100).rounded() / 100)
        case let v?: "\(v)"
        case nil: "?"
        }
        let unit = sensor["unit"]?.stringValue ?? ""
        return unit.isEmpty ? number : "\(number) \(unit)"
    }

    static func pad(_ v: Int64, _ width: Int) -> String {
        let s = String(v)
        return String(repeating: " ", count: max(0, width - s.count)) + s
    }
}
