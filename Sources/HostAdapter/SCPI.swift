import DevicePorts
import Glibc

/// An instrument that speaks SCPI over a serial port: commands are written with a terminator;
/// queries (ending in `?`) are answered by one terminated line; errors wait in a queue that
/// `SYST:ERR?` empties one at a time.
public final class SCPIInstrument {
    public let port: SerialPort
    /// What ends a line in both directions (`\n` for most instruments; some want `\r\n`).
    public let terminator: [UInt8]
    public var timeoutMilliseconds: Int
    /// A query on this line timed out: its reply may still come, and must not be taken as the
    /// next one's. Kept with the port, which every instrument object on the line shares.
    public var outOfStep: Bool { port.lateReplyPossible }

    public struct Identity: Equatable, Sendable {
        public var manufacturer: String
        public var model: String
        public var serial: String
        public var version: String
        public init(manufacturer: String, model: String, serial: String, version: String) {
            self.manufacturer = manufacturer
            self.model = model
            self.serial = serial
            self.version = version
        }
    }

    public init(port: SerialPort, terminator: String = "\n", timeoutMilliseconds: Int = 1000) {
        self.port = port
        self.terminator = Array(terminator.utf8)
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    /// Send a command that has no reply.
    public func send(_ command: String) throws(DeviceError) {
        try port.write(Array(command.utf8) + terminator)
    }

    /// Send a query and return its reply line. After a query timed out, the line is first
    /// brought back in step (``resynchronize()``), so a late reply is never the next query's answer.
    public func query(_ command: String) throws -> String {
        if outOfStep { try resynchronize() }
        try send(command)
        do {
            return String(decoding: try port.read(until: terminator, timeoutMilliseconds: timeoutMilliseconds), as: UTF8.self)
        } catch let timeout as SerialTimeout {
            port.lateReplyPossible = true
            throw timeout
        }
    }

    /// Discard what is waiting, ask `*IDN?`, and skip every line until its reply (four
    /// comma-separated fields, which no other reply has): whatever was late is then behind us.
    public func resynchronize() throws {
        port.discardInput()
        try send("*IDN?")
        var clock = timespec()
        clock_gettime(CLOCK_MONOTONIC, &clock)
        let deadline = Int(clock.tv_sec) * 1000 + Int(clock.tv_nsec) / 1_000_000 + 2 * timeoutMilliseconds
        while true {
            clock_gettime(CLOCK_MONOTONIC, &clock)
            let left = deadline - (Int(clock.tv_sec) * 1000 + Int(clock.tv_nsec) / 1_000_000)
            let line = String(decoding: try port.read(until: terminator, timeoutMilliseconds: max(1, left)), as: UTF8.self)
            if line.split(separator: ",", omittingEmptySubsequences: false).count == 4 { break }
        }
        port.lateReplyPossible = false
    }

    /// `*IDN?`: manufacturer, model, serial number, version.
    public func identify() throws -> Identity {
        let reply = try query("*IDN?")
        let f = reply.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingWhitespace() }
        guard f.count == 4 else { throw SCPIReplyError(command: "*IDN?", reply: reply, expected: "four comma-separated fields") }
        return Identity(manufacturer: f[0], model: f[1], serial: f[2], version: f[3])
    }

    /// `*OPC?`: wait until the instrument has finished what it was told.
    public func waitUntilComplete() throws {
        let reply = try query("*OPC?")
        guard reply == "1" else { throw SCPIReplyError(command: "*OPC?", reply: reply, expected: "1") }
    }

    /// Empty the error queue, oldest first.
    public func errors() throws -> [SCPIError] {
        var out: [SCPIError] = []
        for _ in 0..<32 {
            let reply = try query("SYST:ERR?")
            let error = try SCPIError(parsing: reply)
            if error.code == 0 { return out }
            out.append(error)
        }
        return out
    }

    /// Send a command, then check the error queue: throws the first error it caused.
    public func checked(_ command: String) throws {
        try send(command)
        if let first = try errors().first {
            var e = first
            e.command = command
            throw e
        }
    }

    /// A query answered by a number.
    public func number(_ query: String) throws -> Double {
        let reply = try self.query(query)
        guard let v = Double(reply) else { throw SCPIReplyError(command: query, reply: reply, expected: "a number") }
        return v
    }
}

/// An entry of an instrument's error queue: `-113,"Undefined header"`.
public struct SCPIError: Error, Equatable, CustomStringConvertible, Sendable {
    public var code: Int
    public var message: String
    /// The command that caused it, when known.
    public var command: String?

    public init(code: Int, message: String, command: String? = nil) {
        self.code = code
        self.message = message
        self.command = command
    }

    public init(parsing reply: String) throws {
        guard let comma = reply.firstIndex(of: ","), let code = Int(reply[..<comma].trimmingWhitespace()) else {
            throw SCPIReplyError(command: "SYST:ERR?", reply: reply, expected: "CODE,\"MESSAGE\"")
        }
        var message = String(reply[reply.index(after: comma)...]).trimmingWhitespace()
        if message.hasPrefix("\"") && message.hasSuffix("\"") && message.count >= 2 { message = String(message.dropFirst().dropLast()) }
        self.init(code: code, message: message)
    }

    public var description: String { "SCPI error \(code), \"\(message)\"" + (command.map { " after \($0)" } ?? "") }
}

/// A reply that is not what the query promises.
public struct SCPIReplyError: Error, CustomStringConvertible {
    public var command: String
    public var reply: String
    public var expected: String
    public init(command: String, reply: String, expected: String) {
        self.command = command
        self.reply = reply
        self.expected = expected
    }
    public var description: String { "\(command) answered \"\(reply)\"; expected \(expected)" }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while s.first?.isWhitespace == true { s = s.dropFirst() }
        while s.last?.isWhitespace == true { s = s.dropLast() }
        return String(s)
    }
}
