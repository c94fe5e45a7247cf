import DataEngine
import Foundation
import WorldOSTesting
import XCTest

/// Our Parquet writer, read back by pyarrow (a reader we did not write).
final class ParquetTests: XCTestCase {
    func testAWideTableWithNullsAndText_readsBackExactly() throws {
        // More than 14 columns: the metadata's lists take Thrift's long header.
        let rows = 21
        func name(_ r: Int) -> String { "ü-\(r)" + (r == 3 ? "" : ",\"x\"") }
        func value(_ r: Int, _ c: Int) -> Double? { (r + c) % 3 == 0 ? nil : Double(r) * 0.1 + Double(c) }
        var columns: [ParquetTable.Column] = [.int64("n", (0..<rows).map { Int64($0) - 10 }), .utf8("name", (0..<rows).map(name))]
        for c in 0..<16 { columns.append(.double("d\(c)", (0..<rows).map { value($0, c) })) }
        let bytes = try ParquetTable(columns: columns).bytes()
        XCTAssertEqual(Array(bytes.prefix(4)), Array("PAR1".utf8))
        XCTAssertEqual(Array(bytes.suffix(4)), Array("PAR1".utf8))
        let path = NSTemporaryDirectory() + "worldos-parquet-\(UUID().uuidString).parquet"
        defer { unlink(path) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        guard let (status, data, errors) = try PythonFixture.run("parquet_check.py", [path]) else {
            throw XCTSkip("PYARROW VENV MISSING — SKIPPED LOUDLY: `make setup` installs pyarrow into .venv-tests")
        }
        XCTAssertEqual(status, 0, errors)
        let table = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let schema = try XCTUnwrap(table["schema"] as? [[String: Any]])
        XCTAssertEqual(schema.map { $0["name"] as? String }, columns.map { c -> String? in
            switch c { case .int64(let n, _), .utf8(let n, _), .double(let n, _): n }
        })
        XCTAssertEqual(schema.map { $0["type"] as? String }, ["int64", "string"] + Array(repeating: "double", count: 16))
        XCTAssertEqual(schema.map { $0["nullable"] as? Bool }, [false, false] + Array(repeating: true, count: 16))
        let read = try XCTUnwrap(table["rows"] as? [[String: Any]])
        XCTAssertEqual(read.count, rows)
        for (r, row) in read.enumerated() {
            XCTAssertEqual((row["n"] as? NSNumber)?.int64Value, Int64(r) - 10)
            XCTAssertEqual(row["name"] as? String, name(r))
            for c in 0..<16 {
                if let v = value(r, c) { XCTAssertEqual((row["d\(c)"] as? String).flatMap(Double.init), v, "row \(r) d\(c)") }
                else { XCTAssertTrue(row["d\(c)"] is NSNull, "row \(r) d\(c)") }
            }
        }
    }

    func testColumnsOfDifferentLengths_areRefused() {
        XCTAssertThrowsError(try ParquetTable(columns: [.int64("a", [1, 2]), .utf8("b", ["x"])]).bytes()) { error in
            XCTAssertEqual("\(error)", "column b has 1 values, the table 2 rows")
        }
    }
}
