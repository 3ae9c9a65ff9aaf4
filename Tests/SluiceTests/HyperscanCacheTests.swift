#if canImport(Glibc)
import Glibc
#endif
import SluiceCore
@testable import SluiceHyperscan
import SluiceOps
import Sluice
import Synchronization
import Testing

@testable import SluiceCache
@testable import SluiceThreads

/// Hyperscan databases kept in the cache directory: a database loaded from
/// it matches like one compiled now (both against the built-in matcher, the
/// oracle of the Hyperscan tests), and a file that is damaged, for another
/// set, or not a database is passed over, never trusted.
@Suite(.enabled(if: HyperscanLibrary.isAvailable, hyperscanSkipped))
struct HyperscanCacheTests {
    let library = try! HyperscanLibrary.shared.get()

    /// Every match of `database` over `text`, sorted.
    func matches(_ database: HyperscanDatabase, _ text: [UInt8]) throws -> [ScanMatch] {
        let scratch = try HyperscanScratch(for: database)
        var found: [ScanMatch] = []
        try text.withUnsafeBytes { raw in
            try HyperscanScanOp.forEachMatch(database: database, scratch: scratch, chunk: raw, startLimit: raw.count) {
                found.append(ScanMatch(offset: UInt64($0), pattern: Int($1)))
            }
        }
        return found.sorted()
    }

    /// The built-in matcher's matches, sorted.
    func oracle(_ set: PatternSet, _ text: [UInt8]) throws -> [ScanMatch] {
        var found: [ScanMatch] = []
        let table = ScanTable(set)
        try table.words.withUnsafeBufferPointer { words in
            let view = try ScanTableView(words)
            text.withUnsafeBytes { raw in
                ScanOp.forEachMatch(table: view, chunk: raw, startLimit: raw.count) {
                    found.append(ScanMatch(offset: UInt64($0), pattern: Int($1)))
                }
            }
        }
        return found.sorted()
    }

    func cachePath(_ origin: HyperscanOrigin) -> String? {
        switch origin {
        case .compiled(_, let path): return path
        case .cache(let path): return path
        }
    }

    @Test(arguments: 0..<8)
    func aCachedDatabaseMatchesLikeACompiledOne(seed: Int) throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (text, literals) = randomMatcherCase(seed: seed)
        let set = try PatternSet(literals: literals, caseInsensitive: seed % 2 == 1)
        #expect(!HyperscanDatabase.isCached(set, library: library, caching: .directory(dir.path)))
        let compiled = try HyperscanDatabase(set, library: library, caching: .directory(dir.path))
        guard case .compiled(_, let path?) = compiled.origin else {
            Issue.record("not compiled and cached: \(compiled.origin)")
            return
        }
        #expect(path.hasPrefix(dir.path + "/hyperscan-") && path.hasSuffix(".db"))
        // It holds the literals: its owner's alone.
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o600)
        #expect(HyperscanDatabase.isCached(set, library: library, caching: .directory(dir.path)))
        #expect(!HyperscanDatabase.isCached(set, library: library, caching: .off))
        let loaded = try HyperscanDatabase(set, library: library, caching: .directory(dir.path))
        #expect(loaded.origin == .cache(path: path))
        #expect(loaded.distinctLiterals == compiled.distinctLiterals && loaded.maxLength == compiled.maxLength)
        let expected = try oracle(set, text)
        #expect(try matches(compiled, text) == expected, "seed \(seed)")
        #expect(try matches(loaded, text) == expected, "seed \(seed)")
    }

    /// The same literals with and without -i, and a set that differs in one
    /// literal's pattern number, are different databases.
    @Test func everyPartOfTheSetIsInTheKey() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let words = [Array("Needle".utf8), Array("hay".utf8)]
        let plain = try HyperscanDatabase(PatternSet(literals: words), library: library, caching: .directory(dir.path))
        let folded = try HyperscanDatabase(
            PatternSet(literals: words, caseInsensitive: true), library: library, caching: .directory(dir.path))
        let swapped = try HyperscanDatabase(
            PatternSet(literals: words.reversed()), library: library, caching: .directory(dir.path))
        let paths = [plain, folded, swapped].map { cachePath($0.origin) }
        #expect(Set(paths.compactMap { $0 }).count == 3, "\(paths)")
        let text = Array("a NEEDLE, a needle and hay".utf8)
        #expect(try matches(folded, text).count == 3 && matches(plain, text).count == 1)
        #expect(try matches(swapped, text) == [ScanMatch(offset: 23, pattern: 0)])
    }

    @Test func aDamagedOrForeignFileIsPassedOverAndRewritten() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let a = try PatternSet(literals: [Array("alpha".utf8), Array("beta".utf8)])
        let b = try PatternSet(literals: [Array("gamma".utf8)])
        let text = Array("alphabet gamma beta alpha".utf8)
        let first = try HyperscanDatabase(a, library: library, caching: .directory(dir.path))
        let other = try HyperscanDatabase(b, library: library, caching: .directory(dir.path))
        let path = try #require(cachePath(first.origin))
        let good = readBytes(path)

        func reload(_ why: String) throws {
            let again = try HyperscanDatabase(a, library: library, caching: .directory(dir.path))
            guard case .compiled(_, path?) = again.origin else {
                Issue.record("\(why): not compiled again and rewritten: \(again.origin)")
                return
            }
            #expect(try matches(again, text) == oracle(a, text), "\(why)")
            #expect(readBytes(path) == good, "\(why): the file was not rewritten")
        }
        // A flipped byte (the checksum catches it), a truncated file, another set's file.
        dir.write(String(path.split(separator: "/").last!), good.enumerated().map { $0 == good.count - 3 ? $1 ^ 0x40 : $1 })
        try reload("a flipped byte")
        dir.write(String(path.split(separator: "/").last!), Array(good.prefix(good.count / 2)))
        try reload("a truncated file")
        dir.write(String(path.split(separator: "/").last!), readBytes(try #require(cachePath(other.origin))))
        try reload("another set's file")
        // A file whose checksum and description are right but whose database bytes are not one.
        let description = HyperscanDatabaseCache.describe(
            DistinctLiterals(a), caseInsensitive: false, version: library.version, platform: library.platform)
        #expect(try #require(CacheFiles.load(path: path, tag: "SLUICEH1")).starts(with: description))
        #expect(CacheFiles.store(path: path, tag: "SLUICEH1", payload: description + [UInt8](repeating: 0x5A, count: 64)))
        try reload("bytes that are not a database")
        // And the good file, once rewritten, is loaded.
        #expect(try HyperscanDatabase(a, library: library, caching: .directory(dir.path)).origin == .cache(path: path))
    }

    /// Writing a 33rd set leaves the 32 newest.
    @Test func theDirectoryKeepsTheNewestSets() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var paths: [String] = []
        for i in 0...HyperscanDatabaseCache.keep {
            let set = try PatternSet(literals: [Array("word\(i)".utf8)])
            paths.append(try #require(cachePath(HyperscanDatabase(set, library: library, caching: .directory(dir.path)).origin)))
            // Modification times a millisecond apart at least, so the order is plain.
            var times = [timespec(tv_sec: 1_000_000 + i, tv_nsec: 0), timespec(tv_sec: 1_000_000 + i, tv_nsec: 0)]
            #expect(utimensat(AT_FDCWD, paths[i], &times, 0) == 0)
        }
        let left = try directoryEntries(dir.path).filter { $0.hasPrefix("hyperscan-") }
        // Trimmed as the 33rd was written (before its time was set back): the oldest one went.
        #expect(left.count == HyperscanDatabaseCache.keep && !left.contains(String(paths[0].split(separator: "/").last!)))
    }

    /// Two writers storing the same set at once: each ends with a database
    /// that matches, and the file left is one the next load takes.
    @Test func twoWritersOfOneSet() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let literals = (0..<2000).map { Array("literal-\($0)".utf8) }
        let set = try PatternSet(literals: literals)
        let library = self.library
        let failures = Mutex(0)
        let threads = try (0..<4).map { _ in
            try PosixThread(name: "writer") {
                let ok = (try? HyperscanDatabase(set, library: library, caching: .directory(dir.path))) != nil
                if !ok { failures.withLock { $0 += 1 } }
            }
        }
        threads.forEach { $0.join() }
        #expect(failures.withLock { $0 } == 0)
        let after = try HyperscanDatabase(set, library: library, caching: .directory(dir.path))
        guard case .cache = after.origin else {
            Issue.record("not loaded after the writers: \(after.origin)")
            return
        }
        let text = Array("x literal-1999 literal-7 literal-20000".utf8)
        #expect(try matches(after, text) == oracle(set, text))
        #expect(try directoryEntries(dir.path).allSatisfy { !$0.hasSuffix(".tmp") })
    }

    @Test func cachingOffWritesNothing() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let set = try PatternSet(literals: [Array("x".utf8)])
        guard case .compiled(_, nil) = try HyperscanDatabase(set, library: library, caching: .off).origin else {
            Issue.record("caching off still cached")
            return
        }
        #expect(try directoryEntries(dir.path).isEmpty)
        // A directory that cannot be made (under a file): compiled, not cached, no error.
        let file = dir.write("file", [1])
        guard case .compiled(_, nil) = try HyperscanDatabase(set, library: library, caching: .directory(file + "/none")).origin
        else {
            Issue.record("cached into a missing directory")
            return
        }
    }

    /// `sluice scan -v` compiles once, then loads; the output is the same.
    @Test func theSecondCommandLoadsTheDatabase() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let text = dir.write("t", Array(String(repeating: "one two three four\n", count: 2000).utf8))
        var outputs: [String] = []
        var lines: [String] = []
        for _ in 0..<2 {
            let r = runShell(
                "SLUICE_HYPERSCAN_CACHE= XDG_CACHE_HOME=\"$1\" \"$0\" scan --backend cpu --cpu-engine hyperscan -v -e two -e our \"$2\"",
                [dir.path, text])
            #expect(r.status == 0, "\(r.stderr)")
            outputs.append(r.stdout)
            lines.append(r.stderr.split(separator: "\n").first { $0.contains("scan engine") }.map(String.init) ?? "")
        }
        #expect(lines[0].contains("compiled in") && lines[0].contains("cached at \(dir.path)/sluice/hyperscan-"), "\(lines[0])")
        #expect(lines[1].contains("loaded from \(dir.path)/sluice/hyperscan-"), "\(lines[1])")
        #expect(outputs[0] == outputs[1] && outputs[0].split(separator: "\n").count == 4000)
        // SLUICE_HYPERSCAN_CACHE=off (the tests' children run with it) compiles and keeps nothing;
        // a directory there keeps the databases in it.
        let off = runShell("XDG_CACHE_HOME=\"$1\" \"$0\" scan --backend cpu --cpu-engine hyperscan -v -e four \"$2\"", [dir.path, text])
        #expect(off.stderr.contains("compiled in") && !off.stderr.contains("cached at"), "\(off.stderr)")
        let named = runShell(
            "SLUICE_HYPERSCAN_CACHE=\"$1/own\" \"$0\" scan --backend cpu --cpu-engine hyperscan -v -e four \"$2\"", [dir.path, text])
        #expect(named.stderr.contains("cached at \(dir.path)/own/hyperscan-"), "\(named.stderr)")
    }
}

/// The cache directory keeps the files most recently written or used.
@Suite struct CacheFilesTests {
    @Test func onlyTheNewestFilesOfAKindAreKept() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        for i in 0..<6 {
            let path = dir.write("hyperscan-\(i).db", [UInt8(i)])
            var times = [timespec(tv_sec: 1_000_000 + i, tv_nsec: 0), timespec(tv_sec: 1_000_000 + i, tv_nsec: 0)]
            #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
        }
        dir.write("megakernel-sm_90-0.cubin", [1])
        CacheFiles.markUsed(path: dir.file("hyperscan-0.db"))  // used now: the newest
        CacheFiles.removeOldest(in: dir.path, prefix: "hyperscan-", suffix: ".db", keeping: 3)
        let left = (0..<6).filter { access(dir.file("hyperscan-\($0).db"), F_OK) == 0 }
        #expect(left == [0, 4, 5])
        #expect(access(dir.file("megakernel-sm_90-0.cubin"), F_OK) == 0)
    }

    @Test func aFileOfAnotherKindOrDamagedReadsAsMissing() {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let path = dir.file("f")
        #expect(CacheFiles.store(path: path, tag: "SLUICEH1", payload: [1, 2, 3]))
        #expect(CacheFiles.load(path: path, tag: "SLUICEH1") == [1, 2, 3])
        #expect(CacheFiles.load(path: path, tag: "SLUICEK1") == nil)
        var bytes = readBytes(path)
        bytes[bytes.count - 1] ^= 1
        dir.write("f", bytes)
        #expect(CacheFiles.load(path: path, tag: "SLUICEH1") == nil)
        #expect(CacheFiles.load(path: dir.file("missing"), tag: "SLUICEH1") == nil)
    }

    /// A file past the largest the cache reads is passed over by its size,
    /// before anything is read (a sparse 64 GiB file would take minutes to read).
    @Test func aFileLargerThanTheLimitIsNotRead() {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let path = dir.file("big")
        #expect(CacheFiles.store(path: path, tag: "SLUICEH1", payload: [1, 2, 3]))
        #expect(truncate(path, 64 << 30) == 0)
        let started = ContinuousClock.now
        #expect(CacheFiles.load(path: path, tag: "SLUICEH1") == nil)
        #expect(ContinuousClock.now - started < .seconds(10))
    }
}
