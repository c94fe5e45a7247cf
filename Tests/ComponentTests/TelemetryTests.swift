import Foundation
import LoopCore
import Observer
import StateGraph
import XCTest

/// Telemetry from recorded sysfs and procfs trees (this build machine has no hwmon, thermal or
/// power supply), including entries that are malformed or half-written.
final class TelemetryTests: XCTestCase {
    var root: String!

    func file(_ path: String, _ content: String) throws {
        let full = root + "/" + path
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(content.utf8).write(to: URL(fileURLWithPath: full))
    }

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "worldos-telemetry-\(UUID().uuidString)"
        try file("sys/class/hwmon/hwmon0/name", "coretemp\n")
        try file("sys/class/hwmon/hwmon0/temp1_input", "45000\n")
        try file("sys/class/hwmon/hwmon0/temp1_label", "Package id 0\n")
        try file("sys/class/hwmon/hwmon0/temp2_input", "not-a-number\n")
        try file("sys/class/hwmon/hwmon1/name", "nct6775\n")
        try file("sys/class/hwmon/hwmon1/fan1_input", "1200\n")
        try file("sys/class/hwmon/hwmon1/in0_input", "3312\n")
        try file("sys/class/hwmon/hwmon1/curr1_input", "1500\n")
        try file("sys/class/hwmon/hwmon1/power1_input", "12500000\n")
        try file("sys/class/hwmon/hwmon1/pwm1", "128\n")
        try file("sys/class/thermal/thermal_zone0/type", "x86_pkg_temp\n")
        try file("sys/class/thermal/thermal_zone0/temp", "51000\n")
        try file("sys/class/thermal/cooling_device0/type", "Processor\n")
        try file("sys/class/power_supply/BAT0/type", "Battery\n")
        try file("sys/class/power_supply/BAT0/status", "Discharging\n")
        try file("sys/class/power_supply/BAT0/capacity", "87\n")
        try file("sys/class/power_supply/BAT0/voltage_now", "12100000\n")
        try file("sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", "2400000\n")
        try file("sys/devices/system/cpu/cpufreq/policy0/x", "")
        try file("proc/pressure/cpu", "some avg10=1.50 avg60=0.75 avg300=0.20 total=123456\n")
        try file("proc/pressure/io", "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=x avg60=0.00 avg300=0.00 total=0\n")
        try file("proc/meminfo", "MemTotal:       24591292 kB\nMemAvailable:   20000000 kB\ngarbage\n")
        try file("proc/loadavg", "0.52 0.58 0.59 3/412 12345\n")
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: root) }

    func observe() throws -> (sensors: [String: Node], raced: Int) {
        let o = try TelemetryObserver(sysRoot: root + "/sys", procRoot: root + "/proc").observe(at: Instant(nanoseconds: 0))
        XCTAssertEqual(o.scope, [.sensor])
        return (Dictionary(uniqueKeysWithValues: o.nodes.map { (String($0.id.rawValue.dropFirst(7)), $0) }), o.raced)
    }

    func testRecordedTree_becomesSensorNodes_inSIUnits() throws {
        let (s, raced) = try observe()
        XCTAssertEqual(s["hwmon/coretemp/temp1"]?["value"], .double(45))
        XCTAssertEqual(s["hwmon/coretemp/temp1"]?["unit"], .string("°C"))
        XCTAssertEqual(s["hwmon/coretemp/temp1"]?["label"], .string("Package id 0"))
        XCTAssertEqual(s["hwmon/nct6775/fan1"]?["value"], .double(1200))
        XCTAssertEqual(s["hwmon/nct6775/in0"]?["value"], .double(3.312))
        XCTAssertEqual(s["hwmon/nct6775/curr1"]?["value"], .double(1.5))
        XCTAssertEqual(s["hwmon/nct6775/power1"]?["value"], .double(12.5))
        XCTAssertNil(s["hwmon/nct6775/pwm1"], "pwm is an output, not a reading")
        XCTAssertEqual(s["thermal/thermal_zone0"]?["value"], .double(51))
        XCTAssertEqual(s["thermal/thermal_zone0"]?["label"], .string("x86_pkg_temp"))
        XCTAssertEqual(s["power/BAT0/capacity"]?["value"], .double(87))
        XCTAssertEqual(s["power/BAT0/voltage_now"]?["value"], .double(12.1))
        XCTAssertEqual(s["power/BAT0/capacity"]?["status"], .string("Discharging"))
        XCTAssertEqual(s["cpufreq/cpu0"]?["value"], .double(2400))
        XCTAssertEqual(s["pressure/cpu/some"]?["value"], .double(1.5))
        XCTAssertEqual(s["pressure/cpu/some"]?["total-us"], .int(123456))
        XCTAssertEqual(s["memory/MemAvailable"]?["value"], .double(20_000_000))
        XCTAssertEqual(s["load/1m"]?["value"], .double(0.52))
        XCTAssertEqual(s["load/15m"]?["tasks"], .int(412))
        XCTAssertEqual(raced, 3, "temp2 is not a number, io's full line is malformed, meminfo has a garbage line")
        XCTAssertTrue(s.values.allSatisfy { $0.kind == .sensor && $0.projected })
    }

    func testMissingTrees_giveNoSensors_notAnError() throws {
        let o = try TelemetryObserver(sysRoot: root + "/absent", procRoot: root + "/absent").observe(at: Instant(nanoseconds: 0))
        XCTAssertEqual(o.nodes, [])
    }

    func testThisMachine_reportsWhatItHas() throws {
        let o = try TelemetryObserver().observe(at: Instant(nanoseconds: 0))
        let ids = Set(o.nodes.map(\.id.rawValue))
        XCTAssertTrue(ids.contains("sensor:load/1m"))
        XCTAssertTrue(ids.contains("sensor:memory/MemTotal"))
        if FileManager.default.fileExists(atPath: "/proc/pressure/cpu") { XCTAssertTrue(ids.contains("sensor:pressure/cpu/some")) }
    }

    func testParsers_rejectMalformedInput() {
        XCTAssertNil(Telemetry.parseLoadavg(""))
        XCTAssertNil(Telemetry.parseLoadavg("0.1 0.2 0.3"))
        XCTAssertNil(Telemetry.parseLoadavg("0.1 0.2 zero 1/2 3"))
        XCTAssertNil(Telemetry.parseLoadavg("0.1 0.2 0.3 12 3"))
        XCTAssertEqual(Telemetry.parsePressure("some avg10=1 avg60=2 avg300=3\nhalf avg10=1 avg60=2 avg300=3 total=4\n").malformed, 2)
        XCTAssertEqual(Telemetry.parseMeminfo("MemTotal 12 kB\nCached: lots kB\n").malformed, 2)
    }
}
