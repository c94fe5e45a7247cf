import Glibc

/// Resolves a path the way the kernel would for a supervised program — relative to its working
/// directory or a directory descriptor it holds, `/proc/self` meaning the program, following
/// symlinks — into the canonical path the guard decides on. What is then opened is that path
/// with symlinks refused (``Mediator``), so a symlink swapped in after the check fails the
/// open instead of redirecting it.
///
/// Runs on the mediator's thread with the program's filesystem identity, so a directory the
/// program cannot search fails here as it would in the kernel.
struct PathResolver {
    struct Resolved: Equatable {
        /// Absolute, no `.`, `..`, `//` or symlink in it (except the last component when it was
        /// not to be followed).
        var path: String
        /// Whether the last component exists (an `O_CREAT` open or a rename target need not).
        var exists: Bool
    }

    /// The calling thread (`tid`, as notified) and its process (`tgid`).
    var tid: Int32
    var tgid: () -> Int32

    static let maximumLinks = 40

    /// `dirfd` is AT_FDCWD or a descriptor of the program's; errors are errno values.
    func resolve(_ path: String, dirfd: Int32, followLast: Bool) throws(Errno) -> Resolved {
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
        return Resolved(path: "/" + stack.joined(separator: "/"), exists: exists)
    }

    /// A path's parent directory and last name, for the calls that act on a name in a directory.
    static func split(_ path: String) -> (parent: String, name: String) {
        guard let slash = path.lastIndex(of: "/"), path != "/" else { return ("/", ".") }
        let parent = String(path[..<slash])
        return (parent.isEmpty ? "/" : parent, String(path[path.index(after: slash)...]))
    }

    static func readLink(_ path: String, missing: Int32) throws(Errno) -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buffer, Int(PATH_MAX))
        guard n >= 0 else { throw Errno(errno == ENOENT ? missing : errno) }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A system call's errno, carried as an error.
struct Errno: Error, Equatable {
    var code: Int32
    init(_ code: Int32) { self.code = code }
}
