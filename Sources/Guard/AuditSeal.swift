import Crypto
import Foundation
import Glibc

/// What keeps an audit log from being cut short or rewritten unnoticed, beside its hash chain:
///
/// - signed checkpoints in the log: every ``checkpointEvery`` synced records (and when a log is
///   opened), a `checkpoint` record carrying an Ed25519 signature over the seq and hash of the
///   record before it, made with a key only the supervisor holds (a 0600 file in a 0700 folder
///   outside the run folder). Whoever rewrites the log and re-hashes it cannot sign the new hashes;
/// - the chain's head (seq and hash of the last synced record), kept outside the log, in the same
///   folder: a log whose last records were deleted ends before its head, and one rewritten from
///   the first record on no longer has the head's hash at the head's seq.
///
/// What remains possible: someone who can read the key (root on this machine) can rewrite log,
/// checkpoints and head together. Anchoring the head off the machine (the fleet link publishes
/// it) is what closes that.
public final class AuditSeal: @unchecked Sendable {
    public let directory: String
    let key: Curve25519.Signing.PrivateKey
    public let publicKey: Curve25519.Signing.PublicKey
    public static let checkpointEvery = 64

    /// The folder that holds the key and the heads: `WORLDOS_KEYS`, else /var/lib/worldos for
    /// root and ~/.local/state/worldos for anyone else.
    public static var defaultDirectory: String {
        if let set = ProcessInfo.processInfo.environment["WORLDOS_KEYS"], !set.isEmpty { return set }
        return getuid() == 0 ? "/var/lib/worldos" : NSHomeDirectory() + "/.local/state/worldos"
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The supervisor's seal: its key, made on first use.
    public init(directory: String = AuditSeal.defaultDirectory) throws(Failure) {
        self.directory = directory
        let file = directory + "/audit-ed25519.key"
        do {
            try FileManager.default.createDirectory(atPath: directory + "/heads", withIntermediateDirectories: true)
        } catch {
            throw Failure(description: "cannot make the key folder \(directory): \(error.localizedDescription); set WORLDOS_KEYS to a folder you may write")
        }
        chmod(directory, 0o700)
        if let raw = FileManager.default.contents(atPath: file) {
            var info = stat()
            guard stat(file, &info) == 0, info.st_mode & 0o077 == 0 else {
                throw Failure(description: "\(file) may be read by others (mode \(String(info.st_mode & 0o777, radix: 8))); chmod 600 it, or remove it to make a new key")
            }
            guard let loaded = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw) else {
                throw Failure(description: "\(file) is not an Ed25519 key (32 raw bytes); move it aside to make a new one")
            }
            key = loaded
        } else {
            key = Curve25519.Signing.PrivateKey()
            let fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw Failure(description: "cannot create \(file): \(String(cString: strerror(errno)))") }
            let raw = Array(key.rawRepresentation)
            let written = write(fd, raw, raw.count)
            fsync(fd)
            close(fd)
            guard written == raw.count else { throw Failure(description: "cannot write \(file)") }
            try? Data(key.publicKey.rawRepresentation.base64EncodedString().utf8).write(to: URL(fileURLWithPath: directory + "/audit-ed25519.pub"))
        }
        publicKey = key.publicKey
    }

    /// The public key alone, for checking a log (`worldos audit verify` needs no private key).
    public static func publicKey(in directory: String) -> Curve25519.Signing.PublicKey? {
        guard let text = FileManager.default.contents(atPath: directory + "/audit-ed25519.pub"),
              let raw = Data(base64Encoded: String(decoding: text, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else { return nil }
        return try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
    }

    static func message(seq: Int, hash: String) -> Data { Data("worldos-audit-checkpoint\n\(seq)\n\(hash)".utf8) }

    func sign(seq: Int, hash: String) -> String {
        (try? key.signature(for: Self.message(seq: seq, hash: hash)).base64EncodedString()) ?? ""
    }

    static func valid(_ signature: String, seq: Int, hash: String, key: Curve25519.Signing.PublicKey) -> Bool {
        guard let raw = Data(base64Encoded: signature) else { return false }
        return key.isValidSignature(raw, for: message(seq: seq, hash: hash))
    }

    /// The key's short name, written into each checkpoint.
    public var fingerprint: String { Self.fingerprint(publicKey) }
    static func fingerprint(_ key: Curve25519.Signing.PublicKey) -> String {
        "ed25519:" + String(AuditLog.hex(Array(key.rawRepresentation)).prefix(16))
    }

    // MARK: heads

    /// Where a log's head is kept: named by the log's absolute path.
    public static func headPath(for log: String, in directory: String) -> String {
        let absolute = URL(fileURLWithPath: log).standardizedFileURL.resolvingSymlinksInPath().path
        return directory + "/heads/" + String(AuditLog.hex(Array(absolute.utf8)).prefix(24)) + ".head"
    }

    public struct Head: Equatable, Sendable {
        public var seq: Int
        public var hash: String
    }

    /// `seq hash path` — the path only for a person looking in the folder.
    static func readHead(_ path: String) -> Head? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let parts = String(decoding: data, as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard parts.count >= 2, let seq = Int(parts[0]), parts[1].count == 64 else { return nil }
        return Head(seq: seq, hash: String(parts[1]))
    }
}
