import DevicePorts
import Foundation
import LoopCore
import Renderer

/// The panel where people see it: the PNG in the run folder always, and a screen when there is
/// one. A frame goes to the screen without waiting for its vertical blank, and only its damage is
/// copied; a screen that fails (unplugged, taken by another master) is said once and let go, and
/// the run goes on with the PNG alone until a hotplug brings one back (``Screen/reprobe()``).
public struct DisplaySink: FrameSink {
    public var png: PNGSink
    public let screen: Screen
    /// The operator's seat: what a touch or a key does to the frame on screen.
    public let seat: PanelSeat?
    /// The last frame shown, whose semantics tree is what a touch or a key press acts on.
    public private(set) var shown: Frame?
    /// What happened to the screen, for the run's log, until taken (nil while all is well).
    private var lost: String?

    public init(png: PNGSink, screen: Screen, seat: PanelSeat? = nil) {
        self.png = png
        self.screen = screen
        self.seat = seat
    }

    /// What can wake the loop: the screen's flip completions and the seat's input devices.
    public var descriptors: (screen: Int32?, input: [Int32]) { (screen.display?.descriptor, seat?.descriptors ?? []) }

    /// The seat's input, acted on against the frame on screen (none without a screen: nobody
    /// acts on what they cannot see). True when the panel's state changed.
    public func serviceInput() -> Bool {
        seat?.service(on: screen.display == nil ? nil : shown) ?? false
    }

    public var display: (any DisplayPort)? { screen.display }

    public mutating func emit(_ frame: Frame) throws -> String? {
        let written = try png.emit(frame)
        // The screen gets every changed frame, as its damage (a buffer that has held nothing yet
        // takes all of it); an unchanged one is already on it — unless the screen was just
        // attached.
        if let display = screen.display, written != nil || display.state.presented == 0 {
            do { try display.present(pixels: frame.pixels, width: frame.width, height: frame.height, damage: frame.damage) } catch {
                drop(display, because: "\(error)")
            }
        }
        shown = frame
        return written
    }

    /// The display's flips that completed (call when its descriptor is readable).
    public mutating func service() {
        guard let display = screen.display else { return }
        do { try display.service() } catch { drop(display, because: "\(error)") }
    }

    /// What happened to the screen since last asked, once (nil: nothing).
    public mutating func takeLost() -> String? {
        defer { lost = nil }
        return lost
    }

    public mutating func finish() throws {
        screen.drop()
        try png.finish()
    }

    private mutating func drop(_ display: any DisplayPort, because reason: String) {
        screen.drop()
        lost = "display \(display.state.device) \(display.state.connector) lost: \(reason); the panel goes on as \(png.path) only"
    }
}
