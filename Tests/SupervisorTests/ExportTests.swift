import DataEngine
import Foundation
import LoopCore
import MCAP
import Supervisor
import Traces
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
        let recorded = try Replay.transitions(from: golden)
        XCTAssertEqual(recorded.count, 60)
        XCTAssertEqual(summary.samples, recorded.count)
        XCTAssertEqual(summary.shards.map { URL(fileURLWithPath: $0).lastPathComponent }, (0..<4).map { String(format: "shard-%06d.tar", $0) },
                       "16 to a shard")
        XCTAssertEqual(summary.framesMissing, 0)
        guard let (status, data, errors) = try PythonFixture.run("webdataset_check.py", summary.shards) else {
            throw XCTSkip("WEBDATASET VENV MISSING — SKIPPED LOUDLY: `make setup` installs webdataset into .venv-tests")
        }
        XCTAssertEqual(status, 0, errors)
        let samples = try XCTUnwrap((try JSONSerialization.jsonObject(with: data) as? [String: Any])?["samples"] as? [[String: Any]])
        XCTAssertEqual(samples.compactMap { $0["step"] as? Int }, recorded.map(\.step))
        let run = URL(fileURLWithPath: golden).standardizedFileURL.deletingLastPathComponent().path
        XCTAssertEqual(samples.compactMap { $0["key"] as? String }, recorded.map { WebDatasetExport.key(run: run, trace: golden, step: $0.step) })
        XCTAssertTrue(samples.first?["key"].map { "\($0)".hasSuffix("_default-bench_step-000000000") } == true, "\(samples.first ?? [:])")
        XCTAssertTrue(samples.allSatisfy { $0["extensions"] as? [String] == ["json", "png", "source.json"] && $0["png"] as? Bool == true }, "\(samples.prefix(2))")
        XCTAssertEqual(samples.compactMap { ($0["source"] as? [String: Any])?["trace"] as? String }.first, "default-bench.mcap")
        XCTAssertEqual(samples.compactMap { ($0["source"] as? [String: Any])?["run"] as? String }.first, run)
        // Two traces of two runs: every sample keeps a key of its own.
        try FileManager.default.createDirectory(atPath: out + "/other-run", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: golden, toPath: out + "/other-run/default-bench.mcap")
        let both = try WebDatasetExport.export(traces: [golden, out + "/other-run/default-bench.mcap"], to: out + "/both", perShard: 1000)
        XCTAssertEqual(both.samples, 2 * recorded.count)
        guard let (_, bothData, _) = try PythonFixture.run("webdataset_check.py", both.shards) else { return }
        let bothSamples = try XCTUnwrap((try JSONSerialization.jsonObject(with: bothData) as? [String: Any])?["samples"] as? [[String: Any]])
        XCTAssertEqual(Set(bothSamples.compactMap { $0["key"] as? String }).count, 2 * recorded.count, "no two samples share a key")
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
