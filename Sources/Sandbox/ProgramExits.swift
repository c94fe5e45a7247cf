import CShim
import Glibc
import Guard
import LoopCore
import Observer


/// The end of every supervised program, as an event: each program's pidfd is in one epoll
/// descriptor that the loop polls with its other sources, so an exit wakes the loop. Draining
/// reaps the program (no zombie stays behind), writes its cause to the audit chain (`program-exit`)
/// and reports it (`program`/`exit`, subject the context), so the panel and the trace show it.
public final class ProgramExits: EventSource {
    public let descriptor: Int32
    private let judge: ProgramGuard?
    private var running: [(program: SupervisedProgram, argv: String, pidfd: Int32)] = []

    public init(judge: ProgramGuard?) {
        descriptor = worldos_epoll_create()
        self.judge = judge
    }

    deinit {
        for entry in running { close(entry.pidfd) }
        close(descriptor)
    }

    /// Watch a program started for a context.
    public func watch(_ program: SupervisedProgram, argv: [String]) {
        let pidfd = worldos_pidfd_open(program.pid)
        if pidfd >= 0 { _ = worldos_epoll_add(descriptor, pidfd) }
        running.append((program, argv.joined(separator: " "), pidfd))
    }

    public func drain(at now: Instant) -> [ObservedEvent] {
        var events: [ObservedEvent] = []
        running.removeAll { entry in
            guard let status = entry.program.reap() else { return false }
            events.append(ended(entry, status: status, at: now))
            return true
        }
        return events
    }

    /// The programs still running are being stopped by the supervisor: record how each ended.
    public func stopped(at now: Instant) -> [ObservedEvent] {
        defer { running = [] }
        return running.map { entry in ended(entry, status: entry.program.wait(), at: now, byUs: true) }
    }

    private func ended(_ entry: (program: SupervisedProgram, argv: String, pidfd: Int32), status: Int32, at now: Instant,
                       byUs: Bool = false) -> ObservedEvent {
        if entry.pidfd >= 0 {
            _ = worldos_epoll_remove(descriptor, entry.pidfd)
            close(entry.pidfd)
        }
        let cause = SupervisedProgram.cause(status) + (byUs ? " (stopped by the supervisor)" : "")
        var details = ["pid": String(entry.program.pid), "status": String(status), "cause": cause]
        do { try judge?.recordExit(context: entry.program.context, program: entry.argv, cause: cause, at: now.nanoseconds) } catch {
            details["audit"] = "not recorded: \(error)"
        }
        return ObservedEvent(source: "program", action: "exit", subject: entry.program.context, time: now, details: details)
    }
}
