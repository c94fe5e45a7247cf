import Config
import Devices
import Foundation
import XCTest

final class DeviceProfileTests: XCTestCase {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func testShippedProfiles_loadTogether_withoutAmbiguity() throws {
        let catalog = try DeviceCatalog.load(directory: root.appendingPathComponent("Devices").path)
        XCTAssertEqual(catalog.profiles.map(\.name), ["bench-bridge", "raspberry-pi-header", "scpi-power-supply", "usb-relay-board", "usb-serial-adapter"])
        let bench = try XCTUnwrap(catalog.profile(named: "bench-bridge"))
        XCTAssertEqual(bench.actions["relay.energise"]?.risk, .irreversiblePhysical)
        XCTAssertEqual(bench.actions["relay.release"]?.risk, .reversible)
        XCTAssertEqual(bench.safeState, ["*RST"])
        XCTAssertEqual(bench.readings.filter(\.actuator).map(\.name), ["heater-power", "relay-0", "relay-1", "supply-output"])
        XCTAssertGreaterThan(bench.match.specificity, catalog.profile(named: "usb-serial-adapter")!.match.specificity,
                             "the bench bridge outranks a generic adapter on the same FTDI id")
    }

    func testActionTemplates_expandWithinRange_andRefuseOutside() throws {
        let bench = try DeviceProfile.load(file: root.appendingPathComponent("Devices/bench-bridge.yaml").path)
        XCTAssertEqual(try bench.expand("psu.output_on", ["current-limit": 0.5]), ["SOUR:CURR:LIM 0.5", "OUTP ON"])
        XCTAssertEqual(try bench.expand("relay.energise", ["relay": 1]), ["RELAY 1,ON"])
        XCTAssertThrowsError(try bench.expand("relay.energise", ["relay": 2])) { XCTAssertEqual("\($0)", "relay.energise: relay = 2 is out of range 0...1") }
        XCTAssertThrowsError(try bench.expand("relay.energise", ["relay": 0.5])) { XCTAssertTrue("\($0)".contains("out of range")) }
        XCTAssertThrowsError(try bench.expand("relay.energise", [:])) { XCTAssertEqual("\($0)", "relay.energise needs relay (0...1)") }
        XCTAssertThrowsError(try bench.expand("relay.energise", ["relay": 0, "extra": 1])) { XCTAssertEqual("\($0)", "relay.energise takes no parameter extra") }
        XCTAssertThrowsError(try bench.expand("laser.fire", [:])) { XCTAssertTrue("\($0)".hasPrefix("profile bench-bridge has no action laser.fire")) }
    }

    func error(_ text: String) -> String? {
        do { _ = try DeviceProfile.parse(text, file: "d.yaml"); return nil } catch { return "\(error)" }
    }

    let head = "version: 1\nname: x\nkind: instrument\nmatch:\n  serial:\n    path: /dev/pts/*\n"

    func testMalformedProfiles_areRejectedWithFileLineAndAHint() {
        XCTAssertEqual(error(head + "colour: blue\n"),
                       "d.yaml:7:1: colour: unknown key \"colour\" (expected one of: version, name, kind, description, match, connection, safe-state, readings, actions, detach-kernel-driver, raw-channel, edges, approvers)".replacingOccurrences(of: "colour: unknown", with: "document: unknown"))
        XCTAssertEqual(error("version: 1\nname: x\nkind: toaster\nmatch:\n  usb: { vid: \"0403\", pid: \"6001\" }\n"),
                       "d.yaml:3:7: kind: unknown kind \"toaster\" (use one of: instrument, serial-adapter, relay-board, power-supply, gpio-header)")
        XCTAssertEqual(error("version: 1\nname: x\nkind: instrument\nmatch:\n  usb: { vid: \"403\", pid: \"6001\" }\n"),
                       "d.yaml:5:15: match.usb.vid: vid \"403\" is not four hex digits (such as 0403)")
        XCTAssertEqual(error("version: 1\nname: x\nkind: instrument\nmatch:\n  serial:\n    path: /dev/../etc/passwd\n"),
                       "d.yaml:6:11: match.serial.path: path \"/dev/../etc/passwd\" must be a normalized absolute path under /dev (such as /dev/ttyUSB* or /dev/pts/*)")
        XCTAssertEqual(error("version: 1\nname: x\nkind: instrument\nmatch:\n  serial: { idn: \"X*\" }\n"),
                       "d.yaml:5:11: match.serial: a serial match needs a path or a usb parent")
        XCTAssertEqual(error(head + "connection: { baud: 12345 }\n"),
                       "d.yaml:7:21: connection.baud: baud rate 12345 is not a standard rate (use 9600, 19200, 38400, 57600, 115200, 230400, 460800 or 921600)")
        XCTAssertEqual(error(head + "approvers: 0\n"), "d.yaml:7:12: approvers: 0 is out of range (use 1...5)")
        XCTAssertEqual(try? DeviceProfile.parse(head + "approvers: 2\n", file: "d.yaml").approvers, 2)
        XCTAssertEqual(error(head + "connection: { timeout-ms: 0 }\n"), "d.yaml:7:27: connection.timeout-ms: 0 is out of range (use 10...60000)")
        XCTAssertEqual(error(head + "readings:\n  - { name: t, query: \"MEAS:TEMP\" }\n"), "d.yaml:8:23: readings[0].query: a reading is a query: its header ends in ? (such as MEAS:TEMP? or RELAY? 0)")
        XCTAssertEqual(error(head + "actions:\n  fire:\n    risk: observe\n    send: [X]\n"),
                       "d.yaml:9:5: actions.fire: action name \"fire\" must read thing.verb, such as relay.energise")
        XCTAssertEqual(error(head + "actions:\n  laser.fire:\n    risk: dangerous\n    send: [X]\n"),
                       "d.yaml:9:11: actions.laser.fire.risk: unknown risk class \"dangerous\" (use one of: observe, reversible, irreversible-physical, destructive-host)")
        XCTAssertEqual(error(head + "actions:\n  laser.fire:\n    risk: irreversible-physical\n    send: [FIRE]\n"),
                       "d.yaml:9:5: actions.laser.fire: an irreversible physical action needs max-on-ms (how long may what it switches on stay on?)")
        XCTAssertEqual(error(head + "actions:\n  heater.set:\n    risk: reversible\n    parameters: { p: { min: 10, max: 0 } }\n    send: [\"HEAT {p}\"]\n"),
                       "d.yaml:10:22: actions.heater.set.parameters.p: min 10 is above max 0")
        XCTAssertEqual(error(head + "actions:\n  heater.set:\n    risk: reversible\n    send: [\"HEAT {p}\"]\n"),
                       "d.yaml:9:5: actions.heater.set: send uses {p}, which is not a declared parameter")
        XCTAssertEqual(error(head + "actions:\n  heater.set:\n    risk: reversible\n    parameters: { p: { min: 0, max: 1 } }\n    send: [\"HEAT 1\"]\n"),
                       "d.yaml:9:5: actions.heater.set: parameter p is declared but not used in send (use {p} in a line or remove it)")
        XCTAssertEqual(error("version: 1\nname: x\nkind: gpio-header\nmatch:\n  gpio: { chip-label: c, lines: [A] }\nactions:\n  a.on:\n    risk: reversible\n    send: [\"A 1\"]\n"),
                       "d.yaml:8:1: actions.a.on: a GPIO action sends LINE=VALUE pairs, not \"A 1\" (such as relay=1)")
        XCTAssertNotNil(error(head + "actions:\n  a.b:\n    risk: observe\n    send: [X]\n  a.b:\n    risk: observe\n    send: [Y]\n"), "a repeated action name")
        XCTAssertEqual(error("version: 1\nname: x\nkind: instrument\nmatch:\n  serial: { path: /dev/pts/* }\n  usb: { vid: \"0403\", pid: \"6001\" }\n"),
                       "d.yaml:5:3: match: a profile matches in exactly one way: serial, usb or gpio")
    }

    func testDetachAndEdges_applyOnlyWhereTheyMeanSomething() {
        XCTAssertEqual(error(head + "detach-kernel-driver: true\n"),
                       "d.yaml:7:23: detach-kernel-driver: detach-kernel-driver applies to profiles that match a USB device")
        XCTAssertEqual(error(head + "edges: [button]\n"), "d.yaml:7:8: edges: edges apply to profiles that match GPIO lines")
        XCTAssertEqual(error("version: 1\nname: x\nkind: gpio-header\nmatch:\n  gpio: { chip-label: c, lines: [A] }\nedges: [B]\n"),
                       "d.yaml:6:8: edges: edge line B is not one of the matched lines (add it to match.gpio.lines)")
        XCTAssertNil(error("version: 1\nname: x\nkind: relay-board\nmatch:\n  usb: { vid: \"16c0\", pid: \"05df\" }\ndetach-kernel-driver: true\n"))
        XCTAssertEqual(error("version: 1\nname: x\nkind: relay-board\nmatch:\n  usb: { vid: \"16c0\", pid: \"05df\" }\ndetach-kernel-driver: maybe\n"),
                       "d.yaml:6:23: detach-kernel-driver: \"maybe\" is not true or false")
    }

    func testAmbiguousProfiles_areRejected_unlessOneIsMoreSpecific() throws {
        let generic = try DeviceProfile.parse("version: 1\nname: a\nkind: serial-adapter\nmatch:\n  serial:\n    usb: { vid: \"0403\", pid: \"6001\" }\n", file: "a.yaml")
        let twin = try DeviceProfile.parse("version: 1\nname: b\nkind: serial-adapter\nmatch:\n  serial:\n    usb: { vid: \"0403\", pid: \"6001\" }\n", file: "b.yaml")
        XCTAssertThrowsError(try DeviceCatalog(profiles: [generic, twin])) { error in
            XCTAssertEqual("\(error)", "b.yaml:5: match is ambiguous with profile a (a.yaml:5): one device could match both (narrow one with a USB serial pattern, a different path, or an idn check)".replacingOccurrences(of: "b.yaml:5:", with: "b.yaml:5:1:"))
        }
        let specific = try DeviceProfile.parse("version: 1\nname: c\nkind: instrument\nmatch:\n  serial:\n    usb: { vid: \"0403\", pid: \"6001\", serial: \"BENCH-*\" }\n", file: "c.yaml")
        XCTAssertNoThrow(try DeviceCatalog(profiles: [generic, specific]))
        let otherSerial = try DeviceProfile.parse("version: 1\nname: d\nkind: instrument\nmatch:\n  serial:\n    usb: { vid: \"0403\", pid: \"6001\", serial: \"LAB-*\" }\n", file: "d.yaml")
        XCTAssertNoThrow(try DeviceCatalog(profiles: [specific, otherSerial]), "BENCH-* and LAB-* cannot both match")
        let gpioA = try DeviceProfile.parse("version: 1\nname: e\nkind: gpio-header\nmatch:\n  gpio: { chip-label: chip, lines: [A, B] }\n", file: "e.yaml")
        let gpioB = try DeviceProfile.parse("version: 1\nname: f\nkind: gpio-header\nmatch:\n  gpio: { chip-label: chip, lines: [B, C] }\n", file: "f.yaml")
        XCTAssertThrowsError(try DeviceCatalog(profiles: [gpioA, gpioB]))
        XCTAssertThrowsError(try DeviceCatalog(profiles: [generic, generic])) { XCTAssertTrue("\($0)".contains("profile name a is also used")) }
    }

    func testGlobs() {
        XCTAssertTrue(globMatches("BENCH-*", "BENCH-0042"))
        XCTAssertTrue(globMatches("WorldOS,BenchBridge,*", "WorldOS,BenchBridge,SIM-0001,0.1"))
        XCTAssertFalse(globMatches("BENCH-*", "LAB-1"))
        XCTAssertTrue(globMatches("/dev/tty??", "/dev/ttyS0"))
        XCTAssertFalse(globMatches("/dev/tty??", "/dev/ttyS10"))
    }
}
