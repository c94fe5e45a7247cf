import ArgumentParser
import DataEngine
import Foundation
import Journal

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write recorded traces as WebDataset shards: per transition, its JSON and the panel PNG it was taken on; or, with --measurements, plans' measurements as CSV and Parquet.",
        discussion: """
        Shards are plain tar files (shard-000000.tar, …) that the `webdataset` package and PyTorch loaders \
        stream as they are. With no traces, every trace-*.mcap in the run folder, oldest first. \
        With --measurements: the /worldos/measurement messages as measurements.csv and \
        measurements.parquet (one row per measurement; the scan's point and the readings as \
        columns) and a PNG plot of each scan.
        """)

    @Argument(help: "MCAP traces to export.") var traces: [String] = []
    @Option(help: "The folder to write the shards into.") var to: String
    @Option(name: .customLong("per-shard"), help: "Samples per shard.") var perShard: Int = 1000
    @Flag(help: "Export plans' measurements (CSV, Parquet, and a PNG per scan) instead of shards.") var measurements = false
    @Option(help: "With --measurements: only this plan's (its id or its name).") var plan: String?
    @OptionGroup var folder: RunFolderOption

    func validate() throws {
        if plan != nil && !measurements { throw ValidationError("--plan applies only with --measurements") }
    }

    func run() throws {
        let inputs = traces.isEmpty ? try folder.traces(toDo: "export") : traces
        if measurements {
            for line in try MeasurementFiles.write(traces: inputs, plan: plan, to: to) { print(line) }
            return
        }
        let summary = try WebDatasetExport.export(traces: inputs, to: to, perShard: perShard)
        print("\(summary.samples) samples in \(summary.shards.count) shard\(summary.shards.count == 1 ? "" : "s") under \(to)"
              + (summary.framesMissing > 0 ? " (\(summary.framesMissing) before the first recorded frame, without a PNG)" : ""))
    }
}
