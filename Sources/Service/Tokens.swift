import Config
import Digest
import Foundation
import Glibc
import SystemCalls

/// The API's bearer tokens: a YAML file of mode 0600 naming each token's holder and scope and
/// keeping only the SHA-256 of its secret (`worldos token add` makes one and prints the secret
/// once). A file others can read, or one owned by someone else, is refused: whoever can read a
/// token can act as its holder.
///
///     tokens:
///       - name: alice
///         scope: approve          # read < operate < approve; each includes the ones before
///         sha256: 9f86d08…
public struct TokenFile: Sendable {
    public struct Token: Sendable, Equatable {
        public var name: String
        public var scope: Scope
        public var sha256: String
    }

    public let path: String
    public private(set) var tokens: [Token]
    /// The file as it was before it was read (nil: there was none): a later change differs.
    public let version: FileVersion?

    /// Read and check `path`. A missing file is an empty set of tokens (the API then answers
    /// every request with 401 and says how to make one).
    public static func load(_ path: String) throws(ConfigError) -> TokenFile {
        var info = stat()
        guard lstat(path, &info) == 0 else { return TokenFile(path: path, tokens: [], version: nil) }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw ConfigError(file: path, line: 1, column: 1, message: "not a plain file", hint: "the token file must be a regular file, not a link")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw ConfigError(file: path, line: 1, column: 1, message: "others may read it (mode \(String(info.st_mode & 0o777, radix: 8)))",
                              hint: "chmod 600 \(path)")
        }
        guard info.st_uid == getuid() else {
            throw ConfigError(file: path, line: 1, column: 1, message: "owned by uid \(info.st_uid), not by the supervisor's user (uid \(getuid()))",
                              hint: "chown it to the user the supervisor runs as")
        }
        let root = try ConfigNode.load(file: path)
        var tokens: [Token] = []
        for (key, value) in try root.mapping(allowed: ["tokens"], required: ["tokens"]) where key == "tokens" {
            for entry in try value.sequence() {
                var (name, scope, hash): (String?, Scope?, String?) = (nil, nil, nil)
                for (field, v) in try entry.mapping(allowed: ["name", "scope", "sha256"], required: ["name", "scope", "sha256"]) {
                    switch field {
                    case "name":
                        let n = try v.string()
                        guard !n.isEmpty, n.allSatisfy({ $0.isLetter || $0.isNumber || "._-@".contains($0) }) else {
                            throw v.error("a token's name is letters, digits and . _ - @", hint: "it is recorded as the approver's name")
                        }
                        guard !tokens.contains(where: { $0.name == n }) else { throw v.error("a second token named \(n)", hint: "names are who approved; one each") }
                        name = n
                    case "scope":
                        let s = try v.string()
                        guard let parsed = Scope(rawValue: s) else { throw v.error("scope \"\(s)\" is not one of read, operate, approve") }
                        scope = parsed
                    default:
                        let h = try v.string().lowercased()
                        guard h.count == 64, h.allSatisfy(\.isHexDigit) else { throw v.error("sha256 must be 64 hex digits", hint: "make tokens with worldos token add") }
                        hash = h
                    }
                }
                tokens.append(Token(name: name!, scope: scope!, sha256: hash!))
            }
        }
        return TokenFile(path: path, tokens: tokens, version: FileVersion(info))
    }

    /// The holder of `secret`, if it is one of these tokens.
    public func holder(of secret: String) -> Token? {
        let presented = SHA256.hex(Self.digest(secret))
        // Every token compared in full, so the time taken says nothing about which was close.
        var found: Token?
        for token in tokens {
            var difference: UInt8 = 0
            for (a, b) in zip(token.sha256.utf8, presented.utf8) { difference |= a ^ b }
            if difference == 0 && token.sha256.utf8.count == presented.utf8.count { found = token }
        }
        return found
    }

    /// A new token for `name` with `scope`, written to the file (made with mode 0600 if it is not
    /// there); the secret, which is nowhere else, is returned for the person to keep.
    public static func add(name: String, scope: Scope, to path: String) throws -> String {
        var file = try load(path)
        guard !file.tokens.contains(where: { $0.name == name }) else {
            throw ServiceError("\(path) already has a token named \(name); remove its entry first to replace it")
        }
        var random = [UInt8](repeating: 0, count: 32)
        var generator = SystemRandomNumberGenerator()
        for i in random.indices { random[i] = generator.next() }
        let secret = "wos_" + SHA256.hex(random)
        file.tokens.append(Token(name: name, scope: scope, sha256: SHA256.hex(digest(secret))))
        var text = "# worldos API tokens (mode 0600). Each: who holds it, what it may do, the SHA-256 of its secret.\ntokens:\n"
        for t in file.tokens { text += "  - name: \(t.name)\n    scope: \(t.scope.rawValue)\n    sha256: \(t.sha256)\n" }
        let temporary = path + ".new"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ServiceError("cannot write \(temporary): \(String(cString: strerror(errno)))") }
        let bytes = Array(text.utf8)
        let written = write(fd, bytes, bytes.count)
        fsync(fd)
        close(fd)
        guard written == bytes.count, rename(temporary, path) == 0 else { throw ServiceError("cannot write \(path): \(String(cString: strerror(errno)))") }
        return secret
    }

    private static func digest(_ secret: String) -> [UInt8] {
        var hash = SHA256()
        hash.update(Array(secret.utf8))
        return hash.finish()
    }
}

/// The token file as it stands now: read again when it changes, so a token added, removed or
/// made unreadable to others takes effect at the next request, with no restart. A file that no
/// longer loads (malformed, others may read it, a link) accepts no token until it is fixed:
/// keeping the set from before would keep working a token someone just revoked.
public final class LiveTokens: @unchecked Sendable {
    public let path: String
    private let lock = NSLock()
    private var loaded: Result<TokenFile, ConfigError>
    private var version: FileVersion?

    public init(_ file: TokenFile) {
        (path, loaded, version) = (file.path, .success(file), file.version)
    }

    /// The tokens now, or why none is accepted.
    public func current() -> Result<TokenFile, ConfigError> {
        let now = FileVersion.of(path)
        lock.lock()
        defer { lock.unlock() }
        guard now != version else { return loaded }
        do {
            let file = try TokenFile.load(path)
            (loaded, version) = (.success(file), file.version)
            ServiceLog.logger("api").notice("\(path) changed: \(file.tokens.count) tokens now (\(file.tokens.map(\.name).joined(separator: ", ")))")
        } catch {
            (loaded, version) = (.failure(error), now)
            ServiceLog.logger("api").error("\(error); no API token is accepted until it is fixed")
        }
        return loaded
    }
}
