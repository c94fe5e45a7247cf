import CPNG
import PNGCodec
import XCTest

/// The one PNG codec: what it encodes libpng reads back pixel for pixel, what it decodes is what
/// libpng wrote, and what is not a PNG (or not the size it claims) is an error, never a crash.
final class PNGCodecTests: XCTestCase {
    func testEncodeThenDecode_givesThePixelsBack_evenWhenTheyDoNotCompress() throws {
        var random = SystemRandomNumberGenerator()
        for (width, height) in [(1, 1), (7, 3), (64, 48)] {
            // Random bytes do not compress: the first room guessed may be too small.
            let pixels = (0..<(width * height * 3)).map { _ in UInt8.random(in: 0...255, using: &random) }
            let png = try PNG.encode(PNG.RGB(width: width, height: height, pixels: pixels))
            XCTAssertEqual(Array(png.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
            XCTAssertEqual(try PNG.decode(png), PNG.RGB(width: width, height: height, pixels: pixels))
            // libpng itself, outside the codec, reads the same pixels.
            var image = png_image()
            image.version = UInt32(PNG_IMAGE_VERSION)
            XCTAssertNotEqual(png.withUnsafeBytes { png_image_begin_read_from_memory(&image, $0.baseAddress, $0.count) }, 0)
            image.format = UInt32(PNG_FORMAT_RGB)
            var read = [UInt8](repeating: 0, count: width * height * 3)
            XCTAssertNotEqual(read.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }, 0)
            XCTAssertEqual(read, pixels)
        }
    }

    func testMalformedInput_isAnError() throws {
        XCTAssertThrowsError(try PNG.decode([]))
        XCTAssertThrowsError(try PNG.decode(Array("not a png at all".utf8)))
        let png = try PNG.encode(PNG.RGB(width: 16, height: 16, pixels: [UInt8](repeating: 200, count: 16 * 16 * 3)))
        XCTAssertThrowsError(try PNG.decode(Array(png.prefix(png.count / 2))), "a PNG cut short")
        XCTAssertThrowsError(try PNG.encode(PNG.RGB(width: 4, height: 4, pixels: [1, 2, 3]))) {
            XCTAssertTrue("\($0)".contains("not 4×4 RGB pixels"), "\($0)")
        }
    }
}
