import Foundation

/// lsof, the reference the observer's descriptors are compared with in tests: `lsof -n -P -w
/// -F pfti -p PIDS`, parsed (`p` starts a process, `f` a file; `t` its type, `i` its inode).
/// Only numbered descriptors are kept (not cwd, txt, mem).
public enum Lsof {
    public struct Entry: Hashable, Sendable {
        public var pid: Int32
        public var fd: Int64
        public var kind: String
        public var inode: String
        public init(pid: Int32, fd: Int64, kind: String, inode: String) {
            (self.pid, self.fd, self.kind, self.inode) = (pid, fd, kind, inode)
        }
    }

    public static let path = "/usr/bin/lsof"

    public static func descriptors(of pids: [Int32]) throws -> Set<Entry> {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["-n", "-P", "-w", "-F", "pfti", "-p", pids.map(String.init).joined(separator: ",")]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        var entries: Set<Entry> = []
        var pid: Int32 = 0
        var current: Entry?
        func flush() { if let c = current { entries.insert(c) }; current = nil }
        for line in text.split(separator: "\n") {
            let value = String(line.dropFirst())
            switch line.first {
            case "p": flush(); pid = Int32(value) ?? 0
            case "f": flush(); if let fd = Int64(value) { current = Entry(pid: pid, fd: fd, kind: "", inode: "") }
            case "t": current?.kind = value
            case "i": current?.inode = value
            default: break
            }
        }
        flush()
        return entries
    }
}
