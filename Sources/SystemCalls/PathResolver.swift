import CShim
import Glibc

/// Resolves a path the way the kernel would for a process — relative to its working directory
/// or a directory descriptor it holds, `/proc/self` meaning that process, following symlinks
/// and the magic links of /proc (`/proc/PID/root`, `cwd`, `fd/N`) — into the canonical path
/// the guard decides on, with the identity of the object found there. What is then opened is
/// that path with symlinks refused (``ObjectOpener``), so a symlink swapped in after the check
/// fails the open instead of redirecting it.
///
/// One resolver for every caller: the loop's own micro-steps (``forSupervisor``) and the
/// mediators of supervised programs, which run it on their thread with the program's
/// filesystem identity, so a directory the program cannot search fails here as in the kernel.
public struct PathResolver {
    public struct Resolved: Equatable, Sendable {
        /// Absolute, no `.`, `..`, `//` or symlink in it (except the last component when it was
        /// not to be followed).
        public var path: String
        /// Whether the last component exists (an `O_CREAT` open or a rename target need not).
        public var exists: Bool
        /// What is at `path` (not followed when it is a last component left as a link), when it exists.
        public var object: FileObject?

        public init(path: String, exists: Bool, object: FileObject?) {
            self.path = path
            self.exists = exists
            self.object = object
        }
    }

    /// The calling thread (`tid`, as notified) and its process (`tgid`).
    public var tid: Int32
    public var tgid: () -> Int32

    public init(tid: Int32, tgid: @escaping () -> Int32) {
        self.tid = tid
        self.tgid = tgid
    }

    /// The supervisor resolving for itself: its calling thread, `/proc/self` its own process.
    public static func forSupervisor() -> PathResolver {
        let pid = getpid()
        return PathResolver(tid: worldos_gettid(), tgid: { pid })
    }

    static let maximumLinks = 40

    /// `dirfd` is AT_FDCWD or a descriptor of the caller's; errors are errno values.
    public func resolve(_ path: String, dirfd: Int32, followLast: Bool) throws(Errno) -> Resolved {
        guard !path.isEmpty else { throw Errno(ENOENT) }
        var stack: [String] = []
        if !path.hasPrefix("/") {
            let base = dirfd == AT_FDCWD ? "/proc/\(tid)/cwd" : "/proc/\(tid)/fd/\(dirfd)"
            guard dirfd == AT_FDCWD || dirfd >= 0 else { throw Errno(EBADF) }
            let target = try Self.readLink(base, missing: EBADF)
            guard target.hasPrefix("/") else { throw Errno(ENOTDIR) }
            stack = target.split(separator: "/").map(String.init)
        }
        var pending: [Substring] = path.split(separator: "/", omittingEmptySubsequences: true).reversed()
        var links = 0
        var exists = true
        while let part = pending.popLast() {
            if part == "." { continue }
            if part == ".." {
                if !stack.isEmpty { stack.removeLast() }
                continue
            }
            var name = String(part)
            if stack == ["proc"] && (name == "self" || name == "thread-self") {
                // The program's /proc/self, not the supervisor's.
                if name == "thread-self" { stack += ["\(tgid())", "task"]; name = "\(tid)" } else { name = "\(tgid())" }
            }
            let isLast = pending.allSatisfy { $0 == "." }
            let candidate = "/" + (stack + [name]).joined(separator: "/")
            var info = stat()
            if lstat(candidate, &info) != 0 {
                let e = errno
                if e == ENOENT && isLast {
                    stack.append(name)
                    exists = false
                    break
                }
                throw Errno(e)
            }
            if info.st_mode & S_IFMT == S_IFLNK && (!isLast || followLast) {
                links += 1
                guard links <= Self.maximumLinks else { throw Errno(ELOOP) }
                let target = try Self.readLink(candidate, missing: ENOENT)
                if target.hasPrefix("/") { stack = [] }
                // A link to something with no path (a pipe, a socket, a deleted file) resolves to
                // nothing that exists, as reopening it through /proc would need.
                pending += target.split(separator: "/", omittingEmptySubsequences: true).reversed()
                continue
            }
            if !isLast && info.st_mode & S_IFMT != S_IFDIR { throw Errno(ENOTDIR) }
            stack.append(name)
        }
        let resolved = "/" + stack.joined(separator: "/")
        var info = stat()
        guard exists, lstat(resolved, &info) == 0 else { return Resolved(path: resolved, exists: false, object: nil) }
        return Resolved(path: resolved, exists: true, object: FileObject(info))
    }

    /// A path's parent directory and last name, for the calls that act on a name in a directory.
    public static func split(_ path: String) -> (parent: String, name: String) {
        guard let slash = path.lastIndex(of: "/"), path != "/" else { return ("/", ".") }
        let parent = String(path[..<slash])
        return (parent.isEmpty ? "/" : parent, String(path[path.index(after: slash)...]))
    }

    public static func readLink(_ path: String, missing: Int32) throws(Errno) -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buffer, Int(PATH_MAX))
        guard n >= 0 else { throw Errno(errno == ENOENT ? missing : errno) }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
