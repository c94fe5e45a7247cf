import HummingbirdCore
import Logging
import NIOCore

/// A connection that sends nothing for `limit` is closed — before its first request as after it.
/// (The WebSocket upgrade's own idle timeout starts only once a request head has arrived, so a
/// client that connects and stalls, or sends bytes that are not HTTP, would otherwise hold its
/// connection for good. WebSocket clients answer the server's pings well within the limit.)
struct ReadDeadline<Inner: ServerChildChannel>: ServerChildChannel {
    typealias Value = Inner.Value
    let inner: Inner
    let limit: TimeAmount

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        do {
            try channel.pipeline.syncOperations.addHandlers([IdleStateHandler(readTimeout: limit), CloseWhenIdle()])
        } catch { return channel.eventLoop.makeFailedFuture(error) }
        return inner.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

private final class CloseWhenIdle: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read { context.close(promise: nil); return }
        context.fireUserInboundEventTriggered(event)
    }
}
