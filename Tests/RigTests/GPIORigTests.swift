import Glibc
import DevicePorts
import HostAdapter
import XCTest

/// libgpiod 1.6 against the real gpio-sim driver.
final class GPIORigTests: XCTestCase {
    override func setUpWithError() throws { try Rig.require(.gpio) }

    var chip: GPIO.Chip {
        get throws { try XCTUnwrap(GPIO.chips().first { $0.label == "worldos-rig" }, "the gpio-sim bank: \(GPIO.chips().map(\.label))") }
    }

    func testChip_listsTheSimulatedBank_withItsLineNames() throws {
        let c = try chip
        XCTAssertEqual(c.name, Rig.gpioChip)
        XCTAssertEqual(c.lines.map(\.name), ["relay", "heater-enable", "fan-pwm", "led-status", "button-start", "limit-x", "estop", "spare"])
        XCTAssertTrue(c.lines.allSatisfy { !$0.used }, "no line is held (a released line keeps its last direction)")
    }

    func testOutput_drivesTheLine_andShowsItsConsumer() throws {
        let request = try GPIOLineRequest(chip: try chip.path, offset: 0, kind: .output(initial: 0, safe: 0))
        XCTAssertEqual(try Rig.simulatedValue(0), 0)
        try request.set(1)
        XCTAssertEqual(try Rig.simulatedValue(0), 1)
        XCTAssertEqual(try request.get(), 1)
        let line = try chip.lines[0]
        XCTAssertEqual(line.consumer, "worldos")
        XCTAssertEqual(line.direction, .output)
        XCTAssertTrue(line.used)
    }

    func testInput_followsTheSimulatedPull() throws {
        let request = try GPIOLineRequest(chip: try chip.path, offset: 4, kind: .input)
        try Rig.setPull(4, up: true)
        XCTAssertEqual(try request.get(), 1)
        try Rig.setPull(4, up: false)
        XCTAssertEqual(try request.get(), 0)
    }

    func testReturnToSafe_drivesAnOutputToItsDeclaredSafeValue() throws {
        let request = try GPIOLineRequest(chip: try chip.path, offset: 1, kind: .output(initial: 1, safe: 0))
        XCTAssertEqual(try Rig.simulatedValue(1), 1, "the heater enable line is energised")
        try request.returnToSafe()
        XCTAssertEqual(try Rig.simulatedValue(1), 0, "and back at its safe value, while still held")
        let inverted = try GPIOLineRequest(chip: try chip.path, offset: 7, kind: .output(initial: 0, safe: 1))
        try inverted.returnToSafe()
        XCTAssertEqual(try Rig.simulatedValue(7), 1, "a safe value of 1 is honoured too")
    }

    /// gpio-sim itself resets a freed line to its simulated pull, so the rig cannot see the
    /// safe value driven just before release (release calls returnToSafe, tested above); it can
    /// see that the line is really released.
    func testReleasingAnOutput_freesTheLine() throws {
        var request: GPIOLineRequest? = try GPIOLineRequest(chip: try chip.path, offset: 3, kind: .output(initial: 1, safe: 0))
        XCTAssertTrue(try chip.lines[3].used)
        _ = request
        request = nil
        XCTAssertFalse(try chip.lines[3].used)
        XCTAssertNoThrow(try GPIOLineRequest(chip: try chip.path, offset: 3, kind: .input))
    }

    func testSecondRequest_forAHeldLine_isRefusedClearly() throws {
        let first = try GPIOLineRequest(chip: try chip.path, offset: 2, kind: .input)
        XCTAssertThrowsError(try GPIOLineRequest(chip: try chip.path, offset: 2, kind: .input)) { error in
            XCTAssertEqual((error as? DeviceError)?.errno, EBUSY, "\(error)")
        }
        _ = first
    }
}

extension GPIORigTests {
    func testEdges_arriveOnThePolledDescriptor_timestampedByTheKernel() throws {
        try Rig.require(.gpio)
        let request = try GPIOLineRequest(chip: try chip.path, offset: 5, kind: .edges)
        XCTAssertGreaterThanOrEqual(request.descriptor, 0)
        try Rig.setPull(5, up: false)
        usleep(100_000)
        _ = try request.readEdges()   // whatever the line did before this test
        // One change at a time, each awaited on the descriptor: the test asks what the kernel
        // reports for a rise and then a fall, not how fast a pull can be toggled.
        func nextEdge() throws -> [GPIO.Edge] {
            var p = pollfd(fd: request.descriptor, events: Int16(POLLIN), revents: 0)
            XCTAssertEqual(poll(&p, 1, 2000), 1, "the descriptor becomes readable")
            return try request.readEdges()
        }
        try Rig.setPull(5, up: true)
        var edges = try nextEdge()
        try Rig.setPull(5, up: false)
        edges += try nextEdge()
        XCTAssertEqual(edges.map(\.rising), [true, false])
        guard edges.count == 2 else { return }
        XCTAssertLessThan(edges[0].nanoseconds, edges[1].nanoseconds)
        XCTAssertEqual(try request.readEdges(), [], "read once")
    }
}
