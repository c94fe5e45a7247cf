import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import NIOCore
import Service

/// `GET /api/v1/subscribe?topics=readings,decisions&interval-ms=500` upgraded to a WebSocket:
/// one JSON text message per topic at most every interval. The token comes as
/// `Authorization: Bearer …` or, from a browser (which cannot set that header on a WebSocket),
/// as the subprotocol `bearer.TOKEN` beside `worldos`. A subscriber that does not keep up is
/// closed by the model (the loop never waits for it) and its socket closed with the reason.
extension APIServer {
    func upgrade(_ head: HTTPRequest, _ channel: any Channel) -> ShouldUpgradeResult<WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>> {
        let path = head.path ?? ""
        let route = "GET /api/v1/subscribe"
        guard path == "/api/v1/subscribe" || path.hasPrefix("/api/v1/subscribe?") else { return .dontUpgrade }
        var headers = HTTPFields()
        if head.headerFields[.secWebSocketProtocol] != nil { headers[.secWebSocketProtocol] = "worldos" }
        // Refused (audited) or malformed: upgraded and closed at once with the reason, which a
        // browser shows (a refused upgrade would only be "400").
        var refusal: Answer?
        var holder: TokenFile.Token?
        switch authorize(Self.subscriptionToken(head.headerFields), scope: .read, route: route) {
        case .refused(let answer): refusal = answer
        case .holder(let token): holder = token
        }
        var asked: (Set<Topic>, Duration)?
        do throws(RequestError) { asked = try Self.subscription(URI(path).queryParameters.map { (String($0.key), String($0.value)) }) } catch {
            refusal = refusal ?? .failure(error.status, error.description)
        }
        model.metrics.answered(route: route, code: refusal?.status ?? 101)
        guard refusal == nil, let holder, let (topics, interval) = asked else {
            let reason = refusal.map { "\($0.status) " + ((try? JSONSerialization.jsonObject(with: Data($0.body)) as? [String: Any])?["error"] as? String ?? "") } ?? ""
            return .upgrade(headers) { _, outbound, _ in
                try await outbound.close(.policyViolation, reason: String(reason.utf8.prefix(120)) ?? "refused")
            }
        }
        return .upgrade(headers) { [model, tokens] inbound, outbound, _ in
            let subscriber = model.subscribe(topics, interval: interval)
            // Closed by the model: the writer below sends the reason; a client so far behind
            // that the write cannot go out is cut off a second later.
            subscriber.onClose = { channel.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) } }
            // The client's messages are read (and dropped) so a close from it is seen.
            let reader = Task {
                do {
                    for try await _ in inbound.messages(maxSize: 1 << 16) {}
                    subscriber.close("the client closed")
                } catch {
                    subscriber.close("its connection failed: \(error)")
                }
            }
            defer { reader.cancel() }
            do {
                while let message = await subscriber.next() {
                    // A token revoked (or its file spoiled) ends the subscriptions it opened.
                    guard case .success(let file) = tokens.current(), file.tokens.contains(where: { $0.sha256 == holder.sha256 && $0.scope >= .read }) else {
                        subscriber.close("its token is no longer in the token file")
                        break
                    }
                    try await outbound.write(.text(String(decoding: message, as: UTF8.self)))
                }
            } catch {
                subscriber.close("a write to it failed: \(error)")
            }
            if let why = subscriber.closedBecause, why != "the client closed" {
                ServiceLog.logger("api").notice("dropped a subscriber to \(topics.map(\.rawValue).sorted().joined(separator: ",")): \(why)")
                try? await outbound.close(.policyViolation, reason: String(why.prefix(120)))
            }
        }
    }

    /// The bearer token of a subscription: the Authorization header, or the subprotocol.
    static func subscriptionToken(_ headers: HTTPFields) -> String? {
        if let authorization = headers[.authorization] { return authorization }
        let offered = (headers[.secWebSocketProtocol] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        return offered.first { $0.hasPrefix("bearer.") }.map { "Bearer " + $0.dropFirst("bearer.".count) }
    }

    /// The topics and interval a subscription asks for.
    static func subscription(_ query: [(String, String)]) throws(RequestError) -> (Set<Topic>, Duration) {
        let request = try StrictJSON(query: query, source: "query", allowed: ["topics", "interval-ms"], numbers: ["interval-ms"])
        var topics = Set<Topic>()
        for name in (try request.string("topics") ?? Topic.allCases.map(\.rawValue).joined(separator: ",")).split(separator: ",") {
            guard let topic = Topic(rawValue: String(name)) else {
                throw RequestError(status: 400, "query: topic \"\(name)\" is not one of \(Topic.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            topics.insert(topic)
        }
        guard !topics.isEmpty else { throw RequestError(status: 400, "query: topics names none") }
        let milliseconds = try request.int("interval-ms", in: 10...60_000) ?? 500
        return (topics, .milliseconds(milliseconds))
    }
}
