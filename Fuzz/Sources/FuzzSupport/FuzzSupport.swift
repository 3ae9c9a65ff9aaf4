// Shared by the fuzz targets: reading structured values out of fuzzer bytes,
// exactly sized buffers (so AddressSanitizer sees one byte past the end),
// independent reference implementations to check results against, and the
// check that turns a violated property into a crash libFuzzer records.
#if canImport(Glibc)
import Glibc
#endif
import SluiceCore
import SluiceOps

// MARK: checks

/// Stops the process (SIGABRT, which libFuzzer reports as a crash and saves the
/// input for) when `condition` is false: for properties that are not memory
/// errors (a wrong result, a round trip that changes bytes, a hang).
@inline(__always)
public func require(
    _ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
    file: StaticString = #fileID, line: UInt = #line
) {
    if !condition() { fail(message(), file: file, line: line) }
}

public func fail(_ message: String, file: StaticString = #fileID, line: UInt = #line) -> Never {
    let text = "\n==SLUICE-FUZZ== property violated at \(file):\(line): \(message)\n"
    let bytes = Array(text.utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    abort()
}

// MARK: reading input

/// Reads little-endian values from the fuzzer's bytes; past the end every read yields zeros.
public struct ByteReader {
    public let bytes: [UInt8]
    public private(set) var index = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var remaining: Int { bytes.count - index }
    public var isAtEnd: Bool { index >= bytes.count }

    public mutating func u8() -> UInt8 {
        guard index < bytes.count else { return 0 }
        defer { index += 1 }
        return bytes[index]
    }

    public mutating func u16() -> UInt16 { UInt16(u8()) | UInt16(u8()) << 8 }
    public mutating func u32() -> UInt32 { UInt32(u16()) | UInt32(u16()) << 16 }
    public mutating func u64() -> UInt64 { UInt64(u32()) | UInt64(u32()) << 32 }

    /// Up to `n` bytes (fewer at the end).
    public mutating func take(_ n: Int) -> [UInt8] {
        let k = max(0, min(n, remaining))
        defer { index += k }
        return Array(bytes[index..<(index + k)])
    }

    public mutating func rest() -> [UInt8] { take(remaining) }
}

/// Little-endian byte writing, for building seeds and expected images.
public struct ByteWriter {
    public var bytes: [UInt8] = []
    public init() {}
    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16(_ v: UInt16) { for i in 0..<2 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    public mutating func u32(_ v: UInt32) { for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    public mutating func u64(_ v: UInt64) { for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    public mutating func append(_ b: [UInt8]) { bytes += b }
}

// MARK: exactly sized memory

/// Runs `body` on a heap copy of `bytes` that is exactly `bytes.count` long
/// (never nil, even when empty), so that AddressSanitizer reports a read one
/// byte past the end, which a Swift array's spare capacity would hide.
public func withExactBytes<R>(_ bytes: [UInt8], _ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 16)
    defer { buffer.deallocate() }
    bytes.withUnsafeBytes { buffer.copyMemory(from: $0) }
    return try body(buffer)
}

/// The same for 32-bit words.
public func withExactWords<R>(_ words: [UInt32], _ body: (UnsafeMutableBufferPointer<UInt32>) throws -> R) rethrows -> R {
    let buffer = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: words.count)
    defer { buffer.deallocate() }
    _ = buffer.initialize(from: words)
    return try body(buffer)
}

// MARK: reference implementations

/// ASCII case folding written independently of `foldASCII`.
@inline(__always)
public func referenceFold(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5A ? b + 0x20 : b }

public struct Match: Hashable, Comparable, CustomStringConvertible {
    public var position: Int
    public var pattern: UInt32
    public init(_ position: Int, _ pattern: UInt32) {
        self.position = position
        self.pattern = pattern
    }
    public static func < (a: Match, b: Match) -> Bool { (a.position, a.pattern) < (b.position, b.pattern) }
    public var description: String { "(\(position), \(pattern))" }
}

/// Every (position, pattern) with position < startLimit where the literal
/// occurs, compared byte by byte; of literals equal after folding only the
/// first counts (the table keeps one pattern number per distinct literal).
public func referenceMatches(literals: [[UInt8]], caseInsensitive: Bool, text: [UInt8], startLimit: Int) -> [Match] {
    let fold: (UInt8) -> UInt8 = { caseInsensitive ? referenceFold($0) : $0 }
    let t = text.map(fold)
    var seen = Set<[UInt8]>()
    var distinct: [([UInt8], UInt32)] = []
    for (i, l) in literals.enumerated() {
        let f = l.map(fold)
        if seen.insert(f).inserted { distinct.append((f, UInt32(i))) }
    }
    var out: [Match] = []
    let limit = min(startLimit, t.count)
    guard limit > 0 else { return [] }
    for p in 0..<limit {
        for (f, i) in distinct where f.count <= t.count - p {
            var equal = true
            for j in 0..<f.count where t[p + j] != f[j] {
                equal = false
                break
            }
            if equal { out.append(Match(p, i)) }
        }
    }
    return out.sorted()
}

/// `grep -F -f` line splitting, written independently of `PatternSet.parseLines`.
public func referenceLines(_ bytes: [UInt8]) -> [[UInt8]] {
    bytes.split(separator: 0x0A, omittingEmptySubsequences: false).compactMap { line -> [UInt8]? in
        var l = Array(line)
        if l.last == 0x0D { l.removeLast() }
        return l.isEmpty ? nil : l
    }
}

/// The `count` opcode's result words for `chunk`.
public func referenceCount(_ chunk: UnsafeRawBufferPointer) -> [UInt32] {
    var w = [UInt32](repeating: 0, count: CountOp.resultWords)
    w[0] = UInt32(truncatingIfNeeded: chunk.count)
    for b in chunk { w[2 + Int(b)] &+= 1 }
    w[1] = w[2 + 0x0A]
    return w
}

// MARK: seeds

/// When SLUICE_FUZZ_WRITE_SEEDS names a directory, writes `seeds()` there
/// (one file per seed) and exits: how Fuzz/Corpus/<target>/ was made.
/// Called from each target's LLVMFuzzerInitialize.
public func writeSeedsIfAsked(_ seeds: () -> [(name: String, bytes: [UInt8])]) {
    guard let dir = getenv("SLUICE_FUZZ_WRITE_SEEDS").map({ String(cString: $0) }), !dir.isEmpty else { return }
    var prefix = ""
    for part in dir.split(separator: "/", omittingEmptySubsequences: false) {
        prefix += (prefix.isEmpty && !dir.hasPrefix("/") ? "" : "/") + part
        if !part.isEmpty { mkdir(prefix, 0o755) }
    }
    for seed in seeds() {
        let path = dir + "/" + seed.name
        guard let f = fopen(path, "wb") else { fail("cannot create \(path)") }
        if !seed.bytes.isEmpty { _ = seed.bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) } }
        fclose(f)
        print("wrote \(path) (\(seed.bytes.count) bytes)")
    }
    exit(0)
}

/// Literal bytes of an ASCII string.
public func ascii(_ s: String) -> [UInt8] { Array(s.utf8) }

// MARK: what the inputs reached

/// With SLUICE_FUZZ_STATS set, counts named outcomes and prints them at exit:
/// `SLUICE_FUZZ_STATS=1 <target> -runs=0 <corpus dir>` shows which paths the
/// corpus reaches (faults by code, opcodes that finished, ring and Hyperscan runs).
public enum Stats {
    nonisolated(unsafe) private static var counts: [String: Int] = [:]
    public static let enabled: Bool = {
        guard getenv("SLUICE_FUZZ_STATS") != nil else { return false }
        atexit {
            for (k, v) in Stats.counts.sorted(by: { $0.key < $1.key }) { print("stat: \(k) \(v)") }
        }
        return true
    }()

    @inline(__always)
    public static func count(_ key: @autoclosure () -> String) {
        if enabled { counts[key(), default: 0] += 1 }
    }
}
