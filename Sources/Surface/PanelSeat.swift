import DevicePorts
import Foundation
import Guard
import LoopCore
import Renderer
import SystemCalls

/// The operator's seat at the panel: the input devices attached to it, who sits there
/// (`worldos run --panel-operator NAME`), what has the focus, and an approval or rejection
/// armed for its confirmation.
///
/// What a touch or a key acts on is the semantics tree of the frame on screen, the single
/// source for hit-testing: a touch presses the widget it went down and came up on; Tab and the
/// arrows move the focus among the widgets that can be pressed; Enter or Space presses the
/// focused one; Esc cancels. A widget drawn disabled does nothing (its reason is said), and the
/// seat checks the rights itself besides: no operator, nothing is approved.
///
/// Approving is deliberate, in two steps: APPROVE arms it and the panel shows CANCEL where
/// APPROVE was and CONFIRM APPROVE two places to the right (a second tap on the same spot, or a
/// bounce, cancels rather than confirms); CONFIRM within ``confirmWindow`` approves through the
/// same store, audit and binding as `worldos approve`, as the seat's operator, via `panel`.
public final class PanelSeat: @unchecked Sendable {
    public typealias Opener = (String) throws(DeviceError) -> any InputPort
    /// The seat's operator, as approvals record people (normalized); nil: nobody may approve here.
    public let operatorName: String?
    public static let confirmWindow: Duration = .seconds(5)
    private let store: ApprovalStore?
    private let clock: any WorldClock
    private let discover: () -> [String]
    private let open: Opener
    private var inputs: [String: any InputPort] = [:]
    /// Devices that could not be opened, and why (said once; tried again when they come back).
    private var refused: [String: String] = [:]
    private var focus: String?
    private var armed: (key: String, until: Instant)?
    private var said: [String] = []

    /// `discover` lists the input devices to use now (the `/dev/input` event nodes, or none);
    /// `open` opens one.
    public init(operator name: String?, store: ApprovalStore?, clock: any WorldClock,
                discover: @escaping () -> [String], open: @escaping Opener) {
        operatorName = name.map(Approver.normalize).flatMap { $0.isEmpty ? nil : $0 }
        self.store = store
        self.clock = clock
        self.discover = discover
        self.open = open
    }

    /// A seat with no input (a program's or a test's supervisor, or a dreaming one).
    public static func none(clock: any WorldClock) -> PanelSeat {
        PanelSeat(operator: nil, store: nil, clock: clock, discover: { [] }, open: { path throws(DeviceError) in
            throw DeviceError(device: path, message: "no input at this seat", hint: "")
        })
    }

    public var devices: [InputDeviceInfo] { inputs.values.map(\.info).sorted { $0.path < $1.path } }

    /// The seat's devices as owned devices (for the guard's table): while the panel takes input,
    /// no context or supervised program reads them (an operator's keys), grabs them (the seat
    /// would go deaf), or opens /dev/uinput to make a device that taps for the operator.
    public func owner(of device: UInt64) -> DeviceOwner? {
        lock.withLock { owned[device] }
    }
    private let lock = NSLock()
    private var owned: [UInt64: DeviceOwner] = [:]
    private func own() {
        var table: [UInt64: DeviceOwner] = [:]
        for (path, device) in inputs {
            if let number = FileObject.at(path)?.deviceNumber {
                table[number] = DeviceOwner(device: "input:\(device.info.name)", path: path, profile: "panel-input", rawChannel: false, risk: "irreversible")
            }
        }
        if !inputs.isEmpty || !refused.isEmpty, let uinput = FileObject.at("/dev/uinput")?.deviceNumber {
            table[uinput] = DeviceOwner(device: "input:uinput", path: "/dev/uinput", profile: "panel-input", rawChannel: false, risk: "irreversible")
        }
        lock.withLock { owned = table }
    }
    public var descriptors: [Int32] { inputs.values.map(\.descriptor) }

    /// Open the devices that appeared, forget those that are gone (hotplug: a graph transition).
    public func refresh() {
        let present = Set(discover())
        for (path, device) in inputs where !present.contains(path) {
            inputs[path] = nil
            said.append("input: \(path) \(device.info.name) was unplugged")
        }
        for path in refused.keys where !present.contains(path) { refused[path] = nil }
        for path in present.sorted() where inputs[path] == nil && refused[path] == nil {
            do {
                let device = try open(path)
                inputs[path] = device
                said.append("input: \(path) \(device.info.name) (\(device.info.capabilities.isEmpty ? "nothing the panel uses" : device.info.capabilities.joined(separator: ", ")))"
                            + (device.info.note.map { "; \($0)" } ?? ""))
            } catch {
                refused[path] = "\(error)"
                said.append("input: \(error); the panel goes on without it")
            }
        }
        own()
    }

    /// Read what is ready and act on it, against `frame` (the one on screen; nil: no screen,
    /// and input is ignored — nobody acts on what they cannot see). True when the panel's state
    /// changed (the loop steps, to draw it).
    public func service(on frame: Frame?) -> Bool {
        var gestures: [InputGesture] = []
        for (path, device) in inputs.sorted(by: { $0.key < $1.key }) {
            do { gestures += try device.read() } catch {
                inputs[path] = nil
                own()
                said.append(error.isDeviceGone ? "input: \(path) \(device.info.name) was unplugged" : "input: \(error); let go")
            }
        }
        guard let frame else { return false }
        let before = (focus, armed?.key)
        for gesture in gestures { handle(gesture, on: frame) }
        return before != (focus, armed?.key)
    }

    /// What happened since last asked, for the run's log.
    public func take() -> [String] {
        defer { said = [] }
        return said
    }

    /// The seat as the panel draws it: operator, focus, what is armed (dropped once its window
    /// has passed).
    public func state(at now: Instant) -> (operator: String?, focus: String?, armed: String?) {
        if let a = armed, now >= a.until {
            armed = nil
            said.append("panel: \(a.key) was not confirmed within \(Self.confirmWindow); cancelled")
            if focus.map({ $0.hasPrefix("confirm-") || $0.hasPrefix("cancel:") }) ?? false { focus = nil }
        }
        return (operatorName, focus, armed?.key)
    }

    // MARK: gestures

    private func handle(_ gesture: InputGesture, on frame: Frame) {
        let pressable = frame.semantics.filter { $0.actions?.contains("press") ?? false }
        switch gesture {
        case .touch(let from, let to):
            func at(_ p: InputGesture.Point) -> Frame.Semantic? {
                let (x, y) = (Int(p.x * Double(frame.width - 1)), Int(p.y * Double(frame.height - 1)))
                return pressable.first { $0.bounds.contains(x: x, y: y) }
            }
            // Down and up on the same widget presses it; sliding off lets it go.
            guard let widget = at(to), at(from) == widget else { return }
            if widget.enabled { focus = widget.value }
            press(widget)
        case .key(.next), .key(.previous):
            let enabled = pressable.filter(\.enabled)
            guard !enabled.isEmpty else { return }
            let index = enabled.firstIndex { $0.value == focus }
            let step = gesture == .key(.next) ? 1 : -1
            focus = enabled[index.map { ($0 + step + enabled.count) % enabled.count } ?? (step > 0 ? 0 : enabled.count - 1)].value
        case .key(.press):
            guard let widget = pressable.first(where: { $0.value == focus }) else { focus = nil; return }
            press(widget)
        case .key(.cancel):
            if let a = armed { said.append("panel: \(a.key) cancelled") }
            armed = nil
        }
    }

    private func press(_ widget: Frame.Semantic) {
        guard let key = widget.value else { return }
        if let reason = widget.disabled {
            said.append("panel: \(widget.label) refused: \(reason)")
            return
        }
        let now = clock.now()
        if key.hasPrefix("approve:") || key.hasPrefix("reject:") {
            armed = (key, now + Self.confirmWindow)
            focus = PanelRenderer.Key.cancel(String(key.drop { $0 != ":" }.dropFirst()))
        } else if key.hasPrefix("cancel:") {
            armed = nil
            focus = nil
        } else if key.hasPrefix("confirm-") {
            defer { armed = nil; focus = nil }
            let target = String(key.dropFirst("confirm-".count))
            guard let a = armed, a.key == target, now < a.until else {
                said.append("panel: \(widget.label) refused: nothing is armed for it (press APPROVE or REJECT first)")
                return
            }
            decide(target)
        }
    }

    private func decide(_ key: String) {
        let approve = key.hasPrefix("approve:")
        let id = String(key.drop { $0 != ":" }.dropFirst())
        guard let name = operatorName, let store else {
            said.append("panel: \(id) refused: no operator at this seat (worldos run --panel-operator NAME)")
            return
        }
        let person = Approver(name, via: "panel")
        do {
            let decided = approve ? try store.approve(id, by: person) : try store.reject(id, by: person)
            said.append("panel: request \(id) \(approve ? "approved" : "rejected") by \(person) (\(decided.state.rawValue))")
        } catch {
            said.append("panel: \(error)")
        }
    }
}
