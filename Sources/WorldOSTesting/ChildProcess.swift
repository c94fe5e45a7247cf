import Foundation

/// A real child process driven line by line: the test writes a command, the child answers with
/// one line. Reading the answer is how a test waits; nothing sleeps.
public final class ScriptedChild {
    public let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var buffer = Data()

    public init(_ executable: String, _ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = input
        process.standardOutput = output
        try process.run()
    }

    public var pid: Int32 { process.processIdentifier }

    /// Send one command and return the child's one-line answer.
    @discardableResult
    public func send(_ command: String) -> String {
        input.fileHandleForWriting.write(Data((command + "\n").utf8))
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...newline)
                return line
            }
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { return "" }
            buffer.append(chunk)
        }
    }

    /// Close its stdin and wait for it to exit.
    public func finish() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    deinit {
        if process.isRunning { process.terminate(); process.waitUntilExit() }
    }
}
