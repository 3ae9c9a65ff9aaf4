#if canImport(Glibc)
import Glibc
#endif
import SluiceCore
import SluiceOps
import Testing

@testable import Sluice

/// The independent oracle for large cases: Python's `bytes.find`, stepped one
/// byte past each hit so that overlapping occurrences count; duplicate
/// literals (after ASCII folding for -i) keep their first pattern number.
/// Nil when python3 cannot run.
func pythonMatches(_ text: [UInt8], _ literals: [[UInt8]], caseInsensitive: Bool = false) -> [ScanMatch]? {
    guard let lines = pythonOracle(text, literals, caseInsensitive: caseInsensitive, countOnly: false) else { return nil }
    return lines.split(separator: "\n").map { line in
        let parts = line.split(separator: " ")
        return ScanMatch(offset: UInt64(parts[0])!, pattern: Int(parts[1])!)
    }
}

/// How many matches `pythonMatches` would list.
func pythonMatchCount(_ text: [UInt8], _ literals: [[UInt8]], caseInsensitive: Bool = false) -> UInt64? {
    pythonOracle(text, literals, caseInsensitive: caseInsensitive, countOnly: true).flatMap {
        UInt64($0.split(separator: "\n").first ?? "")
    }
}

/// Runs the oracle's script: its matches, one "offset pattern" line each, or their count.
private func pythonOracle(_ text: [UInt8], _ literals: [[UInt8]], caseInsensitive: Bool, countOnly: Bool) -> String? {
    let dir = ScratchDirectory("sluice-oracle")
    defer { dir.remove() }
    let textPath = dir.write("text", text)
    // One literal per line, hex-encoded, so any byte (newline, NUL) survives.
    let digits = Array("0123456789abcdef")
    let hex = literals.map { String($0.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] }) }.joined(separator: "\n")
    let literalPath = dir.write("literals", Array(hex.utf8))
    let script = """
        import sys
        text = open(sys.argv[1], "rb").read()
        fold = sys.argv[3] == "1"
        if fold: text = text.lower()
        first = {}
        for i, line in enumerate(open(sys.argv[2]).read().split("\\n")):
            lit = bytes.fromhex(line)
            if fold: lit = lit.lower()
            first.setdefault(lit, i)
        out = []
        for lit, i in first.items():
            p = text.find(lit)
            while p >= 0:
                out.append((p, i))
                p = text.find(lit, p + 1)
        out.sort()
        if sys.argv[4] == "1": print(len(out))
        else: sys.stdout.write("".join("%d %d\\n" % m for m in out))
        """
    let r = run([
        "/usr/bin/env", "python3", "-c", script, textPath, literalPath, caseInsensitive ? "1" : "0", countOnly ? "1" : "0",
    ])
    return r.status == 0 ? r.stdout : nil
}

/// Every match of `literals` in `text` from the built-in matcher, in its order.
func matcherMatches(_ text: [UInt8], _ literals: [[UInt8]], caseInsensitive: Bool = false) throws -> [ScanMatch] {
    let table = ScanTable(try PatternSet(literals: literals, caseInsensitive: caseInsensitive))
    var got: [ScanMatch] = []
    try table.words.withUnsafeBufferPointer { words in
        let view = try ScanTableView(words)
        text.withUnsafeBytes { raw in
            ScanOp.forEachMatch(table: view, chunk: raw, startLimit: raw.count) {
                got.append(ScanMatch(offset: UInt64($0), pattern: Int($1)))
            }
        }
    }
    return got
}

/// Long and periodic literals, whose byte-by-byte verification at every
/// candidate position used to cost O(text x literal length).
@Suite struct LinearScanTests {
    /// A 64 KiB run of `A` over 1 MiB of `A`: before the Z-function shifts
    /// this compared 64 Ki bytes at each of a million positions (minutes).
    @Test func aLongRunLiteralOverALongRunIsCountedExactly() throws {
        let literal = [UInt8](repeating: 65, count: 1 << 16)
        let text = [UInt8](repeating: 65, count: 1 << 20)
        let got = try matcherMatches(text, [literal])
        #expect(got.count == text.count - literal.count + 1)
        #expect(got.first == ScanMatch(offset: 0, pattern: 0))
        #expect(got.last == ScanMatch(offset: UInt64(text.count - literal.count), pattern: 0))
        // In position order, one per position.
        #expect(zip(got, got.dropFirst()).allSatisfy { $0.offset + 1 == $1.offset })
    }

    /// 4 KiB literals over 256 KiB: runs, runs broken now and then, periodic
    /// literals with a late mismatch, and literals that are prefixes of each other.
    @Test func longAndPeriodicLiteralsAgreeWithPython() throws {
        var text = [UInt8](repeating: 65, count: 256 << 10)
        // Breaks in the run at irregular places, so windows end early.
        for p in stride(from: 5000, to: text.count, by: 37_771) { text[p] = 66 }
        let aRun = [UInt8](repeating: 65, count: 4096)
        let literals: [[UInt8]] = [
            aRun,
            Array(aRun.prefix(33)),  // a prefix of the first, above the shift threshold
            Array(aRun.prefix(31)),  // and below it
            Array(aRun.dropLast()) + [66],  // all but its last byte matches almost everywhere
            [66] + Array(aRun.dropFirst()),
            Array(aRun.prefix(2000)) + [66] + Array(aRun.prefix(2000)),
            aRun,  // a duplicate: reported as pattern 0 only
        ]
        let expected = try #require(pythonMatches(text, literals))
        expectSameMatches(try matcherMatches(text, literals), expected, "runs of A")
        #expect(expected.count > 400_000)
    }

    /// Periodic texts and literals with periods 2, 3 and 7, with the period
    /// broken near the end of the literal, NUL and 0xFF bytes, and -i.
    @Test(arguments: [2, 3, 7])
    func periodicLiteralsAgreeWithPython(period: Int) throws {
        var rng = SeededRandom(state: UInt64(period))
        let unit: [UInt8] = (0..<period).map { i in [0, 255, 97, 65][i % 4] }
        var text: [UInt8] = []
        while text.count < 200_000 { text += unit }
        for _ in 0..<40 { text[Int.random(in: 0..<text.count, using: &rng)] = 66 }
        var lit: [UInt8] = []
        while lit.count < 3000 { lit += unit }
        var broken = lit
        broken[broken.count - 2] = 66
        let literals = [lit, broken, Array(lit.prefix(40)), Array(lit.suffix(41)), Array(lit.prefix(1000)) + [66]]
        for ci in [false, true] {
            let expected = try #require(pythonMatches(text, literals, caseInsensitive: ci))
            expectSameMatches(
                try matcherMatches(text, literals, caseInsensitive: ci), expected, "period \(period), -i \(ci)")
        }
    }

    /// Random texts over two or three byte values and literals cut from
    /// them (so many match, with long partial overlaps), from 32 to 600 bytes.
    @Test(arguments: 0..<6)
    func literalsCutFromRandomTextsAgreeWithPython(seed: Int) throws {
        var rng = SeededRandom(state: UInt64(seed) &* 104_729 &+ 3)
        let alphabet: [UInt8] = seed % 2 == 0 ? [0, 255] : [97, 98, 65]
        let text = (0..<60_000).map { _ in
            // Mostly one byte: long runs, so long literals overlap themselves.
            Int.random(in: 0..<10, using: &rng) < 8 ? alphabet[0] : alphabet.randomElement(using: &rng)!
        }
        var literals: [[UInt8]] = []
        for _ in 0..<12 {
            let length = Int.random(in: 32...600, using: &rng)
            let start = Int.random(in: 0...(text.count - length), using: &rng)
            literals.append(Array(text[start..<(start + length)]))
        }
        literals.append(Array(literals[0].prefix(40)))
        literals.append([UInt8](repeating: alphabet[0], count: 64))
        let ci = seed % 3 == 1
        let expected = try #require(pythonMatches(text, literals, caseInsensitive: ci))
        expectSameMatches(try matcherMatches(text, literals, caseInsensitive: ci), expected, "seed \(seed)")
        #expect(!expected.isEmpty)
    }

    /// The Z-function against its definition.
    @Test func zFunctionMatchesItsDefinition() {
        var rng = SeededRandom(state: 5)
        for n in [1, 2, 5, 64, 300] {
            for _ in 0..<20 {
                let s = (0..<n).map { _ in UInt8.random(in: 0...2, using: &rng) }
                let z = ScanTableView.zFunction(s)
                for d in 0..<n {
                    var k = 0
                    while d + k < n, s[k] == s[d + k] { k += 1 }
                    #expect(Int(z[d]) == k, "\(s) at \(d)")
                }
            }
        }
    }

    /// Dense two-byte matches over zeros, through a whole CPU engine whose
    /// slots overflow (host rescans) and in count mode: exactly n - 1 each.
    @Test func denseMatchesOverZerosAreCountedExactly() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let n = 1 << 20
        let path = dir.write("zeros", [UInt8](repeating: 0, count: n))
        let counted = try engineScan([path], [[0, 0]], chunk: 1 << 16, mode: .count)
        #expect(counted[0].errors.isEmpty && counted[0].count == UInt64(n - 1))
        let listed = try engineScan([path], [[0, 0], [0]], chunk: 1 << 16, records: 1000)
        #expect(listed[0].errors.isEmpty)
        #expect(listed[0].count == UInt64(2 * n - 1) && listed[0].matches.count == 2 * n - 1)
        let expected = (0..<n).flatMap { p in
            p < n - 1 ? [ScanMatch(offset: UInt64(p), pattern: 0), ScanMatch(offset: UInt64(p), pattern: 1)]
                : [ScanMatch(offset: UInt64(p), pattern: 1)]
        }
        expectSameMatches(listed[0].matches, expected)
    }

    /// A 4 KiB literal straddling chunk boundaries of a whole engine scan.
    @Test func longLiteralThroughTheEngineAgreesWithPython() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var text = [UInt8](repeating: 0xFF, count: 256 << 10)
        for p in stride(from: 9000, to: text.count, by: 50_001) { text[p] = 0 }
        let path = dir.write("ff", text)
        let literals = [[UInt8](repeating: 0xFF, count: 4096), [UInt8](repeating: 0xFF, count: 4095) + [0]]
        let got = try engineScan([path], literals, chunk: 1 << 14, records: 256)
        let expected = try #require(pythonMatches(text, literals))
        #expect(got[0].errors.isEmpty)
        expectSameMatches(got[0].matches, expected)
    }
}
