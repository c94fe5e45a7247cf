import CPNG

/// PNG encoding and decoding, in one place, through libpng's simplified API: 8-bit RGB, the
/// only form the panel's frames and the redacted copies of them take.
public enum PNG {
    /// An 8-bit RGB image: `width × height` pixels, three bytes each, rows top to bottom.
    public struct RGB: Equatable, Sendable {
        public var width: Int
        public var height: Int
        public var pixels: [UInt8]
        public init(width: Int, height: Int, pixels: [UInt8]) {
            self.width = width
            self.height = height
            self.pixels = pixels
        }
    }

    /// The PNG of `image`; an error carries libpng's message.
    public static func encode(_ image: RGB) throws(PNGCodecError) -> [UInt8] {
        guard image.width > 0, image.height > 0, image.pixels.count == image.width * image.height * 3 else {
            throw PNGCodecError(message: "\(image.pixels.count) bytes are not \(image.width)×\(image.height) RGB pixels")
        }
        var png = png_image()
        png.version = UInt32(PNG_IMAGE_VERSION)
        png.width = UInt32(image.width)
        png.height = UInt32(image.height)
        png.format = UInt32(PNG_FORMAT_RGB)
        // Room for the image stored uncompressed, which it never exceeds by much; libpng says
        // how much it needed if that was not enough, and the write is made again.
        var room = image.pixels.count + image.pixels.count / 8 + 4096
        for _ in 0..<2 {
            var out = [UInt8](repeating: 0, count: room)
            var size = room
            let ok = image.pixels.withUnsafeBytes { px in
                out.withUnsafeMutableBytes { png_image_write_to_memory(&png, $0.baseAddress, &size, 0, px.baseAddress, Int32(image.width * 3), nil) }
            }
            if ok != 0 {
                out.removeSubrange(size...)
                return out
            }
            guard size > room else { break }
            room = size
            png.warning_or_error = 0
        }
        let message = withUnsafeBytes(of: png.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        png_image_free(&png)
        throw PNGCodecError(message: message.isEmpty ? "libpng could not encode the image" : message)
    }

    /// The pixels of a PNG, as 8-bit RGB (whatever its own format); an error carries libpng's
    /// message (a file that is not a PNG, or is cut short).
    public static func decode(_ bytes: [UInt8]) throws(PNGCodecError) -> RGB {
        var png = png_image()
        png.version = UInt32(PNG_IMAGE_VERSION)
        func failure() -> PNGCodecError {
            let message = withUnsafeBytes(of: png.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            png_image_free(&png)
            return PNGCodecError(message: message)
        }
        guard bytes.withUnsafeBytes({ png_image_begin_read_from_memory(&png, $0.baseAddress, $0.count) }) != 0 else { throw failure() }
        png.format = UInt32(PNG_FORMAT_RGB)
        let width = Int(png.width), height = Int(png.height)
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        guard pixels.withUnsafeMutableBytes({ png_image_finish_read(&png, nil, $0.baseAddress, 0, nil) }) != 0 else { throw failure() }
        return RGB(width: width, height: height, pixels: pixels)
    }
}

public struct PNGCodecError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}
