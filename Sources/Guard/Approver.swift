import Foundation
import Glibc

/// Who approves: an identity, not a string. The name is normalized (trimmed, case folded,
/// Unicode NFC), so `alice`, ` alice` and `ALICE` are one person; where the approval came from
/// says how the identity was established.
///
/// From the CLI it is the operating-system user who ran it, read from the owner of the answer
/// file it left (the kernel says who made a file; `--by` cannot change that): the user's name,
/// or `uid N` when it has none. Only for root is `SUDO_USER` taken as the person (root acting for
/// a sudo user; root could claim anything anyway). `--by` is kept beside it as a label.
public struct Approver: Hashable, Codable, Sendable, CustomStringConvertible {
    public var name: String
    public var uid: UInt32?
    /// How the identity was established: `cli`, `cli via sudo`, `control socket`, `api`, `panel`, `in-process`.
    public var via: String
    /// What the person wrote with `--by`, recorded, never counted.
    public var label: String?

    public init(_ name: String, uid: UInt32? = nil, via: String = "in-process", label: String? = nil) {
        self.name = Self.normalize(name)
        self.uid = uid
        self.via = via
        self.label = label
    }

    public static func normalize(_ name: String) -> String {
        name.precomposedStringWithCanonicalMapping.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
    }

    public var description: String {
        name + (uid.map { " (uid \($0), \(via))" } ?? " (\(via))") + (label.map { " labelled \"\($0)\"" } ?? "")
    }

    /// The identity of an operating-system user the kernel vouched for: the owner of an answer
    /// file (`via` cli), or the process at the other end of the control socket.
    public static func owner(uid: UInt32, sudoUser: String?, label: String?, via: String = "cli") -> Approver {
        if uid == 0, let sudoUser, !normalize(sudoUser).isEmpty {
            return Approver(sudoUser, uid: uid, via: "\(via) via sudo", label: label)
        }
        return Approver(userName(uid) ?? "uid \(uid)", uid: uid, via: via, label: label)
    }

    /// The operating-system user running this process (SUDO_USER when root through sudo).
    public static func ofThisProcess(label: String? = nil) -> Approver {
        owner(uid: getuid(), sudoUser: ProcessInfo.processInfo.environment["SUDO_USER"], label: label)
    }

    static func userName(_ uid: UInt32) -> String? {
        var entry = passwd()
        var found: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &found) == 0, found != nil, let name = entry.pw_name else { return nil }
        return String(cString: name)
    }
}
