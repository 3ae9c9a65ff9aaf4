#if canImport(Glibc)
import Glibc
#endif
import SluiceCPU
import SluiceCore
import SluiceHyperscan
import SluiceIngest
import SluiceOps
import SluiceThreads
import Synchronization
import Testing

@testable import Sluice

/// Why the Hyperscan comparisons are skipped here, shown by the test runner.
let hyperscanSkipped = Comment(
    rawValue: "libhs.so.5 cannot be loaded here (\(HyperscanLibrary.unavailableReason ?? "")); "
        + "install libhyperscan-dev (Debian) to compare Hyperscan with the built-in engine")

/// One pattern set compiled for both engines, and one scratch region (this
/// test's own: tests run in parallel and scratch is never shared).
struct BothEngines {
    let patterns: PatternSet
    let table: ScanTable
    let database: HyperscanDatabase
    let scratch: HyperscanScratch

    init(_ literals: [[UInt8]], caseInsensitive: Bool = false) throws {
        patterns = try PatternSet(literals: literals, caseInsensitive: caseInsensitive)
        table = ScanTable(patterns)
        database = try HyperscanDatabase(patterns, library: try HyperscanLibrary.shared.get())
        scratch = try HyperscanScratch(for: database)
    }

    /// Every match starting before `startLimit` (default: the whole text), sorted, from each engine.
    func matches(_ text: [UInt8], startLimit: Int? = nil) throws -> (builtin: [ScanMatch], hyperscan: [ScanMatch]) {
        var builtin: [ScanMatch] = [], hyperscan: [ScanMatch] = []
        try table.words.withUnsafeBufferPointer { words in
            let view = try ScanTableView(words)
            try text.withUnsafeBytes { raw in
                let limit = startLimit ?? raw.count
                ScanOp.forEachMatch(table: view, chunk: raw, startLimit: limit) {
                    builtin.append(ScanMatch(offset: UInt64($0), pattern: Int($1)))
                }
                try HyperscanScanOp.forEachMatch(database: database, scratch: scratch, chunk: raw, startLimit: limit) {
                    hyperscan.append(ScanMatch(offset: UInt64($0), pattern: Int($1)))
                }
            }
        }
        return (builtin.sorted(), hyperscan.sorted())
    }

    /// One slot's result area from each engine: the outcome and the words.
    func slot(
        _ text: [UInt8], startLimit: Int, records: Int, flags: UInt32 = 0
    ) throws -> (builtin: (ScanOp.Outcome, [UInt32]), hyperscan: (ScanOp.Outcome, [UInt32])) {
        var b = [UInt32](repeating: 0xDEAD_BEEF, count: ScanOp.headerWords + 2 * records)
        var h = b
        var outcomes: (ScanOp.Outcome, ScanOp.Outcome) = (.fault(.badArguments), .fault(.badArguments))
        try table.words.withUnsafeBufferPointer { words in
            let view = try ScanTableView(words)
            try text.withUnsafeBytes { raw in
                outcomes.0 = b.withUnsafeMutableBufferPointer {
                    ScanOp.run(table: view, chunk: raw, startLimit: startLimit, flags: flags, into: $0)
                }
                outcomes.1 = try h.withUnsafeMutableBufferPointer {
                    try HyperscanScanOp.run(
                        database: database, scratch: scratch, chunk: raw, startLimit: startLimit, flags: flags, into: $0)
                }
            }
        }
        return ((outcomes.0, b), (outcomes.1, h))
    }

    /// Runs both engines on `text` and requires them to agree with each other
    /// and with the naive oracle; then does the same for slot result areas at
    /// a few start limits and capacities (including ones that overflow).
    func expectAgreement(
        _ text: [UInt8], _ context: String = "", sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let oracle = naiveMatches(text, patterns.literals, caseInsensitive: patterns.caseInsensitive)
        let (builtin, hyperscan) = try matches(text)
        expectSameMatches(builtin, oracle, "\(context) built-in vs oracle:", sourceLocation: sourceLocation)
        expectSameMatches(hyperscan, oracle, "\(context) hyperscan vs oracle:", sourceLocation: sourceLocation)
        let limits = Set([0, min(1, text.count), text.count / 2, max(0, text.count - 1), text.count]).sorted()
        for limit in limits {
            let inRange = oracle.filter { $0.offset < UInt64(limit) }
            for records in Set([0, 1, 3, inRange.count, inRange.count + 5]).sorted() {
                for flags in [0, ScanOp.countOnlyFlag] {
                    try expectSameSlot(
                        text, startLimit: limit, records: records, flags: flags, inRange: inRange,
                        "\(context) limit \(limit) records \(records) flags \(flags):", sourceLocation: sourceLocation)
                }
            }
        }
    }

    /// The slot contract: same outcome and header; when everything fit, the
    /// same records as a set; on overflow, every stored record a real match.
    func expectSameSlot(
        _ text: [UInt8], startLimit: Int, records: Int, flags: UInt32, inRange: [ScanMatch], _ context: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let (b, h) = try slot(text, startLimit: startLimit, records: records, flags: flags)
        #expect(b.0 == h.0, "\(context) outcomes", sourceLocation: sourceLocation)
        guard case .done = h.0 else {
            Issue.record("\(context) \(h.0)", sourceLocation: sourceLocation)
            return
        }
        #expect(Array(b.1[0..<4]) == Array(h.1[0..<4]), "\(context) headers", sourceLocation: sourceLocation)
        let found = Int(h.1[0]), storedCount = Int(h.1[2])
        #expect(found == inRange.count, "\(context) found", sourceLocation: sourceLocation)
        #expect(storedCount == (flags & ScanOp.countOnlyFlag != 0 ? 0 : min(found, records)), "\(context) stored",
                sourceLocation: sourceLocation)
        func stored(_ w: [UInt32]) -> [ScanMatch] {
            (0..<Int(w[2])).map { ScanMatch(offset: UInt64(w[4 + 2 * $0]), pattern: Int(w[5 + 2 * $0])) }.sorted()
        }
        if found == storedCount {
            expectSameMatches(stored(h.1), stored(b.1), "\(context) records", sourceLocation: sourceLocation)
        } else {
            let valid = Set(inRange)
            #expect(stored(h.1).allSatisfy(valid.contains), "\(context) overflow records", sourceLocation: sourceLocation)
        }
        // Words past the stored records are untouched.
        let used = ScanOp.headerWords + 2 * storedCount
        #expect(h.1[used...].allSatisfy { $0 == 0xDEAD_BEEF }, "\(context) wrote past its records",
                sourceLocation: sourceLocation)
    }
}

/// Scans `paths` through a full CPU engine (two workers, small chunks) with
/// the given `--cpu-engine`, and says which matcher ran.
func engineScan(
    _ paths: [String], _ literals: [[UInt8]], engine choice: ScanEngineChoice, caseInsensitive: Bool = false,
    chunk: Int = 8192, records: Int = 64, mode: ScanMode = .matches
) throws -> (files: [FileMatches], engine: ActiveScanEngine?, fallback: String?) {
    let patterns = try PatternSet(literals: literals, caseInsensitive: caseInsensitive)
    let engine = try Engine(
        EngineConfiguration(backend: .cpu, chunkBytes: chunk, slots: 4, workers: 2, cpuScanEngine: choice),
        resultWordsPerSlot: ScanJob.resultWords(records: mode == .count ? 0 : records))
    defer { try? engine.close() }
    var out: [FileMatches] = []
    _ = try ScanJob.run(
        scanner: try engine.makeScanner(), patterns: patterns, table: ScanTable(patterns), paths: paths.raw, mode: mode,
        onFile: { out.append($0) })
    return (out, engine.activeCPUScanEngine, engine.scanEngineFallback)
}

/// Both engines through the whole pipeline: each must match the oracle and the other.
func expectEnginesAgree(
    _ paths: [String], _ texts: [[UInt8]], _ literals: [[UInt8]], caseInsensitive: Bool = false, chunk: Int = 8192,
    records: Int = 64, expected: [[ScanMatch]]? = nil, sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let hs = try engineScan(paths, literals, engine: .hyperscan, caseInsensitive: caseInsensitive, chunk: chunk, records: records)
    let bi = try engineScan(paths, literals, engine: .builtin, caseInsensitive: caseInsensitive, chunk: chunk, records: records)
    guard case .hyperscan = hs.engine else {
        Issue.record("the CPU backend ran \(String(describing: hs.engine)), not Hyperscan (\(hs.fallback ?? ""))",
                     sourceLocation: sourceLocation)
        return
    }
    #expect(bi.engine == .builtin, sourceLocation: sourceLocation)
    #expect(hs.files.map(\.path) == paths && bi.files.map(\.path) == paths, sourceLocation: sourceLocation)
    for (i, text) in texts.enumerated() {
        let oracle = expected?[i] ?? naiveMatches(text, literals, caseInsensitive: caseInsensitive)
        #expect(hs.files[i].errors.isEmpty && bi.files[i].errors.isEmpty, "file \(i)", sourceLocation: sourceLocation)
        expectSameMatches(hs.files[i].matches, bi.files[i].matches, "file \(i) hyperscan vs built-in:", sourceLocation: sourceLocation)
        expectSameMatches(hs.files[i].matches, oracle, "file \(i) hyperscan vs oracle:", sourceLocation: sourceLocation)
        #expect(hs.files[i].count == UInt64(oracle.count) && bi.files[i].count == UInt64(oracle.count),
                "file \(i) counts", sourceLocation: sourceLocation)
    }
}

@Suite(.enabled(if: HyperscanLibrary.isAvailable, hyperscanSkipped))
struct HyperscanMatcherTests {
    /// The same random small-alphabet sets and texts as the built-in matcher's
    /// oracle test (ScanTests), through both engines.
    @Test(arguments: 0..<30)
    func randomSetsAgreeWithTheOracle(seed: Int) throws {
        let (text, literals) = randomMatcherCase(seed: seed)
        try BothEngines(literals, caseInsensitive: seed % 2 == 0).expectAgreement(text, "seed \(seed)")
    }

    @Test func overlappingPrefixAndSuffixLiterals() throws {
        let literals = ["a", "aa", "aaa", "ab", "b", "ba", "bab", "abab", "aba", "babab", "abababab"].map { Array($0.utf8) }
        let both = try BothEngines(literals)
        try both.expectAgreement(Array("abababababaaaabbbabababaaaaaaaab".utf8))
        try both.expectAgreement(Array("a".utf8))
        try both.expectAgreement(Array("b".utf8))
        try both.expectAgreement([])
        var rng = SeededRandom(state: 5)
        try both.expectAgreement((0..<5000).map { _ in UInt8.random(in: 97...98, using: &rng) })
    }

    /// `-i` folds ASCII letters only: Latin-1 0xC0 and 0xE0 stay distinct,
    /// and literals equal after folding are one, under the first number.
    @Test func caseInsensitiveIsASCIIOnly() throws {
        let literals: [[UInt8]] = [
            Array("Needle".utf8), Array("NEEDLE".utf8), Array("needle".utf8), [0xC0, 0x41], [0xE0, 0x61], [0x5B], [0x7B],
            Array("@`".utf8), Array("zZ".utf8),
        ]
        let both = try BothEngines(literals, caseInsensitive: true)
        let text = Array("NeEdLe needle NEEDLE".utf8) + [0xC0, 0x61, 0xE0, 0x41, 0xC0, 0x41, 0x5B, 0x7B, 0x40, 0x60, 0x40, 0x40]
            + Array("ZzZ zz".utf8)
        try both.expectAgreement(text)
        let (_, hyperscan) = try both.matches(text)
        #expect(hyperscan.filter { $0.pattern == 0 }.count == 3)
        #expect(!hyperscan.contains { $0.pattern == 1 || $0.pattern == 2 })
        var rng = SeededRandom(state: 6)
        let alphabet: [UInt8] = [0x41, 0x61, 0x5A, 0x7A, 0x40, 0x60, 0x5B, 0x7B, 0xC0, 0xE0]
        let random = try BothEngines(
            (0..<30).map { _ in (0..<Int.random(in: 1...4, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! } },
            caseInsensitive: true)
        try random.expectAgreement((0..<4000).map { _ in alphabet.randomElement(using: &rng)! })
    }

    @Test func binaryWithNULAndFF() throws {
        let literals: [[UInt8]] = [[0], [0, 0], [255], [255, 0, 255], [0, 255, 0, 255, 0], [1, 0], [255, 255, 255, 255, 255]]
        var rng = SeededRandom(state: 7)
        let text = (0..<6000).map { _ in ([0, 255, 1] as [UInt8]).randomElement(using: &rng)! }
        try BothEngines(literals).expectAgreement(text)
        try BothEngines(literals, caseInsensitive: true).expectAgreement(text)
    }

    /// Matches at offset 0 and ending at the last byte, and the start limit's edges.
    @Test func matchesAtTheEdges() throws {
        let literals = [Array("edge".utf8), Array("e".utf8), Array("ge".utf8)]
        let both = try BothEngines(literals)
        let text = Array("edge in the middle edge".utf8)
        try both.expectAgreement(text)
        let (_, all) = try both.matches(text)
        #expect(all.first == ScanMatch(offset: 0, pattern: 0))
        #expect(all.contains(ScanMatch(offset: UInt64(text.count - 4), pattern: 0)))
        #expect(all.last == ScanMatch(offset: UInt64(text.count - 1), pattern: 1))
        // A match starting just before the limit, ending in the overlap, counts; one starting at it does not.
        let (_, limited) = try both.matches(text, startLimit: text.count - 4)
        #expect(!limited.contains { $0.offset >= UInt64(text.count - 4) })
        let (_, upToLast) = try both.matches(text, startLimit: text.count - 3)
        #expect(upToLast.contains(ScanMatch(offset: UInt64(text.count - 4), pattern: 0)))
    }

    @Test func denseMatchesOverflowTheArea() throws {
        let both = try BothEngines([Array("a".utf8), Array("aa".utf8), Array("aaa".utf8)])
        let text = [UInt8](repeating: 97, count: 3000)
        try both.expectAgreement(text)
        let (b, h) = try both.slot(text, startLimit: 2000, records: 7)
        #expect(b.0 == h.0 && h.0 == .done(resultWords: UInt32(ScanOp.headerWords + 14)))
        #expect(Array(h.1[0..<4]) == [6000, 0, 7, 0])
    }

    @Test func exactDuplicatesReportTheFirstPatternNumber() throws {
        let literals = ["abc", "x", "abc", "ABC", "x", "bc", "Abc"].map { Array($0.utf8) }
        let text = Array("abcxABCabcAbcx".utf8)
        for ci in [false, true] {
            let both = try BothEngines(literals, caseInsensitive: ci)
            try both.expectAgreement(text, "ci \(ci)")
            let (_, h) = try both.matches(text)
            let used = Set(h.map(\.pattern))
            #expect(used == (ci ? [0, 1, 5] : [0, 1, 3, 5, 6]), "ci \(ci): \(used.sorted())")
        }
    }

    /// Bad arguments fault exactly as ScanOp does.
    @Test func faultsMatchTheBuiltInEngine() throws {
        let both = try BothEngines([Array("ab".utf8)])
        let text = Array("abab".utf8)
        let (b, h) = try both.slot(text, startLimit: 5, records: 4)
        #expect(b.0 == .fault(.badArguments) && h.0 == b.0)
        var tiny = [UInt32](repeating: 0, count: 3)
        let outcome = try text.withUnsafeBytes { raw in
            try tiny.withUnsafeMutableBufferPointer {
                try HyperscanScanOp.run(
                    database: both.database, scratch: both.scratch, chunk: raw, startLimit: 4, flags: 0, into: $0)
            }
        }
        #expect(outcome == .fault(.resultOverflow))
    }

    /// Each clone is a scratch region of its own: threads scanning at once agree.
    @Test func clonedScratchRegionsScanConcurrently() throws {
        let patterns = try PatternSet(literals: ["ab", "ba", "aba"].map { Array($0.utf8) })
        let matcher = try HyperscanMatcher(patterns, workers: 4, library: try HyperscanLibrary.shared.get())
        #expect(matcher.workers == 4 && matcher.scratch(worker: 4) == nil)
        var rng = SeededRandom(state: 8)
        let text = (0..<200_000).map { _ in UInt8.random(in: 97...98, using: &rng) }
        let counts = Mutex<[Int]>([])
        var threads: [PosixThread] = []
        for w in 0..<4 {
            threads.append(try PosixThread(name: "hyperscan test \(w)") {
                var n = 0
                for _ in 0..<5 {
                    text.withUnsafeBytes { raw in
                        try? HyperscanScanOp.forEachMatch(
                            database: matcher.database, scratch: matcher.scratch(worker: w)!, chunk: raw,
                            startLimit: raw.count) { _, _ in n += 1 }
                    }
                }
                counts.withLock { $0.append(n) }
            })
        }
        threads.forEach { $0.join() }
        let expected = 5 * naiveMatches(text, patterns.literals).count
        #expect(counts.withLock { $0 } == [expected, expected, expected, expected])
    }
}

@Suite(.enabled(if: HyperscanLibrary.isAvailable, hyperscanSkipped))
struct HyperscanEngineTests {
    /// Literals planted across every chunk boundary, at offset 0 and at the last byte.
    @Test func straddlingChunkBoundaries() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let stride = 4096
        var rng = SeededRandom(state: 31)
        var text = (0..<(12 * stride + 100)).map { _ in UInt8.random(in: 97...99, using: &rng) }
        let needle = Array("NEEDLE-xyz".utf8)
        let long = (0..<300).map { _ in UInt8.random(in: 65...90, using: &rng) }
        var plants: [Int] = [0, text.count - needle.count]
        for b in 1...12 { plants += [b * stride - 3, b * stride - needle.count, b * stride - 1, b * stride] }
        for p in plants where p + needle.count <= text.count { text.replaceSubrange(p..<(p + needle.count), with: needle) }
        text.replaceSubrange((5 * stride - 150)..<(5 * stride + 150), with: long)
        text[text.count - 1] = UInt8(ascii: "Q")
        let literals = [needle, long, Array("c".utf8), Array("ab".utf8), Array("Q".utf8), Array("xyzQ".utf8)]
        let path = dir.write("plants", text)
        try expectEnginesAgree([path], [text], literals, records: 16)
        try expectEnginesAgree([path], [text], literals, caseInsensitive: true, records: 16)
    }

    @Test func caseInsensitiveBinaryEmptyAndManyFiles() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (paths, texts) = writeBinaryEdgeFiles(dir, seed: 32)
        let literals: [[UInt8]] = [[65, 66], [0, 255, 0], [10], [98, 97, 66, 98, 65], [0], [255, 255], [97, 65]]
        try expectEnginesAgree(paths, texts, literals, caseInsensitive: true)
        try expectEnginesAgree(paths, texts, literals)
    }

    /// Every slot overflows: the host rescans, both engines drop nothing, and
    /// count-only mode counts the same.
    @Test func denseMatchesOverflowIntoHostRescans() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let text = [UInt8](repeating: 97, count: 50_000)
        let path = dir.write("aaaa", text)
        let literals = [Array("a".utf8), Array("aa".utf8), Array("aaa".utf8)]
        try expectEnginesAgree([path], [text], literals, records: 7)
        let counted = try engineScan([path], literals, engine: .hyperscan, mode: .count)
        #expect(counted.engine == .hyperscan(version: try HyperscanLibrary.shared.get().version))
        #expect(counted.files[0].count == UInt64(3 * 50_000 - 3) && counted.files[0].matches.isEmpty)
    }

    @Test func aHundredThousandLiterals() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 33)
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)
        var literals = (0..<100_000).map { _ in (0..<12).map { _ in alphabet.randomElement(using: &rng)! } }
        var text = (0..<300_000).map { _ in alphabet.randomElement(using: &rng)! }
        for k in 0..<200 {
            let pattern = Int.random(in: 0..<literals.count, using: &rng)
            let p = k * 1499 % (text.count - 12)
            text.replaceSubrange(p..<(p + 12), with: literals[pattern])
        }
        literals.append(Array("zz".utf8))  // a short one among long ones
        literals.append(literals[17])  // an exact duplicate: reported as 17
        let path = dir.write("big", text)
        var index: [[UInt8]: Int] = [:]
        for (i, l) in literals.enumerated() where index[l] == nil { index[l] = i }
        var expected: [ScanMatch] = []
        for p in 0..<text.count {
            for len in [2, 12] where p + len <= text.count {
                if let i = index[Array(text[p..<(p + len)])] { expected.append(ScanMatch(offset: UInt64(p), pattern: i)) }
            }
        }
        #expect(expected.count >= 200)
        try expectEnginesAgree([path], [text], literals, chunk: 16384, records: 256, expected: [expected.sorted()])
    }

    /// A set Hyperscan cannot compile (a 1 MiB literal is past its length
    /// limit) falls back to the built-in matcher with a reason, not an error.
    @Test func aCompileFailureFallsBackToTheBuiltInEngine() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 34)
        let huge = (0..<(1 << 20)).map { _ in UInt8.random(in: 97...122, using: &rng) }
        var text = (0..<100_000).map { _ in UInt8.random(in: 97...99, using: &rng) }
        text.replaceSubrange(777..<780, with: Array("xyz".utf8))
        let path = dir.write("t", text)
        let literals = [Array("xyz".utf8), huge, Array("ab".utf8)]
        let got = try engineScan([path], literals, engine: .hyperscan, chunk: 4 << 20)
        #expect(got.engine == .builtin)
        #expect(got.fallback?.contains("Hyperscan could not compile") == true, "\(got.fallback ?? "no reason")")
        #expect(got.files[0].errors.isEmpty)
        expectSameMatches(got.files[0].matches, naiveMatches(text, literals))
    }

    /// `auto`'s estimate weighs the engine `--cpu-engine` runs, and a set's
    /// first scan pays Hyperscan's compile (the tests' children keep no cache).
    @Test func theEstimateWeighsTheEngineThatRuns() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let path = dir.write("t", Array(String(repeating: "one two three\n", count: 100).utf8))
        func estimate(_ engine: String) -> String {
            let r = run([sluiceExecutable, "scan", "--count", "-v", "--cpu-engine", engine, "-e", "two", path])
            return r.stderr.split(separator: "\n").first { $0.contains("estimate:") }.map(String.init) ?? r.stderr
        }
        #expect(estimate("builtin").contains("estimate: cpu (built-in matcher) "), "\(estimate("builtin"))")
        #expect(estimate("auto").contains("estimate: cpu (Hyperscan, not cached: its compile "), "\(estimate("auto"))")
        #expect(estimate("hyperscan").contains("estimate: cpu (Hyperscan, not cached: its compile "))
    }

    /// `sluice scan -v` names the engine; both engines print the same bytes.
    @Test func theCommandSaysWhichEngineRuns() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 35)
        let path = dir.write("t", (0..<100_000).map { _ in ([0, 97, 98, 65, 10] as [UInt8]).randomElement(using: &rng)! })
        var outputs: [String] = []
        for engine in ["hyperscan", "builtin", "auto"] {
            let r = run([sluiceExecutable, "scan", "--backend", "cpu", "--chunk-size", "8K", "--cpu-engine", engine, "-v",
                         "-i", "-e", "ab", "-e", #"a\x00"#, "-e", "aba", path])
            #expect(r.status == 0, "\(r.stderr)")
            let line = r.stderr.split(separator: "\n").first { $0.contains("scan engine") } ?? ""
            #expect(line.contains(engine == "builtin" ? "built-in" : "Hyperscan"), "\(line)")
            outputs.append(r.stdout)
        }
        #expect(!outputs[0].isEmpty && outputs[0] == outputs[1] && outputs[1] == outputs[2])
    }
}

/// What happens without Hyperscan; runs everywhere (a missing library is
/// simulated with SLUICE_HYPERSCAN_LIBRARY).
@Suite struct HyperscanAbsentTests {
    static let missing = "/nonexistent/libhs.so.5"

    @Test func askingForHyperscanWithoutItExitsTwo() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let path = dir.write("t", Array("abc".utf8))
        var commands = [["/usr/bin/env", "\(HyperscanLibrary.libraryVariable)=\(Self.missing)", sluiceExecutable]]
        if !HyperscanLibrary.isAvailable { commands.append([sluiceExecutable]) }
        for prefix in commands {
            let r = run(prefix + ["scan", "--backend", "cpu", "--cpu-engine", "hyperscan", "-e", "b", path])
            #expect(r.status == 2)
            #expect(r.stdout.isEmpty)
            #expect(r.stderr.contains("Hyperscan scan engine was asked for") && r.stderr.contains("install libhyperscan5 or libvectorscan5")
                    && r.stderr.contains("hint: use --cpu-engine builtin or auto"),
                    "\(r.stderr)")
            // auto falls back to the built-in engine and says so with -v.
            let auto = run(prefix + ["scan", "--backend", "cpu", "-v", "-e", "b", path])
            #expect(auto.status == 0 && auto.stdout == "\(path):1:b\n", "\(auto.stderr)")
            #expect(auto.stderr.contains("scan engine built-in ("), "\(auto.stderr)")
        }
    }

    @Test func doctorShowsTheCPUScanEngine() {
        let here = run([sluiceExecutable, "doctor", "/var/tmp"])
        #expect(here.status == 0)
        let line = here.stdout.split(separator: "\n").first { $0.contains("cpu scan engine") } ?? ""
        if HyperscanLibrary.isAvailable {
            #expect(line.hasPrefix("ok ") && line.contains("Hyperscan/Vectorscan 5."), "\(line)")
        } else {
            // "built-in (libhs.so.5 not found: install libhyperscan5 or libvectorscan5)"
            #expect(line.hasPrefix("-- ") && line.contains(" built-in (") && line.hasSuffix(
                "libhs.so.5 not found: install libhyperscan5 or libvectorscan5)"), "\(line)")
        }
        let absent = run(["/usr/bin/env", "\(HyperscanLibrary.libraryVariable)=\(Self.missing)", sluiceExecutable, "doctor", "/var/tmp"])
        #expect(absent.status == 0)
        let absentLine = absent.stdout.split(separator: "\n").first { $0.contains("cpu scan engine") } ?? ""
        #expect(absentLine.hasPrefix("-- ") && absentLine.hasSuffix(
            "built-in (\(Self.missing) not found: install libhyperscan5 or libvectorscan5)"), "\(absentLine)")
    }
}
