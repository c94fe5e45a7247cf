import DevicePorts
import Foundation
import HostAdapter

/// Request/response through our serial adapter vs pyserial, against the same firmware simulator
/// (a fresh one each, on its own pty): N `*IDN?` queries, wall time.
func serialBenchmark() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let simulator = root.appendingPathComponent("Firmware/build/bench-bridge-sim").path
    let python = root.appendingPathComponent(".venv-tests/bin/python").path
    guard FileManager.default.isExecutableFile(atPath: simulator), FileManager.default.isExecutableFile(atPath: python) else {
        print("serial: SKIPPED — needs Firmware/build/bench-bridge-sim (make sim) and .venv-tests with pyserial (make setup)")
        return
    }
    func startSimulator() throws -> (Process, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: simulator)
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) { line.append(out.fileHandleForReading.availableData) }
        return (p, String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
    let n = 2000
    let (ours, oursPty) = try startSimulator()
    defer { ours.terminate() }
    let scpi = SCPIInstrument(port: try SerialPort(path: oursPty))
    _ = try scpi.query("*IDN?")
    let swiftMs = try milliseconds { for _ in 0..<n { _ = try scpi.query("*IDN?") } }

    let (theirs, theirPty) = try startSimulator()
    defer { theirs.terminate() }
    let script = """
    import serial, sys, time
    s = serial.Serial(sys.argv[1], 115200, timeout=1)
    s.write(b"*IDN?\\n"); s.readline()
    t = time.monotonic()
    for _ in range(\(n)):
        s.write(b"*IDN?\\n")
        if not s.readline().startswith(b"WorldOS"): sys.exit("bad reply")
    print((time.monotonic() - t) * 1000)
    """
    let py = Process()
    py.executableURL = URL(fileURLWithPath: python)
    py.arguments = ["-c", script, theirPty]
    let out = Pipe()
    py.standardOutput = out
    try py.run()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    py.waitUntilExit()
    guard py.terminationStatus == 0, let pythonMs = Double(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
        print("serial: pyserial run failed: \(text)")
        return
    }
    print("serial (\(n) *IDN? round trips to the firmware simulator over a pty)")
    print(String(format: "  our SerialPort + SCPIInstrument:           %8.1f ms  (%.1f µs each)", swiftMs, swiftMs * 1000 / Double(n)))
    print(String(format: "  pyserial (reference):                      %8.1f ms  (%.1f µs each)", pythonMs, pythonMs * 1000 / Double(n)))
    print(String(format: "  ratio ours / pyserial:                     %8.3f  (goal ≤ 1: %@)", swiftMs / pythonMs, swiftMs <= pythonMs ? "met" : "NOT MET"))
}
