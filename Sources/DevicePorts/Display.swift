import LoopCore

/// A display mode: what a connector can show.
public struct DisplayMode: Equatable, Sendable, CustomStringConvertible {
    public var width: Int
    public var height: Int
    /// Vertical refresh in Hz (0 when the driver does not say).
    public var refresh: Int
    public var name: String
    public init(width: Int, height: Int, refresh: Int, name: String) {
        self.width = width
        self.height = height
        self.refresh = refresh
        self.name = name
    }
    public var description: String { "\(width)x\(height)" + (refresh > 0 ? "@\(refresh)" : "") }

    /// `WIDTHxHEIGHT` or `WIDTHxHEIGHT@HZ` (as `--mode` takes it); nil for anything else.
    public static func parse(_ text: String) -> (width: Int, height: Int, refresh: Int?)? {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return nil }
        let size = parts[0].split(separator: "x", omittingEmptySubsequences: false)
        guard size.count == 2, let w = Int(size[0]), let h = Int(size[1]), w > 0, h > 0 else { return nil }
        if parts.count == 2 {
            guard let hz = Int(parts[1]), hz > 0 else { return nil }
            return (w, h, hz)
        }
        return (w, h, nil)
    }
}

/// What a display shows now, for the graph and the trace: the device, the connector, the CRTC
/// and framebuffer scanning out, the mode, and how its page flips went.
public struct DisplayState: Equatable, Sendable {
    public var device: String
    public var driver: String
    public var connector: String
    public var crtc: UInt32
    public var mode: DisplayMode
    /// The framebuffer on screen (0 before the first frame).
    public var framebuffer: UInt32
    /// Frames handed over, flips completed, and frames replaced by a newer one while a flip
    /// was still pending (never shown, never waited for).
    public var presented: Int
    public var flips: Int
    public var superseded: Int
    public var flipPending: Bool
    /// Pixels copied into a buffer for the last frame drawn: the damage only, once both
    /// buffers hold a whole frame.
    public var copied: Int
    /// The plane scanning the framebuffer out (0: not known).
    public var plane: UInt32
    public init(device: String, driver: String, connector: String, crtc: UInt32, mode: DisplayMode, framebuffer: UInt32 = 0,
                presented: Int = 0, flips: Int = 0, superseded: Int = 0, flipPending: Bool = false, copied: Int = 0, plane: UInt32 = 0) {
        (self.device, self.driver, self.connector, self.crtc, self.mode) = (device, driver, connector, crtc, mode)
        (self.framebuffer, self.presented, self.flips, self.superseded, self.flipPending) = (framebuffer, presented, flips, superseded, flipPending)
        self.copied = copied
        self.plane = plane
    }
}

/// What the supervisor needs from a screen: show a frame without waiting for the vertical
/// blank, say when a flip completed (its descriptor joins the loop's poll set), and give the
/// screen back as it was. The real one is HostAdapter's DRMDisplay.
public protocol DisplayPort: AnyObject {
    var state: DisplayState { get }
    /// Readable when a page flip has completed: the loop then calls ``service()``.
    var descriptor: Int32 { get }
    /// Show XRGB8888 pixels (`width × height`, rows packed; clipped to the mode). Never waits:
    /// drawn into the buffer not on screen and a flip to it requested; while a flip is pending,
    /// the frame waits (a newer one replaces it) for that flip to complete. `damage` is what
    /// differs from the frame presented before (nil: all of it): a buffer is given only what it
    /// lacks. Throws when the connector is no longer connected (unplugged).
    func present(pixels: [UInt32], width: Int, height: Int, damage: [PixelRect]?) throws(DeviceError)
    /// Take the completed flips (never blocks), and flip to a frame that waited for one.
    func service() throws(DeviceError)
    /// The screen as it was before: the CRTC's previous framebuffer and mode (the console comes
    /// back). Idempotent.
    func restore()
}

