import Attached
import CShim
import DevicePorts
import Devices
import Glibc
import Guard
import HostAdapter
import Journal
import LoopCore
import StateGraph
import Supervisor
import SystemCalls
import WorldOSTesting
import XCTest

/// The supervisor's device steps and device observer on the fakes (fast; the real adapters are
/// tested on real drivers in the rig by DeviceStepsRigTests and DeviceGraphRigTests).
final class DeviceStepTests: XCTestCase {
    let gadget = USBDevice(bus: 3, busPath: "3-1", address: 2, vendorID: 0x1d6b, productID: 0x0104, serial: "G-1", configurations: [
        .init(value: 1, interfaces: [.init(number: 2, interfaceClass: 0xFF, endpoints: [.init(address: 0x01, kind: .bulk, maxPacketSize: 512),
                                                                                       .init(address: 0x82, kind: .bulk, maxPacketSize: 512)])]),
    ])

    func catalog(detach: Bool) throws -> DeviceCatalog {
        try DeviceCatalog(profiles: [
            try DeviceProfile.parse("version: 1\nname: rig\nkind: gpio-header\nmatch:\n  gpio: { chip-label: bank, lines: [relay, button] }\n"
                                    + "actions:\n  relay.release:\n    risk: reversible\n    send: [\"relay=0\"]\n", file: "g.yaml"),
            try DeviceProfile.parse("version: 1\nname: gadget\nkind: instrument\nmatch:\n  usb: { vid: \"1d6b\", pid: \"0104\" }\n"
                                    + "detach-kernel-driver: \(detach)\n", file: "u.yaml"),
        ])
    }

    func call(_ host: BenchHost, _ op: MicroOp, _ args: [String: Value]) -> CallResult { host.perform(ResolvedCall(op, args)) }

    func testGPIOSet_holdsTheLine_andReleaseReturnsItToSafe() throws {
        let bank = FakeGPIOBank(label: "bank", lines: ["relay", "button"])
        let devices = AttachedGPIODevice.discover(try catalog(detach: false), chips: bank.chips())
        let host = BenchHost(instruments: [], gpioDevices: devices, gpio: bank)
        XCTAssertEqual(call(host, .gpioSet, ["chip": .string("bank"), "line": .string("relay"), "value": .int(1)]), .value(1))
        XCTAssertEqual(call(host, .gpioSet, ["chip": .string("bank"), "line": .string("0"), "value": .int(1)]), .value(1), "by offset, same held line")
        XCTAssertEqual(bank.log, ["request 0"], "requested once, kept")
        XCTAssertEqual(bank.levels[0], 1)
        XCTAssertEqual(call(host, .act, ["device": .string("rig"), "action": .string("relay.release")]).value, 1)
        XCTAssertEqual(bank.levels[0], 0)
        XCTAssertEqual(call(host, .gpioSet, ["chip": .string("bank"), "line": .string("relay"), "value": .int(1)]), .value(1))
        host.closeAll()
        XCTAssertEqual(bank.levels[0], 0, "back to its safe value on release")
        XCTAssertEqual(bank.held, [])
        XCTAssertEqual(call(host, .gpioSet, ["chip": .string("other"), "line": .string("relay"), "value": .int(1)]), .failure(errno: ENODEV))
    }

    func testALatchedFault_drivesHeldGPIOLinesSafe_andReleasesThem() throws {
        let bank = FakeGPIOBank(label: "bank", lines: ["relay", "button"])
        let host = BenchHost(instruments: [], gpioDevices: AttachedGPIODevice.discover(try catalog(detach: false), chips: bank.chips()), gpio: bank)
        let out = NSTemporaryDirectory() + "worldos-gpio-fault-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: out) }
        let fault = FaultLatch(folder: RunFolder(out), audit: nil)
        host.makeSafe(on: fault)
        XCTAssertEqual(call(host, .gpioSet, ["chip": .string("bank"), "line": .string("relay"), "value": .int(1)]), .value(1))
        XCTAssertEqual(bank.levels[0], 1)
        try fault.latch("lost something", at: Instant(nanoseconds: 0))
        XCTAssertEqual(bank.levels[0], 0, "driven to its safe value")
        XCTAssertEqual(bank.held, [], "and released")
    }

    func testUSBTransfer_claimsTheInterfaceOwningTheEndpoint_andDetachesOnlyWithLeave() throws {
        let bus = FakeUSBBus([gadget])
        bus.kernelDrivers = ["3-1#2"]
        bus.answers["3-1/130"] = [1, 2, 3]
        let refusing = BenchHost(instruments: [], usb: bus, catalog: try catalog(detach: false))
        XCTAssertEqual(call(refusing, .usbTransfer, ["device": .string("3-1"), "endpoint": .int(0x82), "length": .int(8)]), .failure(errno: EBUSY))
        let allowing = BenchHost(instruments: [], usb: bus, catalog: try catalog(detach: true))
        XCTAssertEqual(call(allowing, .usbTransfer, ["device": .string("3-1"), "endpoint": .int(0x82), "length": .int(8)]),
                       .value(3, data: [1, 2, 3]))
        XCTAssertEqual(call(allowing, .usbTransfer, ["device": .string("3-1"), "endpoint": .int(0x01), "data": .string("abcd")]), .value(2))
        XCTAssertEqual(call(allowing, .usbTransfer, ["device": .string("3-1"), "endpoint": .int(0x01), "data": .string("abc")]), .failure(errno: EINVAL))
        XCTAssertTrue(bus.log.contains("detach 3-1#2") && bus.log.contains("claim 3-1#2"), "\(bus.log)")
        bus.unplug("3-1")
        XCTAssertEqual(call(allowing, .usbTransfer, ["device": .string("3-1"), "endpoint": .int(0x82), "length": .int(8)]), .failure(errno: ENODEV),
                       "a vanished device is a value, not a crash")
    }

    func testDeviceObserver_putsUSBAndGPIOIntoTheGraph() throws {
        let o = try DeviceObserver(usb: FakeUSBBus([gadget]), gpio: FakeGPIOBank(label: "bank", lines: ["relay", "button"])).observe(at: Instant(nanoseconds: 0))
        var g = Graph()
        try g.apply(GraphDelta(o.nodes.map { .addNode($0) } + o.edges.map { .addEdge($0) }))
        XCTAssertTrue(g.contains(NodeID("usb:3-1:G-1")))
        XCTAssertEqual(g[NodeID("usb:3-1:G-1/if2")]?["endpoints"], .string("0x1 bulk, 0x82 bulk"))
        XCTAssertEqual(g[NodeID("gpio:bank/1")]?["name"], .string("button"))
        XCTAssertEqual(g.owner(of: NodeID("gpio:bank/1")), NodeID("gpio:bank"))
        XCTAssertEqual(Set(o.scope), [.usbDevice, .usbInterface, .gpioChip, .gpioLine])
    }
}

/// A raw device step (a GPIO set, a USB transfer) on hardware a profile declares carries that
/// profile's highest risk class: a policy that allows `gpio-set` does not make an irreversible
/// relay a plain allow.
final class RawDeviceStepRiskTests: XCTestCase {
    let gadget = USBDevice(bus: 3, busPath: "3-1", address: 2, vendorID: 0x1d6b, productID: 0x0104, serial: "G-1", configurations: [])

    func guardian(_ out: String, gpio: [AttachedGPIODevice], usb: FakeUSBBus, catalog: DeviceCatalog) throws -> PolicyGuard {
        let policy = try Policy.parse("version: 1\ncontexts:\n  op:\n    allow:\n      - op: [gpio-set, usb-transfer, usb-control]\n", file: "p.yaml")
        return PolicyGuard(policy: policy, audit: try AuditLog(path: out + "/audit.jsonl"), mode: .real,
                           approvals: try ApprovalStore(directory: out + "/approvals"), protectedPaths: [out],
                           stepRisk: BenchHost.stepRisk(gpio: gpio, usb: usb, catalog: catalog))
    }

    func testGPIOSet_onALineOfAnIrreversibleProfile_needsAnApproval_boundToLineAndValue() throws {
        let out = try temporaryDirectory("raw-risk")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let catalog = try DeviceCatalog(profiles: [
            try DeviceProfile.parse("version: 1\nname: rig\nkind: gpio-header\nmatch:\n  gpio: { chip-label: bank, lines: [relay] }\n"
                                    + "actions:\n  relay.energise:\n    risk: irreversible-physical\n    max-on-ms: 1000\n    send: [\"relay=1\"]\n", file: "g.yaml"),
            try DeviceProfile.parse("version: 1\nname: gadget\nkind: instrument\nmatch:\n  usb: { vid: \"1d6b\", pid: \"0104\" }\n"
                                    + "actions:\n  charge.fire:\n    risk: irreversible-physical\n    max-on-ms: 1000\n    send: [\"x\"]\n", file: "u.yaml"),
        ])
        let bank = FakeGPIOBank(label: "bank", lines: ["relay", "button"])
        let g = try guardian(out, gpio: AttachedGPIODevice.discover(catalog, chips: bank.chips()), usb: FakeUSBBus([gadget]), catalog: catalog)
        let set = ResolvedCall(.gpioSet, ["chip": .string("bank"), "line": .string("relay"), "value": .int(1)])
        guard case .needsApproval(let id, let reason) = g.evaluate(set, context: "op", held: []) else {
            return XCTFail("a raw set of a declared line must ask: \(g.evaluate(set, context: "op", held: []))")
        }
        XCTAssertTrue(reason.contains("rig:") && reason.contains("irreversible-physical"), reason)
        let request = try XCTUnwrap(ApprovalStore.read(directory: out + "/approvals").first { $0.id == id })
        XCTAssertEqual(request.binding.params, ["chip": "bank", "line": "relay", "value": "1"])
        let transfer = ResolvedCall(.usbTransfer, ["device": .string("3-1"), "endpoint": .int(1), "data": .string("ff")])
        guard case .needsApproval = g.evaluate(transfer, context: "op", held: []) else {
            return XCTFail("a raw transfer to a declared USB device must ask: \(g.evaluate(transfer, context: "op", held: []))")
        }
        // Hardware no profile declares is the policy's alone.
        XCTAssertTrue(g.evaluate(ResolvedCall(.usbTransfer, ["device": .string("9-9"), "endpoint": .int(1)]), context: "op", held: []).isAllowed)
    }
}

/// A USB device a profile claims is owned by every route: its usbfs node and the nodes its
/// interfaces' drivers made (read from sysfs), whichever the supervisor's guard is asked about.
final class USBOwnershipTests: XCTestCase {
    func testEveryNodeOfAClaimedUSBDevice_isOwnedByItsProfile_andAnUnclaimedOneIsNot() throws {
        let sysfs = try temporaryDirectory("usb-sysfs")
        defer { try? FileManager.default.removeItem(atPath: sysfs) }
        // The adapter's tty is a real pty here: its device number is what the guard would see.
        var master: Int32 = -1, slave: Int32 = -1
        XCTAssertEqual(openpty(&master, &slave, nil, nil, nil), 0)
        defer { close(master); close(slave) }
        let tty = try XCTUnwrap(FileObject.at(try PathResolver.readLink("/proc/self/fd/\(slave)", missing: ENOENT))?.deviceNumber)
        let ttyText = "\(worldos_device_major(tty)):\(worldos_device_minor(tty))\n"
        func node(_ path: String, _ dev: String) throws {
            try FileManager.default.createDirectory(atPath: sysfs + "/devices/" + path, withIntermediateDirectories: true)
            try dev.write(toFile: sysfs + "/devices/" + path + "/dev", atomically: false, encoding: .utf8)
        }
        try node("pci0/usb1/1-2", "189:5\n")
        try node("pci0/usb1/1-2/1-2:1.0/ttyUSB0/tty/ttyUSB0", ttyText)
        try node("pci0/usb1/1-3", "189:6\n")
        try FileManager.default.createDirectory(atPath: sysfs + "/bus/usb/devices", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: sysfs + "/bus/usb/devices/1-2", withDestinationPath: "../../../devices/pci0/usb1/1-2")
        try FileManager.default.createSymbolicLink(atPath: sysfs + "/bus/usb/devices/1-3", withDestinationPath: "../../../devices/pci0/usb1/1-3")
        // A link inside the device's folder (as sysfs has: driver, subsystem) is not followed.
        try FileManager.default.createSymbolicLink(atPath: sysfs + "/devices/pci0/usb1/1-2/subsystem", withDestinationPath: "../1-3")
        let bus = FakeUSBBus([
            USBDevice(bus: 1, busPath: "1-2", address: 5, vendorID: 0x0403, productID: 0x6001, serial: "BENCH-7"),
            USBDevice(bus: 1, busPath: "1-3", address: 6, vendorID: 0x046d, productID: 0xc52b),
        ])
        let catalog = try DeviceCatalog.load(directory: repositoryRoot.appendingPathComponent("Devices").path)
        let owner = BenchHost.owner(instruments: [], gpio: [], usb: bus, catalog: catalog, sysfs: sysfs)
        let usbfs = FileObject.deviceNumber(major: 189, minor: 5)
        for number in [usbfs, tty] {
            XCTAssertEqual(owner(number)?.device, "bench-bridge:BENCH-7", "the bench bridge's profile (BENCH-*) before the generic adapter's")
            XCTAssertEqual(owner(number)?.path, "/dev/bus/usb/001/005")
            XCTAssertEqual(owner(number)?.risk, "irreversible-physical")
        }
        XCTAssertNil(owner(FileObject.deviceNumber(major: 189, minor: 6)), "no profile claims the other device")
        XCTAssertEqual(USBOwnership.deviceNumbers(of: "1-2", sysfs: sysfs), [tty, usbfs].sorted())
        // glibc's makedev, as the kernel's st_rdev holds it.
        XCTAssertEqual(FileObject.at("/dev/null")?.deviceNumber, FileObject.deviceNumber(major: 1, minor: 3))
        XCTAssertEqual(FileObject.at("/dev/tty")?.deviceNumber, FileObject.deviceNumber(major: 5, minor: 0))
    }
}
