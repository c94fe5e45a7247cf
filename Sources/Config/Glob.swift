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
