import DevicePorts
import Foundation
import Guard
import LoopCore
import Renderer
import StateGraph
import Surface
import WorldOSTesting
import XCTest

/// The operator's seat against a real approval store and audit log, with the frames the real
/// renderer draws from the real observers: a touch acts on the widget under it in the frame on
/// screen, approving takes two deliberate steps, rights the panel shows disabled are refused by
/// the seat too, and the approval is the store's, bound and audited as from `worldos approve`.
/// (The rig does the same through a real kernel's evdev with QEMU's virtio tablet.)
final class PanelSeatTests: XCTestCase {
    var store: ApprovalStore!
    var audit: String!
    let clock = ManualClock()
    let input = FakeInput()
    let binding = ApprovalBinding(context: "bench-operator", action: "relay.energise", device: "bench-bridge:SIM-0001",
                                  path: "/dev/ttyUSB0", params: ["relay": "1"])

    override func setUpWithError() throws {
        let directory = try temporaryDirectory("panel-seat")
        audit = directory + "/audit.jsonl"
        store = try ApprovalStore(directory: directory + "/approvals", lifetime: 60, audit: try AuditLog(path: audit))
    }

    func seat(_ name: String? = "Alice", input: FakeInput? = nil) -> PanelSeat {
        let device = input ?? self.input
        let seat = PanelSeat(operator: name, store: store, clock: clock, discover: { device.unplugged ? [] : [device.info.path] },
                             open: { _ throws(DeviceError) in device })
        seat.refresh()
        return seat
    }

    /// What the panel shows now, drawn from the approval store's and the seat's own observers.
    func frame(_ seat: PanelSeat, width: Int = 800, height: Int = 480) throws -> Frame {
        let now = clock.now()
        let nodes = try ApprovalObserver(store: store).observe(at: now).nodes + PanelObserver(seat).observe(at: now).nodes
        var graph = Graph()
        try graph.apply(GraphDelta(nodes.map { .addNode($0) }))
        return try PanelRenderer.frame(of: Posterior(step: 1, graph: graph, surprise: Surprise(), observedAt: nil), width: width, height: height, mode: .real)
    }

    func widget(_ frame: Frame, _ label: String) throws -> Frame.Semantic {
        try XCTUnwrap(frame.semantics.first { $0.label == label && $0.role == "button" }, "no \(label) in \(frame.semantics.map(\.label))")
    }

    /// A tap in the middle of a widget, as fractions of the screen.
    func tap(_ w: Frame.Semantic, on frame: Frame) -> InputGesture {
        let p = InputGesture.Point(x: (Double(w.x) + Double(w.width) / 2) / Double(frame.width - 1),
                                   y: (Double(w.y) + Double(w.height) / 2) / Double(frame.height - 1))
        return .touch(from: p, to: p)
    }

    func press(_ label: String, _ seat: PanelSeat) throws -> Bool {
        let shown = try frame(seat)
        input.queued = [tap(try widget(shown, label), on: shown)]
        return seat.service(on: shown)
    }

    func testTwoTaps_approveAsTheSeatsOperator_boundAndAuditedFromThePanel_andItRunsOnce() throws {
        let request = try store.request(binding)
        let seat = seat()
        XCTAssertTrue(try press("APPROVE", seat), "arming changes the panel")
        XCTAssertEqual(store.waiting().map(\.id), [request.id], "one tap approves nothing")
        let armed = try frame(seat)
        let cancel = try widget(armed, "CANCEL"), confirm = try widget(armed, "CONFIRM APPROVE")
        XCTAssertEqual(cancel.bounds, try widget(try frame(PanelSeat.none(clock: clock)), "APPROVE").bounds,
                       "CANCEL is where APPROVE was: a second tap on the same spot, or a bounce, cancels")
        XCTAssertNotEqual(confirm.bounds, cancel.bounds)
        XCTAssertTrue(try press("CANCEL", seat))
        XCTAssertNotNil(try? widget(try frame(seat), "APPROVE"), "cancelled: back to APPROVE")
        XCTAssertEqual(store.waiting().count, 1)

        XCTAssertTrue(try press("APPROVE", seat))
        XCTAssertTrue(try press("CONFIRM APPROVE", seat))
        XCTAssertEqual(store.waiting().count, 0)
        let decided = try XCTUnwrap(ApprovalStore.read(directory: store.directory).first { $0.id == request.id })
        XCTAssertEqual(decided.state, .approved)
        XCTAssertEqual(decided.decidedBy, "alice", "as the seat's operator, normalized as every approver is")
        let record = try XCTUnwrap(AuditLog.records(path: audit).last)
        XCTAssertEqual(record.decision, "approved")
        XCTAssertEqual(record.reason, "by alice (panel)", "the panel is the approval's source in the audit log")
        XCTAssertNoThrow(try AuditLog.verify(path: audit).get(), "the chain holds")
        XCTAssertTrue(seat.take().contains { $0.contains("approved by alice (panel)") })
        XCTAssertNotNil(try store.consume(binding), "the guard finds it for exactly this binding…")
        XCTAssertNil(try store.consume(binding), "…once")
    }

    func testNoOperator_theButtonsAreDisabledWithTheReason_andTheSeatRefusesThemToo() throws {
        _ = try store.request(binding)
        let seat = seat(nil)
        let shown = try frame(seat)
        let approve = try widget(shown, "APPROVE")
        XCTAssertEqual(approve.disabled, "no operator at this seat: start with worldos run --panel-operator NAME")
        XCTAssertFalse(try press("APPROVE", seat))
        XCTAssertTrue(seat.take().contains { $0.contains("APPROVE refused: no operator") })
        // A frame that claimed otherwise (drawn by something else) still approves nothing.
        var forged = shown.semantics
        for i in forged.indices { forged[i].disabled = nil }
        let lying = Frame(width: shown.width, height: shown.height, pixels: shown.pixels, semantics: forged, step: 2)
        for label in ["APPROVE", "CONFIRM APPROVE"] {
            if let w = lying.semantics.first(where: { $0.label == label }) { input.queued = [tap(w, on: lying)]; _ = seat.service(on: lying) }
        }
        var confirm = try widget(lying, "APPROVE")
        confirm.label = "CONFIRM APPROVE"
        confirm.value = PanelRenderer.Key.confirm(confirm.value!)
        let next = Frame(width: shown.width, height: shown.height, pixels: shown.pixels, semantics: [confirm], step: 3)
        input.queued = [tap(confirm, on: next)]
        _ = seat.service(on: next)
        XCTAssertEqual(store.waiting().count, 1, "nobody at the seat: nothing is approved, whatever the frame says")
    }

    func testAnOperatorWhoApproved_cannotGiveTheSecondApprovalOfATwoPersonRule() throws {
        let request = try store.request(binding, approvers: 2)
        _ = try store.approve(request.id, by: Approver("alice", via: "cli"))
        let seat = seat("alice")
        let approve = try widget(try frame(seat), "APPROVE")
        XCTAssertEqual(approve.disabled, "alice has approved this; it needs another person")
        XCTAssertFalse(try press("APPROVE", seat))
        XCTAssertEqual(store.waiting().first?.approvedBy, ["alice"])
        let bob = self.seat("bob")
        XCTAssertTrue(try press("APPROVE", bob))
        XCTAssertTrue(try press("CONFIRM APPROVE", bob))
        XCTAssertEqual(ApprovalStore.read(directory: store.directory).first?.decidedBy, "alice and bob")
    }

    func testAConfirmation_expires_andAConfirmOnAStaleFrameIsRefused() throws {
        _ = try store.request(binding)
        let seat = seat()
        XCTAssertTrue(try press("APPROVE", seat))
        let armed = try frame(seat)
        clock.advance(by: PanelSeat.confirmWindow + .milliseconds(1))
        XCTAssertNil(seat.state(at: clock.now()).armed, "not confirmed in time: cancelled")
        input.queued = [tap(try widget(armed, "CONFIRM APPROVE"), on: armed)]
        _ = seat.service(on: armed)
        XCTAssertEqual(store.waiting().count, 1)
        XCTAssertTrue(seat.take().contains { $0.contains("nothing is armed") })
    }

    func testSlidingOff_orAMissedTap_pressesNothing_andWithoutAScreenInputIsIgnored() throws {
        _ = try store.request(binding)
        let seat = seat()
        let shown = try frame(seat)
        let approve = try widget(shown, "APPROVE")
        guard case .touch(let on, _) = tap(approve, on: shown) else { return XCTFail() }
        input.queued = [.touch(from: on, to: .init(x: on.x, y: 0.99))]
        XCTAssertFalse(seat.service(on: shown), "down on APPROVE, up elsewhere: let go")
        input.queued = [.touch(from: .init(x: 0.99, y: 0.99), to: .init(x: 0.99, y: 0.99))]
        XCTAssertFalse(seat.service(on: shown))
        input.queued = [tap(approve, on: shown)]
        XCTAssertFalse(seat.service(on: nil), "no screen: nobody acts on what they cannot see")
        XCTAssertNil(seat.state(at: clock.now()).armed)
    }

    func testKeys_focusPressAndConfirm() throws {
        _ = try store.request(binding)
        let seat = seat()
        func keys(_ k: [PanelKey]) throws { input.queued = k.map { .key($0) }; _ = seat.service(on: try frame(seat)) }
        try keys([.next])
        XCTAssertEqual(seat.state(at: clock.now()).focus, PanelRenderer.Key.approve(store.waiting()[0].id))
        try keys([.press])
        XCTAssertEqual(seat.state(at: clock.now()).focus?.hasPrefix("cancel:"), true, "armed: the focus is on CANCEL, the safe choice")
        try keys([.press])
        XCTAssertNil(seat.state(at: clock.now()).armed, "Enter twice cancels")
        try keys([.next, .press])
        try keys([.next])
        XCTAssertEqual(seat.state(at: clock.now()).focus?.hasPrefix("confirm-approve:"), true)
        try keys([.press])
        XCTAssertEqual(store.waiting().count, 0, "approved with keys, deliberately")
    }

    func testAnUnpluggedDevice_leavesTheGraph_andIsSaidOnce() throws {
        let seat = seat()
        XCTAssertEqual(try PanelObserver(seat).observe(at: clock.now()).nodes.filter { $0.kind == .inputDevice }.count, 1)
        input.unplugged = true
        _ = seat.service(on: nil)
        XCTAssertTrue(seat.take().contains { $0.contains("was unplugged") })
        let after = try PanelObserver(seat).observe(at: clock.now())
        XCTAssertEqual(after.nodes.filter { $0.kind == .inputDevice }.count, 0)
        XCTAssertTrue(after.scope.contains(.inputDevice), "observed as gone, not as unknown")
        input.unplugged = false
        seat.refresh()
        XCTAssertEqual(seat.devices.map(\.path), ["/dev/input/event7"], "plugged in again: taken again")
        _ = seat.take()
        // Its node gone before a read noticed: said the same.
        input.unplugged = true
        seat.refresh()
        XCTAssertTrue(seat.devices.isEmpty)
        XCTAssertEqual(seat.take().filter { $0.contains("was unplugged") }.count, 1, "said once")
    }
}
