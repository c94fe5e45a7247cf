import DataEngine
import Foundation
import Journal
import LoopCore
import MCAP
import StateGraph
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

    /// CRC-32 eight bytes at a time equals the bit-by-bit definition (polynomial 0xEDB88320,
    /// reflected, inverted), on the standard check value and on random bytes fed in random pieces.
    func testCRC32_isTheZlibCRC_atAnyLengthAndSplit() {
        func reference(_ bytes: [UInt8]) -> UInt32 {
            var c: UInt32 = 0xFFFF_FFFF
            for byte in bytes {
                c ^= UInt32(byte)
                for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0xEDB8_8320 : c >> 1 }
            }
            return ~c
        }
        XCTAssertEqual(CRC32.of(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(CRC32.of([]), 0)
        var random = SystemRandomNumberGenerator()
        for length in [1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4099] {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            XCTAssertEqual(CRC32.of(bytes), reference(bytes), "length \(length)")
            var pieces = CRC32()
            var at = 0
            while at < bytes.count {
                let n = Int.random(in: 1...13, using: &random)
                pieces.update(Array(bytes[at..<min(at + n, bytes.count)]))
                at += n
            }
            XCTAssertEqual(pieces.value, reference(bytes), "length \(length) in pieces")
        }
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

    /// A chunk of a few bytes claiming a gigabyte once it is decompressed (found by the fuzzer:
    /// the reader made the room first): damaged, read without the gigabyte.
    func testAChunkClaimingAGigabyte_isDamaged_notAnAllocation() throws {
        func u64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        func string(_ s: String) -> [UInt8] { u32(UInt32(s.utf8.count)) + Array(s.utf8) }
        func record(_ op: UInt8, _ body: [UInt8]) -> [UInt8] { [op] + u64(UInt64(body.count)) + body }
        let magic: [UInt8] = [0x89, 0x4D, 0x43, 0x41, 0x50, 0x30, 0x0D, 0x0A]
        let records: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD, 0x20, 0x05, 0x29, 0x00, 0x00, 0x68, 0x65, 0x6C, 0x6C, 0x6F]  // "hello", zstd
        let chunk = u64(0) + u64(1) + u64(1 << 30) + u32(0) + string("zstd") + u64(UInt64(records.count)) + records
        let path = dir + "/bomb.mcap"
        try Data(magic + record(0x01, string("worldos") + string("test")) + record(0x06, chunk)).write(to: URL(fileURLWithPath: path))
        func peak() -> Int { var u = rusage(); getrusage(RUSAGE_SELF.rawValue, &u); return u.ru_maxrss }  // KiB
        let before = peak()
        let reader = try MCAPReader(path: path)
        XCTAssertTrue(reader.messages.isEmpty)
        XCTAssertLessThan(peak() - before, 256 * 1024, "no gigabyte was made room for")
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

    /// The recorder writes a chunk per `chunkDuration` of loop time and begins a new file past
    /// `fileBytes` or `fileDuration`; every file it leaves is complete after finish().
    func testTheRecorder_chunksByLoopTime_andRotatesFilesBySizeAndTime() throws {
        func transition(_ step: Int, seconds: Double) -> Transition {
            Transition(step: step, mode: .real, time: Instant(nanoseconds: UInt64(seconds * 1e9)), observedNodes: nil, racedEntries: nil,
                       surprise: nil, frameHash: "h\(step)", framePNG: nil, stateDelta: GraphDelta(), context: nil, outcome: nil, nodeCount: step)
        }
        var limits = MCAPRecorder.Limits()
        limits.chunkDuration = .seconds(1)
        limits.fileDuration = .seconds(5)
        let byTime = MCAPRecorder(folder: RunFolder(dir), limits: limits)
        for step in 0..<12 { try byTime.record(transition(step, seconds: Double(step) * 0.5)) }
        try byTime.finish()
        // 12 steps 0.5 s apart: files for 0-4.5 s and 5-5.5 s; a chunk closes once it spans 1 s.
        XCTAssertEqual(byTime.files.map { URL(fileURLWithPath: $0).lastPathComponent }, ["trace-0001.mcap", "trace-0002.mcap"])
        let first = try MCAPReader(path: byTime.files[0]), second = try MCAPReader(path: byTime.files[1])
        XCTAssertTrue(first.complete && second.complete)
        XCTAssertEqual(first.messages.count, 10)
        XCTAssertEqual(second.messages.count, 2)
        XCTAssertEqual(try Self.pythonRead(byTime.files[0]).json["statistics"].flatMap { ($0 as? [String: Any])?["chunk_count"] as? Int }, 4,
                       "chunks of 3, 3, 3 and 1 transitions (each closed when it spans 1 s)")

        limits = MCAPRecorder.Limits()
        limits.fileBytes = 1
        let bySize = MCAPRecorder(folder: RunFolder(dir + "/size"), limits: limits)
        try FileManager.default.createDirectory(atPath: dir + "/size", withIntermediateDirectories: true)
        for step in 0..<3 { try bySize.record(transition(step, seconds: Double(step))) }
        try bySize.finish()
        XCTAssertEqual(bySize.files.count, 3, "past its size, every file holds one transition")
        XCTAssertEqual(try bySize.files.map { try MCAPReader(path: $0).messages.count }, [1, 1, 1])
    }

    /// A client's new file begins with the next transition (the one before it complete); a
    /// mark lands beside the next transition, redacted as the trace is; a command no
    /// transition took in time is withdrawn and never lands later.
    func testTraceControl_newFileAndMark_landAtTheNextTransition_andAWithdrawnOneNever() throws {
        func transition(_ step: Int) -> Transition {
            Transition(step: step, mode: .real, time: Instant(nanoseconds: UInt64(step) * 100_000_000), observedNodes: nil, racedEntries: nil,
                       surprise: nil, frameHash: "h\(step)", framePNG: nil, stateDelta: GraphDelta(), context: nil, outcome: nil, nodeCount: step)
        }
        var redaction = try Redaction.parse("version: 1\npaths: [/home/**]\n", file: "r.yaml")
        redaction.salt = Array("a fixed salt for the test........".utf8)
        let control = TraceControl()
        let recorder = MCAPRecorder(folder: RunFolder(dir), redaction: redaction, control: control)
        try recorder.record(transition(1))
        // Nothing records while this waits: withdrawn, it says so, and it never lands.
        XCTAssertNil(control.submit(.mark(label: "too late", by: "ann"), timeout: .milliseconds(50)))
        var answers: [Result<TraceControl.Done, TraceControl.Failure>?] = []
        let asked = DispatchGroup()
        for command in [TraceControl.Command.mark(label: "door opened by /home/ann/key", by: "ann (api)"), .newFile(by: "bob (control socket)")] {
            asked.enter()
            Thread {
                let answer = control.submit(command)
                DispatchQueue.main.sync { answers.append(answer) }
                asked.leave()
            }.start()
            usleep(50_000)  // in this order
        }
        try recorder.record(transition(2))
        for step in 3...4 { try recorder.record(transition(step)) }
        while asked.wait(timeout: .now()) == .timedOut { RunLoop.main.run(until: Date().addingTimeInterval(0.01)) }
        try recorder.finish()
        XCTAssertEqual(answers.compactMap { try? $0?.get() }, Array(repeating: TraceControl.Done(file: "trace-0002.mcap", step: 2, time: 200_000_000), count: 2),
                       "both done at step 2: the new file begins with it, and the mark is beside it there")
        let first = try MCAPReader(path: recorder.files[0]), second = try MCAPReader(path: recorder.files[1])
        XCTAssertTrue(first.complete, "the file a new one replaced is closed complete")
        func steps(_ r: MCAPReader, topic: String) -> [String] {
            let id = r.channels.values.first { $0.topic == topic }?.id
            return r.messages.filter { $0.channel == id }.map { String(decoding: $0.data, as: UTF8.self) }
        }
        XCTAssertEqual(steps(first, topic: "/worldos/transition").count, 1)
        XCTAssertEqual(steps(second, topic: "/worldos/transition").count, 3, "steps 2-4")
        XCTAssertEqual(steps(first, topic: "/worldos/mark"), [], "the withdrawn mark never landed")
        let marks = steps(second, topic: "/worldos/mark")
        XCTAssertEqual(marks.count, 1, "\(marks)")
        let mark = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(marks[0].utf8)) as? [String: Any])
        XCTAssertEqual(mark["by"] as? String, "ann (api)")
        XCTAssertEqual(mark["step"] as? Int, 2)
        let label = try XCTUnwrap(mark["label"] as? String)
        XCTAssertTrue(label.hasPrefix("door opened by sha256:") && !label.contains("/home/ann"), label)
        XCTAssertEqual(try Self.pythonRead(recorder.files[0]).status, 0, "the PyPI reader reads a file with marks")
    }

    /// A set of recorders encodes a transition once, redacts it once per set of rules, and hands
    /// each recorder the JSON its own rules give: what each writes is what it writes alone.
    func testARecorderSet_writesWhatEachRecorderWritesAlone() throws {
        var redaction = try Redaction.parse("version: 1\nfields:\n  comm: hash\n", file: "r.yaml")
        redaction.salt = Array("a fixed salt for the test........".utf8)
        let process = Node(id: .process(pid: 7, startTime: 1), kind: .process, attributes: ["comm": .string("secret"), "pid": .int(7)])
        let transitions = (0..<3).map { step in
            Transition(step: step, mode: .real, time: Instant(nanoseconds: UInt64(step) * 1_000_000), observedNodes: 1, racedEntries: 0,
                       surprise: nil, frameHash: "h\(step)", framePNG: nil, stateDelta: GraphDelta([.addNode(process)]), context: nil,
                       outcome: nil, nodeCount: step)
        }
        try FileManager.default.createDirectory(atPath: dir + "/set", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/alone", withIntermediateDirectories: true)
        let setTrace = try TraceWriter(path: dir + "/set/trace.jsonl", redaction: redaction)
        let setMCAP = MCAPRecorder(folder: RunFolder(dir + "/set"), redaction: redaction)
        let unredacted = try TraceWriter(path: dir + "/set/plain.jsonl")
        var set = RecorderSet([setTrace, unredacted, setMCAP])
        let aloneTrace = try TraceWriter(path: dir + "/alone/trace.jsonl", redaction: redaction)
        let aloneMCAP = MCAPRecorder(folder: RunFolder(dir + "/alone"), redaction: redaction)
        for t in transitions {
            try set.record(t)
            try aloneTrace.record(t)
            try aloneMCAP.record(t)
        }
        try set.finish()
        try aloneMCAP.finish()
        let lines = try String(contentsOfFile: dir + "/set/trace.jsonl", encoding: .utf8)
        XCTAssertEqual(lines, try String(contentsOfFile: dir + "/alone/trace.jsonl", encoding: .utf8))
        XCTAssertFalse(lines.contains("secret"), "redacted")
        let plain = try String(contentsOfFile: dir + "/set/plain.jsonl", encoding: .utf8)
        XCTAssertEqual(plain.components(separatedBy: "\"comm\":\"secret\"").count, 4, "a recorder with no rules gets the JSON unredacted")
        XCTAssertEqual(lines.split(separator: "\n").count, 3)
        let recorded = try MCAPReader(path: setMCAP.files[0]).messages.map(\.data)
        XCTAssertEqual(recorded, try MCAPReader(path: aloneMCAP.files[0]).messages.map(\.data))
        XCTAssertEqual(recorded.map { String(decoding: $0, as: UTF8.self) }, lines.split(separator: "\n").map(String.init),
                       "the trace and the MCAP file hold the same redacted JSON")
    }
}
