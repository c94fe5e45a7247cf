import Foundation
import MCAP
import WorldOSTesting
import XCTest

/// Our MCAP writer, read back by the `mcap` package from PyPI (Tests/Fixtures/mcap_check.py),
/// which checks every chunk's CRC, and by our own reader; files cut short and repaired.
final class MCAPTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "worldos-mcap-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    /// What the PyPI reader found in a file, as JSON.
    static func pythonRead(_ path: String) throws -> (status: Int32, json: [String: Any], stderr: String) {
        guard let (status, data, errors) = try PythonFixture.run("mcap_check.py", [path]) else {
            throw XCTSkip("MCAP VENV MISSING — SKIPPED LOUDLY: `make setup` creates .venv-tests with the mcap package")
        }
        return (status, (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:], errors)
    }

    /// Three chunks of messages on two channels.
    func writeSample(_ path: String, close: Bool = true) throws -> MCAPWriter {
        let w = try MCAPWriter(path: path)
        let schema = try w.addSchema(name: "worldos.Sample", encoding: "jsonschema", data: Array(#"{"type":"object"}"#.utf8))
        let a = try w.addChannel(topic: "/a", messageEncoding: "json", schema: schema)
        let b = try w.addChannel(topic: "/b", messageEncoding: "json", schema: schema, metadata: ["k": "v"])
        for i in 0..<25 {
            w.write(channel: i % 3 == 0 ? b : a, sequence: UInt32(i), logTime: 1_000 + UInt64(i) * 10, publishTime: 1_000 + UInt64(i) * 10,
                    data: Array(#"{"i":\#(i)}"#.utf8))
            if i == 9 || i == 19 { try w.flushChunk() }
        }
        if close { try w.close() }
        return w
    }

    func testAFile_isReadByThePyPIReader_withEveryChunkCRCChecked() throws {
        let path = dir + "/sample.mcap"
        _ = try writeSample(path)
        let (status, json, errors) = try Self.pythonRead(path)
        XCTAssertEqual(status, 0, errors)
        let stats = try XCTUnwrap(json["statistics"] as? [String: Any])
        XCTAssertEqual(stats["message_count"] as? Int, 25)
        XCTAssertEqual(stats["chunk_count"] as? Int, 3)
        XCTAssertEqual(stats["channel_count"] as? Int, 2)
        XCTAssertEqual(stats["message_start_time"] as? Int, 1_000)
        XCTAssertEqual(stats["message_end_time"] as? Int, 1_240)
        XCTAssertEqual(stats["channel_message_counts"] as? [String: Int], ["0": 16, "1": 9])
        XCTAssertEqual(json["chunk_indexes"] as? Int, 3)
        XCTAssertEqual(json["streamed_messages"] as? Int, 25)
        let messages = try XCTUnwrap(json["messages"] as? [[String: Any]])
        XCTAssertEqual(messages.compactMap { $0["data"] as? String }, (0..<25).map { #"{"i":\#($0)}"# })
        XCTAssertEqual(messages.compactMap { $0["topic"] as? String }, (0..<25).map { $0 % 3 == 0 ? "/b" : "/a" })
        XCTAssertEqual(messages.compactMap { $0["sequence"] as? Int }, Array(0..<25))
        // Our reader sees the same.
        let ours = try MCAPReader(path: path)
        XCTAssertTrue(ours.complete)
        XCTAssertEqual(ours.messages.map { String(decoding: $0.data, as: UTF8.self) }, (0..<25).map { #"{"i":\#($0)}"# })
        XCTAssertEqual(ours.channels[1]?.topic, "/b")
    }

    /// kill -9 leaves whole chunks and maybe half of the next: repair keeps the whole ones.
    func testAFileCutShort_isRepairedToItsWholeChunks() throws {
        let path = dir + "/cut.mcap"
        let writer = try writeSample(path, close: false)
        try writer.flushChunk()
        let whole = try Data(contentsOf: URL(fileURLWithPath: path))
        // Half of a fourth chunk, as a crash mid-write leaves it.
        let extra = dir + "/extra.mcap"
        let w2 = try writeSample(extra, close: false)
        try w2.flushChunk()
        let donor = try Data(contentsOf: URL(fileURLWithPath: extra))
        let tornChunk = donor.suffix(from: donor.count - 60).prefix(30)
        try (whole + tornChunk).write(to: URL(fileURLWithPath: path))
        XCTAssertNotEqual(try Self.pythonRead(path).status, 0, "the PyPI reader refuses a file without a footer")

        let repair = try MCAPWriter.repair(path: path)
        XCTAssertEqual([repair.chunks, repair.messages, Int(repair.bytesCut)], [3, 25, 30])
        XCTAssertFalse(repair.wasComplete)
        let (status, json, errors) = try Self.pythonRead(path)
        XCTAssertEqual(status, 0, errors)
        XCTAssertEqual((json["statistics"] as? [String: Any])?["message_count"] as? Int, 25)
        XCTAssertEqual((json["messages"] as? [[String: Any]])?.count, 25)
        XCTAssertEqual(try MCAPWriter.repair(path: path).wasComplete, true, "a second repair changes nothing")
    }

    func testAChunkFailingItsCRC_andWhatFollows_areCut() throws {
        let path = dir + "/crc.mcap"
        let writer = try writeSample(path, close: false)
        try writer.flushChunk()
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        // Flip a byte inside the last chunk's compressed records (its two message indexes, 110
        // bytes, follow it).
        let chunks = try MCAPReader(path: path)
        XCTAssertEqual(chunks.stoppedBecause, "the file ends without a footer")
        bytes[bytes.count - 130] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let repair = try MCAPWriter.repair(path: path)
        XCTAssertEqual(repair.chunks, 2)
        XCTAssertEqual(repair.messages, 20)
        let (status, json, errors) = try Self.pythonRead(path)
        XCTAssertEqual(status, 0, errors)
        XCTAssertEqual((json["messages"] as? [[String: Any]])?.count, 20)
    }

    func testMalformedFiles_areRefusedNamingTheFileAndByte() throws {
        let path = dir + "/bad.mcap"
        try Data("not an mcap file at all".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try MCAPReader(path: path)) {
            XCTAssertEqual("\($0)", "MCAP file \(path), byte 0: does not start with the MCAP magic bytes; not an MCAP file")
        }
        try Data(magic + [0x05, 1, 0, 0, 0, 0, 0, 0, 0, 0]).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try MCAPReader(path: path)) { XCTAssertEqual("\($0)", "MCAP file \(path), byte 8: the first record is not a header") }
        try Data(magic).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try MCAPReader(path: path)) { XCTAssertEqual("\($0)", "MCAP file \(path), byte 8: no header record") }
        XCTAssertThrowsError(try MCAPReader(path: dir + "/missing.mcap")) { XCTAssertTrue("\($0)".contains("cannot read the file"), "\($0)") }
        XCTAssertThrowsError(try MCAPWriter(path: dir + "/no/such/dir/x.mcap")) { XCTAssertTrue("\($0)".contains("cannot create"), "\($0)") }
    }
}
