import Foundation
import Glibc

/// An append-only file of JSON lines: the trace and the audit log are both one.
///
/// Opening it cuts an incomplete last line (a crash mid-write) and reports how many bytes went;
/// every complete line before it is kept. Each ``append(_:sync:)`` hands a whole line to the
/// kernel, retrying partial writes and EINTR, and with `sync` fsyncs it before returning.
public final class AppendOnlyFile {
    public let path: String
    private let fd: Int32
    /// The complete lines found when the file was opened.
    public let existingLines: [Data]
    /// Bytes of a torn last line that were cut off when the file was opened.
    public let tornTailBytes: Int

    public init(path: String, permissions: mode_t = 0o644) throws(JournalError) {
        self.path = path
        fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, permissions)
        guard fd >= 0 else { throw JournalError(path: path, message: "cannot open: \(String(cString: strerror(errno)))") }
        let existing = FileManager.default.contents(atPath: path) ?? Data()
        let complete = existing.lastIndex(of: UInt8(ascii: "\n")).map { existing.prefix(through: $0) } ?? Data()
        tornTailBytes = existing.count - complete.count
        if tornTailBytes > 0 && ftruncate(fd, off_t(complete.count)) != 0 {
            let message = "cannot cut the torn last line: \(String(cString: strerror(errno)))"
            close(fd)
            throw JournalError(path: path, message: message)
        }
        existingLines = complete.split(separator: UInt8(ascii: "\n")).map { Data($0) }
    }

    deinit { close(fd) }

    /// Append one line (a newline is added). With `sync`, the line is on disk when this returns.
    public func append(_ line: Data, sync: Bool) throws(JournalError) {
        var bytes = [UInt8](line)
        bytes.append(UInt8(ascii: "\n"))
        if let failed = writeAll(fd, bytes) {
            throw JournalError(path: path, message: "write failed: \(String(cString: strerror(failed)))")
        }
        if sync && fsync(fd) != 0 {
            throw JournalError(path: path, message: "fsync failed: \(String(cString: strerror(errno)))")
        }
    }

    /// The JSON encoding every journal uses: sorted keys, so equal records give equal bytes.
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}

public struct JournalError: Error, CustomStringConvertible, Equatable {
    public var path: String
    public var message: String
    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }
    public var description: String { "\(path): \(message)" }
}

/// Write every byte to a blocking descriptor, again after an interrupted or short write.
/// nil when all were written, else the errno that stopped it.
public func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Int32? {
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return errno
        }
        offset += n
    }
    return nil
}
