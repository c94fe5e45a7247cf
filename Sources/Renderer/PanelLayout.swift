import LoopCore
import StateGraph
import Typeface

/// The panel's palette (XRGB8888).
enum Palette {
    static let background: UInt32 = 0x101418
    static let header: UInt32 = 0x1f3b5c
    static let text: UInt32 = 0xe6e6e6
    static let dim: UInt32 = 0x8a939c
    static let section: UInt32 = 0x6fb3ff
    static let ok: UInt32 = 0x7ddc7d
    static let denied: UInt32 = 0xff5a5a
    static let own: UInt32 = 0xffd75a
    static let stripe: UInt32 = 0x161b21
    static let card: UInt32 = 0x1b232c
    static let button: UInt32 = 0x2d5a8a
    static let confirm: UInt32 = 0xb8860b
    static let disabled: UInt32 = 0x2a2f35
    static let fault: UInt32 = 0x5c1f1f
    static let focus: UInt32 = 0xffffff
}

/// Sizes that follow the mode: text tall enough to read at arm's length on a 7-inch 800×480
/// panel (15 px), growing with the screen up to 24 px at 1080 lines; two columns from 1200
/// pixels across.
struct PanelMetrics {
    let size: Int
    let line: Int
    let ascender: Int
    let advance: Int
    let margin: Int
    let columns: Int

    init(width: Int, height: Int, face: Typeface) {
        size = max(15, min(24, height / 45))
        let m = face.metrics(size: size)
        line = m.lineHeight + 2
        ascender = m.ascender + 1
        advance = max(1, m.advance)
        margin = max(6, size / 2)
        columns = width >= 1200 ? 2 : 1
    }
}

/// Places widgets down columns: a section that does not fit in what is left of one goes on in
/// the next; what fits nowhere is counted, so the panel can say how much it left out.
struct PanelLayout {
    var scene: Scene
    let face: Typeface
    let m: PanelMetrics
    private(set) var columns: [PixelRect]
    private(set) var column = 0
    private(set) var y: Int
    /// The focused widget's key (`value` of its semantic), from the surface node.
    let focus: String?

    init(width: Int, height: Int, face: Typeface, top: Int, focus: String?) {
        scene = Scene(width: width, height: height, background: Palette.background)
        self.face = face
        let m = PanelMetrics(width: width, height: height, face: face)
        self.m = m
        let gutter = m.margin * 2
        let w = (width - 2 * m.margin - (m.columns - 1) * gutter) / m.columns
        columns = (0..<m.columns).map { PixelRect(x: m.margin + $0 * (w + gutter), y: top, width: w, height: height - top - m.margin) }
        y = top
        self.focus = focus
    }

    /// The columns begin at `top` (below the header and a fault banner).
    mutating func start(at top: Int) {
        columns = columns.map { PixelRect(x: $0.x, y: top, width: $0.width, height: scene.height - top - m.margin) }
        (column, y) = (0, top)
    }

    var current: PixelRect { columns[min(column, columns.count - 1)] }
    var full: Bool { column >= columns.count }
    /// Characters that fit across a column (less `indent` pixels).
    func characters(indent: Int = 0) -> Int { max(1, (current.width - indent - 2 * m.margin / 2) / m.advance) }

    /// Room for `height` more pixels in this column, moving to the next when not; false when no
    /// column has it.
    mutating func room(_ height: Int) -> Bool {
        while !full {
            if y + height <= current.maxY { return true }
            column += 1
            if !full { y = current.y }
        }
        return false
    }

    /// Moves on to the next column (a section that should start one).
    mutating func breakColumn() {
        guard !full, y > current.y else { return }
        column += 1
        if !full { y = current.y }
    }

    func clipped(_ text: String, indent: Int = 0) -> String {
        let n = characters(indent: indent)
        return text.count <= n ? text : String(text.prefix(max(0, n - 1))) + "…"
    }

    /// A line of text across the column; false when there was no room.
    @discardableResult
    mutating func line(_ text: String, color: UInt32, role: String, node: NodeID? = nil, value: String? = nil, indent: Int = 0,
                       fill: UInt32? = nil) -> Bool {
        guard room(m.line) else { return false }
        let shown = clipped(text, indent: indent)
        let bounds = PixelRect(x: current.x, y: y, width: current.width, height: m.line)
        scene.widgets.append(Widget(bounds: bounds, fill: fill,
                                    runs: [TextRun(shown, x: current.x + indent + m.margin / 2, baseline: y + m.ascender, color: color, size: m.size)],
                                    semantic: .init(role: role, label: shown, node: node, x: bounds.x, y: bounds.y, width: bounds.width,
                                                    height: bounds.height, value: value)))
        y += m.line
        return true
    }

    mutating func section(_ title: String) -> Bool {
        guard room(m.line * 2 + m.line / 2) else { return false }
        y += m.line / 2
        return line(title, color: Palette.section, role: "section")
    }

    mutating func gap(_ pixels: Int) { y += pixels }

    /// A button for a widget key `value` (what pressing it does) on `node`. `disabled` says why it
    /// cannot be pressed now: it is drawn dim, with no action.
    struct Button {
        var label: String
        var value: String
        var color: UInt32
        var disabled: String?
    }

    /// A row of buttons in fixed slots (`slots` across the column), `nil` leaving a slot empty;
    /// then, for a disabled one, the reason under it.
    mutating func buttons(_ row: [Button?], node: NodeID, slots: Int = 3) {
        let height = m.line + m.line / 2
        let reasons = row.compactMap { $0?.disabled }
        guard room(height + m.line / 3 + (reasons.isEmpty ? 0 : m.line)) else { return }
        let slot = current.width / slots
        for (i, b) in row.enumerated() {
            guard let b else { continue }
            let bounds = PixelRect(x: current.x + i * slot + m.margin / 2, y: y, width: slot - m.margin, height: height)
            let label = String(b.label.prefix(max(1, (bounds.width - m.margin) / m.advance)))
            let textX = bounds.x + (bounds.width - label.count * m.advance) / 2
            scene.widgets.append(Widget(
                bounds: bounds, fill: b.disabled == nil ? b.color : Palette.disabled,
                outline: focus == b.value ? Palette.focus : nil,
                runs: [TextRun(label, x: textX, baseline: y + (height - m.line) / 2 + m.ascender,
                               color: b.disabled == nil ? Palette.text : Palette.dim, size: m.size)],
                semantic: .init(role: "button", label: b.label, node: node, x: bounds.x, y: bounds.y, width: bounds.width, height: bounds.height,
                                value: b.value, actions: ["press"], disabled: b.disabled)))
        }
        y += height + m.line / 3
        if let reason = reasons.first {
            line("  " + reason, color: Palette.dim, role: "reason", node: node)
        }
    }
}
