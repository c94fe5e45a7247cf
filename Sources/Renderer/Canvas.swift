import LoopCore
import Typeface

/// A software rasterizer into an XRGB8888 buffer (0x00RRGGBB, row-major) that is kept from one
/// frame to the next: filled rectangles, outlines and anti-aliased text, every call clipped to a
/// rectangle, so a frame can redraw only what changed.
public struct Canvas: Sendable {
    public let width: Int
    public let height: Int
    public private(set) var pixels: [UInt32]

    public init(width: Int, height: Int, background: UInt32) {
        self.width = width
        self.height = height
        pixels = [UInt32](repeating: background, count: width * height)
    }

    public var bounds: PixelRect { PixelRect(x: 0, y: 0, width: width, height: height) }

    public mutating func fill(_ rect: PixelRect, color: UInt32, clip: PixelRect) {
        let r = rect.intersection(clip).intersection(bounds)
        guard !r.isEmpty else { return }
        let w = width
        pixels.withUnsafeMutableBufferPointer { p in
            for row in r.y..<r.maxY {
                let base = row * w
                for col in r.x..<r.maxX { p[base + col] = color }
            }
        }
    }

    /// A `thickness`-pixel frame just inside `rect`.
    public mutating func outline(_ rect: PixelRect, color: UInt32, thickness: Int, clip: PixelRect) {
        let t = min(thickness, rect.width / 2, rect.height / 2)
        fill(PixelRect(x: rect.x, y: rect.y, width: rect.width, height: t), color: color, clip: clip)
        fill(PixelRect(x: rect.x, y: rect.maxY - t, width: rect.width, height: t), color: color, clip: clip)
        fill(PixelRect(x: rect.x, y: rect.y, width: t, height: rect.height), color: color, clip: clip)
        fill(PixelRect(x: rect.maxX - t, y: rect.y, width: t, height: rect.height), color: color, clip: clip)
    }

    /// Draws `text` with the pen starting at `x` on the baseline `baseline`, blending each
    /// glyph's coverage over what is there.
    public mutating func text(_ text: String, x: Int, baseline: Int, color: UInt32, size: Int, face: Typeface, clip: PixelRect) {
        let c = clip.intersection(bounds)
        guard !c.isEmpty else { return }
        let (sr, sg, sb) = (Int(color >> 16 & 0xff), Int(color >> 8 & 0xff), Int(color & 0xff))
        var pen = x
        let w = width
        pixels.withUnsafeMutableBufferPointer { p in
            for scalar in text.unicodeScalars {
                if pen >= c.maxX { break }
                let g = face.glyph(scalar, size: size)
                let gx = pen + g.left, gy = baseline - g.top
                let box = PixelRect(x: gx, y: gy, width: g.width, height: g.height).intersection(c)
                if !box.isEmpty {
                    g.coverage.withUnsafeBufferPointer { cov in
                        for row in box.y..<box.maxY {
                            let base = row * w, gbase = (row - gy) * g.width - gx
                            for col in box.x..<box.maxX {
                                let a = Int(cov[gbase + col])
                                if a == 0 { continue }
                                if a == 255 { p[base + col] = color; continue }
                                let d = p[base + col], ia = 255 - a
                                let r = (sr * a + Int(d >> 16 & 0xff) * ia + 127) / 255
                                let gg = (sg * a + Int(d >> 8 & 0xff) * ia + 127) / 255
                                let b = (sb * a + Int(d & 0xff) * ia + 127) / 255
                                p[base + col] = UInt32(r << 16 | gg << 8 | b)
                            }
                        }
                    }
                }
                pen += g.advance
            }
        }
    }
}
