import CShim
import Glibc

/// The identity of a file-system object, whatever name reached it: the device it lives on and
/// its inode, with its type and, for a device node, the device it stands for. Two names (a
/// symlink, a hard link, a bind mount, /proc/PID/root/…) of one object have one identity.
public struct FileObject: Hashable, Sendable, CustomStringConvertible {
    public var device: UInt64
    public var inode: UInt64
    /// `st_mode & S_IFMT`.
    public var type: UInt32
    /// For a character or block device node: the device number it opens.
    public var deviceNumber: UInt64?

    public init(device: UInt64, inode: UInt64, type: UInt32, deviceNumber: UInt64? = nil) {
        self.device = device
        self.inode = inode
        self.type = type
        self.deviceNumber = deviceNumber
    }

    public init(_ info: stat) {
        let type = UInt32(info.st_mode) & UInt32(S_IFMT)
        self.init(device: UInt64(info.st_dev), inode: UInt64(info.st_ino), type: type,
                  deviceNumber: type == UInt32(S_IFCHR) || type == UInt32(S_IFBLK) ? UInt64(info.st_rdev) : nil)
    }

    /// The device number of `major:minor`, as glibc's makedev composes it (what `st_rdev` holds).
    public static func deviceNumber(major: UInt32, minor: UInt32) -> UInt64 {
        let (major, minor) = (UInt64(major), UInt64(minor))
        return (major & 0xFFFF_F000) << 32 | (major & 0xFFF) << 8 | (minor & 0xFFFF_FF00) << 12 | (minor & 0xFF)
    }

    /// What `path` names now, following symlinks (nil: nothing there, or not reachable).
    public static func at(_ path: String) -> FileObject? {
        var info = stat()
        return stat(path, &info) == 0 ? FileObject(info) : nil
    }

    /// What an open descriptor is.
    public static func of(descriptor fd: Int32) -> FileObject? {
        var info = stat()
        return fstat(fd, &info) == 0 ? FileObject(info) : nil
    }

    public var isCharacterDevice: Bool { type == UInt32(S_IFCHR) }
    public var isDirectory: Bool { type == UInt32(S_IFDIR) }

    /// `c 136:3` for a character device, `b 8:0` for a block device; nil for anything else.
    public var deviceName: String? {
        deviceNumber.map { (type == UInt32(S_IFCHR) ? "c " : "b ") + "\(worldos_device_major($0)):\(worldos_device_minor($0))" }
    }

    /// `DEV:INODE`, as a call's `object` argument carries it (and the trace shows it).
    public var description: String { "\(device):\(inode)" }

    /// The `device` and `inode` of a `DEV:INODE` text; nil when it is not one.
    public static func identity(_ text: String) -> (device: UInt64, inode: UInt64)? {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let d = UInt64(parts[0]), let i = UInt64(parts[1]) else { return nil }
        return (d, i)
    }
}

/// Opens exactly the object the guard decided on: the canonical path, with symlinks and /proc's
/// magic links refused on the way (openat2 `RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`), and
/// — when the decision named an object — the opened descriptor checked to be that object. A
/// name swapped between the check and the open fails (ELOOP for a link swapped in, ESTALE for
/// another file renamed over it) instead of reaching something undecided.
public enum ObjectOpener {
    /// A descriptor the caller owns (close it), or the errno.
    /// A relative `path` is looked up from `directory` (as openat would), links refused there too.
    public static func open(_ path: String, relativeTo directory: Int32 = AT_FDCWD, flags: Int32, mode: mode_t = 0o644,
                            expect: (device: UInt64, inode: UInt64)? = nil) -> Result<Int32, Errno> {
        var fd: Int32
        // openat2 refuses a mode with nothing to create.
        let mode = flags & O_CREAT != 0 ? UInt64(mode & 0o7777) : 0
        repeat {
            fd = worldos_openat2(directory, path, UInt64(UInt32(bitPattern: flags | O_CLOEXEC)), mode, worldos_resolve_no_links())
        } while fd < 0 && errno == EINTR
        guard fd >= 0 else { return .failure(Errno(errno)) }
        if let expect {
            guard let found = FileObject.of(descriptor: fd), found.device == expect.device, found.inode == expect.inode else {
                Glibc.close(fd)
                return .failure(Errno(ESTALE))
            }
        }
        return .success(fd)
    }
}
