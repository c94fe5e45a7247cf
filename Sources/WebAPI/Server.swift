import Foundation
import Guard
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import Service
import ServiceLifecycle

/// The HTTP + WebSocket API on the service's model (Hummingbird), on 127.0.0.1 unless told
/// otherwise. Every route but the page and the API's description wants a bearer token of the
/// route's scope; a request without one, or with one too weak, gets 401 or 403 and is audited.
/// Routes are the model's verbs (``Verb``), so what the API does is what the control socket does.
public final class APIServer: @unchecked Sendable {
    public let model: ServiceModel
    /// Read again when the file changes.
    let tokens: LiveTokens
    let host: String
    let requestedPort: Int
    private var group: ServiceGroup?
    private let ended = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var bound: Result<Int, ServiceError>?
    let refusals: RefusalLog
    /// Connections open at once; more wait for one to close.
    static let maximumConnections = 128
    /// Verbs that read what the loop last published, or a short tail: quick, a few threads.
    let reads = WorkerPool(name: "api-read", threads: 4, queued: maximumConnections)
    /// Verbs that wait on the loop or the disk (see ``Verb/waits``): an operator's handful at
    /// once, and beyond ``waitingQueued`` more a 503 to retry rather than a thread each.
    let waits = WorkerPool(name: "api-wait", threads: waitingThreads, queued: waitingQueued)
    public static let waitingThreads = 16
    public static let waitingQueued = 32

    public init(model: ServiceModel, tokens: TokenFile, listen: String) throws(ServiceError) {
        self.model = model
        self.tokens = LiveTokens(tokens)
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            throw ServiceError("listen address \"\(listen)\" is not HOST:PORT (such as 127.0.0.1:8420)")
        }
        host = String(listen[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        requestedPort = port
        refusals = RefusalLog(model: model)
    }

    /// Start serving and wait until the socket is bound: the address served, as HOST:PORT.
    public func start() throws(ServiceError) -> String {
        // Hummingbird's own lines only when critical: a client that hangs up or idles is not news;
        // what a person needs (the address, refusals) the supervisor says itself.
        let logger = ServiceLog.logger("api", level: .critical)
        let router = Router(context: BasicRequestContext.self)
        routes(router)
        let app = Application(
            router: router,
            server: HTTPServerBuilder { [self] responder in
                ReadDeadline(inner: HTTP1WebSocketUpgradeChannel(
                    responder: responder,
                    configuration: .init(http1: .init(idleTimeout: .seconds(10)),
                                         ws: .init(maxFrameSize: 1 << 16, autoPing: .enabled(timePeriod: .seconds(4)))),
                    shouldUpgrade: { [self] head, channel, _ in upgrade(head, channel) }), limit: .seconds(10))
            },
            configuration: .init(address: .hostname(host, port: requestedPort), serverName: "worldos",
                                 availableConnectionsDelegate: MaximumAvailableConnections(Self.maximumConnections)),
            onServerRunning: { [self] channel in settle(.success(channel.localAddress?.port ?? requestedPort)) },
            logger: logger)
        // Its own service group, without signal handlers: the supervisor's loop owns SIGTERM and
        // SIGINT, and shuts this down after the bench is safe.
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        self.group = group
        Task.detached { [self] in
            do { try await group.run() } catch { settle(.failure(ServiceError("the API cannot listen on \(host):\(requestedPort): \(error)"))) }
            ended.signal()
        }
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            lock.lock()
            let result = bound
            lock.unlock()
            switch result {
            case .success(let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            case .failure(let e): throw e
            case nil: usleep(5_000)
            }
        }
        throw ServiceError("the API did not start listening on \(host):\(requestedPort) within 20 s")
    }

    /// Stop accepting, let requests in flight finish (WebSocket subscriptions are closed), and
    /// return once the server is down.
    public func stop() {
        guard let group else { return }
        self.group = nil
        Task.detached { await group.triggerGracefulShutdown() }
        if ended.wait(timeout: .now() + 10) == .timedOut {
            ServiceLog.logger("api").warning("the API did not stop within 10 s; leaving it")
        }
        reads.stop()
        waits.stop()
    }

    private func settle(_ result: Result<Int, ServiceError>) {
        lock.lock()
        if bound == nil { bound = result }
        lock.unlock()
    }

    /// The holder of the request's bearer token when it may use `scope`; otherwise the answer
    /// to send (401 or 403), audited.
    func authorize(_ authorization: String?, scope: Scope, route: String) -> Authorized {
        let tokens: TokenFile
        switch self.tokens.current() {
        case .success(let file): tokens = file
        case .failure(let error):
            refusals.note(who: "anyone", route: route, why: "the token file does not load: \(error.message)")
            return .refused(.failure(401, "no token is accepted until the supervisor's token file is fixed (its log says what is wrong)"))
        }
        guard let authorization, authorization.hasPrefix("Bearer "), !authorization.dropFirst(7).isEmpty else {
            refusals.note(who: "anonymous", route: route, why: "no bearer token")
            return .refused(.failure(401, tokens.tokens.isEmpty
                ? "this API needs a bearer token and none exists yet; make one with worldos token add NAME --scope \(scope.rawValue)"
                : "send Authorization: Bearer TOKEN (a token from \(tokens.path))"))
        }
        guard let holder = tokens.holder(of: String(authorization.dropFirst(7))) else {
            refusals.note(who: "unknown token", route: route, why: "the token is not one of \(tokens.path)")
            return .refused(.failure(401, "that token is not one this supervisor knows"))
        }
        guard holder.scope >= scope else {
            refusals.note(who: holder.name, route: route, why: "scope \(holder.scope.rawValue) may not \(scope.rawValue)")
            return .refused(.failure(403, "the token of \(holder.name) has scope \(holder.scope.rawValue); \(route) needs \(scope.rawValue)"))
        }
        return .holder(holder)
    }

    enum Authorized {
        case holder(TokenFile.Token)
        /// The answer to send instead.
        case refused(Answer)
    }

    /// Who a token's holder is as an approver: the token's name, from the API.
    static func approver(_ token: TokenFile.Token) -> Approver { Approver(token.name, via: "api") }
}

/// Refused requests, audited — at most one record a second, saying how many more were refused
/// meanwhile, so a flood of bad requests cannot fill the disk with the log that records them.
final class RefusalLog: @unchecked Sendable {
    private let model: ServiceModel
    private let lock = NSLock()
    private var last = Date.distantPast
    private var suppressed = 0

    init(model: ServiceModel) { self.model = model }

    func note(who: String, route: String, why: String) {
        lock.lock()
        let now = Date()
        guard now.timeIntervalSince(last) >= 1 else { suppressed += 1; lock.unlock(); return }
        let more = suppressed
        (last, suppressed) = (now, 0)
        lock.unlock()
        model.refused(source: "api", who: who, request: route, why: why + (more > 0 ? " (and \(more) more refused in the second before)" : ""))
    }
}
