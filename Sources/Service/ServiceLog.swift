import Foundation
import Glibc
import Logging

/// Logs for a service on stderr, as journald wants them: one line each, the syslog priority as
/// a `<N>` prefix when stderr is the journal (systemd sets JOURNAL_STREAM), otherwise the level
/// spelled out; the component named; colour only on a terminal.
public struct ServiceLog: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    let component: String

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// A logger for `component` at `level` (warning and above by default: the supervisor's own
    /// lines say what a person needs; the libraries' chatter stays out of the journal).
    public static func logger(_ component: String, level: Logger.Level = .warning) -> Logger {
        Logger(label: component) { _ in ServiceLog(logLevel: level, component: component) }
    }

    public func log(event: LogEvent) {
        var line = ServiceLog.toJournal ? "<\(Self.priority(event.level))>" : ServiceLog.onTerminal && event.level >= .warning ? "\u{1B}[1m" : ""
        if !ServiceLog.toJournal { line += "\(event.level.rawValue) " }
        line += "\(component): \(event.message)"
        let fields = metadata.merging(event.metadata ?? [:]) { $1 }
        for (k, v) in fields.sorted(by: { $0.key < $1.key }) { line += " \(k)=\(v)" }
        if ServiceLog.onTerminal && !ServiceLog.toJournal && event.level >= .warning { line += "\u{1B}[0m" }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    static let toJournal = ProcessInfo.processInfo.environment["JOURNAL_STREAM"] != nil
    static let onTerminal = isatty(STDERR_FILENO) == 1

    /// syslog's priorities (journald reads them from the prefix).
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }
}
