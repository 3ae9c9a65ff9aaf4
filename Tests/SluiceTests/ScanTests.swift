#if canImport(Glibc)
import Glibc
#endif
import SluiceCore
import SluiceIngest
import SluiceOps
import Testing

@testable import Sluice

/// The oracle: at every offset, every literal compared byte by byte.
func naiveMatches(_ text: [UInt8], _ literals: [[UInt8]], caseInsensitive: Bool = false) -> [ScanMatch] {
    let fold: (UInt8) -> UInt8 = { caseInsensitive && $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }
    let t = text.map(fold)
    var firstIndex: [[UInt8]: Int] = [:]
    for (i, l) in literals.enumerated() where firstIndex[l.map(fold)] == nil { firstIndex[l.map(fold)] = i }
    var out: [ScanMatch] = []
    for p in 0..<t.count {
        for (folded, i) in firstIndex where folded.count <= t.count - p {
            if t[p..<(p + folded.count)].elementsEqual(folded) { out.append(ScanMatch(offset: UInt64(p), pattern: i)) }
        }
    }
    return out.sorted()
}

/// Compares match lists, reporting the first difference rather than both lists.
func expectSameMatches(
    _ got: [ScanMatch], _ expected: [ScanMatch], _ context: String = "", sourceLocation: SourceLocation = #_sourceLocation
) {
    guard got != expected else { return }
    let i = (0..<min(got.count, expected.count)).first { got[$0] != expected[$0] } ?? min(got.count, expected.count)
    let g = i < got.count ? "\(got[i])" : "none", e = i < expected.count ? "\(expected[i])" : "none"
    Issue.record(
        "\(context) \(got.count) matches, expected \(expected.count); first difference at #\(i): got \(g), expected \(e)",
        sourceLocation: sourceLocation)
}

/// Scans `files` through a full CPU engine with small chunks (so literals
/// straddle many boundaries) and returns each file's matches.
func engineScan(
    _ paths: [String], _ literals: [[UInt8]], caseInsensitive: Bool = false, chunk: Int = 8192, records: Int = 64,
    ingest: IngestChoice = .auto, mode: ScanMode = .matches
) throws -> [FileMatches] {
    let patterns = try PatternSet(literals: literals, caseInsensitive: caseInsensitive)
    let engine = try Engine(
        EngineConfiguration(backend: .cpu, ingest: ingest, chunkBytes: chunk, slots: 4, workers: 2),
        resultWordsPerSlot: ScanJob.resultWords(records: mode == .count ? 0 : records))
    defer { try? engine.close() }
    var out: [FileMatches] = []
    _ = try ScanJob.run(
        scanner: try engine.makeScanner(), patterns: patterns, table: ScanTable(patterns), paths: paths.raw, mode: mode,
        onFile: { out.append($0) })
    return out
}

/// A random small-alphabet text and literal set (many overlaps), the same
/// for a seed in every engine's oracle test.
func randomMatcherCase(seed: Int) -> (text: [UInt8], literals: [[UInt8]]) {
    var rng = SeededRandom(state: UInt64(seed) &* 7919)
    let alphabet: [UInt8] = seed % 3 == 0 ? [97, 98] : seed % 3 == 1 ? [97, 98, 65, 66, 0, 255] : Array(0...255)
    let text = (0..<Int.random(in: 0...3000, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }
    let literals = (0..<Int.random(in: 1...40, using: &rng)).map { _ in
        (0..<Int.random(in: 1...9, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }
    }
    return (text, literals)
}

@Suite struct ScanMatcherTests {
    /// The matcher alone against the oracle on random small alphabets (many overlaps).
    @Test(arguments: 0..<30)
    func randomSetsAgreeWithTheOracle(seed: Int) throws {
        let (text, literals) = randomMatcherCase(seed: seed)
        let ci = seed % 2 == 0
        let got = try matcherMatches(text, literals, caseInsensitive: ci)
        expectSameMatches(got.sorted(), naiveMatches(text, literals, caseInsensitive: ci))
    }

    /// The four-bytes-at-once case folding agrees with the byte-wise one on every byte value.
    @Test func wordFoldingMatchesByteFolding() {
        for b in 0...255 {
            for position in 0..<4 {
                let word = UInt32(b) << (8 * position) | 0x4161_7A5A & ~(0xFF << (8 * UInt32(position)))
                var expected: UInt32 = 0
                for j in 0..<4 { expected |= UInt32(foldASCII(UInt8((word >> (8 * j)) & 0xFF))) << (8 * j) }
                #expect(ScanOp.foldWord(word) == expected, "byte \(b) at \(position)")
            }
        }
    }

    @Test func startLimitAndOverflowAreExact() throws {
        let patterns = try PatternSet(literals: [Array("aa".utf8), Array("a".utf8)])
        let table = ScanTable(patterns)
        let text = [UInt8](repeating: 97, count: 10)
        var result = [UInt32](repeating: 0xFFFF_FFFF, count: ScanOp.headerWords + 2 * 3)
        let outcome = try table.words.withUnsafeBufferPointer { words in
            let view = try ScanTableView(words)
            return text.withUnsafeBytes { raw in
                result.withUnsafeMutableBufferPointer {
                    ScanOp.run(table: view, chunk: raw, startLimit: 6, flags: 0, into: $0)
                }
            }
        }
        // Starts 0..<6: "a" six times, "aa" six times (the one at 5 reads byte 6).
        #expect(result[0] == 12 && result[1] == 0 && result[2] == 3)
        #expect(outcome == .done(resultWords: UInt32(ScanOp.headerWords + 6)))
    }

    @Test func corruptTablesAreRejected() throws {
        let table = ScanTable(try PatternSet(literals: [Array("needle".utf8)]))
        var rng = SeededRandom(state: 1)
        for _ in 0..<2000 {
            var words = table.words
            let i = Int.random(in: 0..<words.count, using: &rng)
            words[i] = UInt32.random(in: 0...UInt32.max, using: &rng)
            // Either rejected, or accepted and then safe to use (checked by matching on it).
            if let view = try? words.withUnsafeBufferPointer({ try ScanTableView($0) }) {
                _ = view
            }
        }
        var short = table.words
        short.removeLast()
        #expect(throws: PipelineError.self) { try short.withUnsafeBufferPointer { _ = try ScanTableView($0) } }
    }

    @Test func patternParsing() throws {
        #expect(try PatternSet.decodeEscapes(#"a\x00\xFFb\\x\q"#) == [97, 0, 255, 98, 92, 120, 92, 113])
        #expect(throws: PipelineError.self) { try PatternSet.decodeEscapes(#"\x4"#) }
        #expect(PatternSet.parseLines(Array("one\r\n\ntwo\nthree\r".utf8)) == [Array("one".utf8), Array("two".utf8), Array("three".utf8)])
        #expect(throws: PipelineError.self) { try PatternSet(literals: []) }
        #expect(throws: PipelineError.self) { try PatternSet(literals: [[1], []]) }
    }
}

@Suite struct ScanJobTests {
    /// Literals planted across every chunk boundary, at offset 0 and at the last byte.
    @Test(arguments: [IngestChoice.uring, .pread])
    func straddlingMatchesAreFoundOnceAtEveryBoundary(ingest: IngestChoice) throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let chunk = 8192, stride = 4096  // overlap 4096 for literals up to 4097 bytes
        var rng = SeededRandom(state: 11)
        var text = (0..<(12 * stride + 100)).map { _ in UInt8.random(in: 97...99, using: &rng) }
        let needle = Array("NEEDLE-xyz".utf8)
        let long = (0..<300).map { _ in UInt8.random(in: 65...90, using: &rng) }
        var plants: [Int] = [0, text.count - needle.count]
        for b in 1...12 { plants += [b * stride - 3, b * stride - needle.count, b * stride] }
        for p in plants where p + needle.count <= text.count { text.replaceSubrange(p..<(p + needle.count), with: needle) }
        text.replaceSubrange((5 * stride - 150)..<(5 * stride + 150), with: long)
        let literals = [needle, long, Array("c".utf8), Array("ab".utf8)]
        let path = dir.write("plants", text)
        let got = try engineScan([path], literals, chunk: chunk, records: 16, ingest: ingest)
        #expect(got.count == 1 && got[0].errors.isEmpty)
        expectSameMatches(got[0].matches, naiveMatches(text, literals))
        #expect(got[0].count == UInt64(got[0].matches.count))
        _ = stride
    }

    /// A literal that matches at every byte overflows every slot: the host rescans and drops nothing.
    @Test func denseMatchesOverflowIntoHostRescans() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let text = [UInt8](repeating: 97, count: 50_000)
        let path = dir.write("aaaa", text)
        let literals = [Array("a".utf8), Array("aa".utf8), Array("aaa".utf8)]
        let got = try engineScan([path], literals, records: 7)
        #expect(got[0].errors.isEmpty)
        expectSameMatches(got[0].matches, naiveMatches(text, literals))
        #expect(got[0].count == UInt64(3 * 50_000 - 3))
        let counted = try engineScan([path], literals, mode: .count)
        #expect(counted[0].count == UInt64(3 * 50_000 - 3) && counted[0].matches.isEmpty)
    }

    @Test func caseInsensitiveBinaryEmptyAndManyFiles() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (paths, texts) = writeBinaryEdgeFiles(dir, seed: 12)
        let literals: [[UInt8]] = [[65, 66], [0, 255, 0], [10], [98, 97, 66, 98, 65]]
        let got = try engineScan(paths, literals, caseInsensitive: true)
        #expect(got.map(\.path) == paths)
        for (i, file) in got.enumerated() {
            #expect(file.errors.isEmpty)
            expectSameMatches(file.matches, naiveMatches(texts[i], literals, caseInsensitive: true), "file \(i)")
        }
    }

    @Test func aHundredThousandLiterals() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 13)
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)
        var literals = (0..<100_000).map { _ in (0..<12).map { _ in alphabet.randomElement(using: &rng)! } }
        var text = (0..<300_000).map { _ in alphabet.randomElement(using: &rng)! }
        // Plant 200 of them, some across chunk boundaries.
        var planted: [(Int, Int)] = []
        for k in 0..<200 {
            let pattern = Int.random(in: 0..<literals.count, using: &rng)
            let p = k * 1499 % (text.count - 12)
            text.replaceSubrange(p..<(p + 12), with: literals[pattern])
            planted.append((p, pattern))
        }
        literals.append(Array("zz".utf8))  // a short one among long ones
        let path = dir.write("big", text)
        let got = try engineScan([path], literals, chunk: 16384, records: 256)
        // The oracle over 100k literals by brute force is slow; check planted matches and
        // compare against a hash-free oracle: every 12-byte window and 2-byte window looked up.
        var index: [[UInt8]: Int] = [:]
        for (i, l) in literals.enumerated() where index[l] == nil { index[l] = i }
        var expected: [ScanMatch] = []
        for p in 0..<text.count {
            for len in [2, 12] where p + len <= text.count {
                if let i = index[Array(text[p..<(p + len)])] { expected.append(ScanMatch(offset: UInt64(p), pattern: i)) }
            }
        }
        #expect(got[0].errors.isEmpty)
        expectSameMatches(got[0].matches, expected.sorted())
        for (p, pattern) in planted {
            #expect(got[0].matches.contains { $0.offset == UInt64(p) && literals[$0.pattern] == literals[pattern] })
        }
    }
}
