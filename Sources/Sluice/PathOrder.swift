#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore

/// Byte order of paths: the order of `scan`'s output and of its walk.
///
/// Paths are bytes (`RawPath`), compared with `memcmp`: a sort of 40,000
/// paths element by element was a quarter of a small-file scan's
/// main-thread time.
public enum PathOrder {
    /// True when `a`'s bytes sort before `b`'s (a prefix sorts first).
    public static func precedes(_ a: RawPath, _ b: RawPath) -> Bool {
        compare(a, b) < 0
    }

    /// Negative, zero or positive as `a`'s bytes sort before, equal or after `b`'s.
    public static func compare(_ a: RawPath, _ b: RawPath) -> Int {
        a.bytes.withUnsafeBytes { pa in b.bytes.withUnsafeBytes { pb in compare(pa, pb) } }
    }

    private static func compare(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
        let common = min(a.count, b.count)
        if common > 0, let pa = a.baseAddress, let pb = b.baseAddress {
            let c = memcmp(pa, pb, common)
            if c != 0 { return Int(c) }
        }
        return a.count - b.count
    }

    /// `paths` in byte order, each byte sequence once.
    public static func sortedUnique(_ paths: [RawPath]) -> [RawPath] {
        var sorted = paths.sorted(by: precedes)
        var kept = 0
        for i in sorted.indices where kept == 0 || compare(sorted[kept - 1], sorted[i]) != 0 {
            sorted.swapAt(kept, i)
            kept += 1
        }
        sorted.removeLast(sorted.count - kept)
        return sorted
    }
}
