/// XXH64 (xxHash, 64-bit), as its specification defines it; checked
/// against the published test vectors in the tests.
public enum XXH64 {
    static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    /// The XXH64 of `bytes` with `seed`.
    public static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        let n = bytes.count
        var at = 0
        var h: UInt64
        if n >= 32 {
            var v = (seed &+ p1 &+ p2, seed &+ p2, seed, seed &- p1)
            while at + 32 <= n {
                v.0 = round(v.0, word64(bytes, at))
                v.1 = round(v.1, word64(bytes, at + 8))
                v.2 = round(v.2, word64(bytes, at + 16))
                v.3 = round(v.3, word64(bytes, at + 24))
                at += 32
            }
            h = rotl(v.0, 1) &+ rotl(v.1, 7) &+ rotl(v.2, 12) &+ rotl(v.3, 18)
            for lane in [v.0, v.1, v.2, v.3] { h = (h ^ round(0, lane)) &* p1 &+ p4 }
        } else {
            h = seed &+ p5
        }
        h &+= UInt64(n)
        while at + 8 <= n {
            h = rotl(h ^ round(0, word64(bytes, at)), 27) &* p1 &+ p4
            at += 8
        }
        if at + 4 <= n {
            let k = (0..<4).reduce(UInt64(0)) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) }
            h = rotl(h ^ (k &* p1), 23) &* p2 &+ p3
            at += 4
        }
        while at < n {
            h = rotl(h ^ (UInt64(bytes[at]) &* p5), 11) &* p1
            at += 1
        }
        h ^= h >> 33
        h &*= p2
        h ^= h >> 29
        h &*= p3
        h ^= h >> 32
        return h
    }

    /// The XXH64 of `bytes` with `seed`.
    public static func hash(_ bytes: [UInt8], seed: UInt64 = 0) -> UInt64 {
        bytes.withUnsafeBytes { hash($0, seed: seed) }
    }

    private static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 { rotl(acc &+ input &* p2, 31) &* p1 }
    private static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { x << r | x >> (64 - r) }
    private static func word64(_ b: UnsafeRawBufferPointer, _ at: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(b[at + $1]) << (8 * UInt64($1)) }
    }
}
