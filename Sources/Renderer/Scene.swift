import LoopCore
import Typeface

/// A line of text in a widget: the pen starts at `x` on the baseline `baseline`.
public struct TextRun: Hashable, Sendable {
    public var text: String
    public var x: Int
    public var baseline: Int
    public var color: UInt32
    public var size: Int
    public init(_ text: String, x: Int, baseline: Int, color: UInt32, size: Int) {
        (self.text, self.x, self.baseline, self.color, self.size) = (text, x, baseline, color, size)
    }
}

/// One element of the retained scene: what it draws stays inside `bounds` (a fill, an outline,
/// text clipped to it), and what it means is its semantic, when it has one.
public struct Widget: Hashable, Sendable {
    public var bounds: PixelRect
    public var fill: UInt32?
    public var outline: UInt32?
    public var runs: [TextRun]
    public var semantic: Frame.Semantic?
    public init(bounds: PixelRect, fill: UInt32? = nil, outline: UInt32? = nil, runs: [TextRun] = [], semantic: Frame.Semantic? = nil) {
        (self.bounds, self.fill, self.outline, self.runs, self.semantic) = (bounds, fill, outline, runs, semantic)
    }
}

/// The panel as a list of widgets drawn in order over a background.
public struct Scene: Sendable {
    public var width: Int
    public var height: Int
    public var background: UInt32
    public var widgets: [Widget] = []
    public init(width: Int, height: Int, background: UInt32) {
        (self.width, self.height, self.background) = (width, height, background)
    }

    /// Everything that decides the pixels, as bytes: equal encodings draw equal pixels (the
    /// rasterizer and the face are deterministic), so the frame is known by this one's hash.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64 * widgets.count + 16)
        func int(_ v: Int) { withUnsafeBytes(of: Int32(truncatingIfNeeded: v).littleEndian) { out.append(contentsOf: $0) } }
        int(width); int(height); int(Int(background))
        for w in widgets {
            int(w.bounds.x); int(w.bounds.y); int(w.bounds.width); int(w.bounds.height)
            int(w.fill.map(Int.init) ?? -1); int(w.outline.map(Int.init) ?? -1); int(w.runs.count)
            for r in w.runs {
                int(r.x); int(r.baseline); int(Int(r.color)); int(r.size); int(r.text.utf8.count)
                out.append(contentsOf: r.text.utf8)
            }
        }
        return out
    }
}

/// Draws scenes into a canvas it keeps, redrawing only what differs from the scene before: the
/// bounds of every widget that appeared, went or changed, merged into a few rectangles, each
/// cleared and drawn again with whatever overlaps it. When most of the screen changed, or the
/// size did, all of it is drawn.
public struct SceneRaster: Sendable {
    public let face: Typeface
    /// Two canvases, drawn in turn: a frame handed out shares its canvas's storage, and the
    /// next frame is drawn in the other one — which the frame before last has usually let go,
    /// so nothing is copied but what it lacks (``StaleRegions``).
    private var canvases: [Canvas?] = [nil, nil]
    private var stale = StaleRegions()
    private var last = 1
    private var previous: Set<Widget> = []
    /// Above this share of the screen, damage is drawn as one full frame.
    static let fullShare = 0.5
    static let maxRectangles = 16

    public init(face: Typeface) { self.face = face }

    /// The scene's pixels, and what changed since the last scene drawn (nil: everything).
    public mutating func draw(_ scene: Scene) -> (pixels: [UInt32], damage: [PixelRect]?) {
        let current = Set(scene.widgets)
        let bounds = PixelRect(x: 0, y: 0, width: scene.width, height: scene.height)
        var damage: [PixelRect]?
        if let shown = canvases[last], shown.width == scene.width, shown.height == scene.height {
            let changed = current.symmetricDifference(previous).map(\.bounds).map { $0.intersection(bounds) }.filter { !$0.isEmpty }
            let merged = Self.merge(changed)
            let area = merged.reduce(0) { $0 + $1.area }
            damage = Double(area) > Self.fullShare * Double(bounds.area) || merged.count > Self.maxRectangles ? nil : merged
        } else {
            canvases = [nil, nil]
        }
        stale.add(damage)
        let target = 1 - last
        var canvas = canvases[target] ?? Canvas(width: scene.width, height: scene.height, background: scene.background)
        canvases[target] = nil  // uniquely referenced while it is drawn in
        for rect in Self.merge(stale.take(target) ?? [bounds]) { paint(&canvas, scene, clip: rect) }
        canvases[target] = canvas
        last = target
        previous = current
        return (canvas.pixels, damage)
    }

    private func paint(_ canvas: inout Canvas, _ scene: Scene, clip: PixelRect) {
        canvas.fill(clip, color: scene.background, clip: clip)
        for w in scene.widgets where w.bounds.intersects(clip) {
            let c = clip.intersection(w.bounds)
            if let fill = w.fill { canvas.fill(w.bounds, color: fill, clip: c) }
            if let outline = w.outline { canvas.outline(w.bounds, color: outline, thickness: 2, clip: c) }
            for r in w.runs { canvas.text(r.text, x: r.x, baseline: r.baseline, color: r.color, size: r.size, face: face, clip: c) }
        }
    }

    /// Rectangles that overlap or touch are joined until none do.
    static func merge(_ rects: [PixelRect]) -> [PixelRect] {
        var out: [PixelRect] = []
        for r in rects.sorted(by: { ($0.y, $0.x) < ($1.y, $1.x) }) {
            var joined = r
            var i = 0
            while i < out.count {
                let o = out[i]
                if PixelRect(x: o.x - 1, y: o.y - 1, width: o.width + 2, height: o.height + 2).intersects(joined) {
                    joined = joined.union(o)
                    out.remove(at: i)
                    i = 0
                } else {
                    i += 1
                }
            }
            out.append(joined)
        }
        return out
    }
}
