import Foundation
import Journal
import LoopCore

/// Appends one aligned transition per macro step to a JSON-lines trace file. Each line is
/// handed to the kernel with one write(2) as soon as the step ends, so a crash loses at most
/// the step in flight and never a recorded one.
public final class TraceWriter: JSONRecording {
    private let file: AppendOnlyFile
    public var path: String { file.path }
    /// Bytes of a torn last transition (a crash mid-write) cut off when the trace was opened.
    public var tornTailBytes: Int { file.tornTailBytes }

    /// Applied to each transition before it is written.
    public let redaction: Redaction

    public init(path: String, redaction: Redaction = Redaction()) throws {
        file = try AppendOnlyFile(path: path)
        self.redaction = redaction
    }

    public func record(_ transition: Transition, json: Data) throws {
        try file.append(json, sync: false)
    }

    /// Read a trace back, one transition per line. A malformed line is reported with its number.
    public static func read(path: String) throws -> [Transition] {
        guard let data = FileManager.default.contents(atPath: path) else { throw TraceError(path: path, message: "cannot read") }
        let decoder = JSONDecoder()
        return try data.split(separator: UInt8(ascii: "\n")).enumerated().map { i, line in
            do { return try decoder.decode(Transition.self, from: Data(line)) } catch {
                throw TraceError(path: path, message: "line \(i + 1) is not a transition: \(error)")
            }
        }
    }
}

public struct TraceError: Error, CustomStringConvertible {
    public var path: String
    public var message: String
    public var description: String { "trace \(path): \(message)" }
}
