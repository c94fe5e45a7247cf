import Foundation
import Glibc
import Guard
import LoopCore
import Sandbox
import Service
import WebAPI
import Attached
import Benches

extension Supervisor {
    /// A started supervisor: its loop, the instruments it found, and what it noticed on the way.
    public struct Session {
        public var loop: SupervisorLoop
        public var instruments: [AttachedInstrument]
        public var notes: [String]
        /// The event sources' descriptors: the run loop wakes early when one is readable.
        public var wakeDescriptors: [Int32] = []

        /// The bench's contexts that are real programs, and the guard their mediators ask.
        public var programContexts: [Bench.Context] = []
        public var programGuard: ProgramGuard?
        public private(set) var programs: [SupervisedProgram] = []
        /// Their ends, reaped and audited as events of the loop.
        public var exits: ProgramExits?
        /// What clients see and ask of this supervisor, and the doors they come through.
        public var service: ServiceModel?
        public private(set) var control: ControlSocket?
        public private(set) var api: APIServer?
        /// Where the API listens (HOST:PORT), once open.
        public private(set) var apiAddress: String?

        /// Open the service's doors `options` asks for: the control socket, the HTTP API. A line
        /// for each, where it listens or why it could not open (the machine is supervised either
        /// way; the run log says so loudly).
        public mutating func openService(_ options: SupervisorOptions) -> [String] {
            guard let service else { return [] }
            var lines: [String] = []
            if options.control {
                do {
                    let socket = try ControlSocket(model: service)
                    socket.start()
                    control = socket
                    lines.append("control socket \(socket.path) (mode 0660): worldos approvals, approve, reject, act, ack, audit verify and graph --out \(options.out) use it")
                } catch { lines.append("CONTROL SOCKET NOT OPENED: \(error)") }
            }
            if let listen = options.listen {
                do {
                    let tokens: TokenFile
                    do { tokens = try TokenFile.load(options.tokenFile) } catch { throw ServiceError("its tokens: \(error)") }
                    let server = try APIServer(model: service, tokens: tokens, listen: listen)
                    let address = try server.start()
                    api = server
                    apiAddress = address
                    lines.append("API and web page on http://\(address)/ (\(tokens.tokens.count) tokens in \(options.tokenFile)"
                                 + (tokens.tokens.isEmpty ? "; make one with worldos token add NAME --scope approve" : "") + ")")
                } catch { lines.append("API NOT OPENED: \(error)") }
            }
            return lines
        }

        /// Close the doors (the control socket's file goes; API connections are closed).
        public mutating func closeService() {
            control?.stop()
            api?.stop()
            control = nil
            api = nil
        }

        /// Every instrument back to its profile's safe state (on stop, fault or crash recovery).
        public func returnToSafeState() -> [String] { instruments.flatMap { $0.returnToSafeState() } }

        /// Start the bench's program contexts under the seccomp filter; a line for each, started
        /// or not (a program that cannot start is reported and the supervisor goes on).
        public mutating func launchPrograms() -> [String] {
            guard let programGuard else { return [] }
            return programContexts.compactMap { context in
                guard let argv = context.program else { return nil }
                if context.user != nil && getuid() != 0 {
                    return "context \(context.name): NOT STARTED: its bench gives it a user, and only root can run a program as another user"
                }
                do {
                    let program = try SupervisedProgram.launch(argv, context: context.name, guard: programGuard, user: context.user)
                    programs.append(program)
                    exits?.watch(program, argv: argv)
                    let who = context.user.map { " as \($0.uid):\($0.gid)" } ?? ""
                    return "context \(context.name): \(argv.joined(separator: " ")) (pid \(program.pid)\(who)) under the seccomp filter"
                } catch {
                    return "context \(context.name): NOT STARTED: \(error)"
                }
            }
        }

        /// Stop every program context (SIGTERM to its session, SIGKILL after 2 s); how each ended
        /// is audited, one line each.
        @discardableResult
        public mutating func stopPrograms(at now: Instant = SystemClock().now()) -> [String] {
            let ended = exits?.drain(at: now) ?? []
            for program in programs {
                program.stop()
                program.waitForMediator()
            }
            programs = []
            return (ended + (exits?.stopped(at: now) ?? [])).map { "context \($0.subject): \($0.details["cause"] ?? "ended")" }
        }
    }
}
