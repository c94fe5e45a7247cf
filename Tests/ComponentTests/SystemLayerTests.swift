import CLibUSB
import DevicePorts
import Foundation
import Glibc
import SystemCalls
import XCTest

/// The System target's one errno triage, against the real kernel: a signal that interrupts a
/// blocked call is retried there (and the raw call, in the same setup, is seen interrupted);
/// whole writes go on past a full pipe; errno classes mean what they say.
final class SystemLayerTests: XCTestCase {
    /// Runs `body` while a second thread sends SIGURG (its handler installed without
    /// SA_RESTART) to this thread ten times, 20 ms apart, and then runs `feed`.
    private func interrupting(_ feed: @escaping @Sendable () -> Void, _ body: () throws -> Void) rethrows {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        action.sa_flags = 0
        var previous = sigaction()
        sigaction(SIGURG, &action, &previous)
        defer { sigaction(SIGURG, &previous, nil) }
        let target = pthread_self()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            for _ in 0..<10 {
                usleep(20_000)
                pthread_kill(target, SIGURG)
            }
            feed()
            done.signal()
        }
        try body()
        done.wait()
    }

    func testAnInterruptedRead_isRetried_whereTheRawReadSeesEINTR() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        defer { close(fds[0]); close(fds[1]) }
        let writeEnd = fds[1]
        // The setup does interrupt: a raw read returns EINTR before anything is written.
        var raw = 0
        var rawErrno: Int32 = 0
        interrupting({ _ = write(writeEnd, "a", 1) }) {
            var byte: UInt8 = 0
            raw = read(fds[0], &byte, 1)
            rawErrno = errno
        }
        XCTAssertEqual(raw, -1)
        XCTAssertEqual(rawErrno, EINTR)
        var leftover: UInt8 = 0
        XCTAssertEqual(read(fds[0], &leftover, 1), 1)
        // Through Syscall.retrying the same interruptions are not seen; the bytes written after are.
        var result: Result<Int, Errno> = .success(0)
        var bytes = [UInt8](repeating: 0, count: 4)
        interrupting({ _ = write(writeEnd, "late", 4) }) {
            result = bytes.withUnsafeMutableBytes { b in Syscall.retrying { read(fds[0], b.baseAddress, b.count) } }
        }
        XCTAssertEqual(try result.get(), 4)
        XCTAssertEqual(String(decoding: bytes, as: UTF8.self), "late")
    }

    func testWriteAll_goesOnPastAFullNonBlockingPipe_whenToldHowToWait() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        defer { close(fds[0]); close(fds[1]) }
        XCTAssertEqual(fcntl(fds[1], F_SETFL, O_NONBLOCK), 0)
        let size = 1 << 20 // far more than a pipe holds (64 KiB)
        let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        // Without a way to wait, a full pipe ends the write with EAGAIN, a value.
        XCTAssertEqual(Syscall.writeAll(fds[1], payload)?.wouldBlock, true)
        var drained = [UInt8](repeating: 0, count: 1 << 16)
        XCTAssertEqual(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0)
        while read(fds[0], &drained, drained.count) > 0 {}
        let readEnd = fds[0]
        let reader = Thread {
            var got: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            while got.count < size {
                let n = read(readEnd, &chunk, chunk.count)
                if n > 0 { got += chunk[0..<n] }
            }
            XCTAssertEqual(got, payload)
        }
        fcntl(fds[0], F_SETFL, 0)
        reader.start()
        var waits = 0
        XCTAssertNil(Syscall.writeAll(fds[1], payload) {
            waits += 1
            var p = [pollfd(fd: fds[1], events: Int16(POLLOUT), revents: 0)]
            _ = Syscall.poll(&p, milliseconds: 1000)
        })
        XCTAssertGreaterThan(waits, 0, "the pipe filled at least once")
        while !reader.isFinished { usleep(1000) }
    }

    func testErrnoClasses_andAnUnreapableChild_areValues() {
        XCTAssertTrue(Errno(EAGAIN).wouldBlock)
        XCTAssertFalse(Errno(EIO).wouldBlock)
        XCTAssertTrue(Errno(ENODEV).deviceGone)
        XCTAssertFalse(Errno(ENOENT).deviceGone)
        XCTAssertEqual(DeviceError(device: "/dev/x", errno: ENXIO, action: "read").isDeviceGone, true)
        guard case .failure(let e) = Syscall.wait(-12345) else { return XCTFail("no such child") }
        XCTAssertEqual(e.code, ECHILD)
    }

    func testProcfsReads_seeThisProcess() throws {
        let proc = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        XCTAssertGreaterThanOrEqual(proc, 0)
        defer { close(proc) }
        var buffer = [UInt8](repeating: 0, count: 1 << 14)
        let pids = try XCTUnwrap(listNumbers(proc, buffer: &buffer))
        XCTAssertTrue(pids.contains(getpid()))
        let status = try XCTUnwrap(withDecimal(getpid()) { readAt(proc, String(cString: $0) + "/status") })
        XCTAssertTrue(String(decoding: status, as: UTF8.self).contains("Pid:\t\(getpid())\n"))
        XCTAssertEqual(withDecimal(0) { String(cString: $0) }, "0")
        XCTAssertEqual(withDecimal(Int32.max) { String(cString: $0) }, "2147483647")
        XCTAssertNil(readAt(proc, "no-such-file"))
    }

    /// DevicePorts names libusb's errors without linking libusb: held equal to libusb's own names.
    func testUSBErrorNames_areLibusbsNames() {
        for code in Int32(-12)...Int32(-1) {
            XCTAssertEqual(USBError(code: code, device: "1-1", action: "x").name, String(cString: libusb_error_name(code)), "code \(code)")
        }
        XCTAssertEqual(USBError(code: -99, device: "1-1", action: "x").name, String(cString: libusb_error_name(-99)))
        XCTAssertEqual(USBError(code: LIBUSB_ERROR_NO_DEVICE.rawValue, device: "", action: "").isDeviceGone, true)
        XCTAssertEqual(USBError(code: LIBUSB_ERROR_TIMEOUT.rawValue, device: "", action: "").isTimeout, true)
        XCTAssertEqual(USBError(code: LIBUSB_ERROR_BUSY.rawValue, device: "", action: "").errno, EBUSY)
    }
}
