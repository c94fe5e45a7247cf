import CFreeType
import Foundation

/// A TrueType face through FreeType, rasterized to anti-aliased 8-bit coverage: the panel's
/// text. Each glyph is rendered once per pixel size and kept; the rendering is deterministic
/// for one FreeType version and one font file, so equal text is equal pixels (the golden images
/// rely on it: Debian 12's FreeType 2.12 and fonts-dejavu-core 2.37).
public final class Typeface: @unchecked Sendable {
    /// One glyph at one size: `width × height` coverage bytes (0 transparent … 255 opaque), placed
    /// `left` pixels right of the pen and `top` pixels above the baseline; the pen then moves
    /// `advance` pixels.
    public struct Glyph: Sendable {
        public let width: Int
        public let height: Int
        public let left: Int
        public let top: Int
        public let advance: Int
        public let coverage: [UInt8]
    }

    /// A size's line: from the top of a line to its baseline, and from one line to the next.
    public struct Metrics: Equatable, Sendable {
        public let ascender: Int
        public let lineHeight: Int
        /// The advance of `M`: every glyph's, in a monospaced face.
        public let advance: Int
    }

    /// Debian's fonts-dejavu-core: the monospaced face, so columns line up.
    public static let defaultPath = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"

    public let path: String
    private var library: FT_Library?
    private var face: FT_Face?
    private let lock = NSLock()
    private var glyphs: [Key: Glyph] = [:]
    private var sizes: [Int: Metrics] = [:]
    private var currentSize = 0

    private struct Key: Hashable {
        let scalar: UInt32
        let size: Int
    }

    private static let loadedLock = NSLock()
    nonisolated(unsafe) private static var loaded: [String: Typeface] = [:]

    /// The face at `path`, loaded once per process and shared (glyphs are cached with it).
    public static func named(_ path: String = Typeface.defaultPath) throws(TypefaceError) -> Typeface {
        loadedLock.lock()
        defer { loadedLock.unlock() }
        if let face = loaded[path] { return face }
        let face = try Typeface(path: path)
        loaded[path] = face
        return face
    }

    public init(path: String = Typeface.defaultPath) throws(TypefaceError) {
        self.path = path
        guard FT_Init_FreeType(&library) == 0, let library else { throw TypefaceError(path: path, message: "FreeType did not initialize") }
        // A failed init still deinitializes (every property has a value): deinit lets go of both.
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw TypefaceError(path: path, message: "no such font file; install fonts-dejavu-core (make setup does) or name another TrueType file")
        }
        let status = FT_New_Face(library, path, 0, &face)
        guard status == 0, let face else {
            throw TypefaceError(path: path, message: "not a font FreeType can read (error \(status))")
        }
        guard face.pointee.face_flags & FT_Long(FT_FACE_FLAG_SCALABLE) != 0 else {
            throw TypefaceError(path: path, message: "not a scalable (TrueType or OpenType) font")
        }
    }

    deinit {
        if let face { FT_Done_Face(face) }
        if let library { FT_Done_FreeType(library) }
    }

    /// The line metrics at `size` pixels (the em height).
    public func metrics(size: Int) -> Metrics {
        lock.withLock {
            if let known = sizes[size] { return known }
            select(size)
            let m = face!.pointee.size.pointee.metrics
            let advance = render(UInt32(UInt8(ascii: "M")), size: size).advance
            let metrics = Metrics(ascender: Int((m.ascender + 63) >> 6), lineHeight: Int((m.height + 63) >> 6), advance: advance)
            sizes[size] = metrics
            return metrics
        }
    }

    /// The glyph of `scalar` at `size` pixels: the face's missing-glyph box for a character it lacks.
    public func glyph(_ scalar: Unicode.Scalar, size: Int) -> Glyph {
        lock.withLock { render(scalar.value, size: size) }
    }

    /// Under the lock.
    private func render(_ scalar: UInt32, size: Int) -> Glyph {
        let key = Key(scalar: scalar, size: size)
        if let known = glyphs[key] { return known }
        select(size)
        let empty = Glyph(width: 0, height: 0, left: 0, top: 0, advance: size / 2, coverage: [])
        guard let face, FT_Load_Char(face, FT_ULong(scalar), worldos_ft_load_render | worldos_ft_load_target_light) == 0,
              let slot = face.pointee.glyph else {
            glyphs[key] = empty
            return empty
        }
        let bitmap = slot.pointee.bitmap
        let (w, h, pitch) = (Int(bitmap.width), Int(bitmap.rows), Int(bitmap.pitch))
        var coverage = [UInt8](repeating: 0, count: w * h)
        if let buffer = bitmap.buffer, w > 0, h > 0, bitmap.pixel_mode == UInt8(FT_PIXEL_MODE_GRAY.rawValue) {
            for row in 0..<h {
                for col in 0..<w { coverage[row * w + col] = buffer[row * pitch + col] }
            }
        }
        let glyph = Glyph(width: w, height: h, left: Int(slot.pointee.bitmap_left), top: Int(slot.pointee.bitmap_top),
                          advance: Int((slot.pointee.advance.x + 32) >> 6), coverage: coverage)
        glyphs[key] = glyph
        return glyph
    }

    private func select(_ size: Int) {
        guard size != currentSize, let face else { return }
        FT_Set_Pixel_Sizes(face, 0, FT_UInt(max(1, size)))
        currentSize = size
    }
}

public struct TypefaceError: Error, CustomStringConvertible {
    public var path: String
    public var message: String
    public var description: String { "font \(path): \(message)" }
}
