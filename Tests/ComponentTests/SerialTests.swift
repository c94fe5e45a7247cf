import CShim
import DevicePorts
import Foundation
import Glibc
import HostAdapter
import WorldOSTesting
import XCTest

/// The serial adapter and SCPI, over a real pseudo-terminal, against the bench bridge firmware
/// built for the host (`make sim`).
final class SerialTests: XCTestCase {
    /// Simulators started by a test live until it ends (releasing one stops its process).
    var simulators: [BenchSimulator] = []
    override func tearDown() { simulators = [] }

    func simulator(_ arguments: [String] = []) throws -> BenchSimulator {
        do {
            let sim = try BenchSimulator(arguments: arguments)
            simulators.append(sim)
            return sim
        } catch let missing as SimulatorMissing {
            XCTFail("\(missing) — make test builds it first")
            throw missing
        }
    }

    func instrument(_ sim: BenchSimulator) throws -> SCPIInstrument {
        SCPIInstrument(port: try SerialPort(path: sim.pty, settings: SerialSettings(baud: 115_200)))
    }

    func testPtyRoundTrip_identifiesTheFirmware() throws {
        let sim = try simulator(["--serial", "RIG-42"])
        let scpi = try instrument(sim)
        XCTAssertEqual(try scpi.identify(), SCPIInstrument.Identity(manufacturer: "WorldOS", model: "BenchBridge", serial: "RIG-42", version: "0.1"))
        try scpi.waitUntilComplete()
        XCTAssertEqual(try scpi.errors(), [])
    }

    /// Faults the task generator injects: a stuck relay reads back as it is, not as it was set;
    /// slow replies are late; bytes are lost in a pattern the seed repeats.
    func testInjectedFaults_stuckRelaySlowAndDroppedReplies() throws {
        let stuck = try instrument(try simulator(["--stuck-relay", "0"]))
        try stuck.send("RELAY 0,ON")
        try stuck.send("RELAY 1,ON")
        XCTAssertEqual(try stuck.query("RELAY? 0"), "0", "stuck: the contact did not follow")
        XCTAssertEqual(try stuck.query("RELAY? 1"), "1")

        let slow = try instrument(try simulator(["--slow", "150"]))
        let start = ContinuousClock.now
        XCTAssertEqual(try slow.query("RELAY? 1"), "0")
        XCTAssertGreaterThanOrEqual(ContinuousClock.now - start, .milliseconds(150))

        // A lost byte leaves a reply garbled or without its end (the read times out).
        func replies(seed: String) throws -> [String] {
            let port = try SerialPort(path: try simulator(["--drop", "8", "--seed", seed]).pty)
            return try (0..<16).map { _ in
                try port.write("*IDN?\n")
                do { return String(decoding: try port.read(timeoutMilliseconds: 150), as: UTF8.self) } catch is SerialTimeout { return "(timeout)" }
            }
        }
        let intact = "WorldOS,BenchBridge,SIM-0001,0.1"
        let pattern = try replies(seed: "7")
        XCTAssertTrue(pattern.contains(intact) && pattern.contains { $0 != intact }, "\(pattern)")
        XCTAssertEqual(try replies(seed: "7"), pattern, "the same seed loses the same bytes")
        XCTAssertNotEqual(try replies(seed: "8"), pattern)
    }

    /// The causal cut on a serial line: a reply that comes after its query timed out belongs to
    /// that query, never to the next one — the next query must get its own answer.
    func testALateReply_isNeverTakenAsTheNextQuerysAnswer() throws {
        let sim = try simulator(["--slow", "300"])
        let scpi = SCPIInstrument(port: try SerialPort(path: sim.pty, settings: SerialSettings(baud: 115_200)), timeoutMilliseconds: 100)
        XCTAssertThrowsError(try scpi.query("RELAY? 1"), "too slow: it times out")
        XCTAssertTrue(scpi.outOfStep)
        scpi.timeoutMilliseconds = 2000
        // Asked at once, while the late "0" is still on its way, and again once it has arrived.
        XCTAssertEqual(try scpi.query("RELAY? 0"), "0")
        try scpi.send("RELAY 1,ON")
        XCTAssertThrowsError(try SCPIInstrument(port: scpi.port, timeoutMilliseconds: 100).query("RELAY? 1"))
        usleep(450_000)
        XCTAssertEqual(try scpi.query("*IDN?"), "WorldOS,BenchBridge,SIM-0001,0.1", "its own answer, not a late one")
        XCTAssertFalse(scpi.outOfStep)
    }

    func testErrorQueue_reportsEachFault_oldestFirst_andEmpties() throws {
        let scpi = try instrument(try simulator())
        try scpi.send("TELEPORT:NOW")
        try scpi.send("HEAT:POW 150")
        try scpi.send("RELAY 0")
        try scpi.send("GPIO 9,1")
        XCTAssertEqual(try scpi.errors().map(\.code), [-113, -222, -109, -222])
        XCTAssertEqual(try scpi.errors(), [], "emptied")
        XCTAssertThrowsError(try scpi.checked("SOUR:VOLT 99")) { error in
            XCTAssertEqual((error as? SCPIError)?.code, -222)
            XCTAssertTrue("\(error)".contains("after SOUR:VOLT 99"), "\(error)")
        }
        XCTAssertNoThrow(try scpi.checked("SOUR:VOLT 12.5"))
        XCTAssertEqual(try scpi.number("SOUR:VOLT?"), 12.5)
    }

    func testWrongTerminator_timesOut_showingWhatArrived() throws {
        let sim = try simulator()
        let scpi = SCPIInstrument(port: try SerialPort(path: sim.pty), terminator: "\r\n", timeoutMilliseconds: 300)
        XCTAssertThrowsError(try scpi.query("*IDN?")) { error in
            let timeout = error as? SerialTimeout
            XCTAssertNotNil(timeout, "\(error)")
            XCTAssertTrue(String(decoding: timeout?.received ?? [], as: UTF8.self).hasPrefix("WorldOS,BenchBridge"))
            XCTAssertTrue("\(error)".contains("check the terminator"), "\(error)")
        }
    }

    func testSilence_timesOut_saying_noReply() throws {
        let sim = try simulator()
        let port = try SerialPort(path: sim.pty)
        XCTAssertThrowsError(try port.read(timeoutMilliseconds: 100)) { error in
            XCTAssertTrue("\(error)".contains("no reply within 100 ms"), "\(error)")
        }
    }

    func testPhysics_heaterWarmsWithInertia_andTheSupplyLimitsCurrent() throws {
        let scpi = try instrument(try simulator(["--speed", "200"]))
        let cold = try scpi.number("MEAS:TEMP?")
        XCTAssertEqual(cold, 25, accuracy: 0.5)
        try scpi.checked("HEAT:POW 100")
        var readings: [Double] = []
        for _ in 0..<5 {
            usleep(50_000)   // real time passes for the simulated heater
            readings.append(try scpi.number("MEAS:TEMP?"))
        }
        XCTAssertEqual(readings, readings.sorted(), "rising")
        XCTAssertGreaterThan(readings.last!, cold + 5)
        XCTAssertLessThan(readings.last!, 125.5, "never above its steady state")
        try scpi.checked("SOUR:VOLT 12")
        try scpi.checked("SOUR:CURR:LIM 0.5")
        try scpi.checked("OUTP ON")
        XCTAssertEqual(try scpi.number("MEAS:CURR?"), 0.5, "12 V into 10 Ω wants 1.2 A; the limit holds it at 0.5 A")
        XCTAssertEqual(try scpi.number("MEAS:VOLT?"), 5.0)
        try scpi.checked("SOUR:CURR:LIM 2")
        XCTAssertEqual(try scpi.number("MEAS:CURR?"), 1.2)
    }

    func testACutHeaterElement_readsAsOn_butTheTemperatureFallsBackToTheRoom() throws {
        // 100× real time: the element breaks 60 simulated seconds (0.6 s) after the start.
        let scpi = try instrument(try simulator(["--speed", "100", "--cut-heater", "60"]))
        try scpi.checked("HEAT:POW 100")
        usleep(250_000)
        let heated = try scpi.number("MEAS:TEMP?")
        XCTAssertGreaterThan(heated, 30, "it heated before the cut")
        // 400 simulated seconds: the element has been cut a long time. Asking every half second
        // keeps the firmware's watchdog from driving the heater off.
        var after = heated
        for _ in 0..<8 {
            usleep(500_000)
            after = try scpi.number("MEAS:TEMP?")
        }
        XCTAssertEqual(try scpi.number("HEAT:POW?"), 100, "the power still reads as set")
        XCTAssertLessThan(after, heated, "cooling with the output full on")
        XCTAssertLessThan(after, 33, "back toward the room (without the cut it would be near 100 °C)")
        XCTAssertGreaterThanOrEqual(after, 24.5)
    }

    func testAxis_stopsAtItsLimit_andSaysSo() throws {
        let scpi = try instrument(try simulator())
        try scpi.checked("AXIS:MOVE -150")
        XCTAssertTrue(try eventually { try scpi.query("AXIS:LIM?") == "1" })
        XCTAssertEqual(try scpi.query("AXIS:POS?"), "-100")
        XCTAssertEqual(try scpi.errors().map(\.code), [-200])
    }

    func testWatchdog_whenTheHostGoesQuiet_drivesOutputsSafe_andLatches() throws {
        let scpi = try instrument(try simulator())
        try scpi.checked("SYST:WDOG 200")
        try scpi.checked("HEAT:POW 60")
        try scpi.checked("RELAY 1,ON")
        XCTAssertEqual(try scpi.query("RELAY? 1"), "1")
        usleep(450_000)   // the behaviour under test is the host saying nothing
        XCTAssertEqual(try scpi.query("SYST:WDOG?"), "200,1")
        XCTAssertEqual(try scpi.query("RELAY? 1"), "0")
        XCTAssertEqual(try scpi.query("HEAT:POW?"), "0")
        try scpi.send("RELAY 1,ON")
        XCTAssertEqual(try scpi.errors().map(\.code), [-300], "latched until acknowledged")
        XCTAssertEqual(try scpi.query("RELAY? 1"), "0")
        try scpi.checked("SYST:WDOG:ACK")
        try scpi.checked("RELAY 1,ON")
        XCTAssertEqual(try scpi.query("RELAY? 1"), "1")
    }

    func testFlush_discardsAReplyNotYetRead() throws {
        let sim = try simulator()
        let port = try SerialPort(path: sim.pty)
        try port.write("*IDN?\n")
        let length = try port.read(timeoutMilliseconds: 2000).count + 1
        try port.write("*IDN?\n")
        // The simulator may write a reply in pieces: wait until all of it is waiting, so the
        // flush has the whole reply to discard.
        var waiting: Int32 = 0
        let deadline = Date().addingTimeInterval(2)
        while Date() < deadline, worldos_ioctl_fionread(port.descriptor, &waiting) == 0, waiting < length { usleep(1000) }
        XCTAssertGreaterThanOrEqual(Int(waiting), length, "the reply is waiting")
        port.flush()
        XCTAssertThrowsError(try port.read(timeoutMilliseconds: 200), "flushed: nothing left to read")
        try port.write("*OPC?\n")
        XCTAssertEqual(try port.read(timeoutMilliseconds: 1000), Array("1".utf8), "the port still works")
        XCTAssertNoThrow(try port.sendBreak(), "a break on a pty is accepted (the kernel ignores it there)")
    }

    func testSCPIErrorReplies_malformed_areRejected() {
        XCTAssertEqual(try SCPIError(parsing: "-222,\"Data out of range\""), SCPIError(code: -222, message: "Data out of range"))
        XCTAssertEqual(try SCPIError(parsing: "0, \"No error\"").code, 0)
        for bad in ["", "No error", "x,\"y\"", ",\"y\""] {
            XCTAssertThrowsError(try SCPIError(parsing: bad), bad)
        }
    }

    func testSettings_rejectAnUnsupportedBaudRate_andMissingPorts() throws {
        let sim = try simulator()
        XCTAssertThrowsError(try SerialPort(path: sim.pty, settings: SerialSettings(baud: 12345))) { error in
            XCTAssertTrue("\(error)".contains("unsupported baud rate 12345"), "\(error)")
        }
        XCTAssertThrowsError(try SerialPort(path: "/dev/ttyNOPE9")) { error in
            XCTAssertTrue("\(error)".contains("/dev/ttyNOPE9"), "\(error)")
        }
        _ = SerialPortInfo.list()
    }

    func eventually(_ check: () throws -> Bool) rethrows -> Bool {
        for _ in 0..<100 {
            if try check() { return true }
            usleep(10_000)
        }
        return try check()
    }
}

/// A third-party client on our firmware: pyvisa + pyvisa-py (PyPI) on the simulator's ASRL resource.
final class PyVISATests: XCTestCase {
    func testPyVISA_talksToTheFirmwareSimulator() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let python = root.appendingPathComponent(".venv-tests/bin/python").path
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw XCTSkip("PYVISA VENV MISSING — SKIPPED: `make setup` creates .venv-tests with pyvisa, pyvisa-py and pyserial")
        }
        let sim = try BenchSimulator()
        let client = Process()
        client.executableURL = URL(fileURLWithPath: python)
        client.arguments = [root.appendingPathComponent("Tests/Fixtures/pyvisa_client.py").path, sim.pty]
        let out = Pipe(), err = Pipe()
        client.standardOutput = out
        client.standardError = err
        try client.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let problems = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        client.waitUntilExit()
        XCTAssertEqual(client.terminationStatus, 0, problems)
        let result = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: String], String(decoding: data, as: UTF8.self))
        XCTAssertEqual(result["idn"], "WorldOS,BenchBridge,SIM-0001,0.1")
        XCTAssertEqual(result["heat"], "20")
        XCTAssertEqual(result["error"], "-113,\"Undefined header\"")
        XCTAssertEqual(result["empty"], "0,\"No error\"")
        XCTAssertEqual(result["opc"], "1")
        XCTAssertEqual(result["after_reset"], "0")
        _ = sim
    }
}
