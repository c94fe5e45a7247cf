import CShim
import Glibc
import LoopCore
import StateGraph

/// Observes processes, their descriptors and what those refer to, from the real /proc.
///
/// Identity: a process is pid + start time (a reused pid is a new node); a regular file or
/// directory is device + inode; a character or block device is its major:minor; a pipe or
/// socket is its inode, and sockets carry their addresses and state from their own network
/// namespace: socket diagnostics (netlink) for the observer's, /proc/PID/net/* for others.
///
/// Incremental: each process's stat file and fd directory stay open; stat is re-read with one
/// pread and the directory fstat'ed; the descriptor table is re-read only when its size (on
/// procfs, the number of open descriptors) changed, when the process is new, or every `fullRescanEvery`
/// refreshes (which also catches a descriptor swapped for another with the count unchanged, and
/// TCP state changes). While the kernel's process events are all heard, a single-threaded
/// process whose schedstat (kept open too) reads as before has not run, and is not re-read at
/// all: what changes it without it running is its parent's exit, which the events tell; its
/// nice value set by another process waits until it runs or the next full refresh. /proc itself
/// is listed only when the kernel's process events say a process may have started since (a fork
/// of a new process, or events lost), or on a full refresh; without them (not root), every
/// refresh lists it. A refresh that finds nothing changed hands back the previous arrays; one
/// that finds a few processes changed, new or gone patches their parts of them; a full refresh,
/// or one where many changed, assembles them anew.
///
/// Parallel: processes are visited on one thread per core (at most four) when there are more
/// than a few dozen; each thread reads a process (a readlink per descriptor) and builds its
/// descriptor nodes and edges, and the refresh then gathers them and makes one node per shared
/// object. A dense descriptor table (0..<count, the count being the fd directory's size on the
/// live procfs) is read without listing the directory.
///
/// Races are normal: a process that exits between readdir and read, or a descriptor closed
/// between readdir and readlink, is counted in `raced` and skipped; the rest of the step stands.
public struct ProcObserver: Observing {
    public static let scope: Set<NodeKind> = [.process, .fileDescriptor, .file, .socket, .pipe, .anonInode]
    public let root: String
    private let cache: ProcCache

    /// - Parameters:
    ///   - root: the proc filesystem; a recorded tree in tests.
    ///   - includeMaps: also read /proc/PID/maps and add a `backs` edge from each mapped file.
    ///   - fullRescanEvery: re-read everything every this many refreshes (0: never).
    ///   - scanThreads: threads a refresh visits processes on; nil: one per online core, at most four.
    ///   - denseTables: read a descriptor table as 0..<count without listing it where procfs
    ///     gives the count (false: always list; tests compare the two).
    public init(root: String = "/proc", includeMaps: Bool = false, fullRescanEvery: Int = 20, scanThreads: Int? = nil,
                denseTables: Bool = true) {
        self.root = root
        let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let procfs = worldos_filesystem_magic(root) == 0x9FA0  // PROC_SUPER_MAGIC
        cache = ProcCache(root: root, includeMaps: includeMaps, fullRescanEvery: fullRescanEvery,
                          scanThreads: max(1, scanThreads ?? min(cores, 4)), denseTables: denseTables && procfs)
    }

    /// What the last refresh read, for tests and the benchmark.
    public var lastRefresh: RefreshStats { cache.stats }

    /// Whether the kernel's process events reach this observer, so a refresh lists /proc only
    /// when a process may have started (root and the live /proc; otherwise every refresh lists).
    public var hearsProcessStarts: Bool { cache.hearsProcessStarts }

    public mutating func observe(at now: Instant) throws -> Observation {
        try refresh(at: now, full: false)
    }

    /// Refresh; `full` ignores every cache.
    public mutating func refresh(at now: Instant, full: Bool) throws -> Observation {
        let (nodes, edges, supervisor, raced) = try cache.refresh(full: full)
        return Observation(time: now, scope: Self.scope, nodes: nodes, edges: edges, supervisor: supervisor, raced: raced,
                           stamp: cache.stamp, change: cache.change)
    }
}

/// What one refresh read.
public struct RefreshStats: Equatable, Sendable {
    public var full = false
    public var processesRead = 0
    public var statRereads = 0
    /// Processes taken as unchanged because their main thread had not run since the last look
    /// (their stat file and fd directory were not read).
    public var notRun = 0
    public var descriptorScans = 0
    /// Descriptor scans that listed the fd directory (the others read a dense table directly).
    public var listings = 0
    /// Whether /proc itself was listed (otherwise the processes were the ones last found: the
    /// kernel's process events said none had started).
    public var listedProcesses = false
    public var netTableReads = 0
    /// Processes whose cgroup was read from /proc/PID/cgroup (the others' came from the
    /// unified hierarchy's cgroup.procs files, read once per full refresh).
    public var cgroupReads = 0
    /// Socket tables read through socket diagnostics (netlink) instead of /proc/net.
    public var socketDumps = 0
    public var raced = 0
    public var changed = false
    /// Processes whose part of the last observation was patched in place (0: assembled anew).
    public var patched = 0

    mutating func add(_ other: RefreshStats) {
        processesRead += other.processesRead
        statRereads += other.statRereads
        notRun += other.notRun
        descriptorScans += other.descriptorScans
        listings += other.listings
        netTableReads += other.netTableReads
        cgroupReads += other.cgroupReads
        raced += other.raced
    }
}

public struct ObserverError: Error, CustomStringConvertible {
    public var path: String
    public var errno: Int32
    public var description: String { "cannot read \(path): \(String(cString: strerror(errno))); is /proc mounted?" }
}
