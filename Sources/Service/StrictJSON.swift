import Foundation

/// A JSON object a client sent, read strictly: it must be one object, no larger than the
/// limit, with only the fields the request allows, each of the type it must have. Every error
/// names the field and says what it wants — the answer a client gets instead of a guess.
public struct StrictJSON: @unchecked Sendable {
    private var object: [String: Any]
    /// Where it came from, for errors (`request body`, `control request`).
    public let source: String

    public static let maximumBytes = 64 * 1024

    public init(_ bytes: some Collection<UInt8>, source: String, allowed: Set<String>) throws(RequestError) {
        self.source = source
        guard bytes.count <= Self.maximumBytes else {
            throw RequestError(status: 413, "\(source) is \(bytes.count) bytes; at most \(Self.maximumBytes) are read")
        }
        let parsed: Any
        do { parsed = try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]) } catch {
            throw RequestError(status: 400, "\(source) is not JSON (\(Self.why(error))); send one JSON object")
        }
        guard let object = parsed as? [String: Any] else { throw RequestError(status: 400, "\(source) must be a JSON object") }
        if let unknown = object.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw RequestError(status: 400, "\(source): unknown field \"\(unknown)\"; the fields are \(allowed.sorted().joined(separator: ", "))")
        }
        self.object = object
    }

    /// The same request with `fields` set (a route's path parameters beside its body).
    public func adding(_ fields: [String: String]) -> StrictJSON {
        var copy = self
        for (k, v) in fields { copy.object[k] = v }
        return copy
    }

    /// The empty object (a request with no body).
    public init(empty source: String) { object = [:]; self.source = source }

    public func string(_ field: String) throws(RequestError) -> String? {
        guard let value = object[field] else { return nil }
        guard let s = value as? String else { throw RequestError(status: 400, "\(source): field \"\(field)\" must be a string") }
        return s
    }

    public func requiredString(_ field: String) throws(RequestError) -> String {
        guard let s = try string(field), !s.isEmpty else { throw RequestError(status: 400, "\(source): field \"\(field)\" is required (a string)") }
        return s
    }

    public func int(_ field: String, in range: ClosedRange<Int>) throws(RequestError) -> Int? {
        guard let value = object[field] else { return nil }
        guard let n = value as? NSNumber, !Self.isBool(n), let i = Int(exactly: n.doubleValue), range.contains(i) else {
            throw RequestError(status: 400, "\(source): field \"\(field)\" must be a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return i
    }

    /// An object of string values (an action's parameters).
    public func strings(_ field: String) throws(RequestError) -> [String: String] {
        guard let value = object[field] else { return [:] }
        guard let dict = value as? [String: Any] else { throw RequestError(status: 400, "\(source): field \"\(field)\" must be an object of strings") }
        var out: [String: String] = [:]
        for (k, v) in dict {
            if let s = v as? String { out[k] = s }
            else if let n = v as? NSNumber, !Self.isBool(n) { out[k] = n.stringValue }
            else { throw RequestError(status: 400, "\(source): \(field).\(k) must be a string or a number") }
        }
        return out
    }

    /// JSON's true and false come back as NSNumbers too; they are not numbers here.
    private static func isBool(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

    private static func why(_ error: Error) -> String {
        let text = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"
        return text.count > 120 ? String(text.prefix(120)) + "…" : text
    }
}

/// A request that cannot be served as sent: the HTTP status it earns and what to do.
public struct RequestError: Error, CustomStringConvertible, Sendable {
    public var status: Int
    public var description: String
    public init(status: Int, _ description: String) { (self.status, self.description) = (status, description) }
}

extension StrictJSON {
    /// A URL's query parameters as a request's fields (those in `numbers` as numbers when they
    /// are), read as strictly.
    public init(query: [(String, String)], source: String, allowed: Set<String>, numbers: Set<String> = ["count"]) throws(RequestError) {
        var object: [String: Any] = [:]
        for (key, value) in query {
            guard object[key] == nil else { throw RequestError(status: 400, "\(source): parameter \"\(key)\" is given twice") }
            object[key] = numbers.contains(key) ? Int(value).map { NSNumber(value: $0) } ?? value : value
        }
        let bytes = (try? JSONSerialization.data(withJSONObject: object)) ?? Data("{}".utf8)
        try self.init(Array(bytes), source: source, allowed: allowed)
    }
}
