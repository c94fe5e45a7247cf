import CShim
import Glibc
import LoopCore
import StateGraph
import SystemCalls

/// A source of asynchronous events with a descriptor the loop can poll. `drain` reads whatever
/// is pending without blocking.
public protocol EventSource: AnyObject {
    var descriptor: Int32 { get }
    func drain(at now: Instant) -> [ObservedEvent]
}

/// The event sources as an observer: an observation with no nodes of its own, only events.
public struct EventObserver: Observing {
    public var sources: [any EventSource]
    public init(_ sources: [any EventSource]) { self.sources = sources }

    /// The sources this machine offers: kernel uevents, /dev, process events (root only), and
    /// SIGHUP/SIGUSR1/SIGUSR2/SIGCHLD. A source that cannot start is left out; `unavailable`
    /// says which and why.
    public static func standard() -> (observer: EventObserver, unavailable: [String]) {
        var sources: [any EventSource] = []
        var unavailable: [String] = []
        for make in [{ try UeventMonitor() as any EventSource }, { try DeviceNodeWatch() as any EventSource },
                     { try ProcessEventMonitor() as any EventSource },
                     { try SignalWatch(signals: [SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD]) as any EventSource }] {
            do { sources.append(try make()) } catch { unavailable.append("\(error)") }
        }
        return (EventObserver(sources), unavailable)
    }

    public mutating func observe(at now: Instant) throws -> Observation {
        Observation(time: now, scope: [], nodes: [], edges: [], supervisor: nil, events: sources.flatMap { $0.drain(at: now) })
    }

    /// The sources' descriptors, for the loop to poll between steps.
    public var descriptors: [Int32] { sources.map(\.descriptor) }
}

public struct EventSourceError: Error, CustomStringConvertible {
    public var source: String
    public var errno: Int32
    public var description: String { "\(source): \(String(cString: strerror(errno)))" }
}

/// Reads a non-blocking descriptor until it would block, handing each read to `body`. True if
/// it stopped on an error other than "nothing more" (ENOBUFS: datagrams were lost).
@discardableResult
func drainDatagrams(_ fd: Int32, _ body: (UnsafeRawBufferPointer) -> Void) -> Bool {
    withUnsafeTemporaryAllocation(byteCount: 16384, alignment: 8) { buffer in
        while true {
            switch Syscall.retrying({ recv(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT)) }) {
            case .success(0): return false
            case .success(let n): body(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            case .failure(let e): return !e.wouldBlock
            }
        }
    }
}

// MARK: Kernel uevents

/// Kernel uevents (NETLINK_KOBJECT_UEVENT): hotplug of devices, driver binds, and so on.
public final class UeventMonitor: EventSource {
    public let descriptor: Int32

    public init() throws {
        descriptor = worldos_netlink_open(15 /* NETLINK_KOBJECT_UEVENT */, 1 /* the kernel's group */)
        guard descriptor >= 0 else { throw EventSourceError(source: "kernel uevents (netlink)", errno: errno) }
    }
    deinit { close(descriptor) }

    public func drain(at now: Instant) -> [ObservedEvent] {
        var events: [ObservedEvent] = []
        drainDatagrams(descriptor) { bytes in
            if let u = Uevent(parsing: bytes) { events.append(u.event(at: now)) }
        }
        return events
    }
}

/// One kernel uevent: `ACTION@DEVPATH` then NUL-separated `KEY=value` pairs.
public struct Uevent: Equatable, Sendable {
    public var action: String
    public var devpath: String
    public var environment: [String: String]
    public var subsystem: String? { environment["SUBSYSTEM"] }

    /// nil for anything that is not a well-formed kernel uevent (udev's own `libudev` messages,
    /// a missing header, a header that disagrees with ACTION or DEVPATH).
    public init?<C: Collection>(parsing bytes: C) where C.Element == UInt8 {
        let fields = Array(bytes).split(separator: 0, omittingEmptySubsequences: true).map { String(decoding: $0, as: UTF8.self) }
        guard let header = fields.first, let at = header.firstIndex(of: "@") else { return nil }
        let action = String(header[..<at]), devpath = String(header[header.index(after: at)...])
        guard !action.isEmpty, devpath.hasPrefix("/") else { return nil }
        var environment: [String: String] = [:]
        for field in fields.dropFirst() {
            guard let eq = field.firstIndex(of: "="), eq != field.startIndex else { return nil }
            environment[String(field[..<eq])] = String(field[field.index(after: eq)...])
        }
        guard environment["ACTION"] == action, environment["DEVPATH"] == devpath else { return nil }
        self.action = action
        self.devpath = devpath
        self.environment = environment
    }

    func event(at now: Instant) -> ObservedEvent {
        var details = environment
        details["ACTION"] = nil
        details["DEVPATH"] = nil
        return ObservedEvent(source: "uevent", action: action, subject: devpath, time: now, details: details)
    }
}

// MARK: Device nodes

/// inotify on /dev: device nodes created, removed or changed.
public final class DeviceNodeWatch: EventSource {
    public let descriptor: Int32
    public let directory: String

    public init(directory: String = "/dev") throws {
        self.directory = directory
        descriptor = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard descriptor >= 0 else { throw EventSourceError(source: "inotify", errno: errno) }
        let mask = UInt32(IN_CREATE | IN_DELETE | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO)
        guard inotify_add_watch(descriptor, directory, mask) >= 0 else {
            let e = errno
            close(descriptor)
            throw EventSourceError(source: "inotify on \(directory)", errno: e)
        }
    }
    deinit { close(descriptor) }

    public func drain(at now: Instant) -> [ObservedEvent] {
        var events: [ObservedEvent] = []
        withUnsafeTemporaryAllocation(byteCount: 8192, alignment: 8) { buffer in
            while true {
                guard case .success(let n) = Syscall.retrying({ read(descriptor, buffer.baseAddress, buffer.count) }), n > 0 else { return }
                for e in InotifyRecord.parse(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) {
                    events.append(ObservedEvent(source: "device-node", action: e.action, subject: "\(directory)/\(e.name)", time: now))
                }
            }
        }
        return events
    }
}

/// One `struct inotify_event` record: wd, mask, cookie, len, then a NUL-padded name.
public struct InotifyRecord: Equatable, Sendable {
    public var mask: UInt32
    public var name: String
    public var action: String {
        if mask & UInt32(IN_CREATE) != 0 || mask & UInt32(IN_MOVED_TO) != 0 { return "create" }
        if mask & UInt32(IN_DELETE) != 0 || mask & UInt32(IN_MOVED_FROM) != 0 { return "delete" }
        return "change"
    }

    /// Every whole record in a read; a truncated record at the end is dropped.
    public static func parse(_ bytes: UnsafeRawBufferPointer) -> [InotifyRecord] {
        var records: [InotifyRecord] = []
        var offset = 0
        while offset + 16 <= bytes.count {
            let mask = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
            let length = Int(bytes.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
            guard offset + 16 + length <= bytes.count else { break }
            let name = String(decoding: bytes[(offset + 16)..<(offset + 16 + length)].prefix { $0 != 0 }, as: UTF8.self)
            records.append(InotifyRecord(mask: mask, name: name))
            offset += 16 + length
        }
        return records
    }
}

// MARK: Process events

/// The kernel's process-events connector (NETLINK_CONNECTOR, CN_IDX_PROC; needs CAP_NET_ADMIN),
/// read in one place for both who listen: the event source below and the process observer's
/// "what may have changed" (``ProcessNews``).
final class ProcessConnector {
    enum Event: Equatable {
        /// A new process (not a thread) forked from `parent`.
        case fork(child: Int32, parent: Int32)
        /// The process's program is another now.
        case exec(Int32)
        /// A process (not a thread) ended, with its wait status.
        case exit(Int32, status: Int32)
        /// Events were lost (the receive buffer overflowed, or one could not be read): nothing
        /// is known of what they said.
        case lost
    }

    let descriptor: Int32

    /// With `receiveBuffer`, the socket's receive buffer is set to that many bytes.
    init(receiveBuffer: Int32? = nil) throws(EventSourceError) {
        let fd = worldos_netlink_open(11 /* NETLINK_CONNECTOR */, 1 /* CN_IDX_PROC */)
        guard fd >= 0 else { throw EventSourceError(source: "process events (netlink connector)", errno: errno) }
        guard worldos_proc_connector_listen(fd) == 0 else {
            let e = errno
            close(fd)
            throw EventSourceError(source: "process events (needs root)", errno: e)
        }
        if var size = receiveBuffer,
           setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            let e = errno
            close(fd)
            throw EventSourceError(source: "process events (receive buffer)", errno: e)
        }
        descriptor = fd
    }

    deinit { close(descriptor) }

    /// Every event waiting, in order, without blocking. Threads' forks and exits are not
    /// processes' and are left out.
    func drain(_ body: (Event) -> Void) {
        let overflowed = drainDatagrams(descriptor) { datagram in
            var e = worldos_proc_event()
            switch worldos_proc_event_parse(datagram.bindMemory(to: UInt8.self).baseAddress, datagram.count, &e) {
            case 1:
                switch e.what {
                case UInt32(WORLDOS_PROC_EVENT_FORK) where e.pid == e.tgid: body(.fork(child: e.tgid, parent: e.parent_tgid))
                case UInt32(WORLDOS_PROC_EVENT_EXEC): body(.exec(e.tgid))
                case UInt32(WORLDOS_PROC_EVENT_EXIT) where e.pid == e.tgid: body(.exit(e.tgid, status: e.exit_code))
                default: break
                }
            case 0: break
            default: body(.lost)
            }
        }
        if overflowed { body(.lost) }
    }
}

/// Process fork, exec and exit events for every process, from the kernel's process-events
/// connector (needs CAP_NET_ADMIN). Exits carry the wait status.
public final class ProcessEventMonitor: EventSource {
    private let connector: ProcessConnector
    public var descriptor: Int32 { connector.descriptor }

    public init() throws {
        connector = try ProcessConnector()
    }

    public func drain(at now: Instant) -> [ObservedEvent] {
        var events: [ObservedEvent] = []
        connector.drain { event in
            switch event {
            case .fork(let child, let parent):
                events.append(ObservedEvent(source: "process", action: "fork", subject: String(child), time: now,
                                            details: ["parent": String(parent)]))
            case .exec(let pid):
                events.append(ObservedEvent(source: "process", action: "exec", subject: String(pid), time: now))
            case .exit(let pid, let status):
                let how = status & 0x7F == 0 ? "exit-code" : "signal"
                let value = status & 0x7F == 0 ? (status >> 8) & 0xFF : status & 0x7F
                events.append(ObservedEvent(source: "process", action: "exit", subject: String(pid), time: now,
                                            details: [how: String(value)]))
            case .lost:
                break
            }
        }
        return events
    }
}

/// What the process-events connector said since the last look, as the process observer needs
/// it: whether a new process (not a thread) may have started — a fork, or events lost — and
/// which processes exec'd (their command line is another now) or exited. Its receive buffer is
/// kept small, so on a machine that forks all the time it overflows and the look costs a few
/// reads rather than one per event; an overflow counts as a start (execs lost with it wait for
/// a full refresh).
struct ProcessNews {
    var started = false
    var execed = Set<Int32>()
    /// Processes (not threads) that exited.
    var exited = Set<Int32>()
    /// Some events were lost: nothing is known of what they said.
    var lost = false

    /// Everything `connector` has waiting.
    static func read(_ connector: ProcessConnector) -> ProcessNews {
        var news = ProcessNews()
        connector.drain { event in
            switch event {
            case .fork: news.started = true
            case .exec(let pid): news.execed.insert(pid)
            case .exit(let pid, _): news.exited.insert(pid)
            case .lost:
                news.started = true
                news.lost = true
            }
        }
        return news
    }
}

// MARK: Signals

/// Signals delivered as a readable descriptor: a C handler writes each signal's number to a
/// pipe (async-signal-safe), so the loop sees them in one poll(2) and no thread is involved.
/// The run loop uses one for SIGINT/SIGTERM (stop); the observer one for the others (events).
/// Each signal belongs to at most one watch; releasing a watch restores the default actions.
/// Its descriptors may be used from any thread (a pipe's reads and writes are atomic).
public final class SignalWatch: EventSource, @unchecked Sendable {
    public let descriptor: Int32
    private let writeEnd: Int32
    private let signals: [Int32]

    public init(signals: [Int32]) throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw EventSourceError(source: "signal pipe", errno: errno) }
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, O_NONBLOCK)
        }
        descriptor = fds[0]
        writeEnd = fds[1]
        self.signals = signals
        for s in signals { worldos_signal_route(s, writeEnd) }
    }

    deinit {
        for s in signals { worldos_signal_route(s, -1) }
        close(writeEnd)
        close(descriptor)
    }

    /// As if `signal` had come: how a stop asked for by other means (a service group shutting
    /// down) reaches a loop that waits on this watch.
    public func deliver(_ signal: Int32) {
        var byte = UInt8(truncatingIfNeeded: signal)
        _ = write(writeEnd, &byte, 1)
    }

    /// Whether a signal arrived, without consuming it.
    public var pending: Bool {
        var fd = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        return poll(&fd, 1, 0) > 0
    }

    /// Wait up to `duration` for a signal (not consuming it). True if one arrived.
    public func wait(for duration: Duration) -> Bool { wait(for: duration, orAnyOf: []) == .signal }

    public enum Wake: Equatable, Sendable { case signal, event, timeout }

    /// Wait up to `duration` for a signal or for any of `descriptors` (event sources: uevents,
    /// GPIO edges, process exits) to become readable, consuming nothing: the loop then steps at
    /// once instead of at its next tick.
    public func wait(for duration: Duration, orAnyOf descriptors: [Int32]) -> Wake {
        let (signal, ready) = readiness(within: duration, of: descriptors)
        return signal ? .signal : ready.isEmpty ? .timeout : .event
    }

    /// Wait up to `duration` for a signal or for any of `descriptors` to become readable,
    /// consuming nothing: whether a signal came, and which descriptors are readable.
    public func readiness(within duration: Duration, of descriptors: [Int32]) -> (signal: Bool, ready: Set<Int32>) {
        var fds = [pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)]
            + descriptors.filter { $0 >= 0 }.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        let (s, atto) = duration.components
        let ms = Int32(clamping: s * 1000 + atto / 1_000_000_000_000_000)
        guard case .success(let n) = Syscall.poll(&fds, milliseconds: max(0, ms)), n > 0 else { return (false, []) }
        return (fds[0].revents != 0, Set(fds.dropFirst().filter { $0.revents != 0 }.map(\.fd)))
    }

    public func drain(at now: Instant) -> [ObservedEvent] {
        var events: [ObservedEvent] = []
        var byte: UInt8 = 0
        while read(descriptor, &byte, 1) == 1 {
            events.append(ObservedEvent(source: "signal", action: signalName(Int32(byte)), subject: String(byte), time: now))
        }
        return events
    }
}

public func signalName(_ s: Int32) -> String {
    [SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGUSR1: "SIGUSR1", SIGUSR2: "SIGUSR2", SIGTERM: "SIGTERM",
     SIGCHLD: "SIGCHLD", SIGPIPE: "SIGPIPE", SIGALRM: "SIGALRM"][s] ?? "SIG\(s)"
}
