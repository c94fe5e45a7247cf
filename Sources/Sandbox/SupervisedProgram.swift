import CShim
import Foundation
import Glibc
import Guard
import LoopCore
import SystemCalls

/// A real program run as an execution context: started through `worldos-sandbox` (which loads
/// the seccomp filter before the program's first instruction), its sensitive calls answered by
/// a ``Mediator`` thread with the context's policy.
///
/// The supervisor never forks itself (it has threads: libusb's, the mediators'): it spawns the
/// single-threaded helper, which receives the filter and execs the program.
public final class SupervisedProgram: @unchecked Sendable {
    public let context: String
    public let pid: Int32
    private let mediator: Mediator
    private let finished = DispatchSemaphore(value: 0)
    private var status: Int32?

    public struct LaunchError: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Start `program` (an absolute path and its arguments) as context `context`. `user` runs it
    /// as that uid:gid (the supervisor must be root to give it). stdio: descriptors for the
    /// program's 0, 1, 2 (default /dev/null). `environment` is all it gets of one: nothing of
    /// the supervisor's (no locale, so no locale files to open; no secrets in variables).
    public static func launch(_ program: [String], context: String, guard judge: ProgramGuard, user: (uid: UInt32, gid: UInt32)? = nil,
                              stdio: (Int32, Int32, Int32)? = nil, environment: [String] = ["PATH=/usr/local/bin:/usr/bin:/bin"],
                              helper: String = SupervisedProgram.defaultHelper(),
                              clock: any WorldClock = SystemClock()) throws(LaunchError) -> SupervisedProgram {
        guard let first = program.first, first.hasPrefix("/") else {
            throw LaunchError(message: "supervised program \(program.first ?? "(none)") must be an absolute path")
        }
        guard access(helper, X_OK) == 0 else {
            throw LaunchError(message: "the sandbox helper \(helper) is missing; build it with `swift build`")
        }
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw LaunchError(message: "socketpair: \(String(cString: strerror(errno)))")
        }
        defer { close(pair[0]) }
        let null = Glibc.open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(null) }
        let (input, output, error) = stdio ?? (null, null, null)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input, 0)
        posix_spawn_file_actions_adddup2(&actions, output, 1)
        posix_spawn_file_actions_adddup2(&actions, error, 2)
        posix_spawn_file_actions_adddup2(&actions, pair[1], 3)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Its own session: signals it sends to "its group" reach only its own processes.
        var defaults = sigset_t(), empty = sigset_t()
        sigfillset(&defaults)
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, worldos_posix_spawn_setsid() | Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        var arguments = [helper]
        if let user { arguments += ["--user", "\(user.uid):\(user.gid)"] }
        arguments += ["--"] + program
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer { for e in envp { free(e) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, helper, &actions, &attributes, argv, envp)
        close(pair[1])
        guard rc == 0 else { throw LaunchError(message: "cannot start \(helper): \(String(cString: strerror(rc)))") }

        let notify = worldos_receive_fd(pair[0])
        guard notify >= 0 else {
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            throw LaunchError(message: "the sandbox helper exited (status \(status)) before handing over its filter; see its message on stderr")
        }
        let mediator = Mediator(notify: notify, context: context, judge: judge, identity: user, root: pid, clock: clock)
        let running = SupervisedProgram(context: context, pid: pid, mediator: mediator)
        let thread = Thread {
            mediator.run()
            close(notify)
            running.finished.signal()
        }
        thread.name = "mediator \(context)"
        thread.start()
        return running
    }

    private init(context: String, pid: Int32, mediator: Mediator) {
        self.context = context
        self.pid = pid
        self.mediator = mediator
    }

    /// Wait for the program to exit; its wait status. The mediator stops when the last process
    /// under the filter has gone (children the program left behind keep it answering).
    public func wait() -> Int32 {
        if let status { return status }
        // Failing here means no such child: it was reaped already, its status lost (0).
        let s = (try? Syscall.wait(pid).get())?.status ?? 0
        status = s
        return s
    }

    /// The program's wait status if it has ended (reaping it), nil while it runs. Never blocks.
    public func reap() -> Int32? {
        if let status { return status }
        guard case .success(let r) = Syscall.wait(pid, options: WNOHANG), r.pid == pid else { return nil }
        status = r.status
        return r.status
    }

    /// How a wait status came about, for a person: an exit code, a signal, or the filter's kill.
    public static func cause(_ status: Int32) -> String {
        let signal = status & 0x7f
        guard signal != 0 else { return "exited with code \((status >> 8) & 0xff)" }
        if signal == SIGSYS {
            return "killed by the seccomp filter (SIGSYS): it made a system call the filter kills outright, such as one of another architecture (an i386 int 0x80)"
        }
        return "killed by signal \(signal) (\(String(cString: strsignal(signal))))"
    }

    /// Wait for the mediator too (after ``wait()``): every call it answered has been audited.
    public func waitForMediator() { finished.wait(); finished.signal() }

    /// The program's exit code, or 128 + the signal that ended it.
    public static func exitCode(_ status: Int32) -> Int32 {
        status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Stop the program's whole session (SIGTERM, then SIGKILL after `grace`).
    public func stop(grace: Duration = .seconds(2)) {
        kill(-pid, SIGTERM)
        let deadline = ContinuousClock.now + grace
        var s: Int32 = 0
        while ContinuousClock.now < deadline {
            if waitpid(pid, &s, WNOHANG) == pid { status = s; break }
            usleep(10_000)
        }
        kill(-pid, SIGKILL)
        if status == nil { _ = wait() }
    }

    /// `worldos-sandbox` beside the running executable (the `worldos` binary, or the test bundle).
    public static func defaultHelper() -> String {
        let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        return URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("worldos-sandbox").path
    }
}
