import Glibc

/// What changes when a file is replaced, written, or has its mode or owner changed: its
/// identity, size, and modification and status-change times to the nanosecond. For noticing a
/// file edited behind the supervisor's back with one `lstat`.
public struct FileVersion: Equatable, Sendable {
    var device: UInt64, inode: UInt64, size: Int64
    var modified: Int, modifiedNanoseconds: Int, changed: Int, changedNanoseconds: Int

    public init(_ info: stat) {
        (device, inode, size) = (UInt64(info.st_dev), UInt64(info.st_ino), Int64(info.st_size))
        (modified, modifiedNanoseconds) = (info.st_mtim.tv_sec, info.st_mtim.tv_nsec)
        (changed, changedNanoseconds) = (info.st_ctim.tv_sec, info.st_ctim.tv_nsec)
    }

    /// The version of what is at `path` (not following a link); nil: nothing there.
    public static func of(_ path: String) -> FileVersion? {
        var info = stat()
        return lstat(path, &info) == 0 ? FileVersion(info) : nil
    }
}
