import Foundation
import Glibc
import LoopCore

/// Appends one aligned transition per macro step to a JSON-lines trace file. Each line is
/// handed to the kernel with one write(2) as soon as the step ends, so a crash loses at most
/// the step in flight and never a recorded one.
public final class TraceWriter: Recording {
    public let path: String
    private let fd: Int32
    private let encoder: JSONEncoder
    public private(set) var written = 0

    public init(path: String) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TraceError(path: path, message: String(cString: strerror(errno))) }
        encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    }

    deinit { close(fd) }

    public func record(_ transition: Transition) throws {
        var line = Array(try encoder.encode(transition))
        line.append(UInt8(ascii: "\n"))
        var offset = 0
        while offset < line.count {
            let n = line[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw TraceError(path: path, message: String(cString: strerror(errno)))
            }
            offset += n
        }
        written += 1
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
