import Config
import Control
import Guard
import LoopCore
import XCTest

/// Plan files: how they expand (so the guard sees every action before the start), what they
/// summarise for the approval, and what a malformed one is told.
final class PlanParseTests: XCTestCase {
    static let scan = """
        version: 1
        plan: iv
        device: bench-bridge
        cleanup:
          - set: { action: psu.output_off }
        steps:
          - set: { action: psu.output_on, params: { current-limit: 1 } }
          - wait-until: { condition: "supply-output >= 1", timeout-s: 5 }
          - checkpoint: powered
          - scan: { action: psu.set_voltage, parameter: volts, from: 0, to: 1, step: 0.1, settle-ms: 50,
                    measure: { name: iv, readings: [supply-voltage, supply-current] } }
          - repeat: { times: 3, steps: [ { measure: { name: hold, readings: [supply-current] } } ] }
          - scan: { action: psu.set_voltage, parameter: volts, from: 2, to: 1, step: 0.5, measure: { name: down, readings: [supply-voltage] } }
        """

    func testAScanAndARepeat_expandToEveryPoint_inOrder_withoutDrift() throws {
        let plan = try Plan.parse(Self.scan, file: "iv.yaml")
        // 1 set + 1 wait + 1 checkpoint + 11 points × (set, measure) + 3 measures + 3 points × 2.
        XCTAssertEqual(plan.steps.count, 3 + 22 + 3 + 6)
        let volts = plan.steps.compactMap { step -> String? in
            if case .set(let call) = step, call.action == "psu.set_voltage" { return call.params["volts"] } else { return nil }
        }
        XCTAssertEqual(volts, ["0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1", "2", "1.5", "1"])
        guard case .measure(let name, let readings, let point, let settle) = plan.steps[4] else { return XCTFail("\(plan.steps[4])") }
        XCTAssertEqual(name, "iv")
        XCTAssertEqual(readings, ["supply-voltage", "supply-current"])
        XCTAssertEqual(point, ["volts": 0])
        XCTAssertEqual(settle, .milliseconds(50))
        XCTAssertEqual(plan.steps[2], .checkpoint("powered"))
        XCTAssertEqual(plan.locations[0], "iv.yaml:7")
    }

    func testTheSummary_listsEachDistinctAction_andItsRanges() throws {
        let summary = try Plan.parse(Self.scan, file: "iv.yaml").summary
        // output_on, 0…1 in 11 values plus 2 and 1.5 (1 again is the same action), output_off.
        XCTAssertEqual(summary.calls.count, 1 + 13 + 1)
        XCTAssertEqual(summary.ranges["psu.set_voltage on bench-bridge"], "volts 0…2 (13 values)")
        XCTAssertEqual(summary.ranges["psu.output_on on bench-bridge"], "current-limit 1")
        XCTAssertEqual(summary.ranges["psu.output_off on bench-bridge"], "no parameters")
        XCTAssertTrue(summary.calls.contains(PlanCall(device: "bench-bridge", action: "psu.output_off", params: [:])), "the cleanup is checked too")
        XCTAssertEqual(summary.hash.count, 64)
        let edited = try Plan.parse(Self.scan.replacingOccurrences(of: "to: 1, step: 0.1", with: "to: 1, step: 0.2"), file: "iv.yaml")
        XCTAssertNotEqual(edited.hash, summary.hash, "the hash is the file's: an edit is another plan")
    }

    func testConditions_holdAsWritten() throws {
        func condition(_ text: String) throws -> Plan.Condition {
            let plan = try Plan.parse("version: 1\nplan: p\nsteps:\n  - wait-until: { condition: \"\(text)\", timeout-s: 1 }\n", file: "p.yaml")
            guard case .wait(let c, let timeout) = plan.steps[0] else { throw XCTSkip("FAIL LOUDLY: not a wait") }
            XCTAssertEqual(timeout, .seconds(1))
            return c
        }
        let c = try condition("t >= 1")
        XCTAssertTrue(c.holds(1))
        XCTAssertFalse(c.holds(0.99))
        XCTAssertTrue(try condition("t != 1").holds(2))
        XCTAssertFalse(try condition("t < 1").holds(1))
        XCTAssertEqual(try condition("supply-output == 1").description, "supply-output == 1")
    }

    /// Each malformed plan is refused with its file, line and what to do.
    func testMalformedPlans_areRefusedWithTheirLine() {
        let cases: [(String, String, String)] = [
            ("version: 1\nplan: p\ndevice: d\nsteps:\n  - jump: { to: 3 }\n", "p.yaml:5", "unknown plan step \"jump\""),
            ("version: 1\nplan: p\ndevice: d\nsteps:\n  - wait-until: { condition: \"t >> 3\", timeout-s: 1 }\n", "p.yaml:5", "a condition is READING OP NUMBER"),
            ("version: 1\nplan: p\ndevice: d\nsteps:\n  - repeat: { times: 2, steps: [ { checkpoint: a } ] }\n", "p.yaml:5", "a checkpoint inside a repeat"),
            ("version: 1\nplan: p\ndevice: d\nsteps:\n  - scan: { action: a.b, parameter: v, from: 0, to: 1, step: 0.5, params: { v: 1 }, measure: { name: m, readings: [r] } }\n",
             "p.yaml:5", "v is the scanned parameter"),
            ("version: 1\nplan: p\nsteps:\n  - set: { action: a.b }\n", "p.yaml:4", "names no device"),
            ("version: 1\nplan: p\ndevice: d\nsteps:\n  - set: { action: a.b, params: { v: \"1,2\" } }\n", "p.yaml:5", "cannot be sent"),
            ("version: 1\nplan: p\ndevice: d\nsteps:\n  - repeat: { times: 100000, steps: [ { repeat: { times: 100000, steps: [] } } ] }\n", "p.yaml:5", "a repeat needs at least one step"),
            ("version: 1\nplan: p\ndevice: d\nsteps:\n  - repeat: { times: 100000, steps: [ { repeat: { times: 100000, steps: [ { set: { action: a.b } } ] } } ] }\n",
             "p.yaml:5", "expands to more than 100000 steps"),
            ("version: 1\nplan: p\ndevice: d\nsteps:\n  - scan: { action: a.b, parameter: v, from: 0, to: 1, step: 0.000000001, measure: { name: m, readings: [r] } }\n",
             "p.yaml:5", "too long"),
            ("version: 1\nplan: p\ndevice: d\ncleanup:\n  - measure: { name: m, readings: [r] }\nsteps:\n  - set: { action: a.b }\n", "p.yaml:5", "cleanup runs only set steps"),
            ("version: 1\nplan: \"../x\"\ndevice: d\nsteps:\n  - set: { action: a.b }\n", "p.yaml:2", "a plan's name"),
            ("version: 1\nplan: p\ndevice: d\nsteps: []\n", "p.yaml:4", "the plan has no steps"),
            ("version: 1\nplan: p\nsteps:\n  - set: { action: a.b\n", "p.yaml:", "YAML syntax"),
            ("version: 2\nplan: p\ndevice: d\nsteps:\n  - set: { action: a.b }\n", "p.yaml:1", "out of range"),
            ("version: 1\nplan: p\ndevice: d\nspeed: 3\nsteps:\n  - set: { action: a.b }\n", "p.yaml:4", "speed"),
        ]
        for (text, location, message) in cases {
            XCTAssertThrowsError(try Plan.parse(text, file: "p.yaml"), text) { error in
                let said = "\(error)"
                XCTAssertTrue(said.hasPrefix(location), "\(said) should name \(location)")
                XCTAssertTrue(said.contains(message), "\(said) should say \(message)")
            }
        }
    }
}
