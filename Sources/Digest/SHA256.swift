/// SHA-256 (FIPS 180-4), for frame hashes and the audit chain. Small and dependency-free so the
/// core stays free of C; checked against the standard test vectors.
public struct SHA256: Sendable {
    private var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
    private var buffer: [UInt8] = []
    private var length: UInt64 = 0

    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    public init() {}

    public mutating func update<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        length &+= UInt64(bytes.count)
        if let done: Void = bytes.withContiguousStorageIfAvailable({ absorb($0) }) { return done }
        absorb(Array(bytes))
    }

    private mutating func absorb(_ bytes: [UInt8]) { bytes.withUnsafeBufferPointer { absorb($0) } }

    private mutating func absorb(_ input: UnsafeBufferPointer<UInt8>) {
        var offset = 0
        if !buffer.isEmpty {
            let take = min(64 - buffer.count, input.count)
            buffer.append(contentsOf: input[0..<take])
            offset = take
            guard buffer.count == 64 else { return }
            let block = buffer
            block.withUnsafeBufferPointer { compressBlocks($0.baseAddress!, count: 1) }
            buffer.removeAll(keepingCapacity: true)
        }
        let whole = (input.count - offset) / 64
        if whole > 0 { compressBlocks(input.baseAddress! + offset, count: whole) }
        buffer.append(contentsOf: input[(offset + whole * 64)...])
    }

    public mutating func finish() -> [UInt8] {
        let bits = length &* 8
        var tail: [UInt8] = buffer + [0x80]
        while tail.count % 64 != 56 { tail.append(0) }
        for i in (0..<8).reversed() { tail.append(UInt8(truncatingIfNeeded: bits >> (UInt64(i) * 8))) }
        tail.withUnsafeBufferPointer { compressBlocks($0.baseAddress!, count: $0.count / 64) }
        buffer = []
        return h.flatMap { w in (0..<4).map { UInt8(truncatingIfNeeded: w >> (24 - 8 * UInt32($0))) } }
    }

    private mutating func compressBlocks(_ base: UnsafePointer<UInt8>, count: Int) {
        let w = UnsafeMutablePointer<UInt32>.allocate(capacity: 64)
        defer { w.deallocate() }
        var s = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
        SHA256.k.withUnsafeBufferPointer { k in
            for block in 0..<count {
                let p = base + block * 64
                for i in 0..<16 {
                    w[i] = UInt32(p[4 * i]) << 24 | UInt32(p[4 * i + 1]) << 16 | UInt32(p[4 * i + 2]) << 8 | UInt32(p[4 * i + 3])
                }
                for i in 16..<64 {
                    let a = w[i - 15], b = w[i - 2]
                    let s0 = (a >> 7 | a << 25) ^ (a >> 18 | a << 14) ^ (a >> 3)
                    let s1 = (b >> 17 | b << 15) ^ (b >> 19 | b << 13) ^ (b >> 10)
                    w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
                }
                var (a, b, c, d, e, f, g, hh) = s
                for i in 0..<64 {
                    let t1 = hh &+ ((e >> 6 | e << 26) ^ (e >> 11 | e << 21) ^ (e >> 25 | e << 7)) &+ ((e & f) ^ (~e & g)) &+ k[i] &+ w[i]
                    let t2 = ((a >> 2 | a << 30) ^ (a >> 13 | a << 19) ^ (a >> 22 | a << 10)) &+ ((a & b) ^ (a & c) ^ (b & c))
                    hh = g; g = f; f = e; e = d &+ t1; d = c; c = b; b = a; a = t1 &+ t2
                }
                s = (s.0 &+ a, s.1 &+ b, s.2 &+ c, s.3 &+ d, s.4 &+ e, s.5 &+ f, s.6 &+ g, s.7 &+ hh)
            }
        }
        h = [s.0, s.1, s.2, s.3, s.4, s.5, s.6, s.7]
    }

    public static func hex<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var s = SHA256()
        s.update(bytes)
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(64)
        for byte in s.finish() { text.append(digits[Int(byte >> 4)]); text.append(digits[Int(byte & 15)]) }
        return String(decoding: text, as: UTF8.self)
    }
}
