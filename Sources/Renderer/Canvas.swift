/// A software rasterizer into an XRGB8888 buffer (0x00RRGGBB, row-major): rectangles and text.
public struct Canvas: Sendable {
    public let width: Int
    public let height: Int
    public private(set) var pixels: [UInt32]

    public init(width: Int, height: Int, background: UInt32) {
        self.width = width
        self.height = height
        pixels = [UInt32](repeating: background, count: width * height)
    }

    public mutating func fill(x: Int, y: Int, width w: Int, height h: Int, color: UInt32) {
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
        var cursor = x
        for c in string {
            if cursor >= width { break }
            let rows = Font.rows(for: c)
            for (r, bits) in rows.enumerated() where bits != 0 {
                for col in 0..<Font.width where bits & (1 << (Font.width - 1 - col)) != 0 {
                    fill(x: cursor + col * scale, y: y + r * scale, width: scale, height: scale, color: color)
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
