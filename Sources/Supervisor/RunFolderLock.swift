import Foundation
import Glibc

/// One writer per run folder: a supervisor holds an exclusive lock on `<out>/.lock` (flock) for
/// as long as its process lives, with its pid in the file. A second supervisor (another
/// `worldos run` or `worldos step` on the same folder) is refused, naming the holder; readers
/// (`approvals`, `audit verify`, `replay`, `export`) take no lock and keep working beside it.
/// Within one process the lock is taken once and kept.
public enum RunFolderLock {
    nonisolated(unsafe) private static var held: [String: Int32] = [:]
    private static let guardLock = NSLock()

    public static func acquire(_ out: String) throws {
        let path = URL(fileURLWithPath: out).standardizedFileURL.resolvingSymlinksInPath().path + "/.lock"
        guardLock.lock()
        defer { guardLock.unlock() }
        if held[path] != nil { return }
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SupervisorError(message: "cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &buffer, buffer.count, 0)
            let holder = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "?"
            close(fd)
            throw SupervisorError(message: "\(out) is in use by another supervisor (pid \(holder)); stop it first, or give this one another --out. "
                                  + "Reading its records (worldos approvals, audit verify, replay) needs no lock")
        }
        let me = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, me, me.count, 0)
        held[path] = fd
    }
}
