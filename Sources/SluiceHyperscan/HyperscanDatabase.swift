#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceOps

/// A pattern set compiled by Hyperscan's literal compiler (`hs_compile_lit_multi`,
/// block mode) so that it reports exactly what `ScanTable` and `ScanOp` do:
///
/// - every occurrence, overlapping ones included: no `HS_FLAG_SINGLEMATCH`;
/// - the literal's bytes as they are, NUL included (the literal API takes lengths);
/// - `-i` as `HS_FLAG_CASELESS`, which like `foldASCII` folds ASCII letters only;
/// - exact duplicates (after folding, for `-i`) compiled once, under the first
///   pattern number, which is the Hyperscan id, so a match is reported once
///   and names the same pattern as the built-in engine;
/// - start = end − the literal's length (literals have one length, so no
///   start-of-match flag is needed).
///
/// A compiled database can be kept in Sluice's cache directory
/// (`HyperscanCaching`), so that the next command with the same set loads it
/// instead of compiling again (Hyperscan's compile runs on one thread: about
/// 0.03 s for 1,000 literals and 0.3 s for 10,000 on the H100 machine).
///
/// Owns the `hs_database_t` and frees it in deinit.
public final class HyperscanDatabase: @unchecked Sendable {
    let library: HyperscanLibrary
    let raw: OpaquePointer
    /// Bytes of pattern i, by pattern number (never written after init).
    let lengths: UnsafeMutableBufferPointer<UInt32>
    /// The longest literal, which bounds how far past a chunk's start limit a match can end.
    public let maxLength: Int
    /// Whether the database matches with ASCII letters folded (`-i`).
    public let caseInsensitive: Bool
    /// Literals compiled (the set less its duplicates).
    public let distinctLiterals: Int
    /// Where the database came from.
    public let origin: HyperscanOrigin

    /// Compiles `set`, or loads it from the cache `caching` names. A literal
    /// Hyperscan rejects, or a set too large for its compiler, is
    /// `PipelineError.backendUnavailable` with Hyperscan's own message and
    /// the pattern number; callers fall back to the built-in matcher. The
    /// cache never makes it fail: a cache file that is missing, damaged,
    /// for another set or another Hyperscan is passed over and rewritten.
    public init(_ set: PatternSet, library: HyperscanLibrary, caching: HyperscanCaching = .off) throws(PipelineError) {
        guard set.count < Int(UInt32.max) else {
            throw .backendUnavailable(backend: "hyperscan", reason: "\(set.count) literals are more than Hyperscan takes")
        }
        let literals = DistinctLiterals(set)
        let cache = HyperscanDatabaseCache(caching, literals: literals, caseInsensitive: set.caseInsensitive, library: library)
        if let loaded = cache?.load() {
            raw = loaded
            origin = .cache(path: cache?.path ?? "")
        } else {
            let began = ContinuousClock.now
            raw = try Self.compile(literals, caseInsensitive: set.caseInsensitive, library: library)
            let seconds = (ContinuousClock.now - began).inSeconds
            let stored = cache?.store(raw) == true ? cache?.path : nil
            origin = .compiled(seconds: seconds, cachedAt: stored)
        }
        self.library = library
        lengths = .allocate(capacity: max(set.count, 1))
        lengths.initialize(repeating: 0)
        for (i, literal) in set.literals.enumerated() { lengths[i] = UInt32(literal.count) }
        maxLength = set.maxLength
        caseInsensitive = set.caseInsensitive
        distinctLiterals = literals.ids.count
    }

    /// Whether `caching` holds a database file for `set` (a file that turns
    /// out damaged is compiled over when the set is scanned).
    public static func isCached(_ set: PatternSet, library: HyperscanLibrary, caching: HyperscanCaching) -> Bool {
        guard let cache = HyperscanDatabaseCache(
            caching, literals: DistinctLiterals(set), caseInsensitive: set.caseInsensitive, library: library)
        else { return false }
        return access(cache.path, R_OK) == 0
    }

    /// `hs_compile_lit_multi` of the distinct literals, each under its pattern number.
    private static func compile(
        _ literals: DistinctLiterals, caseInsensitive: Bool, library: HyperscanLibrary
    ) throws(PipelineError) -> OpaquePointer {
        let ids = literals.ids
        let flags = [UInt32](repeating: caseInsensitive ? HyperscanLibrary.flagCaseless : 0, count: ids.count)
        var database: OpaquePointer? = nil
        var error: UnsafeMutableRawPointer? = nil
        let result = literals.blob.withUnsafeBufferPointer { bytes in
            let base = UnsafeRawPointer(bytes.baseAddress!).assumingMemoryBound(to: CChar.self)
            let expressions: [UnsafePointer<CChar>?] = literals.starts.map { base + $0 }
            return library.hs_compile_lit_multi(
                expressions, flags, ids, literals.lengths, UInt32(ids.count), HyperscanLibrary.modeBlock, nil, &database, &error)
        }
        guard result == HyperscanLibrary.success, let database else {
            var reason = HyperscanLibrary.describe(result)
            if let error {
                let details = CompileError(raw: error)
                if let m = details.message { reason = m }
                let e = details.expression
                if e >= 0, e < ids.count { reason += " (literal \(ids[e]))" }
                _ = library.hs_free_compile_error(error)
            }
            throw .backendUnavailable(
                backend: "hyperscan", reason: "hs_compile_lit_multi of \(ids.count) literals failed: \(reason)")
        }
        return database
    }

    deinit {
        _ = library.hs_free_database(raw)
        lengths.deallocate()
    }
}

/// Where a `HyperscanDatabase` came from, for `--verbose`.
public enum HyperscanOrigin: Sendable, Equatable {
    /// Compiled in this process, in `seconds`; `cachedAt` is the cache file written, if any.
    case compiled(seconds: Double, cachedAt: String?)
    /// Loaded from the cache file at `path`.
    case cache(path: String)
}

/// The literals Hyperscan compiles: the set less its duplicates (after
/// folding, for `-i`; the first pattern number wins, as in `ScanTable`),
/// their bytes end to end.
struct DistinctLiterals {
    /// Pattern numbers, which are the Hyperscan ids.
    var ids: [UInt32] = []
    /// Each one's length.
    var lengths: [Int] = []
    /// Each one's offset in `blob`.
    var starts: [Int] = []
    /// Their bytes, end to end.
    var blob: [UInt8] = []

    init(_ set: PatternSet) {
        var seen = Set<[UInt8]>()
        for (i, literal) in set.literals.enumerated() {
            let key = set.caseInsensitive ? literal.map(foldASCII) : literal
            guard seen.insert(key).inserted else { continue }
            ids.append(UInt32(i))
            lengths.append(literal.count)
            starts.append(blob.count)
            blob += literal
        }
    }
}

/// A Hyperscan scratch region: what one thread needs to run `hs_scan`. One
/// per thread, never shared (Hyperscan answers HS_SCRATCH_IN_USE otherwise).
/// Owns the `hs_scratch_t` and frees it in deinit.
public final class HyperscanScratch: @unchecked Sendable {
    let library: HyperscanLibrary
    let raw: OpaquePointer

    /// A scratch region sized for `database` (`hs_alloc_scratch`).
    public init(for database: HyperscanDatabase) throws(PipelineError) {
        library = database.library
        var scratch: OpaquePointer? = nil
        let result = library.hs_alloc_scratch(database.raw, &scratch)
        guard result == HyperscanLibrary.success, let scratch else {
            throw .backendUnavailable(
                backend: "hyperscan", reason: "hs_alloc_scratch failed: \(HyperscanLibrary.describe(result))")
        }
        raw = scratch
    }

    private init(library: HyperscanLibrary, raw: OpaquePointer) {
        self.library = library
        self.raw = raw
    }

    /// Another region like this one, for another thread (`hs_clone_scratch`).
    public func clone() throws(PipelineError) -> HyperscanScratch {
        var copy: OpaquePointer? = nil
        let result = library.hs_clone_scratch(raw, &copy)
        guard result == HyperscanLibrary.success, let copy else {
            throw .backendUnavailable(
                backend: "hyperscan", reason: "hs_clone_scratch failed: \(HyperscanLibrary.describe(result))")
        }
        return HyperscanScratch(library: library, raw: copy)
    }

    deinit {
        _ = library.hs_free_scratch(raw)
    }
}

/// A compiled set and one scratch region per worker thread, made when the
/// scan table is installed: worker w scans only with `scratch(worker: w)`.
public final class HyperscanMatcher: @unchecked Sendable {
    /// The compiled literal set the scratch regions are for.
    public let database: HyperscanDatabase
    private let scratches: [HyperscanScratch]

    /// Compiles `set` (or loads it from the cache `caching` names) and makes
    /// `workers` scratch regions (one allocated, the rest cloned).
    public init(_ set: PatternSet, workers: Int, library: HyperscanLibrary, caching: HyperscanCaching = .off) throws(PipelineError) {
        database = try HyperscanDatabase(set, library: library, caching: caching)
        let first = try HyperscanScratch(for: database)
        var all = [first]
        for _ in 1..<max(workers, 1) { all.append(try first.clone()) }
        scratches = all
    }

    /// Scratch regions made, one per worker thread.
    public var workers: Int { scratches.count }

    /// Worker `w`'s own scratch region, nil for a worker it was not made for.
    public func scratch(worker w: Int) -> HyperscanScratch? {
        w >= 0 && w < scratches.count ? scratches[w] : nil
    }
}
