import CShim
import Glibc

// Reading procfs and sysfs quickly: whole small files from a directory descriptor, links,
// numbered directory entries, without a String or an allocation where none is needed.

public func entryName(_ entry: UnsafeMutablePointer<dirent>) -> String {
    withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
}

/// The names in a directory (`.` and `..` too), in the order the filesystem gives them; none
/// when it cannot be opened.
public func directoryNames(_ path: String) -> [String] {
    guard let dir = opendir(path) else { return [] }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) { names.append(entryName(entry)) }
    return names
}

/// A whole small file read from offset 0 of an open descriptor (fresh each time for /proc files).
/// With `shortReadEnds`, a read shorter than the buffer is taken as the end: true of files
/// procfs generates in one go (a stat line), never of seq_file tables like /proc/net/tcp, which
/// hand over whole records per read and so return short reads before their end.
public func preadAll(_ fd: Int32, shortReadEnds: Bool = false) -> [UInt8]? {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 4096) { chunk -> [UInt8]? in
        var out: [UInt8] = []
        var offset = 0
        while true {
            guard case .success(let n) = Syscall.retrying({ pread(fd, chunk.baseAddress, chunk.count, off_t(offset)) }) else { return nil }
            if n == 0 { return out }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: chunk[0..<n]))
            if shortReadEnds && n < chunk.count { return out }
            offset += n
        }
    }
}

/// A whole small file under a directory descriptor; nil if it vanished or cannot be read.
public func readAt(_ dirFD: Int32, _ path: String, shortReadEnds: Bool = false) -> [UInt8]? {
    let fd = openat(dirFD, path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    return preadAll(fd, shortReadEnds: shortReadEnds)
}

public func readLinkAt(_ dirFD: Int32, _ path: UnsafePointer<CChar>) -> String? {
    withUnsafeTemporaryAllocation(of: CChar.self, capacity: 4096) { buffer -> String? in
        let n = readlinkat(dirFD, path, buffer.baseAddress!, buffer.count)
        guard n >= 0 else { return nil }
        return UnsafeRawBufferPointer(start: buffer.baseAddress, count: n).withMemoryRebound(to: UInt8.self) {
            String(decoding: $0, as: UTF8.self)
        }
    }
}

/// `n` (not negative) as a C string of decimal digits, without allocating.
public func withDecimal<R>(_ n: Int32, _ body: (UnsafePointer<CChar>) -> R) -> R {
    withUnsafeTemporaryAllocation(of: CChar.self, capacity: 12) { digits in
        var value = UInt32(n)
        var start = 11
        digits[start] = 0
        repeat {
            start -= 1
            digits[start] = CChar(48 + value % 10)
            value /= 10
        } while value > 0
        return body(digits.baseAddress! + start)
    }
}

/// The entries of a directory whose names are decimal numbers (/proc's processes, a process's
/// descriptors), read with getdents64 into `buffer` from the descriptor's current position,
/// without a String per entry. nil if the directory cannot be read (errno says why).
public func listNumbers(_ fd: Int32, buffer: inout [UInt8]) -> [Int32]? {
    var numbers: [Int32] = []
    while true {
        guard case .success(let n) = buffer.withUnsafeMutableBytes({ b in Syscall.retrying { worldos_getdents64(fd, b.baseAddress, b.count) } }) else {
            return nil
        }
        if n == 0 { return numbers }
        buffer.withUnsafeBytes { raw in
            // struct linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name.
            var record = 0
            while record < n {
                let length = Int(raw.loadUnaligned(fromByteOffset: record + 16, as: UInt16.self))
                var value: Int32 = 0
                var digits = 0
                var i = record + 19
                while i < record + length, raw[i] != 0 {
                    guard raw[i] >= 0x30, raw[i] <= 0x39, digits < 9 else { digits = -1; break }
                    value = value * 10 + Int32(raw[i] - 0x30)
                    digits += 1
                    i += 1
                }
                if digits > 0 { numbers.append(value) }
                record += max(length, 1)
            }
        }
    }
}
