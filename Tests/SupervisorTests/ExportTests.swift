import DataEngine
import Foundation
import LoopCore
import MCAP
import Supervisor
import WorldOSTesting
import XCTest

/// `worldos export`: the golden trace as WebDataset shards, read back by the `webdataset`
/// package from PyPI.
final class ExportTests: XCTestCase {
    let golden = repositoryRoot.appendingPathComponent("Tests/SupervisorTests/Golden/traces/default-bench.mcap").path

    func testTheGoldenTrace_exportsToShardsThePyPILoaderReads_oneSamplePerTransition() throws {
        let out = try temporaryDirectory("export")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let summary = try WebDatasetExport.export(traces: [golden], to: out, perShard: 16)
        XCTAssertEqual(summary.samples, 40)
        XCTAssertEqual(summary.shards.map { URL(fileURLWithPath: $0).lastPathComponent }, ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"])
        XCTAssertEqual(summary.framesMissing, 0)
        guard let (status, data, errors) = try PythonFixture.run("webdataset_check.py", summary.shards) else {
            throw XCTSkip("WEBDATASET VENV MISSING — SKIPPED LOUDLY: `make setup` installs webdataset into .venv-tests")
        }
        XCTAssertEqual(status, 0, errors)
        let samples = try XCTUnwrap((try JSONSerialization.jsonObject(with: data) as? [String: Any])?["samples"] as? [[String: Any]])
        let recorded = try Replay.transitions(from: golden)
        XCTAssertEqual(samples.compactMap { $0["step"] as? Int }, recorded.map(\.step))
        XCTAssertEqual(samples.compactMap { $0["key"] as? String }, (0..<40).map { String(format: "%09d", $0) })
        XCTAssertTrue(samples.allSatisfy { $0["extensions"] as? [String] == ["json", "png"] && $0["png"] as? Bool == true }, "\(samples.prefix(2))")
        // The same export twice is the same bytes.
        let again = try WebDatasetExport.export(traces: [golden], to: out + "/again", perShard: 16)
        XCTAssertEqual(try summary.shards.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }, try again.shards.map { try Data(contentsOf: URL(fileURLWithPath: $0)) })
    }

    func testExportingWhatIsNotATrace_isRefusedNamingIt() throws {
        let out = try temporaryDirectory("export-bad")
        defer { try? FileManager.default.removeItem(atPath: out) }
        XCTAssertThrowsError(try WebDatasetExport.export(traces: [out + "/none.mcap"], to: out)) { XCTAssertTrue("\($0)".contains("none.mcap"), "\($0)") }
        XCTAssertThrowsError(try WebDatasetExport.export(traces: [golden], to: out, perShard: 0)) { XCTAssertEqual("\($0)", "--per-shard must be at least 1") }
        let cli = try runWorldOS(["export", "--to", out, "--out", out])
        XCTAssertNotEqual(cli.status, 0)
        XCTAssertTrue(cli.stderr.contains("no trace-*.mcap in \(out)"), cli.stderr)
    }
}
