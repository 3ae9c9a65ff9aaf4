#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Byte order of paths: the order of `scan`'s output and of its walk.
///
/// `String`'s own `<` and `==` compare by canonical equivalence (two
/// different byte sequences can be equal), and comparing `utf8` views
/// element by element is slow on large trees (a sort of 40,000 paths was a
/// quarter of a small-file scan's main-thread time); this compares the
/// contiguous UTF-8 storage with `memcmp`.
public enum PathOrder {
    /// True when `a`'s bytes sort before `b`'s (a prefix sorts first).
    public static func precedes(_ a: String, _ b: String) -> Bool {
        compare(a, b) < 0
    }

    /// Negative, zero or positive as `a`'s bytes sort before, equal or after `b`'s.
    public static func compare(_ a: String, _ b: String) -> Int {
        let fast = a.utf8.withContiguousStorageIfAvailable { pa in
            b.utf8.withContiguousStorageIfAvailable { pb in compare(UnsafeRawBufferPointer(pa), UnsafeRawBufferPointer(pb)) }
        }
        if let fast, let result = fast { return result }
        // Bridged or otherwise non-contiguous strings: the same order, slower.
        if a.utf8.elementsEqual(b.utf8) { return 0 }
        return a.utf8.lexicographicallyPrecedes(b.utf8) ? -1 : 1
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
    public static func sortedUnique(_ paths: [String]) -> [String] {
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
