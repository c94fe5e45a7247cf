import Foundation
import Hummingbird
import JSONWriter
import NIOCore
import Service

/// The routes, each one of the model's verbs (see `openapi.json` beside this file, which a test
/// keeps true).
extension APIServer {
    func routes(_ router: Router<BasicRequestContext>) {
        router.get("/") { _, _ in Self.page("index.html", type: "text/html; charset=utf-8") }
        router.get("/api/v1/openapi.json") { _, _ in Self.page("openapi.json", type: "application/json") }
        for (path, verb) in [("status", Verb.status), ("graph", .graph), ("approvals", .approvals), ("audit", .audit),
                             ("audit/verify", .auditVerify), ("panel/semantics", .panel), ("trace", .trace)] {
            router.get("/api/v1/\(path)") { [self] request, _ in
                await serve(verb, "GET /api/v1/\(path)", request) { () throws(RequestError) in
                    try StrictJSON(query: request.uri.queryParameters.map { (String($0.key), String($0.value)) },
                                   source: "query", allowed: verb.fields)
                }
            }
        }
        for (path, verb) in [("approve", Verb.approve), ("reject", .reject)] {
            router.post("/api/v1/approvals/:id/\(path)") { [self] request, context in
                let id = context.parameters.get("id") ?? ""
                return await serve(verb, "POST /api/v1/approvals/{id}/\(path)", request, body: true) { () throws(RequestError) in
                    try await Self.body(request, allowed: verb.fields.subtracting(["id"])).adding(["id": id])
                }
            }
        }
        router.post("/api/v1/actions") { [self] request, _ in
            await serve(.act, "POST /api/v1/actions", request, body: true) { () throws(RequestError) in
                try await Self.body(request, allowed: Verb.act.fields)
            }
        }
        for (path, verb) in [("fault/ack", Verb.ack), ("trace/files", .traceFile), ("trace/marks", .traceMark)] {
            router.post("/api/v1/\(path)") { [self] request, _ in
                await serve(verb, "POST /api/v1/\(path)", request, body: true) { () throws(RequestError) in
                    try await Self.body(request, allowed: verb.fields)
                }
            }
        }
        router.get("/api/v1/panel.png") { [self] request, _ in
            let route = "GET /api/v1/panel.png"
            if case .refused(let refusal) = authorize(request.headers[.authorization], scope: .read, route: route) {
                return respond(refusal, route: route)
            }
            guard let png = FileManager.default.contents(atPath: model.folder.panel) else {
                return respond(.failure(404, "no panel drawn yet"), route: route)
            }
            model.metrics.answered(route: route, code: 200)
            return Response(status: .ok, headers: [.contentType: "image/png", .cacheControl: "no-store"],
                            body: .init(byteBuffer: ByteBuffer(bytes: png)))
        }
        router.get("/api/v1/whoami") { [self] request, _ in
            let route = "GET /api/v1/whoami"
            switch authorize(request.headers[.authorization], scope: .read, route: route) {
            case .refused(let refusal): return respond(refusal, route: route)
            case .holder(let token): return respond(Self.whoami(token), route: route)
            }
        }
        router.get("/metrics") { [self] request, _ in
            let route = "GET /metrics"
            if case .refused(let refusal) = authorize(request.headers[.authorization], scope: .read, route: route) {
                return respond(refusal, route: route)
            }
            model.metrics.answered(route: route, code: 200)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: model.metrics.exposition())))
        }
        router.get("/api/v1/subscribe") { [self] request, _ in
            // Reached only when the upgrade was not made: say why.
            let route = "GET /api/v1/subscribe"
            if case .refused(let refusal) = authorize(Self.subscriptionToken(request.headers), scope: .read, route: route) {
                return respond(refusal, route: route)
            }
            do throws(RequestError) { _ = try Self.subscription(request.uri.queryParameters.map { (String($0.key), String($0.value)) }) } catch {
                return respond(.failure(error.status, error.description), route: route)
            }
            return respond(.failure(426, "subscribe with a WebSocket upgrade (GET with Upgrade: websocket)"), route: route)
        }
        refuseOtherMethods(router)
    }

    /// Every other method on a documented path: 405 with the methods there are (from the
    /// API's description, so the two cannot part).
    func refuseOtherMethods(_ router: Router<BasicRequestContext>) {
        guard let url = Bundle.module.url(forResource: "Web/openapi.json", withExtension: nil), let data = try? Data(contentsOf: url),
              let doc = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let paths = doc["paths"] as? [String: [String: Any]] else {
            ServiceLog.logger("api").error("the API's description cannot be read from the bundle")
            return
        }
        let methods: [HTTPRequest.Method] = [.get, .post, .put, .patch, .delete, .options, .trace, HTTPRequest.Method("QUERY")!]
        for (path, operations) in paths {
            let routed = path.replacingOccurrences(of: "{id}", with: ":id")
            let allowed = operations.keys.map { $0.uppercased() }.sorted()
            for method in methods where !allowed.contains(method.rawValue) {
                router.on(RouterPath(routed), method: method) { [self] _, _ in
                    var response = respond(.failure(405, "\(method.rawValue) is not a method of \(path); it takes \(allowed.joined(separator: ", "))"),
                                           route: "\(method.rawValue) \(path)")
                    response.headers[.allow] = allowed.joined(separator: ", ")
                    return response
                }
            }
        }
    }

    /// Authorize, read the request, perform the verb as the token's holder, answer.
    private func serve(_ verb: Verb, _ route: String, _ request: Request, body: Bool = false,
                       read: () async throws(RequestError) -> StrictJSON) async -> Response {
        let holder: TokenFile.Token
        switch authorize(request.headers[.authorization], scope: verb.scope, route: route) {
        case .refused(let refusal): return respond(refusal, route: route)
        case .holder(let token): holder = token
        }
        let fields: StrictJSON
        do { fields = try await read() } catch { return respond(.failure(error.status, error.description), route: route) }
        let person = Self.approver(holder)
        // On the pool's threads, never the event loops (an action waits for its context's turn).
        let answer = await (verb.waits ? waits : reads).perform { [model] in model.perform(verb, fields, as: person) }
        return respond(answer ?? .failure(503, "the supervisor is answering as many requests of this kind as it takes at once; retry in a second"),
                       route: route)
    }

    func respond(_ answer: Answer, route: String) -> Response {
        model.metrics.answered(route: route, code: answer.status)
        var headers: HTTPFields = [.contentType: "application/json", .cacheControl: "no-store"]
        if answer.status == 401 { headers[.wwwAuthenticate] = "Bearer realm=\"worldos\"" }
        if answer.status == 503 { headers[.retryAfter] = "1" }
        return Response(status: HTTPResponse.Status(code: answer.status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: answer.body)))
    }

    /// A JSON body of at most ``StrictJSON/maximumBytes``, read strictly; none at all is `{}`.
    static func body(_ request: Request, allowed: Set<String>) async throws(RequestError) -> StrictJSON {
        let buffer: ByteBuffer
        do { buffer = try await request.body.collect(upTo: StrictJSON.maximumBytes) } catch {
            throw RequestError(status: 413, "request body: larger than \(StrictJSON.maximumBytes) bytes")
        }
        if buffer.readableBytes == 0 { return StrictJSON(empty: "request body") }
        return try StrictJSON(buffer.readableBytesView, source: "request body", allowed: allowed)
    }

    /// What the token's holder may do, verb by verb, with the reason where not (for the page's
    /// buttons, which say why they are disabled).
    static func whoami(_ token: TokenFile.Token) -> Answer {
        var json = JSONWriter()
        json.beginObject()
        json.key("ok"); json.bool(true)
        json.key("name"); json.string(token.name)
        json.key("scope"); json.string(token.scope.rawValue)
        json.key("may")
        json.beginObject()
        for verb in Verb.allCases {
            json.key(verb.rawValue)
            if token.scope >= verb.scope { json.null() }
            else { json.string("the token of \(token.name) has scope \(token.scope.rawValue); this needs \(verb.scope.rawValue)") }
        }
        json.endObject()
        json.endObject()
        return Answer(status: 200, body: json.bytes)
    }

    /// A file of the page (Web/), as it is shipped.
    static func page(_ name: String, type: String) -> Response {
        guard let url = Bundle.module.url(forResource: "Web/\(name)", withExtension: nil), let data = try? Data(contentsOf: url) else {
            return Response(status: .notFound)
        }
        return Response(status: .ok, headers: [.contentType: type, .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
