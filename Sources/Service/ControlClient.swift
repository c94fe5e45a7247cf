import Foundation
import Glibc
import SystemCalls

/// The CLI's side of the control socket: one request, one answer.
public enum ControlClient {
    /// No supervisor listens at `path` (no socket there, or nobody accepting): the caller falls
    /// back to the run folder's file drop.
    public struct NotRunning: Error {}

    /// Send `request` (its fields, `op` among them) and return the answer's fields.
    public static func ask(_ path: String, _ request: [String: Any], timeout seconds: Int = 60) throws -> [String: Any] {
        let fd: Int32
        switch UnixSocket.connect(path: path) {
        case .success(let s): fd = s
        case .failure(let e) where e.code == ENOENT || e.code == ECONNREFUSED: throw NotRunning()
        case .failure(let e): throw ServiceError("cannot reach the supervisor at \(path): \(e)")
        }
        defer { close(fd) }
        UnixSocket.setTimeouts(fd, seconds: seconds)
        var fields = request
        if getuid() == 0, let sudoUser = ProcessInfo.processInfo.environment["SUDO_USER"] { fields["sudo-user"] = sudoUser }
        var line = Array(try JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]))
        line.append(UInt8(ascii: "\n"))
        if let e = UnixSocket.send(fd, line) { throw ServiceError("cannot send to the supervisor at \(path): \(e)") }
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while !answer.contains(UInt8(ascii: "\n")) {
            let n = read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw ServiceError(n == 0 ? "the supervisor at \(path) hung up without an answer" : "no answer from the supervisor at \(path): \(Errno.current)")
            }
            answer += chunk[..<n]
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(answer)) as? [String: Any] else {
            throw ServiceError("the supervisor at \(path) answered something that is not a JSON object")
        }
        return object
    }
}
