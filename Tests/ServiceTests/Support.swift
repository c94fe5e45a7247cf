import Foundation
import Glibc
import Guard
import Journal
import Service
import WebAPI
import XCTest

/// A service model on a real run folder (its approval store and audit log), for the doors'
/// tests: no loop runs, so what a test sees is what the door did.
final class ServiceFixture {
    let dir: String
    let folder: RunFolder
    let audit: AuditLog
    let approvals: ApprovalStore
    let model: ServiceModel
    /// Secrets by holder: reader (read), operator (operate), approver (approve).
    var secrets: [String: String] = [:]

    init(contexts: [String] = ["bench-operator"]) throws {
        dir = NSTemporaryDirectory() + "worldos-service-\(UUID().uuidString)"
        folder = RunFolder(dir + "/run")
        try FileManager.default.createDirectory(atPath: folder.path, withIntermediateDirectories: true)
        audit = try AuditLog(path: folder.audit)
        approvals = try ApprovalStore(directory: folder.approvals, audit: audit)
        model = ServiceModel(folder: folder, approvals: approvals, audit: audit, keys: dir + "/keys", contexts: contexts)
    }

    var tokenPath: String { dir + "/tokens.yaml" }

    func makeTokens() throws -> TokenFile {
        for (name, scope) in [("reader", Scope.read), ("operator", .operate), ("approver", .approve)] {
            secrets[name] = try TokenFile.add(name: name, scope: scope, to: tokenPath)
        }
        return try TokenFile.load(tokenPath)
    }

    /// A pending request for an irreversible action, as the guard would make it.
    func pendingApproval(action: String = "relay.energise") throws -> Approval {
        try approvals.request(ApprovalBinding(context: "bench-operator", action: action, device: "bench-bridge:SIM-0001",
                                              path: "/dev/pts/9", params: ["relay": "0"]), risk: "irreversible-physical")
    }

    func records() -> [AuditRecord] { AuditLog.records(path: folder.audit) }

    deinit { try? FileManager.default.removeItem(atPath: dir) }
}

/// HTTP/1.1 over a plain TCP socket: the request as written, the response as it came (the
/// server closes after it). No client library between the test and what the server sends.
struct RawHTTP {
    let port: Int

    struct Response {
        var status: Int
        var headers: [String: String]
        var body: [UInt8]
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:] }
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    func connect() -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        precondition(rc == 0, "cannot connect to 127.0.0.1:\(port)")
        var limit = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    func request(_ method: String, _ path: String, token: String? = nil, body: [UInt8]? = nil, headers extra: [String] = []) -> Response {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        if let token { head += "Authorization: Bearer \(token)\r\n" }
        if let body { head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n" }
        for h in extra { head += h + "\r\n" }
        return exchange(Array((head + "\r\n").utf8) + (body ?? []))
    }

    func exchange(_ bytes: [UInt8]) -> Response {
        let fd = connect()
        defer { close(fd) }
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var all: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n <= 0 { break }
            all += chunk[..<n]
        }
        return Self.parse(all)
    }

    static func parse(_ all: [UInt8]) -> Response {
        guard let split = all.indices.first(where: { all[$0...].starts(with: Array("\r\n\r\n".utf8)) }) else {
            return Response(status: 0, headers: [:], body: all)
        }
        let lines = String(decoding: all[..<split], as: UTF8.self).components(separatedBy: "\r\n")
        let status = Int(lines[0].split(separator: " ").dropFirst().first ?? "") ?? 0
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Array(all[(split + 4)...])
        if headers["transfer-encoding"] == "chunked" { body = dechunk(body) }
        return Response(status: status, headers: headers, body: body)
    }

    static func dechunk(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [], i = 0
        while i < bytes.count {
            guard let end = bytes[i...].firstIndex(of: UInt8(ascii: "\r")), let size = Int(String(decoding: bytes[i..<end], as: UTF8.self), radix: 16), size > 0 else { break }
            let start = end + 2
            out += bytes[start..<min(bytes.count, start + size)]
            i = start + size + 2
        }
        return out
    }
}

/// The client half of RFC 6455 over plain TCP: the upgrade, then the server's frames (which
/// are never masked) as they come. Enough to see what a subscriber receives and how it is closed.
final class RawWebSocket {
    let fd: Int32
    private var buffer: [UInt8] = []
    /// The upgrade's status line (101 when upgraded) and the headers of the answer.
    private(set) var status = 0
    private(set) var headers: [String: String] = [:]

    init(port: Int, path: String, headers extra: [String]) {
        fd = RawHTTP(port: port).connect()
        var head = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        for h in extra { head += h + "\r\n" }
        let bytes = Array((head + "\r\n").utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        while true {
            if let end = buffer.indices.first(where: { buffer[$0...].starts(with: Array("\r\n\r\n".utf8)) }) {
                let response = RawHTTP.parse(Array(buffer[..<(end + 4)]))
                (status, headers) = (response.status, response.headers)
                buffer.removeSubrange(..<(end + 4))
                break
            }
            guard fill() else { break }
        }
    }

    deinit { close(fd) }

    enum Frame: Equatable {
        case text(String)
        case close(code: Int, reason: String)
        case other(opcode: UInt8)
    }

    /// The next frame, or nil when the connection ended (or nothing came for the socket's timeout).
    func next() -> Frame? {
        while true {
            if buffer.count >= 2 {
                let opcode = buffer[0] & 0x0F
                var length = Int(buffer[1] & 0x7F), offset = 2
                if length == 126, buffer.count >= 4 { length = Int(buffer[2]) << 8 | Int(buffer[3]); offset = 4 }
                else if length == 127, buffer.count >= 10 { length = buffer[2..<10].reduce(0) { $0 << 8 | Int($1) }; offset = 10 }
                if length < 126 || offset > 2, buffer.count >= offset + length {
                    let payload = Array(buffer[offset..<(offset + length)])
                    buffer.removeSubrange(..<(offset + length))
                    switch opcode {
                    case 1: return .text(String(decoding: payload, as: UTF8.self))
                    case 8: return .close(code: payload.count >= 2 ? Int(payload[0]) << 8 | Int(payload[1]) : 0,
                                          reason: String(decoding: payload.dropFirst(2), as: UTF8.self))
                    case 9: pong(payload); continue
                    default: return .other(opcode: opcode)
                    }
                }
            }
            guard fill() else { return nil }
        }
    }

    /// The next text message as JSON.
    func nextJSON() -> [String: Any]? {
        while let frame = next() {
            if case .text(let text) = frame { return (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] }
            if case .close = frame { return nil }
        }
        return nil
    }

    private func pong(_ payload: [UInt8]) {
        let mask: [UInt8] = [1, 2, 3, 4]
        let frame = [0x8A, 0x80 | UInt8(payload.count)] + mask + payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        _ = frame.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    private func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = read(fd, &chunk, chunk.count)
        guard n > 0 else { return false }
        buffer += chunk[..<n]
        return true
    }
}
