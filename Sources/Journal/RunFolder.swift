import Foundation
import Glibc

/// A supervisor's run folder (its `--out`) and everything in it, named here and nowhere else:
/// the records a run writes, the files people and programs drop in, and the one writer's lock.
///
///     trace.jsonl, trace-NNNN.mcap   aligned transitions (JSON lines; MCAP chunks)
///     audit.jsonl                    the guard's hash-chained audit log
///     approvals/ (answers/)          pending approval requests and the answers to them
///     requests/                      actions asked for (`worldos act`) and their replies
///     policies/                      every policy the supervisor ran under, by content hash
///     fault.json                     a latched fault, until a person acknowledges it
///     panel.png                      the panel's last frame
///     control.sock                   the running supervisor's control socket (mode 0660)
///     redaction.salt                 the secret the redaction hashes with
///     .lock                          held by the supervisor writing here (see ``lock()``)
public struct RunFolder: Sendable, Hashable, CustomStringConvertible {
    /// The folder as given (relative paths stay relative, for messages that name it).
    public let path: String
    public init(_ path: String) { self.path = path }

    public var trace: String { path + "/trace.jsonl" }
    public var audit: String { path + "/audit.jsonl" }
    public var approvals: String { path + "/approvals" }
    public var requests: String { path + "/requests" }
    /// Plans submitted (`worldos plan run`), their commands and their status.
    public var plans: String { path + "/plans" }
    public var policies: String { path + "/policies" }
    public var fault: String { path + "/fault.json" }
    public var panel: String { path + "/panel.png" }
    public var control: String { path + "/control.sock" }
    public var redactionSalt: String { path + "/redaction.salt" }

    /// Every MCAP trace file here (`trace-NNNN.mcap`), oldest (lowest number) first.
    public func mcapTraces() -> [String] { mcapNumbers().map(mcapTrace) }
    /// The name of the MCAP trace to start next: one past the highest number here.
    public func nextMCAPTrace() -> String { mcapTrace((mcapNumbers().last ?? 0) + 1) }

    private func mcapTrace(_ n: Int) -> String { path + "/" + String(format: "trace-%04d.mcap", n) }
    private func mcapNumbers() -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.compactMap { name -> Int? in
            guard name.hasPrefix("trace-"), name.hasSuffix(".mcap") else { return nil }
            return Int(name.dropFirst(6).dropLast(5))
        }.sorted()
    }

    /// The path with `..`, `.` and symlinks resolved: what the guard protects (the run folder, and
    /// beside it the keys folder and the token file), whatever name a proposal uses for it.
    public var resolved: String { URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path }

    public var description: String { path }

    /// One writer per run folder: an exclusive lock on `.lock` (flock) for as long as this
    /// process lives, with its pid in the file. A second supervisor (another `worldos run` or
    /// `worldos step` on the same folder) is refused, naming the holder; readers (`approvals`,
    /// `audit verify`, `replay`, `export`) take no lock and keep working beside it. Within one
    /// process the lock is taken once and kept.
    public func lock() throws(RunFolderError) {
        let path = resolved + "/.lock"
        RunFolder.heldLock.lock()
        defer { RunFolder.heldLock.unlock() }
        if RunFolder.held[path] != nil { return }
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw RunFolderError(message: "cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &buffer, buffer.count, 0)
            let holder = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "?"
            close(fd)
            throw RunFolderError(message: "\(self.path) is in use by another supervisor (pid \(holder)); stop it first, or give this one another --out. "
                                 + "Reading its records (worldos approvals, audit verify, replay) needs no lock")
        }
        let me = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, me, me.count, 0)
        RunFolder.held[path] = fd
    }

    nonisolated(unsafe) private static var held: [String: Int32] = [:]
    private static let heldLock = NSLock()
}

public struct RunFolderError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
