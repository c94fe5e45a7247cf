import Glibc

/// A point on the supervisor's monotonic timeline, in nanoseconds. Every stage takes `now` as
/// an argument; nothing reads the time on its own, so tests drive a manual clock.
public struct Instant: Hashable, Comparable, Codable, Sendable, CustomStringConvertible {
    public var nanoseconds: UInt64
    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }
    public static func < (a: Instant, b: Instant) -> Bool { a.nanoseconds < b.nanoseconds }
    public static func + (a: Instant, d: Duration) -> Instant {
        let (s, atto) = d.components
        let delta = Int64(s) * 1_000_000_000 + atto / 1_000_000_000
        return Instant(nanoseconds: UInt64(max(0, Int64(a.nanoseconds) + delta)))
    }
    public func duration(since earlier: Instant) -> Duration {
        .nanoseconds(Int64(nanoseconds) - Int64(earlier.nanoseconds))
    }
    public var description: String { "\(Double(nanoseconds) / 1e9)s" }
    public init(from decoder: any Decoder) throws { nanoseconds = try decoder.singleValueContainer().decode(UInt64.self) }
    public func encode(to encoder: any Encoder) throws { var c = encoder.singleValueContainer(); try c.encode(nanoseconds) }
}

/// Where the loop gets `now` from: the host's monotonic clock in production, a manual clock in tests.
public protocol WorldClock: AnyObject, Sendable {
    func now() -> Instant
}

/// The host's monotonic clock.
public final class SystemClock: WorldClock {
    public init() {}
    public func now() -> Instant {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Instant(nanoseconds: UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec))
    }
}
