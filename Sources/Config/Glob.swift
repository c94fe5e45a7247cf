/// `*` matches any run of elements, `?` exactly one, anything else itself. The one matcher for
/// the patterns configuration files hold: device serials, ports and `*IDN?` replies, action
/// names, path segments (as bytes, so the guard matches without building strings).
@inlinable
public func globMatches<E: Equatable>(_ pattern: [E], _ text: [E], star: E, one: E) -> Bool {
    func match(_ i: Int, _ j: Int) -> Bool {
        if i == pattern.count { return j == text.count }
        if pattern[i] == star { return (j...text.count).contains { match(i + 1, $0) } }
        guard j < text.count, pattern[i] == one || pattern[i] == text[j] else { return false }
        return match(i + 1, j + 1)
    }
    return match(0, 0)
}

/// ``globMatches(_:_:star:one:)`` on characters.
public func globMatches(_ pattern: String, _ text: String) -> Bool {
    globMatches(Array(pattern), Array(text), star: "*", one: "?")
}

/// A path pattern's segments against a path's: `**` matches any number of whole segments, and
/// each other segment is a ``globMatches(_:_:star:one:)`` on its bytes.
public func pathGlobMatches(_ pattern: [[UInt8]], _ path: [[UInt8]]) -> Bool {
    let twoStars = [UInt8(ascii: "*"), UInt8(ascii: "*")]
    func match(_ i: Int, _ j: Int) -> Bool {
        guard i < pattern.count else { return j == path.count }
        if pattern[i] == twoStars { return (j...path.count).contains { match(i + 1, $0) } }
        guard j < path.count, globMatches(pattern[i], path[j], star: UInt8(ascii: "*"), one: UInt8(ascii: "?")) else { return false }
        return match(i + 1, j + 1)
    }
    return match(0, 0)
}
