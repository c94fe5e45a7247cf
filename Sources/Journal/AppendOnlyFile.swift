import Foundation
import Glibc
import SystemCalls

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

    /// Where the complete lines end, and the last non-empty one: the file is scanned backwards
    /// in 64 KiB pieces until both are found, then that line is read whole.
    static func readTail(_ fd: Int32, path: String) throws(JournalError) -> (complete: Int, lastLine: Data?) {
        let size = Int(lseek(fd, 0, SEEK_END))
        guard size >= 0 else { throw JournalError(path: path, message: "cannot seek: \(String(cString: strerror(errno)))") }
        var complete: Int?, lineEnd: Int?, lineStart: Int?
        var offset = size
        var piece = [UInt8](repeating: 0, count: 1 << 16)
        scan: while offset > 0 {
            let n = min(piece.count, offset)
            offset -= n
            try readFully(fd, into: &piece, count: n, at: offset, path: path)
            for i in stride(from: n - 1, through: 0, by: -1) {
                let newline = piece[i] == UInt8(ascii: "\n")
                if complete == nil {
                    if newline { complete = offset + i + 1 }
                } else if lineEnd == nil {
                    if !newline { lineEnd = offset + i + 1 }
                } else if newline {
                    lineStart = offset + i + 1
                    break scan
                }
            }
        }
        guard let end = complete else { return (0, nil) }
        guard let last = lineEnd else { return (end, nil) }
        let first = lineStart ?? 0
        var line = [UInt8](repeating: 0, count: last - first)
        try readFully(fd, into: &line, count: last - first, at: first, path: path)
        return (end, Data(line))
    }

    private static func readFully(_ fd: Int32, into buffer: inout [UInt8], count: Int, at offset: Int, path: String) throws(JournalError) {
        switch buffer.withUnsafeMutableBytes({ Syscall.preadFully(fd, into: UnsafeMutableRawBufferPointer(rebasing: $0[..<count]), at: offset) }) {
        case .failure(let e): throw JournalError(path: path, message: "cannot read: \(e)")
        case .success(let got) where got < count: throw JournalError(path: path, message: "cannot read: the file shrank while opening")
        case .success: break
        }
    }

    deinit { close(fd) }

    /// Append one line (a newline is added). With `sync`, the line is on disk when this returns.
    public func append(_ line: Data, sync: Bool) throws(JournalError) {
        var bytes = [UInt8](line)
        bytes.append(UInt8(ascii: "\n"))
        if let failed = Syscall.writeAll(fd, bytes) {
            throw JournalError(path: path, message: "write failed: \(failed)")
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
