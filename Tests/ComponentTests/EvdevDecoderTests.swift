import DevicePorts
import XCTest

/// The evdev record decoder on the byte streams a kernel sends, and on the ones it should not:
/// records split anywhere, a buffer overrun (SYN_DROPPED) in the middle of a touch, coordinates
/// outside the axis range, multi-touch slots, autorepeat.
final class EvdevDecoderTests: XCTestCase {
    func record(_ type: UInt16, _ code: UInt16, _ value: Int32) -> [UInt8] {
        var bytes = [UInt8](repeating: 0xAB, count: 16)   // the timeval: never read
        withUnsafeBytes(of: type.littleEndian) { bytes += $0 }
        withUnsafeBytes(of: code.littleEndian) { bytes += $0 }
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
        return bytes
    }
    var report: [UInt8] { record(0, 0, 0) }
    let axes = EvdevDecoder.Axes(x: 0...1000, y: 0...500)

    func tap(from: (Int32, Int32), to: (Int32, Int32), button: UInt16 = 0x14a) -> [UInt8] {
        record(3, 0, from.0) + record(3, 1, from.1) + record(1, button, 1) + report
            + record(3, 0, to.0) + record(3, 1, to.1) + report + record(1, button, 0) + report
    }

    func testATouch_isOneGestureAtItsRelease_fromWhereItWentDown_inFractionsOfTheScreen() {
        var d = EvdevDecoder(axes: axes)
        XCTAssertEqual(d.feed(tap(from: (100, 50), to: (500, 250))),
                       [.touch(from: .init(x: 0.1, y: 0.1), to: .init(x: 0.5, y: 0.5))])
        XCTAssertEqual(d.feed(tap(from: (0, 0), to: (1000, 500), button: 0x110)),
                       [.touch(from: .init(x: 0, y: 0), to: .init(x: 1, y: 1))], "a tablet's left button is a touch too")
    }

    func testRecordsSplitAnywhere_decodeTheSame() {
        let stream = tap(from: (100, 50), to: (200, 100)) + record(1, 15, 1) + report
        var whole = EvdevDecoder(axes: axes)
        let expected = whole.feed(stream)
        XCTAssertEqual(expected.count, 2)
        for cut in [1, 5, 23, 24, 25, 47, 100] {
            var d = EvdevDecoder(axes: axes)
            var got: [InputGesture] = []
            var rest = stream[...]
            while !rest.isEmpty { got += d.feed(rest.prefix(cut)); rest = rest.dropFirst(cut) }
            XCTAssertEqual(got, expected, "in pieces of \(cut) bytes")
        }
        var d = EvdevDecoder(axes: axes)
        XCTAssertEqual(d.feed(stream.dropLast(3)), [expected[0]], "a record cut short waits for the rest…")
        XCTAssertEqual(d.feed(stream.suffix(3)), [expected[1]], "…and is decoded when it comes")
    }

    func testABufferOverrun_forgetsTheTouchInProgress_neverCompletesIt() {
        var d = EvdevDecoder(axes: axes)
        let overrun = record(3, 0, 900) + record(1, 0x14a, 1) + report + record(0, 3, 0) /* SYN_DROPPED */
            + record(3, 0, 10) + record(1, 0x14a, 0) + record(1, 28, 1) + report
        XCTAssertEqual(d.feed(overrun), [], "nothing from half the data: no touch, no key")
        XCTAssertEqual(d.feed(tap(from: (10, 10), to: (10, 10))).count, 1, "and the next touch is whole again")
    }

    func testCoordinatesOutsideTheRange_areClamped_andAnEmptyRangeIsRefused() {
        var d = EvdevDecoder(axes: axes)
        XCTAssertEqual(d.feed(tap(from: (-5000, .max), to: (.min, 99999))),
                       [.touch(from: .init(x: 0, y: 1), to: .init(x: 0, y: 1))])
        let (none, problem) = EvdevDecoder.axes(x: (0, 0), y: (0, 100))
        XCTAssertNil(none)
        XCTAssertTrue(problem?.contains("axis range is empty") ?? false, problem ?? "")
        var blind = EvdevDecoder(axes: nil)
        XCTAssertEqual(blind.feed(tap(from: (1, 1), to: (1, 1))), [], "a device without usable axes gives no touches")
        let wide = EvdevDecoder.axes(x: (.min, .max), y: (.min, .max)).axes!
        var far = EvdevDecoder(axes: wide)
        XCTAssertEqual(far.feed(tap(from: (.max, .min), to: (.max, .min))), [.touch(from: .init(x: 1, y: 0), to: .init(x: 1, y: 0))],
                       "the widest range does not overflow")
    }

    func testMultiTouch_slotZeroIsTheTouch_otherFingersAreIgnored() {
        var d = EvdevDecoder(axes: axes)
        let stream = record(3, 0x2f, 0) + record(3, 0x39, 12) + record(3, 0x35, 250) + record(3, 0x36, 125) + report
            + record(3, 0x2f, 1) + record(3, 0x39, 13) + record(3, 0x35, 999) + record(3, 0x36, 499) + report
            + record(3, 0x39, -1) + report   // the second finger lifts: nothing
            + record(3, 0x2f, 0) + record(3, 0x39, -1) + report
        XCTAssertEqual(d.feed(stream), [.touch(from: .init(x: 0.25, y: 0.25), to: .init(x: 0.25, y: 0.25))])
    }

    func testKeys_moveTheFocus_pressOnlyOnAPress_andShiftTabGoesBack() {
        var d = EvdevDecoder(axes: nil)
        let stream = record(1, 15, 1) + report + record(1, 15, 2) + report    // Tab, its autorepeat
            + record(1, 42, 1) + record(1, 15, 1) + record(1, 42, 0) + report  // Shift-Tab
            + record(1, 28, 1) + report + record(1, 28, 2) + report + record(1, 28, 0) + report  // Enter, held
            + record(1, 1, 1) + report + record(1, 30, 1) + report             // Esc, then A (not the panel's)
        XCTAssertEqual(d.feed(stream), [.key(.next), .key(.next), .key(.previous), .key(.press), .key(.cancel)])
        XCTAssertEqual(d.feed(record(1, 108, 1)), [], "a key counts at its report, not before")
        XCTAssertEqual(d.feed(report), [.key(.next)])
    }

    func testGarbage_neverGivesATouchOffTheScreen() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var d = EvdevDecoder(axes: axes)
            let bytes = (0..<Int.random(in: 0..<2000, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            for case .touch(let a, let b) in d.feed(bytes) {
                XCTAssertTrue([a.x, a.y, b.x, b.y].allSatisfy { (0...1).contains($0) })
            }
        }
    }
}
