import Foundation
import Journal
import XCTest

/// Opening an append-only file reads only its tail: the torn last line is cut, the last complete
/// line is found however long it is, and a long file costs no more to open than a short one.
final class JournalTests: XCTestCase {
    func file(_ bytes: [UInt8]) throws -> String {
        let path = NSTemporaryDirectory() + "worldos-journal-\(UUID().uuidString).jsonl"
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testOpening_cutsATornTail_andFindsTheLastCompleteLine_acrossPieces() throws {
        // 200,000 lines (several MB, many 64 KiB pieces), then half a line.
        var bytes: [UInt8] = []
        for i in 0..<200_000 { bytes += Array("{\"seq\":\(i)}\n".utf8) }
        bytes += Array("{\"seq\":2000".utf8)
        let path = try file(bytes)
        let opened = try AppendOnlyFile(path: path)
        XCTAssertEqual(opened.tornTailBytes, 11)
        XCTAssertEqual(opened.lastLine.map { String(decoding: $0, as: UTF8.self) }, "{\"seq\":199999}")
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int, bytes.count - 11)
        try opened.append(Data("{\"seq\":200000}".utf8), sync: true)
        let reopened = try AppendOnlyFile(path: path)
        XCTAssertEqual(reopened.tornTailBytes, 0)
        XCTAssertEqual(reopened.lastLine.map { String(decoding: $0, as: UTF8.self) }, "{\"seq\":200000}")
    }

    func testTheLastLine_longerThanAPiece_andFollowedByBlankLines_isFoundWhole() throws {
        let long = "{\"x\":\"" + String(repeating: "a", count: 200_000) + "\"}"
        let path = try file(Array("{\"first\":1}\n\(long)\n\n\n{\"torn".utf8))
        let opened = try AppendOnlyFile(path: path)
        XCTAssertEqual(opened.lastLine.map { String(decoding: $0, as: UTF8.self) }, long)
        XCTAssertEqual(opened.tornTailBytes, 6)
    }

    func testAFileOfOnlyATornLine_orEmpty_hasNoLastLine() throws {
        let torn = try AppendOnlyFile(path: try file(Array("{\"half".utf8)))
        XCTAssertNil(torn.lastLine)
        XCTAssertEqual(torn.tornTailBytes, 6)
        let empty = try AppendOnlyFile(path: try file([]))
        XCTAssertNil(empty.lastLine)
        XCTAssertEqual(empty.tornTailBytes, 0)
        let blank = try AppendOnlyFile(path: try file(Array("\n\n".utf8)))
        XCTAssertNil(blank.lastLine)
        XCTAssertEqual(blank.tornTailBytes, 0)
    }
}
