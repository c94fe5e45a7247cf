import DevicePorts
import HostAdapter
import XCTest

/// libusb against real xHCI and dummy_hcd drivers.
final class USBRigTests: XCTestCase {
    func testEnumeration_seesTheFTDIAndTheGadget_withTheirDescriptors() throws {
        try Rig.require(.usb)
        try Rig.require(.gadget)
        let devices = try USBContext().devices()
        let ftdi = try XCTUnwrap(devices.first { $0.vidpid == "0403:6001" }, "QEMU's FTDI is on the xHCI bus: \(devices.map(\.vidpid))")
        let ftdiInterface = try XCTUnwrap(ftdi.configurations.first?.interfaces.first)
        XCTAssertEqual(ftdiInterface.interfaceClass, 0xFF)
        XCTAssertEqual(Set(ftdiInterface.endpoints.map(\.kind)), [.bulk])
        XCTAssertEqual(ftdiInterface.endpoints.filter(\.isIn).count, 1)
        XCTAssertEqual(ftdiInterface.endpoints.filter { !$0.isIn }.count, 1)

        let gadget = try XCTUnwrap(devices.first { $0.vidpid == "1d6b:0104" }, "the dummy_hcd gadget enumerates")
        XCTAssertEqual(gadget.serial, "WORLDOS-RIG-0001")
        XCTAssertEqual(gadget.manufacturer, "WorldOS")
        XCTAssertEqual(gadget.product, "WorldOS rig gadget")
        let interfaces = try XCTUnwrap(gadget.configurations.first?.interfaces)
        XCTAssertTrue(interfaces.contains { $0.interfaceClass == 0x02 }, "ACM communication interface")
        XCTAssertTrue(interfaces.contains { $0.interfaceClass == 0x0A }, "ACM data interface")
        let vendor = try XCTUnwrap(interfaces.first { $0.interfaceClass == 0xFF }, "FunctionFS vendor interface")
        XCTAssertEqual(vendor.endpoints.map(\.kind), [.bulk, .bulk])
        XCTAssertEqual(vendor.endpoints.filter(\.isIn).count, 1)
        XCTAssertNotEqual(ftdi.bus, gadget.bus, "two host controllers")
    }

    func testBulkTransfers_roundTripThroughTheGadgetsUserSpaceFunction() throws {
        try Rig.require(.gadget)
        let context = try USBContext()
        let gadget = try XCTUnwrap(try context.devices().first { $0.vidpid == "1d6b:0104" })
        // The UDC renumbers endpoints: take the addresses from the descriptors.
        let vendor = try XCTUnwrap(gadget.configurations.first?.interfaces.first { $0.interfaceClass == 0xFF })
        let out = try XCTUnwrap(vendor.endpoints.first { !$0.isIn }), inn = try XCTUnwrap(vendor.endpoints.first(where: \.isIn))
        let handle = try context.open(busPath: gadget.busPath)
        try handle.claim(interface: vendor.number)
        let message = Array("worldos rig bulk round trip".utf8)
        _ = try handle.transfer(endpoint: out.address, kind: .bulk, data: message, timeoutMilliseconds: 2000)
        XCTAssertEqual(try handle.transfer(endpoint: inn.address, kind: .bulk, length: 512, timeoutMilliseconds: 2000), message)
    }

    func testClaim_refusesToDetachAKernelDriver_unlessAllowed() throws {
        try Rig.require(.usb)
        let context = try USBContext()
        let ftdi = try XCTUnwrap(try context.devices().first { $0.vidpid == "0403:6001" })
        let handle = try context.open(busPath: ftdi.busPath)
        XCTAssertThrowsError(try handle.claim(interface: 0)) { error in
            XCTAssertTrue("\(error)".contains("a kernel driver holds it"), "\(error)")
        }
    }

    func testUnplugDuringATransfer_isADeviceGoneTransition_notACrash() throws {
        try Rig.require(.usb)
        let context = try USBContext()
        let tablet = try XCTUnwrap(try context.devices().first { $0.vidpid == "0627:0001" }, "QEMU's tablet is attached")
        let endpoint = try XCTUnwrap(tablet.configurations.first?.interfaces.first?.endpoints.first(where: \.isIn))
        let handle = try context.open(busPath: tablet.busPath)
        try handle.claim(interface: 0)
        try Rig.request("usb-unplug tablet0 700")
        // The tablet reports nothing while nobody moves it, so this transfer is in flight when
        // the device goes.
        XCTAssertThrowsError(try handle.transfer(endpoint: endpoint.address, kind: .interrupt, length: 8, timeoutMilliseconds: 10_000)) { error in
            XCTAssertEqual((error as? USBError)?.isDeviceGone, true, "\(error)")
        }
        // libusb drops the device from its list when its hotplug monitor sees the uevent.
        XCTAssertTrue(try Rig.eventually(5) { try !context.devices().contains { $0.vidpid == "0627:0001" } }, "the tablet leaves the device list")
        try Rig.request("usb-plug tablet0")
        // The same long-lived context sees it come back: devices() processes pending hotplug events.
        XCTAssertTrue(try Rig.eventually(15) { try context.devices().contains { $0.vidpid == "0627:0001" } }, "the tablet comes back")
    }
}
