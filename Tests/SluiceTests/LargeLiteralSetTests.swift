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

    /// Every match by brute force, sorted: each window of each literal length
    /// starting below `startLimit` (all of them by default), folded for -i,
    /// looked up among the literals (a duplicate keeps its first number).
    static func oracle(_ literals: [[UInt8]], fold: Bool, _ text: [UInt8], startLimit: Int? = nil) -> [ScanMatch] {
        var first: [[UInt8]: Int] = [:]
        for (i, l) in literals.enumerated() where first[fold ? l.map(foldASCII) : l] == nil {
            first[fold ? l.map(foldASCII) : l] = i
        }
        let lengths = Set(literals.map(\.count)).sorted()
        let folded = fold ? text.map(foldASCII) : text
        var matches: [ScanMatch] = []
        for p in 0..<min(startLimit ?? folded.count, folded.count) {
            for n in lengths where p + n <= folded.count {
                if let i = first[Array(folded[p..<(p + n)])] { matches.append(ScanMatch(offset: UInt64(p), pattern: i)) }
            }
        }
        return matches.sorted()
    }

    /// 100,000 literals of 12 bytes are all in the long filter (no short
    /// one), which fits the kernel's shared-memory cache; 300,000 are too
    /// many keys for it, so their long filter is sized for global memory
    /// (the self-test runs both on the GPU machine). Both tables stay inside
    /// every limit the kernel and ScanTableView check.
    @Test func theTableFitsTheKernelsLimits() throws {
        var rng = SeededRandom(state: 90)
        let cacheBits = try Self.kernelFilterCacheWords() * 32
        #expect(ScanTable.filterBudgetBits == cacheBits)
        for (count, cached) in [(100_000, true), (300_000, false)] {
            let literals = (0..<count).map { _ in (0..<12).map { _ in UInt8.random(in: 97...122, using: &rng) } }
            let table = ScanTable(try PatternSet(literals: literals))
            typealias H = ScanTable.Header
            let short = Int(table.words[H.filterBits.rawValue]), long = Int(table.words[H.longFilterBits.rawValue])
            #expect(short == 0 && table.words[H.keyLengthMask.rawValue] == 0, "\(count) literals: no short filter")
            #expect((5...26).contains(long))
            #expect(((1 << long) <= cacheBits) == cached, "\(count) literals: 2^\(long) long filter bits")
            #expect(table.words.count < Int(UInt32.max) && table.words.count * 4 < 64 << 20)  // the CUDA backend's scan arena
            try table.words.withUnsafeBufferPointer { _ = try ScanTableView($0) }
        }
    }

    /// The filter sizes: 256-512 bits a key when both fit the shared-memory
    /// budget; else the pair within it that passes the fewest random keys
    /// (the larger filter is not simply halved: 1,000 + 65,000 keys keep the
    /// long filter whole); a filter that would still pass more than 15 % goes
    /// to global memory at 8-16 bits a key, and the other has the budget.
    @Test func filterSizes() {
        let cases: [(short: Int, long: Int, expected: (Int, Int))] = [
            (1_000, 0, (18, 0)), (0, 1_000, (0, 18)), (1_000, 1_000, (18, 18)), (2_000, 8_000, (18, 18)),
            (0, 100_000, (0, 19)), (100_000, 0, (19, 0)), (1, 100_000, (9, 19)), (1_000, 65_000, (15, 19)),
            (0, 1_000_000, (0, 23)), (10, 300_000, (12, 22)), (100_000, 100_000, (20, 20)), (71_000, 28_000, (20, 19)),
        ]
        for c in cases {
            let got = ScanTable.filterSizes(short: c.short, long: c.long)
            #expect(got == c.expected, "\(c.short) short and \(c.long) long keys: \(got)")
        }
        #expect(ScanTable.falsePositiveRate(log2Bits: 19, keys: 100_000) > 0.09)
        #expect(ScanTable.falsePositiveRate(log2Bits: 19, keys: 100_000) < 0.11)
        #expect(ScanTable.falsePositiveRate(log2Bits: 0, keys: 1) == 1 && ScanTable.falsePositiveRate(log2Bits: 0, keys: 0) == 0)
    }

    /// Both filters' two probes, recomputed here from the documented hashes
    /// (docs/protocol.md, "2: scan"): every literal's key sets its bits, and
    /// random keys that are no literal's pass far less often than the one
    /// probe of the old 16-bits-a-literal filter let through (about 6 % at
    /// 1,000 literals). 12-byte literals go to the long filter (eight key
    /// bytes), 6-byte ones to the short filter (four).
    @Test(arguments: [(1_000, 0.001), (10_000, 0.01), (100_000, 0.15)])
    func theFiltersTwoProbesRejectRandomKeys(count: Int, bound: Double) throws {
        for length in [6, 12] {
            var rng = SeededRandom(state: UInt64(count + length))
            let literals = (0..<count).map { _ in (0..<length).map { _ in UInt8.random(in: 97...122, using: &rng) } }
            let table = ScanTable(try PatternSet(literals: literals))
            typealias H = ScanTable.Header
            #expect(table.words[H.filterProbes.rawValue] == 2)
            let long = length >= 8
            let bits = table.words[long ? H.longFilterBits.rawValue : H.filterBits.rawValue]
            let offset = Int(table.words[long ? H.longFilterOffset.rawValue : H.filterOffset.rawValue])
            func has(_ h: UInt32) -> Bool {
                let bit = h >> (32 - bits)
                return table.words[offset + Int(bit >> 5)] & (1 << (bit & 31)) != 0
            }
            func passes(_ low: UInt32, _ high: UInt32) -> Bool {
                guard long else { return has(low &* 0x9E37_79B1) && has(low &* 0x85EB_CA77) }
                let first = (low &* 0x9E37_79B1 ^ high) &* 0x85EB_CA77
                return has(first) && has(first &* 0xC2B2_AE3D)
            }
            func word(_ l: [UInt8], _ from: Int) -> UInt32 { (0..<4).reduce(UInt32(0)) { $0 | UInt32(l[from + $1]) << (8 * $1) } }
            let keys = literals.map { [word($0, 0), long ? word($0, 4) : 0] }
            #expect(keys.allSatisfy { passes($0[0], $0[1]) }, "\(length)-byte literals")
            let known = Set(keys)
            var passed = 0, tried = 0
            while tried < 200_000 {
                let key = [UInt32.random(in: 0...UInt32.max, using: &rng), long ? UInt32.random(in: 0...UInt32.max, using: &rng) : 0]
                guard !known.contains(key) else { continue }
                tried += 1
                if passes(key[0], key[1]) { passed += 1 }
            }
            #expect(Double(passed) / Double(tried) < bound, "\(count) \(length)-byte literals: \(passed) of \(tried) random keys pass")
        }
    }

    /// A table whose probe count is neither 1 nor 2 is refused; one probe
    /// (a filter that sets only the first bit) is still read correctly.
    @Test func filterProbesOtherThanOneOrTwoAreRefused() throws {
        let table = ScanTable(try PatternSet(literals: [Array("needle".utf8)]))
        for probes: UInt32 in [0, 3, 0xFFFF_FFFF] {
            var words = table.words
            words[ScanTable.Header.filterProbes.rawValue] = probes
            #expect(throws: PipelineError.self) { try words.withUnsafeBufferPointer { _ = try ScanTableView($0) } }
        }
        var one = table.words
        one[ScanTable.Header.filterProbes.rawValue] = 1
        let text = Array("a needle in a haystack, needle".utf8)
        var found: [Int] = []
        try one.withUnsafeBufferPointer { words in
            let view = try ScanTableView(words)
            text.withUnsafeBytes { ScanOp.forEachMatch(table: view, chunk: $0, startLimit: text.count) { p, _ in found.append(p) } }
        }
        #expect(found == [2, 24])
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

        let expected = Self.oracle(literals, fold: true, text)
        // Duplicates after folding; dense matches.
        #expect(Set(literals.map { $0.map(foldASCII) }).count < 100_000 && expected.count > 40_000)

        let got = try engineScan([path], literals, caseInsensitive: true, chunk: 8192, records: 64)
        #expect(got.count == 1 && got[0].errors.isEmpty)
        expectSameMatches(got[0].matches, expected, "100,000 literals, -i")
        let counted = try engineScan([path], literals, caseInsensitive: true, chunk: 8192, mode: .count)
        #expect(counted.first?.count == UInt64(expected.count))
    }

    /// 10,000 URLs that share "https://www." (12 bytes) and 5,000 AWS-style
    /// key IDs that share "AKIA": keyed by their first eight bytes, each set
    /// would put every literal in one bucket, walked at each text position
    /// where the prefix occurs. The chosen long-key offset spreads them: no
    /// bucket holds more than a few of one set, and no offset the table may
    /// use (computed here by grouping the literals directly) has a smaller
    /// largest group. Random literals keep offset 0.
    @Test func literalsThatShareAPrefixAreKeyedPastIt() throws {
        var rng = SeededRandom(state: 93)
        func random(_ n: Int, _ alphabet: [UInt8]) -> [UInt8] { (0..<n).map { _ in alphabet.randomElement(using: &rng)! } }
        let lower = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8), upper = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)
        let urls = (0..<10_000).map { _ in Array("https://www.".utf8) + random(Int.random(in: 4...12, using: &rng), lower) + Array(".com/".utf8) }
        let keys = (0..<5_000).map { _ in Array("AKIA".utf8) + random(16, upper) }
        let plain = (0..<10_000).map { _ in random(Int.random(in: 8...20, using: &rng), lower) }
        typealias H = ScanTable.Header
        func largestGroup(_ literals: [[UInt8]], _ offset: Int) -> Int {
            var groups: [[UInt8]: Int] = [:]
            for l in literals {
                let key = l.count >= offset + 8 ? [1] + Array(l[offset..<(offset + 8)]) : [0] + Array(l.prefix(4))
                groups[key, default: 0] += 1
            }
            return groups.values.max() ?? 0
        }
        for (name, literals, expectedOffset) in [("URLs", urls, nil), ("key IDs", keys, 0), ("random", plain, 0)] {
            let table = ScanTable(try PatternSet(literals: literals)).words
            let offset = Int(table[H.longKeyOffset.rawValue])
            if let expectedOffset { #expect(offset == expectedOffset, "\(name)") } else { #expect(offset > 0, "\(name)") }
            let best = stride(from: 0, through: ScanTable.maximumLongKeyOffset, by: 4).map { largestGroup(literals, $0) }.min()!
            #expect(largestGroup(literals, offset) == best || largestGroup(literals, offset) <= ScanTable.smallWalk, "\(name)")
            let buckets = Int(table[H.bucketStartOffset.rawValue])
            let largestBucket = (0..<(1 << Int(table[H.hashBits.rawValue]))).map { table[buckets + $0 + 1] - table[buckets + $0] }.max()!
            #expect(largestBucket <= 16, "\(name): \(largestBucket) entries in one bucket")
            try table.withUnsafeBufferPointer { _ = try ScanTableView($0) }
        }
    }

    /// The CPU backend over text full of the URLs' shared prefix and of some
    /// of the URLs, -i and not, small chunks: matches equal a dictionary
    /// oracle of every window. Short literals (the URLs' own prefixes, and
    /// URLs too short for the long key's offset) are in the same set.
    @Test func sharedPrefixLiteralsMatchLikeTheOracle() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 94)
        func random(_ n: Int, _ alphabet: [UInt8]) -> [UInt8] { (0..<n).map { _ in alphabet.randomElement(using: &rng)! } }
        let letters = Array("abcdeABCDE".utf8)
        var literals = (0..<3_000).map { _ in Array("https://www.".utf8) + random(Int.random(in: 1...14, using: &rng), letters) }
        literals += [Array("https://".utf8), Array("http".utf8), Array("ww".utf8), Array("https://www.".utf8)]
        var text: [UInt8] = []
        while text.count < 200_000 {
            text += Array("https://www.".utf8) + random(Int.random(in: 0...9, using: &rng), letters) + [32]
            if Int.random(in: 0..<4, using: &rng) == 0 { text += literals.randomElement(using: &rng)! }
        }
        let path = dir.write("t", text)
        for fold in [false, true] {
            #expect(ScanTable(try PatternSet(literals: literals, caseInsensitive: fold)).words[ScanTable.Header.longKeyOffset.rawValue] > 0)
            let expected = Self.oracle(literals, fold: fold, text)
            #expect(expected.count > 50_000)
            let got = try engineScan([path], literals, caseInsensitive: fold, chunk: 8192, records: 256)
            #expect(got.count == 1 && got[0].errors.isEmpty)
            expectSameMatches(got[0].matches, expected, "shared prefixes, -i \(fold)")
        }
    }

    /// An offset that would leave many literals short is not taken: nine
    /// URLs that share "https://www." among 100,000 random words of 8-20
    /// bytes keep offset 0 (at 8, some 38,000 words would be keyed by 4
    /// bytes); without the words the URLs move to offset 8. And the offset
    /// taken is the one with the smallest largest group, not the first
    /// whose group is small: 72 literals sharing 8 bytes, then 4 bytes of 9
    /// values, then 8 distinct bytes, take offset 8 (groups of 1), not 4
    /// (groups of 8).
    @Test func theLongKeyOffsetWeighsTheLiteralsItLeavesShort() throws {
        var rng = SeededRandom(state: 96)
        func random(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8.random(in: 97...122, using: &rng) } }
        typealias H = ScanTable.Header
        func offset(_ literals: [[UInt8]]) throws -> UInt32 { ScanTable(try PatternSet(literals: literals)).words[H.longKeyOffset.rawValue] }
        let urls = (0..<9).map { _ in Array("https://www.".utf8) + random(8) + Array(".com/".utf8) }
        let words = (0..<100_000).map { _ in random(Int.random(in: 8...20, using: &rng)) }
        #expect(try offset(urls + words) == 0)
        #expect(try offset(urls) == 8)
        var spread: [[UInt8]] = []
        for g in 0..<9 {
            for _ in 0..<8 { spread.append(Array("ZZZZZZZZ".utf8) + [UInt8(65 + g), 65, 65, 65] + random(8)) }
        }
        #expect(try offset(spread) == 8)
        // A literal the matcher verifies with windows is always long.
        #expect(ScanTable.maximumLongKeyOffset + ScanTable.longKeyBytes <= ScanOp.shiftMinimumLength)
    }

    /// The CPU matcher over sets whose literals share prefixes of 0-28
    /// bytes (long-key offsets 0-24), chunk by chunk: every chunk length
    /// from 0 to 60 cut from the end of a text that ends in a literal, and
    /// start limits short of it, -i on alternate sets. Matches equal a
    /// brute-force oracle of every window, so a position with exactly
    /// offset + 8 bytes left is still a long candidate.
    @Test func theCPUMatcherAtEveryLongKeyOffset() throws {
        var rng = SeededRandom(state: 97)
        let alphabet = Array("xyzXYZ".utf8)
        func random(_ n: Int) -> [UInt8] { (0..<n).map { _ in alphabet.randomElement(using: &rng)! } }
        var offsets: Set<UInt32> = []
        for (n, length) in stride(from: 0, through: 28, by: 4).enumerated() {
            let prefix = Array(Array("q/w.e:r-t_y+u=i~o,p;a!s?d&".utf8).prefix(length))
            let fold = n % 2 == 1
            var literals = (0..<40).map { _ in prefix + random(Int.random(in: 1...14, using: &rng)) }
            literals += [Array(prefix.prefix(3)), prefix + random(4), prefix + random(8), prefix + random(12)].filter { !$0.isEmpty }
            let table = ScanTable(try PatternSet(literals: literals, caseInsensitive: fold)).words
            let offset = Int(table[ScanTable.Header.longKeyOffset.rawValue])
            offsets.insert(UInt32(offset))
            var text: [UInt8] = []
            while text.count < 400 { text += random(Int.random(in: 0...5, using: &rng)) + (literals.randomElement(using: &rng) ?? []) }
            text += literals.first { $0.count == offset + ScanTable.longKeyBytes } ?? literals[0]
            try table.withUnsafeBufferPointer { words in
                let view = try ScanTableView(words)
                for size in 0...60 {
                    let chunk = Array(text.suffix(size))
                    for limit in Set([size, max(0, size - 1), size / 2]) {
                        var got: [ScanMatch] = []
                        chunk.withUnsafeBytes { bytes in
                            ScanOp.forEachMatch(table: view, chunk: bytes, startLimit: limit) { p, i in
                                got.append(ScanMatch(offset: UInt64(p), pattern: Int(i)))
                            }
                        }
                        #expect(got.sorted() == Self.oracle(literals, fold: fold, chunk, startLimit: limit),
                            "prefix of \(length) bytes (offset \(offset)), -i \(fold), chunk of \(size), limit \(limit)")
                    }
                }
            }
        }
        #expect(offsets.count >= 5 && offsets.contains(0) && offsets.contains { $0 >= 16 }, "offsets \(offsets.sorted())")
    }
}
