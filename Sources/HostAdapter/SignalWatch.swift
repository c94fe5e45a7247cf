import Glibc

/// Delivers SIGINT/SIGTERM to the loop as a readable descriptor (the self-pipe trick), so the
/// loop waits for its next step and for a stop request in one poll(2) and no thread is involved.
public final class SignalWatch {
    private let readEnd: Int32
    private let signals: [Int32]

    /// Installs handlers for `signals` until this watch is released, when they return to the
    /// default action. One watch at a time: the handler writes to a single process-wide pipe.
    public init(signals: [Int32]) throws {
        self.signals = signals
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw SignalWatchError(errno: errno) }
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, O_NONBLOCK)
        }
        readEnd = fds[0]
        signalPipeWriteEnd = fds[1]
        for s in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { _ in
                var byte: UInt8 = 1
                if signalPipeWriteEnd >= 0 { _ = write(signalPipeWriteEnd, &byte, 1) }
            }
            action.sa_flags = SA_RESTART
            sigaction(s, &action, nil)
        }
    }

    deinit {
        for s in signals { signal(s, SIG_DFL) }
        close(signalPipeWriteEnd)
        signalPipeWriteEnd = -1
        close(readEnd)
    }

    /// Whether a stop signal has arrived, without waiting.
    public var pending: Bool { wait(for: .zero) }

    /// Wait up to `duration` for a stop signal. True if one arrived.
    public func wait(for duration: Duration) -> Bool {
        var fd = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
        let (s, atto) = duration.components
        let ms = Int32(clamping: s * 1000 + atto / 1_000_000_000_000_000)
        while true {
            let n = poll(&fd, 1, ms)
            if n < 0 && errno == EINTR { continue }
            return n > 0
        }
    }
}

public struct SignalWatchError: Error, CustomStringConvertible {
    public var errno: Int32
    public var description: String { "cannot set up the signal pipe: \(String(cString: strerror(errno)))" }
}

/// The write end of the signal pipe, read by the signal handler (which cannot capture context).
nonisolated(unsafe) private var signalPipeWriteEnd: Int32 = -1
