import CShim
import Glibc

/// The process's memory as a person reading a leak wants it: resident, and malloc's heap in use
/// beside what it holds free (a leak grows the first; fragmentation, the second).
public struct MemoryUse: Sendable {
    public var residentBytes: Int
    public var heapInUse: Int
    public var heapFree: Int

    /// Now (mallinfo2 walks every arena: for a scrape, not a hot path).
    public static func now() -> MemoryUse {
        let heap = mallinfo2()
        var resident = 0
        if let statm = readAt(AT_FDCWD, "/proc/self/statm", shortReadEnds: true),
           let pages = String(decoding: statm, as: UTF8.self).split(separator: " ").dropFirst().first.flatMap({ Int($0) }) {
            resident = pages * sysconf(Int32(_SC_PAGESIZE))
        }
        return MemoryUse(residentBytes: resident, heapInUse: Int(heap.uordblks + heap.hblkhd), heapFree: Int(heap.fordblks))
    }
}
