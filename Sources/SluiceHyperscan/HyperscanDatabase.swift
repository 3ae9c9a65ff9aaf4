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

    /// Compiles `set`. A literal Hyperscan rejects, or a set too large for its
    /// compiler, is `PipelineError.backendUnavailable` with Hyperscan's own
    /// message and the pattern number; callers fall back to the built-in matcher.
    public init(_ set: PatternSet, library: HyperscanLibrary) throws(PipelineError) {
        self.library = library
        let n = set.count
        guard n < Int(UInt32.max) else {
            throw .backendUnavailable(backend: "hyperscan", reason: "\(n) literals are more than Hyperscan takes")
        }
        // Same dedupe as ScanTable: first pattern number wins after folding.
        var seen = Set<[UInt8]>()
        var ids: [UInt32] = []
        var lens: [Int] = []
        var starts: [Int] = []
        var blob: [UInt8] = []
        let lengths = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: max(n, 1))
        lengths.initialize(repeating: 0)
        for (i, literal) in set.literals.enumerated() {
            lengths[i] = UInt32(literal.count)
            let key = set.caseInsensitive ? literal.map(foldASCII) : literal
            guard seen.insert(key).inserted else { continue }
            ids.append(UInt32(i))
            lens.append(literal.count)
            starts.append(blob.count)
            blob += literal
        }
        seen = []
        let flags = [UInt32](repeating: set.caseInsensitive ? HyperscanLibrary.flagCaseless : 0, count: ids.count)
        var database: OpaquePointer? = nil
        var error: UnsafeMutableRawPointer? = nil
        let result = blob.withUnsafeBufferPointer { bytes in
            let base = UnsafeRawPointer(bytes.baseAddress!).assumingMemoryBound(to: CChar.self)
            let expressions: [UnsafePointer<CChar>?] = starts.map { base + $0 }
            return library.hs_compile_lit_multi(
                expressions, flags, ids, lens, UInt32(ids.count), HyperscanLibrary.modeBlock, nil, &database, &error)
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
            lengths.deallocate()
            throw .backendUnavailable(
                backend: "hyperscan", reason: "hs_compile_lit_multi of \(ids.count) literals failed: \(reason)")
        }
        raw = database
        self.lengths = lengths
        maxLength = set.maxLength
        caseInsensitive = set.caseInsensitive
        distinctLiterals = ids.count
    }

    deinit {
        _ = library.hs_free_database(raw)
        lengths.deallocate()
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

    /// Compiles `set` and makes `workers` scratch regions (one allocated, the rest cloned).
    public init(_ set: PatternSet, workers: Int, library: HyperscanLibrary) throws(PipelineError) {
        database = try HyperscanDatabase(set, library: library)
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
