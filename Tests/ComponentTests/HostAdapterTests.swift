import DevicePorts
import Foundation
import Glibc
import HostAdapter
import LoopCore
import XCTest

/// The host adapter against the real kernel: real files, real descriptors, real errno.
final class HostAdapterTests: XCTestCase {
    var directory: String!

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "worldos-host-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    func testOpenReadClose_onARealFile_returnItsBytes() throws {
        let path = directory + "/hello"
        try Data("hello, machine".utf8).write(to: URL(fileURLWithPath: path))
        var host = LinuxHost()
        guard case .value(let fd, _, _) = host.perform(ResolvedCall(.open, ["path": .string(path)])) else { return XCTFail("open failed") }
        XCTAssertGreaterThan(fd, 2)
        XCTAssertEqual(host.perform(ResolvedCall(.ioctl, ["fd": .int(fd), "request": .string("FIONREAD")])), .value(14))
        XCTAssertEqual(host.perform(ResolvedCall(.read, ["fd": .int(fd), "count": .int(64)])), .value(14, data: Array("hello, machine".utf8)))
        XCTAssertEqual(host.perform(ResolvedCall(.close, ["fd": .int(fd)])), .value(0))
        XCTAssertEqual(fcntl(Int32(fd), F_GETFD), -1, "the descriptor is really closed")
        XCTAssertEqual(host.open, [])
    }

    func testCreateAndWrite_changeTheFileOnDisk() throws {
        let path = directory + "/made"
        var host = LinuxHost()
        guard case .value(let fd, _, _) = host.perform(ResolvedCall(.open, ["path": .string(path), "mode": .string("create")])) else {
            return XCTFail("create failed")
        }
        XCTAssertEqual(host.perform(ResolvedCall(.write, ["fd": .int(fd), "data": .string("abc")])), .value(3))
        XCTAssertEqual(host.perform(ResolvedCall(.close, ["fd": .int(fd)])), .value(0))
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "abc")
        XCTAssertEqual(host.perform(ResolvedCall(.open, ["path": .string(path), "mode": .string("create")])), .failure(errno: EEXIST))
    }

    func testErrors_comeBackAsErrnoValues() {
        var host = LinuxHost()
        XCTAssertEqual(host.perform(ResolvedCall(.open, ["path": .string(directory + "/absent")])), .failure(errno: ENOENT))
        XCTAssertEqual(host.perform(ResolvedCall(.read, ["fd": .int(987), "count": .int(1)])), .failure(errno: EBADF))
        XCTAssertEqual(host.perform(ResolvedCall(.close, ["fd": .int(987)])), .failure(errno: EBADF))
        XCTAssertEqual(host.perform(ResolvedCall(.open, ["path": .string("/x"), "mode": .string("sideways")])), .failure(errno: EINVAL))
        XCTAssertEqual(host.perform(ResolvedCall(.read, ["fd": .int(0), "count": .int(-1)])), .failure(errno: EINVAL))
    }

    func testCloseAll_closesWhatTheAdapterOpened() throws {
        var host = LinuxHost()
        guard case .value(let fd, _, _) = host.perform(ResolvedCall(.open, ["path": .string("/proc/loadavg")])) else { return XCTFail() }
        host.closeAll()
        XCTAssertEqual(fcntl(Int32(fd), F_GETFD), -1)
    }

    func testDeviceLibraries_reportTheVersionsLoadedAtRunTime() {
        let libs = DeviceLibraries.loaded()
        for version in [libs.libusb, libs.libseccomp] {
            XCTAssertNotNil(version.range(of: #"^\d+\.\d+\.\d+$"#, options: .regularExpression), version)
        }
        XCTAssertTrue(libs.libgpiod.hasPrefix("1."), "the v1 API (libgpiod 1.6) is what Debian 12 ships: \(libs.libgpiod)")
        XCTAssertTrue(libs.libserialport.hasPrefix("0."), libs.libserialport)
        XCTAssertTrue(libs.libdrm.hasPrefix("linked"))
    }
}
