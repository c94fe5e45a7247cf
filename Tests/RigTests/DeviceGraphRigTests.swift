import Attached
import DevicePorts
import HostAdapter
import LoopCore
import StateGraph
import Supervisor
import XCTest

/// USB devices and GPIO lines in the graph, on real drivers.
final class DeviceGraphRigTests: XCTestCase {
    func testUSBDevicesAndGPIOLines_areNodesWithTheirIdentity() throws {
        try Rig.require(.usb)
        try Rig.require(.gpio)
        let o = try DeviceObserver(usb: try USBContext()).observe(at: Instant(nanoseconds: 0))
        var g = Graph()
        try g.apply(GraphDelta(o.nodes.map { .addNode($0) } + o.edges.map { .addEdge($0) }))
        let bench = try XCTUnwrap(g.nodes(ofKind: .usbDevice).first { $0["serial"] == .string("BENCH-SIM") })
        XCTAssertTrue(bench.id.rawValue.hasSuffix(":BENCH-SIM"), "bus path + serial: \(bench.id)")
        XCTAssertEqual(bench["vid"], .string("0403"))
        XCTAssertEqual(g.owned(by: bench.id).compactMap { g[$0]?.kind }, [.usbInterface])
        XCTAssertTrue(g.nodes(ofKind: .usbDevice).contains { $0["serial"] == .string("WORLDOS-RIG-0001") }, "the gadget")
        let chip = try XCTUnwrap(g[NodeID("gpio:worldos-rig")])
        XCTAssertEqual(chip["lines"], .int(8))
        XCTAssertEqual(g[NodeID("gpio:worldos-rig/6")]?["name"], .string("estop"))
        XCTAssertEqual(g.owner(of: NodeID("gpio:worldos-rig/6")), chip.id)
        XCTAssertEqual(g.invariantViolations(), [])
    }
}
