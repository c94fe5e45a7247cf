import CPNG
import Foundation
import LoopCore

/// Writes a frame as a PNG file (libpng's simplified API), replacing the file atomically, and
/// only when the frame changed since the last one written.
public struct PNGSink: FrameSink {
    public let path: String
    private var lastHash: String?

    public init(path: String) { self.path = path }

    public mutating func emit(_ frame: Frame) throws -> String? {
        let hash = frame.hash
        guard hash != lastHash else { return nil }
        try PNGSink.write(frame, to: path)
        lastHash = hash
        return path
    }

    /// Encode XRGB8888 pixels as an 8-bit RGB PNG at `path` (written beside it, then renamed).
    public static func write(_ frame: Frame, to path: String) throws {
        let rgb = [UInt8](unsafeUninitializedCapacity: frame.pixels.count * 3) { out, count in
            frame.pixels.withUnsafeBufferPointer { px in
                for i in 0..<px.count {
                    let p = px[i]
                    out[3 * i] = UInt8(truncatingIfNeeded: p >> 16)
                    out[3 * i + 1] = UInt8(truncatingIfNeeded: p >> 8)
                    out[3 * i + 2] = UInt8(truncatingIfNeeded: p)
                }
            }
            count = frame.pixels.count * 3
        }
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(frame.width)
        image.height = UInt32(frame.height)
        image.format = UInt32(PNG_FORMAT_RGB)
        let temporary = path + ".tmp"
        let ok = rgb.withUnsafeBytes { png_image_write_to_file(&image, temporary, 0, $0.baseAddress, Int32(frame.width * 3), nil) }
        guard ok != 0 else {
            let message = withUnsafeBytes(of: image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            png_image_free(&image)
            throw PNGError(path: path, message: message)
        }
        guard rename(temporary, path) == 0 else { throw PNGError(path: path, message: "cannot rename \(temporary) into place") }
    }
}

public struct PNGError: Error, CustomStringConvertible {
    public var path: String
    public var message: String
    public var description: String { "cannot write PNG \(path): \(message)" }
}
