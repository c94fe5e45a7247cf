import ArgumentParser
import DataEngine
import Foundation
import Journal

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write recorded traces as WebDataset shards: per transition, its JSON and the panel PNG it was taken on.",
        discussion: """
        Shards are plain tar files (shard-000000.tar, …) that the `webdataset` package and PyTorch loaders \
        stream as they are. With no traces, every trace-*.mcap in the run folder, oldest first.
        """)

    @Argument(help: "MCAP traces to export.") var traces: [String] = []
    @Option(help: "The folder to write the shards into.") var to: String
    @Option(name: .customLong("per-shard"), help: "Samples per shard.") var perShard: Int = 1000
    @OptionGroup var folder: RunFolderOption

    func run() throws {
        let inputs = traces.isEmpty ? try folder.traces(toDo: "export") : traces
        let summary = try WebDatasetExport.export(traces: inputs, to: to, perShard: perShard)
        print("\(summary.samples) samples in \(summary.shards.count) shard\(summary.shards.count == 1 ? "" : "s") under \(to)"
              + (summary.framesMissing > 0 ? " (\(summary.framesMissing) before the first recorded frame, without a PNG)" : ""))
    }
}
