import Attached
import DevicePorts
import Devices
import Foundation
import Glibc
import HostAdapter
import LoopCore
import Supervisor
import SystemCalls
import XCTest

/// The supervisor's device steps on real drivers: gpio-set/gpio-get, act on a GPIO profile,
/// usb-control and usb-transfer, kernel-driver detach only with a profile's leave, GPIO edges
/// as events.
final class DeviceStepsRigTests: XCTestCase {
    func catalog(_ extra: String = "") throws -> DeviceCatalog {
        var profiles = [try DeviceProfile.parse("""
        version: 1
        name: rig-gpio
        kind: gpio-header
        match:
          gpio: { chip-label: worldos-rig, lines: [relay, heater-enable, button-start] }
        edges: [button-start]
        safe-state: ["relay=0"]
        actions:
          relay.energise:
            risk: irreversible-physical
            send: ["relay=1"]
            max-on-ms: 1000
          relay.release:
            risk: reversible
            send: ["relay=0"]
        """, file: "rig-gpio.yaml")]
        if !extra.isEmpty { profiles.append(try DeviceProfile.parse(extra, file: "extra.yaml")) }
        return try DeviceCatalog(profiles: profiles)
    }

    func call(_ host: BenchHost, _ op: MicroOp, _ args: [String: Value]) -> CallResult { host.perform(ResolvedCall(op, args)) }

    func testGPIOSteps_andActionsOnAGPIOProfile() throws {
        try Rig.require(.gpio)
        let catalog = try catalog()
        let devices = AttachedGPIODevice.discover(catalog)
        XCTAssertEqual(devices.map(\.profile.name), ["rig-gpio"])
        let host = BenchHost(instruments: [], gpioDevices: devices)
        XCTAssertEqual(call(host, .gpioSet, ["chip": .string("worldos-rig"), "line": .string("relay"), "value": .int(1)]), .value(1))
        XCTAssertEqual(try Rig.simulatedValue(0), 1)
        XCTAssertEqual(call(host, .gpioGet, ["chip": .string("worldos-rig"), "line": .string("relay")]), .value(1))
        XCTAssertEqual(call(host, .act, ["device": .string("rig-gpio"), "action": .string("relay.release")]).value, 1)
        XCTAssertEqual(try Rig.simulatedValue(0), 0)
        XCTAssertEqual(call(host, .gpioSet, ["chip": .string("worldos-rig"), "line": .string("nope"), "value": .int(1)]), .failure(errno: ENODEV))
        XCTAssertEqual(call(host, .gpioSet, ["chip": .string("worldos-rig"), "line": .string("relay"), "value": .int(7)]), .failure(errno: EINVAL))
        try Rig.setPull(4, up: true)
        XCTAssertEqual(call(host, .gpioGet, ["chip": .string("worldos-rig"), "line": .string("button-start")]), .value(1))
        XCTAssertEqual(BenchHost.risk(instruments: [], gpio: devices)("rig-gpio", "relay.energise"), "irreversible-physical")
        host.closeAll()
        XCTAssertFalse(try XCTUnwrap(GPIO.chips().first { $0.label == "worldos-rig" }).lines[0].used, "released")
    }

    func testGPIOEdges_becomeEvents() throws {
        try Rig.require(.gpio)
        let device = try XCTUnwrap(AttachedGPIODevice.discover(try catalog()).first)
        let source = try GPIOEdgeSource(device: device, line: "button-start")
        try Rig.setPull(4, up: false)
        _ = source.drain(at: Instant(nanoseconds: 0))
        try Rig.setPull(4, up: true)
        var p = pollfd(fd: source.descriptor, events: Int16(POLLIN), revents: 0)
        XCTAssertEqual(poll(&p, 1, 2000), 1)
        let events = source.drain(at: Instant(nanoseconds: 5))
        XCTAssertEqual(events.map(\.action), ["rising"])
        XCTAssertEqual(events.first?.subject, "worldos-rig/button-start")
        XCTAssertNotNil(events.first?.details["kernel-ns"].flatMap(UInt64.init))
    }

    func testUSBControlAndBulkSteps_onTheGadget() throws {
        try Rig.require(.gadget)
        let usb = try USBContext()
        let gadget = try XCTUnwrap(try usb.devices().first { $0.vidpid == "1d6b:0104" })
        let host = BenchHost(instruments: [], usb: usb, catalog: try catalog())
        // GET_DESCRIPTOR(DEVICE): 18 bytes, idVendor at offset 8.
        let descriptor = call(host, .usbControl, ["device": .string(gadget.busPath), "request-type": .int(0x80), "request": .int(6),
                                                  "value": .int(0x0100), "length": .int(18)])
        XCTAssertEqual(descriptor.value, 18)
        XCTAssertEqual(descriptor.data.map { Array($0[8...9]) }, [0x6b, 0x1d])
        let vendor = try XCTUnwrap(gadget.configurations.first?.interfaces.first { $0.interfaceClass == 0xFF })
        let out = try XCTUnwrap(vendor.endpoints.first { !$0.isIn }), inn = try XCTUnwrap(vendor.endpoints.first(where: \.isIn))
        XCTAssertEqual(call(host, .usbTransfer, ["device": .string(gadget.busPath), "endpoint": .int(Int64(out.address)), "data": .string("c0ffee")]).value, 3)
        XCTAssertEqual(call(host, .usbTransfer, ["device": .string(gadget.busPath), "endpoint": .int(Int64(inn.address)), "length": .int(64)]).data,
                       [0xc0, 0xff, 0xee])
        XCTAssertEqual(call(host, .usbTransfer, ["device": .string(gadget.busPath), "endpoint": .int(0x7f), "length": .int(1)]), .failure(errno: EINVAL))
        XCTAssertEqual(call(host, .usbTransfer, ["device": .string("9-9"), "endpoint": .int(0x81), "length": .int(1)]), .failure(errno: ENODEV))
        host.closeAll()
    }

    func testKernelDriverDetach_onlyWithAProfilesLeave() throws {
        try Rig.require(.usb)
        let usb = try USBContext()
        let ftdi = try XCTUnwrap(try usb.devices().first { $0.vidpid == "0403:6001" && $0.serial != "BENCH-SIM" })
        let inEndpoint = try XCTUnwrap(ftdi.configurations.first?.interfaces.first?.endpoints.first(where: \.isIn))
        let args: [String: Value] = ["device": .string(ftdi.busPath), "endpoint": .int(Int64(inEndpoint.address)), "length": .int(64), "timeout-ms": .int(500)]
        let refusing = BenchHost(instruments: [], usb: usb, catalog: try catalog())
        XCTAssertEqual(call(refusing, .usbTransfer, args), .failure(errno: EBUSY), "ftdi_sio holds it and no profile allows detaching")
        refusing.closeAll()
        let allowing = BenchHost(instruments: [], usb: usb, catalog: try catalog("""
        version: 1
        name: rig-ftdi
        kind: serial-adapter
        match:
          usb: { vid: "0403", pid: "6001", serial: "\(ftdi.serial ?? "")" }
        detach-kernel-driver: true
        """))
        try Rig.request("ftdi-send 414243")
        let read = call(allowing, .usbTransfer, args)
        XCTAssertEqual(read.data.map { Array($0.suffix(3)) }, Array("ABC".utf8), "two FTDI status bytes, then the payload: \(read)")
        allowing.closeAll()
        XCTAssertTrue(Rig.eventually(5) { FileManager.default.fileExists(atPath: "/sys/bus/usb/drivers/ftdi_sio") &&
                (try? FileManager.default.contentsOfDirectory(atPath: "/sys/bus/usb/drivers/ftdi_sio"))?.contains { $0.hasPrefix(ftdi.busPath + ":") } == true },
                      "the kernel driver is back after release")
    }

    /// The bench's FTDI (USB serial BENCH-SIM), claimed by a profile, is owned by every route the
    /// kernel made for it: its usbfs node and the tty ftdi_sio bound (read from the real sysfs);
    /// the other FTDI, which no profile here claims, is not.
    func testAClaimedUSBAdapter_isOwnedByItsUSBNode_andItsTTY() throws {
        try Rig.require(.usb)
        let usb = try USBContext()
        let devices = try usb.devices()
        let bench = try XCTUnwrap(devices.first { $0.serial == "BENCH-SIM" })
        let other = try XCTUnwrap(devices.first { $0.vidpid == "0403:6001" && $0.serial != "BENCH-SIM" })
        let catalog = try DeviceCatalog(profiles: [try DeviceProfile.parse("""
        version: 1
        name: rig-bench
        kind: instrument
        match:
          usb: { vid: "0403", pid: "6001", serial: "BENCH-*" }
        actions:
          relay.energise:
            risk: irreversible-physical
            send: ["RELAY 0,ON"]
            max-on-ms: 1000
        """, file: "rig-bench.yaml")])
        let owner = BenchHost.owner(instruments: [], gpio: [], usb: usb, catalog: catalog)
        let usbfs = String(format: "/dev/bus/usb/%03d/%03d", bench.bus, bench.address)
        XCTAssertEqual(FileObject.at(usbfs).flatMap { owner($0.deviceNumber!) }?.device, "rig-bench:BENCH-SIM")
        let ttys = ["/dev/ttyUSB0", "/dev/ttyUSB1"].filter { FileObject.at($0).flatMap { owner($0.deviceNumber!) } != nil }
        XCTAssertEqual(ttys.count, 1, "exactly the bench's tty is owned, not the other adapter's")
        XCTAssertEqual(ttys.first.flatMap { FileObject.at($0) }.flatMap { owner($0.deviceNumber!) }?.risk, "irreversible-physical")
        let otherNode = String(format: "/dev/bus/usb/%03d/%03d", other.bus, other.address)
        XCTAssertNil(FileObject.at(otherNode).flatMap { owner($0.deviceNumber!) })
    }

}
