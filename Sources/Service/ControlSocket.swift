import Foundation
import Glibc
import Guard
import JSONWriter
import SystemCalls

/// The local door: a unix socket in the run folder (mode 0660), one JSON request per line and
/// one JSON answer per line (`{"op": "approve", "id": "…"}` → `{"ok": true, …}`). Who asks is
/// who the kernel says connected (SO_PEERCRED), mapped to an operator as the CLI's file drop is:
/// their user name (for root through sudo, the sudo user), with the source `control socket`.
///
/// Supervised programs never get through: a peer running under a seccomp filter — every
/// supervised program and everything it starts, which inherit the filter and cannot shed it —
/// is refused and the attempt audited. (The socket is in the run folder, which the guard keeps
/// every context out of, but connect() is not a call the filter mediates: this is the check.)
public final class ControlSocket: @unchecked Sendable {
    public let path: String
    private let model: ServiceModel
    private let listener: Int32
    private let lock = NSLock()
    private var connections = 0
    private var stopping = false
    /// Connections served at once; more wait in the backlog.
    static let maximumConnections = 16

    public init(model: ServiceModel, group: gid_t? = nil) throws(ServiceError) {
        self.model = model
        path = model.folder.control
        switch UnixSocket.listen(path: path, mode: 0o660, group: group) {
        case .success(let fd): listener = fd
        case .failure(let e):
            throw ServiceError("cannot listen on \(path): \(e)" + (e.code == EEXIST ? "; something that is not a socket is there, move it away" : ""))
        }
    }

    /// Serve on a thread of its own until ``stop()``.
    public func start() {
        let thread = Thread { [self] in serve() }
        thread.name = "worldos control socket"
        thread.start()
    }

    public func stop() {
        lock.lock()
        stopping = true
        lock.unlock()
        shutdown(listener, Int32(SHUT_RDWR))
        unlink(path)
    }

    private func serve() {
        while true {
            let accepted = UnixSocket.accept(listener)
            lock.lock()
            let done = stopping
            lock.unlock()
            if done { if case .success(let fd) = accepted { close(fd) }; close(listener); return }
            guard case .success(let fd) = accepted else { usleep(10_000); continue }
            lock.lock()
            while connections >= Self.maximumConnections {
                lock.unlock()
                usleep(10_000)
                lock.lock()
            }
            connections += 1
            lock.unlock()
            let thread = Thread { [self] in
                converse(fd)
                close(fd)
                lock.lock()
                connections -= 1
                lock.unlock()
            }
            thread.name = "worldos control client"
            thread.start()
        }
    }

    /// One client: who it is, then its requests, a line each, until it hangs up.
    private func converse(_ fd: Int32) {
        UnixSocket.setTimeouts(fd, seconds: 60)
        guard case .success(let peer) = UnixSocket.peer(fd) else { return }
        if let why = Self.refusal(of: peer) {
            model.refused(source: "control socket", who: "pid \(peer.pid) uid \(peer.uid)", request: "connect", why: why)
            send(fd, Answer.failure(403, why).body)
            return
        }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(buffer[..<newline])
                buffer.removeSubrange(...newline)
                guard send(fd, answer(line, from: peer).body) else { return }
                continue
            }
            guard buffer.count <= StrictJSON.maximumBytes else {
                send(fd, Answer.failure(413, "a request is one line of at most \(StrictJSON.maximumBytes) bytes").body)
                return
            }
            let n = read(fd, &chunk, chunk.count)
            guard n > 0 else { return }
            buffer += chunk[..<n]
        }
    }

    private func answer(_ line: [UInt8], from peer: UnixSocket.Peer) -> Answer {
        // The verb first (its fields depend on it), then the request read strictly against it.
        let op: Verb
        let sudoUser: String?
        do {
            let loose = try StrictJSON(line, source: "control request", allowed: Set(Verb.allCases.flatMap(\.fields)).union(["op", "sudo-user"]))
            let name = try loose.requiredString("op")
            guard let verb = Verb(rawValue: name) else {
                return .failure(400, "control request: unknown op \"\(name)\"; ops: \(Verb.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            op = verb
            sudoUser = try loose.string("sudo-user")
            let request = try StrictJSON(line, source: "control request \(name)", allowed: verb.fields.union(["op", "sudo-user"]))
            // Root may say which sudo user it acts for, as with the file drop; nobody else may.
            let person = Approver.owner(uid: peer.uid, sudoUser: peer.uid == 0 ? sudoUser : nil, label: nil, via: "control socket")
            return model.perform(op, request, as: person)
        } catch { return .failure(error.status, error.description) }
    }

    @discardableResult
    private func send(_ fd: Int32, _ body: [UInt8]) -> Bool {
        UnixSocket.send(fd, body + [UInt8(ascii: "\n")]) == nil
    }

    /// Why a peer may not use the control socket, or nil: a process under a seccomp filter (a
    /// supervised program, or anything it started) is refused.
    static func refusal(of peer: UnixSocket.Peer) -> String? {
        guard let status = try? String(contentsOfFile: "/proc/\(peer.pid)/status", encoding: .utf8) else {
            return "the connecting process (pid \(peer.pid)) is gone or cannot be looked at; it is not served"
        }
        let seccomp = status.split(separator: "\n").first { $0.hasPrefix("Seccomp:") }?.split(separator: "\t").last
        if seccomp != "0" {
            return "pid \(peer.pid) runs under a seccomp filter (a supervised program, or something it started); "
                + "the control socket serves people's tools only"
        }
        return nil
    }
}

/// The service could not start or serve: what and what to do.
public struct ServiceError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
