import DevicePorts
import Foundation
import Guard
import SystemCalls

/// The screen the panel is on, if any, and how to find one again. Shared by the frame sink
/// (which draws on it), the display observer (which puts it in the graph) and the guard's table
/// of owned devices (which keeps contexts and programs off the card while it is driven).
///
/// A screen that fails or is unplugged is let go; a DRM hotplug event (a uevent of the `drm`
/// subsystem), or a second gone by, makes the supervisor look again (``reprobe(hotplug:)``), and
/// a display attached since is driven.
public final class Screen: @unchecked Sendable {
    public typealias Finder = @Sendable () -> (display: (any DisplayPort)?, note: String)
    private let lock = NSLock()
    private var current: (any DisplayPort)?
    private var card: (number: UInt64, owner: DeviceOwner)?
    private let find: Finder?
    /// Cheap: is something attached now (the kernel's last known state)?
    private let attached: @Sendable () -> Bool
    private var lastLook = ContinuousClock.now
    /// How often to look while no screen is driven, besides on each DRM hotplug event (not
    /// every driver sends one: bochs-drm does not poll its connector).
    public static let lookEvery: Duration = .seconds(1)
    /// What the first look found, for the run's log.
    public let note: String

    /// A screen already open (or none, never looked for again).
    public init(_ display: (any DisplayPort)?) {
        find = nil
        attached = { false }
        note = display.map { "display: \($0.state.device) \($0.state.connector) \($0.state.mode)" } ?? "display: none asked for; the panel is the PNG in the run folder"
        attach(display)
    }

    /// Look now, and again after each hotplug while there is no screen (`worldos run --display`).
    public init(finding: @escaping Finder, attached: @escaping @Sendable () -> Bool) {
        find = finding
        self.attached = attached
        let (display, note) = finding()
        self.note = note
        attach(display)
    }

    public var display: (any DisplayPort)? { lock.withLock { current } }

    /// The card being driven, as an owned device (for the guard's table).
    public func owner(of device: UInt64) -> DeviceOwner? {
        lock.withLock { card.flatMap { $0.number == device ? $0.owner : nil } }
    }

    /// Let the screen go, giving it back as it was.
    public func drop() {
        let screen = lock.withLock { () -> (any DisplayPort)? in defer { current = nil; card = nil }; return current }
        screen?.restore()
    }

    /// With no screen, after a hotplug event or once a second: if something is attached, open
    /// it. Returns what was found and the line for the log (nil: still none).
    public func reprobe(hotplug: Bool) -> (display: any DisplayPort, note: String)? {
        guard display == nil, let find else { return nil }
        let now = ContinuousClock.now
        guard hotplug || now - lastLook >= Self.lookEvery else { return nil }
        lastLook = now
        guard attached() else { return nil }
        let (found, note) = find()
        guard let found else { return nil }
        attach(found)
        return (found, note)
    }

    private func attach(_ display: (any DisplayPort)?) {
        lock.withLock {
            current = display
            card = display.flatMap { d in
                FileObject.at(d.state.device)?.deviceNumber.map {
                    ($0, DeviceOwner(device: "display:\(d.state.connector)", path: d.state.device, profile: "display", rawChannel: false,
                                     risk: "reversible"))
                }
            }
        }
    }
}
