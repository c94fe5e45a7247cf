import Foundation
import Glibc

/// An append-only file of JSON lines: the trace and the audit log are both one.
///
/// Opening it cuts an incomplete last line (a crash mid-write) and reports how many bytes went;
/// every complete line before it is kept. Only the file's tail is read, so opening a long trace
/// costs no more than opening a short one. Each ``append(_:sync:)`` hands a whole line to the
/// kernel, retrying partial writes and EINTR, and with `sync` fsyncs it before returning.
public final class AppendOnlyFile {
    public let path: String
    private let fd: Int32
    /// The last complete, non-empty line found when the file was opened.
    public let lastLine: Data?
    /// Bytes of a torn last line that were cut off when the file was opened.
    public let tornTailBytes: Int

    public init(path: String, permissions: mode_t = 0o644) throws(JournalError) {
        self.path = path
        fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, permissions)
        guard fd >= 0 else { throw JournalError(path: path, message: "cannot open: \(String(cString: strerror(errno)))") }
        let tail: (complete: Int, lastLine: Data?)
        do { tail = try AppendOnlyFile.readTail(fd, path: path) } catch {
            close(fd)
            throw error
        }
        tornTailBytes = Int(lseek(fd, 0, SEEK_END)) - tail.complete
        lastLine = tail.lastLine
        if tornTailBytes > 0 && ftruncate(fd, off_t(tail.complete)) != 0 {
            let message = "cannot cut the torn last line: \(String(cString: strerror(errno)))"
            close(fd)
            throw JournalError(path: path, message: message)
        }
    }

    /// Where the complete lines end, and the last non-empty one, read backwards from the end in
    /// 64 KiB pieces until both are found.
    static func readTail(_ fd: Int32, path: String) throws(JournalError) -> (complete: Int, lastLine: Data?) {
        let size = Int(lseek(fd, 0, SEEK_END))
        guard size >= 0 else { throw JournalError(path: path, message: "cannot seek: \(String(cString: strerror(errno)))") }
        var start = size
        var bytes: [UInt8] = []   // the file from `start` to its end
        var complete: Int?        // offset just past the last newline
        while start > 0 {
            let n = min(1 << 16, start)
            var piece = [UInt8](repeating: 0, count: n)
            var got = 0
            while got < n {
                let r = piece.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + got, n - got, off_t(start - n + got)) }
                if r < 0 && errno == EINTR { continue }
                guard r > 0 else {
                    throw JournalError(path: path, message: "cannot read: \(r < 0 ? String(cString: strerror(errno)) : "the file shrank while opening")")
                }
                got += r
            }
            start -= n
            bytes.insert(contentsOf: piece, at: 0)
            if complete == nil, let nl = bytes.lastIndex(of: UInt8(ascii: "\n")) { complete = start + nl + 1 }
            guard let end = complete else { continue }
            // The last non-empty line before `end`: found once a newline (or the file's start) precedes it.
            let lines = bytes[..<(end - start)].split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)
            if let last = lines.last, last.startIndex > 0 || start == 0 { return (end, Data(last)) }
        }
        return (complete ?? 0, nil)
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
