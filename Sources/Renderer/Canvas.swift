/// A software rasterizer into an XRGB8888 buffer (0x00RRGGBB, row-major): rectangles and text.
///
/// Beside the pixels it keeps the draw list: every call made on it, in order, in a compact
/// encoding. The rasterizer is deterministic, so equal draw lists are equal pixels, and a
/// frame is known by its draw list's hash (a few kilobytes) instead of its 4 MB of pixels.
public struct Canvas: Sendable {
    public let width: Int
    public let height: Int
    public private(set) var pixels: [UInt32]
    public private(set) var drawList: [UInt8] = []

    public init(width: Int, height: Int, background: UInt32) {
        self.width = width
        self.height = height
        pixels = [UInt32](repeating: background, count: width * height)
        drawList.reserveCapacity(16 * 1024)
        record(0, [width, height, Int(background)])
    }

    private mutating func record(_ op: UInt8, _ values: [Int]) {
        drawList.append(op)
        for v in values { withUnsafeBytes(of: Int64(v).littleEndian) { drawList.append(contentsOf: $0) } }
    }

    public mutating func fill(x: Int, y: Int, width w: Int, height h: Int, color: UInt32) {
        record(1, [x, y, w, h, Int(color)])
        raster(x: x, y: y, width: w, height: h, color: color)
    }

    private mutating func raster(x: Int, y: Int, width w: Int, height h: Int, color: UInt32) {
        let x0 = max(0, x), y0 = max(0, y), x1 = min(width, x + w), y1 = min(height, y + h)
        guard x0 < x1, y0 < y1 else { return }
        pixels.withUnsafeMutableBufferPointer { p in
            for row in y0..<y1 {
                let base = row * width
                for col in x0..<x1 { p[base + col] = color }
            }
        }
    }

    /// Draws text with its top-left corner at (x, y); each font pixel is `scale`×`scale`.
    /// Returns the width drawn. Text that runs past the right edge is clipped.
    @discardableResult
    public mutating func text(_ string: String, x: Int, y: Int, color: UInt32, scale: Int = 2) -> Int {
        record(2, [x, y, Int(color), scale, string.utf8.count])
        drawList.append(contentsOf: string.utf8)
        var cursor = x
        for c in string {
            if cursor >= width { break }
            let rows = Font.rows(for: c)
            for (r, bits) in rows.enumerated() where bits != 0 {
                for col in 0..<Font.width where bits & (1 << (Font.width - 1 - col)) != 0 {
                    raster(x: cursor + col * scale, y: y + r * scale, width: scale, height: scale, color: color)
                }
            }
            cursor += Canvas.advance(scale)
        }
        return cursor - x
    }

    /// Horizontal distance from one character to the next.
    public static func advance(_ scale: Int) -> Int { (Font.width + 1) * scale }
    public static func lineHeight(_ scale: Int) -> Int { (Font.height + 2) * scale }
}
