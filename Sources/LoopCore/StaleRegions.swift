/// What each of two buffers (a screen's, the renderer's) lacks of the newest frame: every frame's damage is added
/// to both, and a buffer about to be shown takes (copies) what it lacks, then lacks nothing. A
/// superseded frame's damage is kept, so a buffer two or more frames behind gets all of it.
public struct StaleRegions: Sendable {
    /// Per buffer; nil: the whole frame.
    private var stale: [[PixelRect]?] = [nil, nil]
    /// Above this many rectangles a buffer is copied whole.
    static let most = 32

    public init() {}

    public mutating func add(_ damage: [PixelRect]?) {
        for i in stale.indices {
            guard let known = stale[i], let damage else { stale[i] = nil; continue }
            let joined = known + damage
            stale[i] = joined.count > Self.most ? nil : joined
        }
    }

    /// What `buffer` must copy from the newest frame (nil: all of it); afterwards it lacks nothing.
    public mutating func take(_ buffer: Int) -> [PixelRect]? {
        defer { stale[buffer] = [] }
        return stale[buffer]
    }
}
