import DevicePorts
import Foundation
import LoopCore
import Renderer

/// The panel where people see it: the PNG in the run folder always, and a screen when there is
/// one. A frame goes to the screen without waiting for its vertical blank; a screen that fails
/// (unplugged, taken by another master) is said once and let go, and the run goes on with the
/// PNG alone.
public struct DisplaySink: FrameSink {
    public var png: PNGSink
    public private(set) var display: (any DisplayPort)?
    /// What happened to the screen, for the run's log, until taken (nil while all is well).
    private var lost: String?

    public init(png: PNGSink, display: (any DisplayPort)?) {
        self.png = png
        self.display = display
    }

    public mutating func emit(_ frame: Frame) throws -> String? {
        let written = try png.emit(frame)
        // The screen gets every changed frame; an unchanged one is already on it.
        if written != nil, let screen = display {
            do { try screen.present(pixels: frame.pixels, width: frame.width, height: frame.height) } catch {
                drop(screen, because: "\(error)")
            }
        }
        return written
    }

    /// The display's flips that completed (call when its descriptor is readable).
    public mutating func service() {
        guard let screen = display else { return }
        do { try screen.service() } catch { drop(screen, because: "\(error)") }
    }

    /// What happened to the screen since last asked, once (nil: nothing).
    public mutating func takeLost() -> String? {
        defer { lost = nil }
        return lost
    }

    public mutating func finish() throws {
        display?.restore()
        display = nil
        try png.finish()
    }

    private mutating func drop(_ screen: any DisplayPort, because reason: String) {
        screen.restore()
        display = nil
        lost = "display \(screen.state.device) \(screen.state.connector) lost: \(reason); the panel goes on as \(png.path) only"
    }
}
