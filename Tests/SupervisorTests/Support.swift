import Foundation
import Guard
import XCTest

/// The repository root, found from this file's path, so tests read the shipped bench and policy.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

func temporaryDirectory(_ label: String) throws -> String {
    let path = NSTemporaryDirectory() + "worldos-\(label)-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func write(_ text: String, to path: String) throws {
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
}

/// Whether `condition` comes true within `seconds` (looked at every 20 ms).
func waitFor(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        usleep(20_000)
    }
    return false
}

/// The `worldos` binary built beside this test bundle.
func worldosBinary() throws -> URL {
    let me = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    var dir = URL(fileURLWithPath: me).deletingLastPathComponent()
    while !FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("worldos").path) && dir.path != "/" {
        dir = dir.deletingLastPathComponent()
    }
    let binary = dir.appendingPathComponent("worldos")
    guard FileManager.default.isExecutableFile(atPath: binary.path) else {
        throw XCTSkip("FAIL LOUDLY: no worldos binary beside \(me); build it with `swift build --build-tests`")
    }
    return binary
}

struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Start `worldos` with arguments in the repository root, in the background; its stdout goes to
/// `output` (discarded by default), its stderr is discarded. The caller stops it.
func startWorldOS(_ arguments: [String], output: Any = FileHandle.nullDevice) throws -> Process {
    let process = Process()
    process.executableURL = try worldosBinary()
    process.arguments = arguments
    process.currentDirectoryURL = repositoryRoot
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    return process
}

/// Run `worldos` with arguments in the repository root and collect its output.
func runWorldOS(_ arguments: [String]) throws -> CommandResult {
    let process = Process()
    process.executableURL = try worldosBinary()
    process.arguments = arguments
    process.currentDirectoryURL = repositoryRoot
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                         stderr: String(decoding: stderr, as: UTF8.self))
}

extension ApprovalStore {
    /// Answer as `worldos approve` does: an answer file the running supervisor takes.
    static func approveAsCLI(_ id: String, out: String) throws {
        try answer(id, approve: true, label: "tester", directory: out + "/approvals")
    }
}
