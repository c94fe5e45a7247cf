// Clients for the API's benchmark and soak: HTTP/1.1 with keep-alive and a WebSocket reader,
// over plain sockets, so what is timed is the server and not a client library.
import Foundation
import Glibc

/// One keep-alive HTTP/1.1 connection to 127.0.0.1.
final class HTTPConnection {
    private var fd: Int32 = -1
    private let port: Int
    private var pending: [UInt8] = []

    init(port: Int) { self.port = port }
    deinit { if fd >= 0 { close(fd) } }

    static func connect(port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { close(fd); return -1 }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var limit = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    /// The response's status and body; status 0 when the connection failed (it is made again
    /// at the next request).
    func request(_ method: String, _ path: String, token: String?, body: String? = nil) -> (status: Int, body: [UInt8]) {
        if fd < 0 { fd = Self.connect(port: port); pending = [] }
        guard fd >= 0 else { return (0, []) }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        if let token { head += "Authorization: Bearer \(token)\r\n" }
        if let body { head += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n" }
        let bytes = Array((head + "\r\n" + (body ?? "")).utf8)
        guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == bytes.count,
              let response = readResponse() else {
            close(fd)
            fd = -1
            return (0, [])
        }
        return response
    }

    private func readResponse() -> (status: Int, body: [UInt8])? {
        let separator: [UInt8] = [13, 10, 13, 10]
        var headerEnd: Int?
        while headerEnd == nil {
            headerEnd = pending.indices.dropLast(3).first { pending[$0..<$0 + 4].elementsEqual(separator) }
            if headerEnd == nil, !fill() { return nil }
        }
        let head = String(decoding: pending[..<headerEnd!], as: UTF8.self).lowercased()
        let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
        let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
            .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
        let start = headerEnd! + 4
        while pending.count < start + length { if !fill() { return nil } }
        let body = Array(pending[start..<start + length])
        pending.removeFirst(start + length)
        return (status, body)
    }

    private func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = read(fd, &chunk, chunk.count)
        guard n > 0 else { return false }
        pending += chunk[..<n]
        return true
    }
}

/// A WebSocket subscription read to its end: messages counted, nothing parsed beyond frames.
final class WebSocketReader {
    private(set) var messages = 0
    private(set) var closedBecause: String?
    private let fd: Int32

    /// Subscribe to `query` (topics, interval) with `token`; nil if the upgrade was refused.
    init?(port: Int, query: String, token: String) {
        fd = HTTPConnection.connect(port: port)
        guard fd >= 0 else { return nil }
        let key = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        let request = "GET /api/v1/subscribe?\(query) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: worldos, bearer.\(token)\r\n\r\n"
        let bytes = Array(request.utf8)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var head: [UInt8] = []
        var byte: UInt8 = 0
        while !head.suffix(4).elementsEqual([13, 10, 13, 10]) {
            guard read(fd, &byte, 1) == 1 else { close(fd); return nil }
            head.append(byte)
        }
        guard String(decoding: head, as: UTF8.self).hasPrefix("HTTP/1.1 101") else { close(fd); return nil }
    }

    deinit { close(fd) }

    /// Read frames until the server closes or `until` passes (then close from this side).
    func run(until deadline: Date) {
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var limit = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        while Date() < deadline {
            let n = read(fd, &chunk, chunk.count)
            if n == 0 { closedBecause = closedBecause ?? "the server hung up"; return }
            if n < 0 { if errno == EAGAIN || errno == EINTR { continue }; closedBecause = "read failed: errno \(errno)"; return }
            buffer += chunk[..<n]
            // Whole frames (server frames are not masked): 2 bytes, then 2 or 8 of length.
            while buffer.count >= 2 {
                var length = Int(buffer[1] & 0x7F), offset = 2
                if length == 126 { guard buffer.count >= 4 else { break }; length = Int(buffer[2]) << 8 | Int(buffer[3]); offset = 4 }
                if length == 127 { guard buffer.count >= 10 else { break }; length = buffer[2..<10].reduce(0) { $0 << 8 | Int($1) }; offset = 10 }
                guard buffer.count >= offset + length else { break }
                let opcode = buffer[0] & 0x0F
                if opcode == 1 || opcode == 2 { messages += 1 }
                if opcode == 9 {
                    // A ping is answered with a pong carrying its payload (masked, as a client's frames are; mask 0).
                    let payload = Array(buffer[offset..<(offset + min(length, 125))])
                    let pong: [UInt8] = [0x8A, 0x80 | UInt8(payload.count), 0, 0, 0, 0] + payload
                    _ = pong.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                }
                if opcode == 8 {
                    closedBecause = String(decoding: buffer[(offset + min(2, length))..<(offset + length)], as: UTF8.self)
                    return
                }
                buffer.removeFirst(offset + length)
            }
        }
        // A masked close frame, code 1000.
        let close: [UInt8] = [0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8]
        _ = close.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
}

/// `threads` clients, each on its own connection, making `request` over and over for
/// `seconds`: requests a second, latency percentiles (ms), and how many failed.
func drive(threads: Int, seconds: Double, port: Int, _ request: @escaping @Sendable (HTTPConnection) -> Bool)
    -> (perSecond: Double, p50: Double, p99: Double, failed: Int) {
    final class Tally: @unchecked Sendable {
        let lock = NSLock()
        var latencies: [Double] = []
        var failed = 0
    }
    let tally = Tally()
    let group = DispatchGroup()
    let deadline = Date().addingTimeInterval(seconds)
    let start = DispatchTime.now().uptimeNanoseconds
    for _ in 0..<threads {
        group.enter()
        Thread {
            let connection = HTTPConnection(port: port)
            var mine: [Double] = [], bad = 0
            while Date() < deadline {
                let t = DispatchTime.now().uptimeNanoseconds
                let ok = request(connection)
                mine.append(Double(DispatchTime.now().uptimeNanoseconds - t) / 1e6)
                if !ok { bad += 1 }
            }
            tally.lock.lock()
            tally.latencies += mine
            tally.failed += bad
            tally.lock.unlock()
            group.leave()
        }.start()
    }
    group.wait()
    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    let (latencies, failed) = (tally.latencies.sorted(), tally.failed)
    guard !latencies.isEmpty else { return (0, 0, 0, failed) }
    return (Double(latencies.count) / elapsed, latencies[latencies.count / 2], latencies[min(latencies.count - 1, latencies.count * 99 / 100)], failed)
}
