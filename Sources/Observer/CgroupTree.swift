import Glibc
import SystemCalls

/// Every process's cgroup (v2) at once, from the unified hierarchy's `cgroup.procs` files: one
/// read per cgroup instead of /proc/PID/cgroup per process, which the kernel answers under its
/// cgroup locks, walking every hierarchy (~11 µs a process on a machine with v1 and v2 mounted,
/// ~7 ms of a full refresh of 600 processes).
///
/// The paths are the ones /proc/PID/cgroup's `0::` line shows only when the hierarchy is mounted
/// at the reader's cgroup namespace root; `read` checks that on the reader itself (its own pid
/// must be found where its own /proc/self/cgroup says) and gives nil otherwise. A process not
/// found (it started after the walk, or moved during it) is read from /proc as before.
public enum CgroupTree {
    /// Where the unified (v2) hierarchy is mounted from its root, from a mountinfo text; nil if
    /// it is not, or its mount point is written with escapes.
    static func mountPoint(mountinfo: [UInt8]) -> String? {
        for line in mountinfo.split(separator: UInt8(ascii: "\n")) {
            let fields = line.split(separator: UInt8(ascii: " "))
            // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
            guard fields.count >= 7, let dash = fields.firstIndex(where: { $0.elementsEqual("-".utf8) }),
                  dash + 1 < fields.count, fields[dash + 1].elementsEqual("cgroup2".utf8),
                  fields[3].elementsEqual("/".utf8), !fields[4].contains(UInt8(ascii: "\\")) else { continue }
            return String(decoding: fields[4], as: UTF8.self)
        }
        return nil
    }

    /// Each process's cgroup path under `mount` ("/" for the root cgroup), walking at most
    /// `limit` cgroups; nil if the tree cannot be read whole, a `cgroup.procs` file holds
    /// something other than pids, or there are more cgroups than the limit.
    static func walk(_ mount: String, limit: Int = 4096) -> [Int32: String]? {
        var found: [Int32: String] = [:]
        var pending: [(path: String, name: String)] = [(mount, "/")]
        var walked = 0
        while let (path, name) = pending.popLast() {
            walked += 1
            guard walked <= limit, let pids = readAt(AT_FDCWD, path + "/cgroup.procs").flatMap(parsePids) else { return nil }
            for pid in pids { found[pid] = name }
            guard let dir = opendir(path) else { return nil }
            defer { closedir(dir) }
            while let entry = readdir(dir) {
                guard entry.pointee.d_type == UInt8(DT_DIR) else { continue }
                let child = entryName(entry)
                guard child != ".", child != ".." else { continue }
                pending.append((path + "/" + child, name == "/" ? "/" + child : name + "/" + child))
            }
        }
        return found
    }

    /// The decimal pids of a `cgroup.procs` file, one a line; nil if unreadable or malformed.
    static func parsePids(_ bytes: [UInt8]) -> [Int32]? {
        var pids: [Int32] = []
        for line in bytes.split(separator: UInt8(ascii: "\n")) {
            guard let pid: Int32 = decimal(line) else { return nil }
            pids.append(pid)
        }
        return pids
    }

    /// Each process's cgroup path from the unified hierarchy this machine mounts (per
    /// `procRoot`/self/mountinfo), or nil where there is none or it disagrees with /proc about
    /// the reader itself (see the type's note).
    public static func read(procRoot: String) -> [Int32: String]? {
        readAt(AT_FDCWD, procRoot + "/self/mountinfo").flatMap(mountPoint).flatMap { read(mount: $0, procRoot: procRoot) }
    }

    /// The walk of the hierarchy mounted at `mount`, if it agrees with /proc about the reader itself.
    static func read(mount: String, procRoot: String) -> [Int32: String]? {
        guard let tree = walk(mount), let own = readAt(AT_FDCWD, procRoot + "/self/cgroup", shortReadEnds: true).map(parseCgroup),
              tree[getpid()] == own else { return nil }
        return tree
    }
}
