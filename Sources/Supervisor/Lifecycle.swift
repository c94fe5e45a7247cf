import Foundation
import Glibc
import Logging
import LoopCore
import Observer
import Service
import ServiceLifecycle

extension Supervisor {
    /// What the run log and systemd are told as the service starts, steps and stops.
    public struct Narration: Sendable {
        public var say: @Sendable (String) -> Void
        /// Once the doors are open and the programs started: the loop begins.
        public var ready: @Sendable (_ apiAddress: String?) -> Void
        /// After each step (the run log's line; systemd's watchdog ping).
        public var stepped: @Sendable (StepReport) -> Void
        /// The loop has ended (after `steps`, on a signal or not); the rest stops.
        public var stopping: @Sendable (_ steps: Int, _ interrupted: Bool) -> Void
        public init(say: @escaping @Sendable (String) -> Void, ready: @escaping @Sendable (String?) -> Void,
                    stepped: @escaping @Sendable (StepReport) -> Void, stopping: @escaping @Sendable (Int, Bool) -> Void) {
            (self.say, self.ready, self.stepped, self.stopping) = (say, ready, stepped, stopping)
        }
    }

    /// Run a started session as a service group (swift-service-lifecycle): the service's doors,
    /// the bench, the programs and the loop, started in that order — each once the one before
    /// it is up — and stopped in the reverse: the loop ends (its steps done, SIGTERM or SIGINT,
    /// or another component failing), the programs are stopped, every instrument is driven to
    /// its safe state, and only then are the doors closed, so a client sees the stop to its end.
    ///
    /// SIGTERM and SIGINT are the loop's own (its signal pipe, watched from before the group
    /// starts, so one that comes while the doors open still stops the bench in order); the
    /// group installs no handlers of its own. The loop runs on a thread of its own, never on
    /// the concurrency pool. What failed is thrown once everything has stopped.
    public static func serve(_ session: Session, _ options: SupervisorOptions, steps: Int?, interval: Duration,
                             narration: Narration) throws -> (steps: Int, interrupted: Bool) {
        let signals = try SignalWatch(signals: [SIGINT, SIGTERM])
        let running = Running(session)
        let (opened, launched) = (Latch(), Latch())
        let log = ServiceLog.logger("lifecycle", level: .warning)
        func member(_ service: some ServiceLifecycle.Service, _ name: String, ends: Bool = false) -> ServiceGroupConfiguration.ServiceConfiguration {
            // Whichever ends or fails, the others stop gracefully, in reverse order.
            .init(service: service, successTerminationBehavior: ends ? .gracefullyShutdownGroup : .ignore,
                  failureTerminationBehavior: .gracefullyShutdownGroup, serviceName: name)
        }
        let group = ServiceGroup(configuration: .init(services: [
            member(Doors(running: running, options: options, say: narration.say, opened: opened), "doors"),
            member(BenchSafety(running: running, say: narration.say), "bench"),
            member(Programs(running: running, say: narration.say, after: opened, launched: launched), "programs"),
            member(Loop(running: running, signals: signals, steps: steps, interval: interval, after: launched, narration: narration), "loop", ends: true),
        ], gracefulShutdownSignals: [], cancellationSignals: [], logger: log))
        let ended = DispatchSemaphore(value: 0)
        let failure = Running.Box<(any Error)?>(nil)
        Task.detached {
            do { try await group.run() } catch { failure.value = error }
            ended.signal()
        }
        ended.wait()
        if let error = running.loopError ?? failure.value { throw error }
        return running.outcome
    }

    /// The session, shared by the services; each touches its own part, one after another.
    final class Running: @unchecked Sendable {
        var session: Session
        var outcome = (steps: 0, interrupted: false)
        var loopError: (any Error)?
        init(_ session: Session) { self.session = session }

        final class Box<T>: @unchecked Sendable {
            var value: T
            init(_ value: T) { self.value = value }
        }
    }

    /// Opened once, waited for by any number.
    actor Latch {
        private var isOpen = false
        private var waiting: [CheckedContinuation<Void, Never>] = []
        func open() {
            isOpen = true
            for w in waiting { w.resume() }
            waiting = []
        }
        func wait() async {
            if isOpen { return }
            await withCheckedContinuation { waiting.append($0) }
        }
    }

    /// Blocking work (sockets bound, programs forked, devices written) on a thread of its own.
    static func onThread<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { done in
            Thread { done.resume(returning: work()) }.start()
        }
    }

    /// The control socket and the API: opened first, closed last.
    struct Doors: ServiceLifecycle.Service {
        let running: Running
        let options: SupervisorOptions
        let say: @Sendable (String) -> Void
        let opened: Latch

        func run() async throws {
            let (running, options) = (running, options)
            for line in await onThread({ running.session.openService(options) }) { say("  \(line)") }
            await opened.open()
            try? await gracefulShutdown()
            await onThread { running.session.closeService() }
            say("worldos: doors closed (control socket and API)")
        }
    }

    /// Nothing to start (the instruments were found and opened with the session); on the way
    /// out, each to its profile's safe state, saying whether it got there.
    struct BenchSafety: ServiceLifecycle.Service {
        let running: Running
        let say: @Sendable (String) -> Void

        func run() async throws {
            try? await gracefulShutdown()
            let running = running
            let lines = await onThread {
                running.session.instruments.map { instrument in
                    let name = "\(instrument.profile.name):\(instrument.identity.serial) on \(instrument.path)"
                    let problems = instrument.returnToSafeState()
                    return problems.isEmpty ? "worldos: \(name): safe state reached (\(instrument.profile.safeState.joined(separator: "; ")))"
                                            : "worldos: \(name): SAFE STATE NOT REACHED: \(problems.joined(separator: "; ")); check the bench"
                }
            }
            for line in lines { say(line) }
        }
    }

    /// The bench's program contexts under the seccomp filter: started once the doors are open,
    /// stopped (and how each ended audited) once the loop has ended. Started and stopped from
    /// one thread that lives as long as they do: a program gets SIGKILL when the thread that
    /// forked it ends (PR_SET_PDEATHSIG is per thread), so not from a passing one.
    struct Programs: ServiceLifecycle.Service {
        let running: Running
        let say: @Sendable (String) -> Void
        let after: Latch
        let launched: Latch

        func run() async throws {
            await after.wait()
            let running = running
            let stop = DispatchSemaphore(value: 0)
            let stopped = Running.Box<CheckedContinuation<[String], Never>?>(nil)
            let started = await withCheckedContinuation { (started: CheckedContinuation<[String], Never>) in
                Thread {
                    started.resume(returning: running.session.launchPrograms())
                    stop.wait()
                    let lines = running.session.stopPrograms()
                    stopped.value?.resume(returning: lines)
                }.start()
            }
            for line in started { say("  \(line)") }
            await launched.open()
            try? await gracefulShutdown()
            let lines = await withCheckedContinuation { (done: CheckedContinuation<[String], Never>) in
                stopped.value = done
                stop.signal()
            }
            for line in lines { say("worldos: \(line)") }
        }
    }

    /// The loop, on its own thread, until its steps are done or a stop signal comes — or the
    /// group shuts down for another reason, which reaches it as SIGTERM would.
    struct Loop: ServiceLifecycle.Service {
        let running: Running
        let signals: SignalWatch
        let steps: Int?
        let interval: Duration
        let after: Latch
        let narration: Narration

        func run() async throws {
            await after.wait()
            narration.ready(running.session.apiAddress)
            let (running, signals, steps, interval, narration) = (running, signals, steps, interval, narration)
            await withGracefulShutdownHandler {
                await onThread {
                    do {
                        running.outcome = try Supervisor.run(&running.session.loop, steps: steps, interval: interval, signals: signals,
                                                             wakeOn: running.session.wakeDescriptors, service: running.session.service,
                                                             report: narration.stepped)
                    } catch { running.loopError = error }
                }
            } onGracefulShutdown: {
                signals.deliver(SIGTERM)
            }
            narration.stopping(running.outcome.steps, running.outcome.interrupted)
            if let error = running.loopError { throw error }
        }
    }
}
