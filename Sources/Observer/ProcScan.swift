import Glibc
import StateGraph
import SystemCalls

/// The buffers a refresh's scanning threads share. Each thread touches only its own share:
/// items i ≡ worker (mod threads), their visits, and context[worker].
struct ScanShare: @unchecked Sendable {
    let items: UnsafeBufferPointer<ScanItem>
    let out: UnsafeMutableBufferPointer<ProcEntry.Visit>
    let context: UnsafeMutableBufferPointer<ScanContext>
    /// Written once, by the one thread that takes the dump.
    let dumped: UnsafeMutablePointer<[UInt64: SocketEntry]?>
}

/// What one assembly thread gathers: the parts, and where each went.
struct AssembledParts {
    var nodes: [Node] = []
    var edges: [Edge] = []
    var placed: [(pid: Int32, nodes: Range<Int>, edges: Range<Int>)] = []
    /// The shared objects each part refers to, a key per reference.
    var keys: [Int32: [ObjectKey]] = [:]
}

/// What the other gathers: the shared objects, and their nodes in the order of their places.
struct AssembledObjects {
    var shared = SharedObjects()
    var made: [Node] = []
}

/// What the two assembly threads read (the entries, the socket tables, the last objects) and
/// write (each its own half).
struct AssembleShare: @unchecked Sendable {
    let order: [(key: Int32, value: ProcEntry)]
    let entries: [Int32: ProcEntry]
    let sockets: [UInt64: [UInt64: SocketEntry]]
    let previous: SharedObjects
    let parts: UnsafeMutablePointer<AssembledParts>
    let objects: UnsafeMutablePointer<AssembledObjects>
}

/// One process a refresh visits: its pid, the entry kept from the last refresh (nil: read it
/// anew), and whether its stat file and fd directory may stay open.
struct ScanItem {
    let pid: Int32
    let existing: ProcEntry?
    let keepOpen: Bool
    /// Whether a process whose main thread has not run may be taken as unchanged.
    var trustRuns = false
    /// Read anew, taking over this entry's kept descriptors.
    var adopt: ProcEntry? = nil
}

/// What one scanning thread keeps to itself during a refresh; merged after.
struct ScanContext {
    /// Descriptor tables may be read as 0..<size of the fd directory (the live procfs).
    let denseTables: Bool
    /// The live /proc's path, where the observer's own process is among those read.
    var liveRoot: String?
    /// Each process's cgroup, when a full refresh read them all at once.
    var cgroups: [Int32: String]?
    /// When the observer's own process is read: the descriptors it keeps open on the others,
    /// by number, classified from what was known when they were opened instead of a readlink
    /// each (a busy machine's supervisor holds two per process, and every process that comes
    /// or goes changes its table).
    var ownKept: [Int32: KeptDescriptor] = [:]
    /// Where `ownKept` comes from, asked the first time the own process's table is read.
    var ownKeptSource: (() -> [Int32: KeptDescriptor])?
    var paths: PathStatCache
    var stats = RefreshStats()
    /// Stat lines and directory listings are read into this.
    var buffer = [UInt8](repeating: 0, count: 1 << 14)
    /// A descriptor's link is read into this.
    var link = [UInt8](repeating: 0, count: 4096)

    /// Read the link of descriptor `n` under `dirFD` into `link`: its length, or nil (errno says why).
    mutating func readLink(_ dirFD: Int32, _ n: Int32) -> Int? {
        let length = link.withUnsafeMutableBytes { buffer in withDecimal(n) { readlinkat(dirFD, $0, buffer.baseAddress!, buffer.count) } }
        return length >= 0 ? length : nil
    }
}

/// A descriptor the observer keeps open, as its own table shows it.
struct KeptDescriptor {
    var fd: Int32
    var target: String
    var stat: Glibc.stat
}
