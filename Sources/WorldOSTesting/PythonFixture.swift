import Foundation

/// Runs a Python script from Tests/Fixtures with the project's venv (`make setup` makes
/// `.venv-tests` with the third-party tools tests compare against: pyvisa, pyserial, mcap).
public enum PythonFixture {
    public static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The venv's python, or nil when `make setup` has not made it.
    public static var python: String? {
        let path = repositoryRoot.appendingPathComponent(".venv-tests/bin/python").path
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    /// Run Tests/Fixtures/`script` with `arguments`; nil when there is no venv.
    public static func run(_ script: String, _ arguments: [String]) throws -> (status: Int32, stdout: Data, stderr: String)? {
        guard let python else { return nil }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [repositoryRoot.appendingPathComponent("Tests/Fixtures/\(script)").path] + arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read stderr on the side so neither pipe can fill and stall the script.
        let errors = Thread.detachedRead(err.fileHandleForReading)
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, data, errors.wait())
    }
}

extension Thread {
    /// Read a handle to its end on another thread; `wait()` returns what was read.
    final class PendingRead: @unchecked Sendable {
        private let done = DispatchSemaphore(value: 0)
        var text = ""
        func finish(_ t: String) { text = t; done.signal() }
        func wait() -> String { done.wait(); return text }
    }

    static func detachedRead(_ handle: FileHandle) -> PendingRead {
        let pending = PendingRead()
        Thread.detachNewThread { pending.finish(String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)) }
        return pending
    }
}
