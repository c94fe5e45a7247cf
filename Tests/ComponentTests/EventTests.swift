import Estimator
import Foundation
import Glibc
import LoopCore
import Observer
import StateGraph
import XCTest

/// Asynchronous events from the real kernel, and their parsers on malformed input.
final class EventTests: XCTestCase {
    let now = Instant(nanoseconds: 7)

    /// Wait (poll, bounded) until the source's descriptor is readable, then drain it until `done`.
    func collect(_ source: any EventSource, until done: ([ObservedEvent]) -> Bool) -> [ObservedEvent] {
        var events: [ObservedEvent] = []
        let deadline = Date().addingTimeInterval(5)
        while !done(events) && Date() < deadline {
            var p = pollfd(fd: source.descriptor, events: Int16(POLLIN), revents: 0)
            _ = poll(&p, 1, 200)
            events += source.drain(at: now)
        }
        return events
    }

    func testProcessEvents_reportForkExecAndExit_withTheExitCode() throws {
        let monitor = try ProcessEventMonitor()
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/sh")
        child.arguments = ["-c", "exit 3"]
        try child.run()
        let pid = String(child.processIdentifier)
        child.waitUntilExit()
        let events = collect(monitor) { $0.contains { $0.subject == pid && $0.action == "exit" } }.filter { $0.subject == pid }
        XCTAssertEqual(events.map(\.action), ["fork", "exec", "exit"])
        XCTAssertEqual(events.last?.details["exit-code"], "3")
        XCTAssertEqual(events.first?.details["parent"], String(getpid()))
    }

    func testDeviceNodeWatch_seesNodesCreatedAndRemoved() throws {
        let dir = NSTemporaryDirectory() + "worldos-dev-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let watch = try DeviceNodeWatch(directory: dir)
        XCTAssertEqual(mknod(dir + "/ttyFAKE0", S_IFCHR | 0o600, dev_t(makeDevice(major: 4, minor: 64))), 0)
        unlink(dir + "/ttyFAKE0")
        let events = collect(watch) { $0.count >= 2 }
        XCTAssertEqual(events.map(\.action), ["create", "delete"])
        XCTAssertEqual(events.first?.subject, dir + "/ttyFAKE0")
    }

    func testUevents_fromTheKernel_arrive() throws {
        let monitor = try UeventMonitor()
        // Ask the kernel to re-announce /dev/null: a harmless "change" uevent.
        let trigger = "/sys/devices/virtual/mem/null/uevent"
        guard FileManager.default.isWritableFile(atPath: trigger) else {
            throw XCTSkip("UEVENT TRIGGER NOT WRITABLE — SKIPPED: needs root to write \(trigger)")
        }
        try "change".write(toFile: trigger, atomically: false, encoding: .utf8)
        let events = collect(monitor) { $0.contains { $0.subject == "/devices/virtual/mem/null" } }
        let null = try XCTUnwrap(events.first { $0.subject == "/devices/virtual/mem/null" })
        XCTAssertEqual(null.action, "change")
        XCTAssertEqual(null.details["SUBSYSTEM"], "mem")
        XCTAssertEqual(null.details["DEVNAME"], "null")
    }

    func testSignalWatch_turnsSignalsIntoEvents_andReleasesItsHandler() throws {
        var watch: SignalWatch? = try SignalWatch(signals: [SIGUSR2])
        XCTAssertFalse(watch!.pending)
        raise(SIGUSR2)
        XCTAssertTrue(watch!.wait(for: .seconds(1)))
        XCTAssertEqual(watch!.drain(at: now).map(\.action), ["SIGUSR2"])
        XCTAssertFalse(watch!.pending, "drained")
        var installed = sigaction()
        sigaction(SIGUSR2, nil, &installed)
        XCTAssertNotNil(installed.__sigaction_handler.sa_handler)
        watch = nil
        sigaction(SIGUSR2, nil, &installed)
        XCTAssertNil(installed.__sigaction_handler.sa_handler, "the default action is back")
    }

    func testEvents_becomePendingEventNodes_forOneStep() throws {
        let estimator = LiveEstimator()
        let e = ObservedEvent(source: "uevent", action: "add", subject: "/devices/usb1/1-1", time: now, details: ["SUBSYSTEM": "usb"])
        let first = try estimator.posterior(from: Prior(step: 0, graph: Graph()), observation:
            Observation(time: now, scope: [], nodes: [], edges: [], supervisor: nil, events: [e]), at: now)
        let pending = first.graph.pendingEvents
        XCTAssertEqual(pending.count, 1)
        XCTAssertEqual(pending.first?["detail.SUBSYSTEM"], .string("usb"))
        XCTAssertTrue(pending.first?.projected ?? false)
        XCTAssertEqual(first.surprise?.wrongNodes, 0, "events are not the prior's mistakes")
        let second = try estimator.posterior(from: Prior(step: 1, graph: first.graph), observation:
            Observation(time: now, scope: [], nodes: [], edges: [], supervisor: nil), at: now)
        XCTAssertEqual(second.graph.pendingEvents, [], "recorded with its step, then gone")
    }
}

final class EventParserTests: XCTestCase {
    func uevent(_ fields: [String]) -> [UInt8] { Array(fields.joined(separator: "\0").utf8) + [0] }

    func testUevent_parsesHeaderAndEnvironment() throws {
        let u = try XCTUnwrap(Uevent(parsing: uevent(["add@/devices/pci0000:00/usb1/1-1", "ACTION=add", "DEVPATH=/devices/pci0000:00/usb1/1-1",
                                                      "SUBSYSTEM=usb", "DEVNAME=bus/usb/001/002", "PRODUCT=403/6001/600", "SEQNUM=1234"])))
        XCTAssertEqual(u.action, "add")
        XCTAssertEqual(u.subsystem, "usb")
        XCTAssertEqual(u.environment["PRODUCT"], "403/6001/600")
    }

    func testUevent_rejectsMalformedMessages() {
        XCTAssertNil(Uevent(parsing: [UInt8]()))
        XCTAssertNil(Uevent(parsing: uevent(["libudev", "ACTION=add"])), "udev's own messages are not kernel uevents")
        XCTAssertNil(Uevent(parsing: uevent(["add/devices/x", "ACTION=add", "DEVPATH=/devices/x"])), "no @")
        XCTAssertNil(Uevent(parsing: uevent(["add@devices/x", "ACTION=add", "DEVPATH=devices/x"])), "relative devpath")
        XCTAssertNil(Uevent(parsing: uevent(["add@/devices/x", "ACTION=remove", "DEVPATH=/devices/x"])), "header disagrees")
        XCTAssertNil(Uevent(parsing: uevent(["add@/devices/x", "ACTION=add", "DEVPATH=/devices/x", "NOEQUALS"])))
        XCTAssertNil(Uevent(parsing: uevent(["add@/devices/x", "ACTION=add"])), "no DEVPATH")
    }

    func testInotifyRecords_parseWholeRecords_andDropATruncatedOne() {
        func record(mask: UInt32, name: String, padTo: Int) -> [UInt8] {
            var bytes: [UInt8] = []
            for v in [UInt32(1), mask, 0, UInt32(padTo)] { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
            return bytes + Array(name.utf8) + [UInt8](repeating: 0, count: padTo - name.utf8.count)
        }
        let bytes = record(mask: UInt32(IN_CREATE), name: "ttyUSB0", padTo: 16) + record(mask: UInt32(IN_DELETE), name: "gpiochip0", padTo: 16)
            + Array(record(mask: UInt32(IN_ATTRIB), name: "video0", padTo: 16).prefix(20))
        let records = bytes.withUnsafeBytes { InotifyRecord.parse($0) }
        XCTAssertEqual(records.map(\.name), ["ttyUSB0", "gpiochip0"])
        XCTAssertEqual(records.map(\.action), ["create", "delete"])
        XCTAssertEqual([UInt8]().withUnsafeBytes { InotifyRecord.parse($0) }, [])
    }
}

final class WakeTests: XCTestCase {
    func testTheLoopsWait_endsEarlyOnAnEvent_andSaysWhichKind() throws {
        let watch = try SignalWatch(signals: [SIGUSR1])
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        defer { close(fds[0]); close(fds[1]) }
        XCTAssertEqual(watch.wait(for: .milliseconds(20), orAnyOf: [fds[0]]), .timeout)
        var byte: UInt8 = 1
        XCTAssertEqual(write(fds[1], &byte, 1), 1)
        XCTAssertEqual(watch.wait(for: .seconds(5), orAnyOf: [fds[0]]), .event, "a readable event descriptor wakes the loop")
        raise(SIGUSR1)
        XCTAssertEqual(watch.wait(for: .seconds(5), orAnyOf: [fds[0]]), .signal, "a stop signal wins")
    }
}
