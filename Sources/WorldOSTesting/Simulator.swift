import Foundation

/// The bench bridge firmware simulator (Firmware/, `make sim`) running as a child process: its
/// first line of output is the pseudo-terminal it serves.
public final class BenchSimulator {
    public let process = Process()
    public let pty: String

    /// `binary` defaults to Firmware/build/bench-bridge-sim in this repository.
    public init(binary: String? = nil, arguments: [String] = []) throws {
        let path = binary ?? BenchSimulator.defaultBinary
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw SimulatorMissing(path: path)
        }
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        pty = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    public static var defaultBinary: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Firmware/build/bench-bridge-sim").path
    }

    deinit {
        if process.isRunning { process.terminate(); process.waitUntilExit() }
    }
}

public struct SimulatorMissing: Error, CustomStringConvertible {
    public var path: String
    public var description: String { "no firmware simulator at \(path); build it with `make sim`" }
}
