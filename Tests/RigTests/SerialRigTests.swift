import DevicePorts
import Foundation
import Glibc
import HostAdapter
import XCTest

/// Bytes across real USB serial drivers: ftdi_sio to the host end of QEMU's FTDI socket, and the
/// gadget's ACM function (cdc_acm ↔ u_serial). Driven with termios directly; the serial adapter
/// of the devices issue will take these over.
final class SerialRigTests: XCTestCase {
    func openRaw(_ path: String) throws -> Int32 {
        let fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else { throw RigError("cannot open \(path): \(String(cString: strerror(errno)))") }
        var t = termios()
        tcgetattr(fd, &t)
        cfmakeraw(&t)
        cfsetspeed(&t, speed_t(B115200))
        tcsetattr(fd, TCSANOW, &t)
        tcflush(fd, TCIOFLUSH)
        return fd
    }

    func read(_ fd: Int32, count: Int, timeoutMilliseconds: Int32) -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 256)
        while out.count < count {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, timeoutMilliseconds) == 1 else { break }
            let n = Glibc.read(fd, &buffer, buffer.count)
            guard n > 0 else { break }
            out += buffer.prefix(n)
        }
        return out
    }

    func testBytesCrossTheFTDIDevice_bothWays() throws {
        try Rig.require(.usb)
        // QEMU's first FTDI (the bench's is the one whose USB serial is BENCH-SIM).
        let port = try XCTUnwrap(SerialPortInfo.list().first { $0.usbVendorID == 0x0403 && $0.usbSerial != "BENCH-SIM" },
                                 "\(SerialPortInfo.list())")
        let fd = try openRaw(port.path)
        defer { close(fd) }
        try Rig.request("ftdi-clear")
        let ping = Array("*IDN?\n".utf8)
        XCTAssertEqual(write(fd, ping, ping.count), ping.count)
        XCTAssertEqual(try Rig.request("ftdi-recv \(ping.count) 3000"), ping.map { String(format: "%02x", $0) }.joined())
        let reply = Array("WorldOS,rig,0,1\n".utf8)
        try Rig.request("ftdi-send " + reply.map { String(format: "%02x", $0) }.joined())
        XCTAssertEqual(read(fd, count: reply.count, timeoutMilliseconds: 3000), reply)
    }

    func testBytesCrossTheGadgetsACMFunction() throws {
        try Rig.require(.gadget)
        let host = try openRaw("/dev/ttyACM0"), gadget = try openRaw("/dev/ttyGS0")
        defer { close(host); close(gadget) }
        let message = Array("MEAS:VOLT?\n".utf8)
        XCTAssertEqual(write(host, message, message.count), message.count)
        XCTAssertEqual(read(gadget, count: message.count, timeoutMilliseconds: 3000), message)
    }

    func testFirmwareSimulator_behindARealFTDI_answersThroughLibserialport() throws {
        try Rig.require(.usb)
        let ports = SerialPortInfo.list()
        let bench = try XCTUnwrap(ports.first { $0.usbSerial == "BENCH-SIM" }, "found by its USB parent: \(ports)")
        XCTAssertEqual(bench.usbVendorID, 0x0403)
        XCTAssertEqual(bench.usbProductID, 0x6001)
        XCTAssertEqual(bench.path, "/dev/ttyUSB0", "the guest sees the firmware as its first USB serial port")
        let scpi = SCPIInstrument(port: try SerialPort(path: bench.path), timeoutMilliseconds: 3000)
        let identity = try scpi.identify()
        XCTAssertEqual([identity.manufacturer, identity.model, identity.serial], ["WorldOS", "BenchBridge", "RIG-BENCH"])
        // The firmware outlives one test: a watchdog trip latched while an earlier one left an
        // output on (and a slow guest went quiet) is acknowledged first, as an operator would,
        // and what its error queue held is read off, so what follows is this test's own.
        try scpi.send("SYST:WDOG:ACK")
        _ = try scpi.errors()
        try scpi.checked("RELAY 0,ON")
        XCTAssertEqual(try scpi.query("RELAY? 0"), "1")
        try scpi.send("RELAY 7,ON")
        XCTAssertEqual(try scpi.errors().map(\.code), [-222])
        try scpi.checked("*RST")
        XCTAssertEqual(try scpi.query("RELAY? 0"), "0")
    }
}
