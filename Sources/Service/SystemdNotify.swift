import Foundation
import Glibc
import SystemCalls

/// Telling systemd how the service is (sd_notify's protocol, spoken directly: one datagram per
/// state to $NOTIFY_SOCKET): READY=1 once the doors are open and the programs started,
/// WATCHDOG=1 from the loop after each step — so a loop that stops stepping is restarted by
/// `WatchdogSec=` — and STOPPING=1 when it stops. Outside systemd (no NOTIFY_SOCKET) it says
/// nothing.
public final class SystemdNotify: @unchecked Sendable {
    let socket: String
    /// Half the watchdog's period (WATCHDOG_USEC), the most the loop lets pass between pings.
    let every: Duration?
    private var last: ContinuousClock.Instant?
    private let clock = ContinuousClock()

    public init?(environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard let socket = environment["NOTIFY_SOCKET"], !socket.isEmpty else { return nil }
        self.socket = socket
        // WATCHDOG_PID, when set, names the process meant; another's watchdog is not ours.
        let forUs = environment["WATCHDOG_PID"].map { Int32($0) == getpid() } ?? true
        every = environment["WATCHDOG_USEC"].flatMap(Int64.init).flatMap { forUs && $0 > 0 ? .microseconds($0 / 2) : nil }
    }

    /// Whether systemd expects watchdog pings, and how often at most.
    public var watchdogInterval: Duration? { every }

    public func ready(status: String) { send("READY=1\nSTATUS=\(status)\nMAINPID=\(getpid())") }

    /// After a step: a ping when the watchdog wants one by now, with the step as the status.
    public func stepped(_ status: String) {
        guard let every else { return }
        let now = clock.now
        if let last, now - last < every / 2 { return }
        last = now
        send("WATCHDOG=1\nSTATUS=\(status)")
    }

    public func stopping(status: String) { send("STOPPING=1\nSTATUS=\(status)") }

    private func send(_ message: String) {
        _ = UnixSocket.sendDatagram(to: socket, Array(message.utf8))
    }
}
