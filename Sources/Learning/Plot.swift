import PNGCodec
import Typeface

/// The evaluation's picture: k-step rollout accuracy (k = 1…16) of the model and of both
/// baselines, one line each, with the 1-step numbers in the legend.
public enum EvaluationPlot {
    public static func png(_ e: Evaluation, title: String) throws -> [UInt8] {
        var canvas = Canvas(width: 720, height: 440)
        let face = try? Typeface.named()
        let (left, right, top, bottom) = (64, 700, 40, 380)
        func x(_ k: Int) -> Int { left + (right - left) * (k - 1) / (Evaluation.horizon - 1) }
        func y(_ v: Double) -> Int { bottom - Int((Double(bottom - top) * max(0, min(1, v))).rounded()) }
        for tick in stride(from: 0.0, through: 1.0, by: 0.2) {
            canvas.line(left, y(tick), right, y(tick), gray: 225)
            canvas.text(face, String(format: "%.0f%%", tick * 100), x: 14, y: y(tick) + 5)
        }
        for k in [1, 4, 8, 12, 16] { canvas.text(face, "\(k)", x: x(k) - 4, y: bottom + 20) }
        canvas.line(left, bottom, right, bottom, gray: 0)
        canvas.line(left, top, left, bottom, gray: 0)
        canvas.text(face, title, x: left, y: 24)
        canvas.text(face, "k (calls predicted ahead, on the model's own predictions)", x: left + 120, y: bottom + 44)
        let series: [(String, [UInt8], (Evaluation.Scores) -> Double)] = [
            ("model", [200, 40, 40], { $0.model }), ("same as last", [40, 90, 200], { $0.sameAsLast }), ("majority", [120, 120, 120], { $0.majority }),
        ]
        for (i, (name, color, pick)) in series.enumerated() {
            let values = e.rollout.map(pick)
            for k in 1..<values.count where !values[k - 1].isNaN && !values[k].isNaN {
                canvas.line(x(k), y(values[k - 1]), x(k + 1), y(values[k]), color: color, thick: true)
            }
            let ly = top + 200 + 20 * i
            canvas.line(left + 330, ly - 5, left + 360, ly - 5, color: color, thick: true)
            canvas.text(face, String(format: "%@  1-step %.1f%%", name, values.first.map { $0 * 100 } ?? 0), x: left + 368, y: ly)
        }
        return try PNG.encode(PNG.RGB(width: canvas.width, height: canvas.height, pixels: canvas.pixels))
    }
}

/// A white RGB canvas with lines and text on it.
struct Canvas {
    let width: Int, height: Int
    var pixels: [UInt8]

    init(width: Int, height: Int) {
        (self.width, self.height) = (width, height)
        pixels = [UInt8](repeating: 255, count: width * height * 3)
    }

    mutating func set(_ x: Int, _ y: Int, _ color: [UInt8], alpha: Int = 255) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = (y * width + x) * 3
        for c in 0..<3 { pixels[i + c] = UInt8((Int(color[c]) * alpha + Int(pixels[i + c]) * (255 - alpha)) / 255) }
    }

    mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, gray: UInt8) { line(x0, y0, x1, y1, color: [gray, gray, gray]) }

    /// Bresenham's line; thick ones are three pixels wide.
    mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, color: [UInt8], thick: Bool = false) {
        var (x, y) = (x0, y0)
        let dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var error = dx + dy
        while true {
            set(x, y, color)
            if thick { set(x, y - 1, color); set(x, y + 1, color); set(x - 1, y, color); set(x + 1, y, color) }
            if x == x1 && y == y1 { break }
            let e2 = 2 * error
            if e2 >= dy { error += dy; x += sx }
            if e2 <= dx { error += dx; y += sy }
        }
    }

    /// Text with its baseline at `y` (nothing without a face: the plot still says it in lines).
    mutating func text(_ face: Typeface?, _ string: String, x: Int, y: Int, size: Int = 13) {
        guard let face else { return }
        var pen = x
        for scalar in string.unicodeScalars {
            let g = face.glyph(scalar, size: size)
            for row in 0..<g.height {
                for col in 0..<g.width {
                    let a = Int(g.coverage[row * g.width + col])
                    if a > 0 { set(pen + g.left + col, y - g.top + row, [20, 20, 20], alpha: a) }
                }
            }
            pen += g.advance
        }
    }
}

/// A scan's picture (`worldos export --measurements`): each reading against the scanned
/// parameter, one panel per reading stacked on the same x axis, each on its own scale.
public enum ScanPlot {
    public static func png(parameter: String, points: [(x: Double, readings: [String: Double])], title: String) throws -> [UInt8] {
        let names = Set(points.flatMap(\.readings.keys)).sorted()
        let (left, right, panel, gap) = (84, 700, 150, 30)
        var canvas = Canvas(width: 720, height: 40 + names.count * (panel + gap) + 50)
        let face = try? Typeface.named()
        let xs = points.map(\.x)
        let (x0, x1) = (xs.min() ?? 0, max(xs.max() ?? 1, (xs.min() ?? 0) + 1e-9))
        func x(_ v: Double) -> Int { left + Int((Double(right - left) * (v - x0) / (x1 - x0)).rounded()) }
        func label(_ v: Double) -> String { String(format: "%g", (v * 1000).rounded() / 1000) }
        canvas.text(face, title, x: left, y: 24)
        let colors: [[UInt8]] = [[200, 40, 40], [40, 90, 200], [40, 150, 60], [160, 90, 20], [120, 60, 160]]
        for (i, name) in names.enumerated() {
            let (top, bottom) = (40 + i * (panel + gap) + 10, 40 + i * (panel + gap) + panel)
            let series = points.compactMap { p in p.readings[name].map { (p.x, $0) } }
            guard let lo = series.map(\.1).min(), let hi = series.map(\.1).max() else { continue }
            let span = max(hi - lo, 1e-9)
            func y(_ v: Double) -> Int { bottom - Int((Double(bottom - top) * (v - lo) / span).rounded()) }
            canvas.line(left, bottom, right, bottom, gray: 0)
            canvas.line(left, top, left, bottom, gray: 0)
            for v in [lo, (lo + hi) / 2, hi] {
                canvas.line(left - 4, y(v), right, y(v), gray: v == lo ? 0 : 225)
                canvas.text(face, label(v), x: 10, y: y(v) + 5)
            }
            canvas.text(face, name, x: left + 8, y: top + 4)
            let color = colors[i % colors.count]
            for k in series.indices.dropFirst() { canvas.line(x(series[k - 1].0), y(series[k - 1].1), x(series[k].0), y(series[k].1), color: color, thick: true) }
            for (px, py) in series { canvas.line(x(px) - 3, y(py), x(px) + 3, y(py), color: color, thick: true) }
        }
        let axis = 40 + names.count * (panel + gap) - gap
        for i in 0...4 {
            let v = x0 + (x1 - x0) * Double(i) / 4
            canvas.line(x(v), axis, x(v), axis + 5, gray: 0)
            canvas.text(face, label(v), x: x(v) - 8, y: axis + 20)
        }
        canvas.text(face, parameter, x: (left + right) / 2 - 20, y: axis + 42)
        return try PNG.encode(PNG.RGB(width: canvas.width, height: canvas.height, pixels: canvas.pixels))
    }
}
