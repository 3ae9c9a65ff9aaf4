import SluiceCUDA
import SluiceOps
import Testing

@testable import Sluice

/// 100,000 literals (issue #9's largest benchmark set): the table's shape
/// against what the megakernel reads, and the CPU backend's matches against
/// an oracle that knows nothing of hashing or filters.
@Suite struct LargeLiteralSetTests {
    /// The megakernel's shared-memory filter cache, in 32-bit words, read from
    /// the kernel's sources as the backend embeds them (megakernel.cu and its
    /// headers) so the test follows the kernel.
    static func kernelFilterCacheWords() throws -> Int {
        let sources = [Megakernel.source] + Megakernel.headers.map(\.text)
        let lines = sources.flatMap { String(decoding: $0, as: UTF8.self).split(separator: "\n") }
        let line = try #require(lines.first { $0.hasPrefix("#define SLUICE_FILTER_CACHE_WORDS") })
        let value = try #require(line.split(separator: " ").last).filter { $0 != "u" }
        return try #require(Int(value))
    }

    /// The table of 100,000 literals stays inside every limit the kernel and
    /// ScanTableView check, and its filter is past the kernel's shared-memory
    /// cache, so the GPU reads it from global memory (the self-test's
    /// 100,000-literal set runs that path on the GPU machine).
    @Test func theTableFitsTheKernelsLimits() throws {
        var rng = SeededRandom(state: 90)
        let literals = (0..<100_000).map { _ in (0..<12).map { _ in UInt8.random(in: 97...122, using: &rng) } }
        let table = ScanTable(try PatternSet(literals: literals))
        typealias H = ScanTable.Header
        let bucketBits = Int(table.words[H.hashBits.rawValue]), filterBits = Int(table.words[H.filterBits.rawValue])
        #expect((1...26).contains(bucketBits) && (5...26).contains(filterBits) && filterBits >= bucketBits)
        #expect((1 << filterBits) / 32 > (try Self.kernelFilterCacheWords()))
        #expect(table.words.count < Int(UInt32.max) && table.words.count * 4 < 64 << 20)  // the CUDA backend's scan arena
        try table.words.withUnsafeBufferPointer { _ = try ScanTableView($0) }
    }

    /// 100,000 literals of 1-16 bytes over 8 letters, -i, on mixed-case text:
    /// every key length (1-4 bytes), many duplicates after folding, dense
    /// overlapping matches, small chunks and small record areas (host
    /// rescans). Matches and counts equal an oracle that looks every window
    /// of every length up in a dictionary of the folded literals.
    @Test func aHundredThousandCaselessLiteralsOfEveryLength() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 91)
        let mixed = Array("abcdefghABCDEFGH".utf8)
        var literals: [[UInt8]] = [Array("a".utf8), Array("G".utf8)]
        while literals.count < 100_000 {
            let n = Int.random(in: 2...16, using: &rng)
            literals.append((0..<n).map { _ in mixed.randomElement(using: &rng)! })
        }
        let text = (0..<40_000).map { _ in (mixed + [32, 10]).randomElement(using: &rng)! }
        let path = dir.write("t", text)

        var first: [[UInt8]: Int] = [:]
        for (i, l) in literals.enumerated() where first[l.map(foldASCII)] == nil { first[l.map(foldASCII)] = i }
        let folded = text.map(foldASCII)
        var expected: [ScanMatch] = []
        for p in 0..<folded.count {
            for n in 1...16 where p + n <= folded.count {
                if let i = first[Array(folded[p..<(p + n)])] { expected.append(ScanMatch(offset: UInt64(p), pattern: i)) }
            }
        }
        #expect(first.count < 100_000 && expected.count > 40_000)  // duplicates after folding; dense matches

        let got = try engineScan([path], literals, caseInsensitive: true, chunk: 8192, records: 64)
        #expect(got.count == 1 && got[0].errors.isEmpty)
        expectSameMatches(got[0].matches, expected.sorted(), "100,000 literals, -i")
        let counted = try engineScan([path], literals, caseInsensitive: true, chunk: 8192, mode: .count)
        #expect(counted.first?.count == UInt64(expected.count))
    }
}
