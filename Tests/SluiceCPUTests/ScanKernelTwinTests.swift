import CSluiceScanKernelTwin
import SluiceCore
import SluiceOps
import Testing

/// The megakernel's scan opcode, its own CUDA source compiled for the host
/// (`CSluiceScanKernelTwin`: 256 host threads as one block), against a naive
/// oracle that looks every window of every literal length up in a
/// dictionary: counts, records, overflowing areas, start limits, every chunk
/// alignment (the kernel's skew paths), tiles and literals past the staged
/// bytes, -i, short and long literals, one- and two-probe filters, filters in
/// and past the shared-memory cache, and a refused table.
@Suite struct ScanKernelTwinTests {
    struct Run {
        var found: UInt64
        var records: [ScanMatchRecord]
        var completion: Int64
    }

    struct ScanMatchRecord: Hashable, Comparable {
        var position: UInt32
        var pattern: UInt32
        static func < (a: Self, b: Self) -> Bool { (a.position, a.pattern) < (b.position, b.pattern) }
    }

    /// The kernel twin over `text` placed `offset` bytes past a 16-byte boundary.
    static func kernel(
        _ table: [UInt32], _ text: [UInt8], offset: Int, startLimit: Int, countOnly: Bool = false, records: Int
    ) -> Run {
        var buffer = [UInt8](repeating: 0xEE, count: text.count + 64)
        var result = [UInt32](repeating: 0xDEAD_BEEF, count: ScanOp.headerWords + 2 * records)
        let completion = buffer.withUnsafeMutableBytes { raw -> Int64 in
            let base = Int(bitPattern: raw.baseAddress!)
            let start = (16 - base % 16) % 16 + offset
            for (i, b) in text.enumerated() { raw[start + i] = b }
            return table.withUnsafeBufferPointer { t in
                result.withUnsafeMutableBufferPointer { r in
                    sluice_scan_kernel_twin(
                        t.baseAddress, t.count, raw.baseAddress!.assumingMemoryBound(to: UInt8.self) + start,
                        UInt32(text.count), UInt32(startLimit), countOnly ? ScanOp.countOnlyFlag : 0, r.baseAddress,
                        UInt32(r.count))
                }
            }
        }
        let stored = Int(result[2])
        let found = UInt64(result[0]) | UInt64(result[1]) << 32
        let list = (0..<min(stored, records)).map {
            ScanMatchRecord(position: result[ScanOp.headerWords + 2 * $0], pattern: result[ScanOp.headerWords + 2 * $0 + 1])
        }
        return Run(found: found, records: list.sorted(), completion: completion)
    }

    /// Every match by brute force: each window of each literal length, folded
    /// for -i, looked up among the literals (a duplicate keeps its first number).
    static func oracle(_ literals: [[UInt8]], fold: Bool, _ text: [UInt8], startLimit: Int) -> [ScanMatchRecord] {
        var first: [[UInt8]: UInt32] = [:]
        for (i, l) in literals.enumerated() {
            let key = fold ? l.map(foldASCII) : l
            if first[key] == nil { first[key] = UInt32(i) }
        }
        let lengths = Set(literals.map(\.count)).sorted()
        let folded = fold ? text.map(foldASCII) : text
        var out: [ScanMatchRecord] = []
        for p in 0..<min(startLimit, text.count) {
            for n in lengths where p + n <= folded.count {
                if let i = first[Array(folded[p..<(p + n)])] { out.append(ScanMatchRecord(position: UInt32(p), pattern: i)) }
            }
        }
        return out.sorted()
    }

    /// Where two sorted record lists first differ (a failure's message, not the lists).
    static func firstDifference(_ got: [ScanMatchRecord], _ expected: [ScanMatchRecord]) -> String {
        let common = min(got.count, expected.count)
        guard let i = (0..<common).first(where: { got[$0] != expected[$0] }) ?? (got.count == expected.count ? nil : common)
        else { return "none" }
        return "at \(i): got \(i < got.count ? "\(got[i])" : "nothing"), expected \(i < expected.count ? "\(expected[i])" : "nothing") (\(got.count) against \(expected.count))"
    }

    static func text(_ n: Int, _ alphabet: [UInt8], _ rng: inout SeededRandom) -> [UInt8] {
        (0..<n).map { _ in alphabet.randomElement(using: &rng)! }
    }

    static func literals(_ n: Int, _ lengths: ClosedRange<Int>, _ alphabet: [UInt8], _ rng: inout SeededRandom) -> [[UInt8]] {
        (0..<n).map { _ in text(Int.random(in: lengths, using: &rng), alphabet, &rng) }
    }

    /// Checks one slot both ways: with room for every record (the exact
    /// list) and, when there are matches, with room for fewer (found stays
    /// exact, stored is the capacity, every record is a real match).
    static func check(
        _ literals: [[UInt8]], fold: Bool, _ text: [UInt8], offset: Int, startLimit: Int, _ label: String
    ) throws {
        let table = ScanTable(try PatternSet(literals: literals, caseInsensitive: fold)).words
        let expected = oracle(literals, fold: fold, text, startLimit: startLimit)
        let full = kernel(table, text, offset: offset, startLimit: startLimit, records: expected.count + 3)
        #expect(full.found == UInt64(expected.count), "\(label): found")
        #expect(full.records == expected, "\(label): records; first difference \(Self.firstDifference(full.records, expected))")
        #expect(full.completion == Int64(ScanOp.headerWords + 2 * expected.count), "\(label): completion")
        let counted = kernel(table, text, offset: offset, startLimit: startLimit, countOnly: true, records: 4)
        #expect(counted.found == UInt64(expected.count) && counted.records.isEmpty, "\(label): count only")
        guard expected.count > 1 else { return }
        let few = kernel(table, text, offset: offset, startLimit: startLimit, records: expected.count / 2)
        #expect(few.found == UInt64(expected.count), "\(label): found with a small area")
        #expect(few.records.count == expected.count / 2, "\(label): stored with a small area")
        #expect(Set(few.records).isSubset(of: Set(expected)), "\(label): records with a small area")
    }

    @Test(arguments: 0..<24)
    func randomSetsEveryAlignment(seed: Int) throws {
        var rng = SeededRandom(state: UInt64(seed) &+ 400)
        let alphabets: [[UInt8]] = [Array("ab".utf8), Array("acgt".utf8), Array("abcAB\n".utf8), (0...255).map { UInt8($0) }]
        let alphabet = alphabets[seed % alphabets.count]
        let fold = seed % 3 == 1
        let sizes = [0, 1, 3, 4, 5, 17, 1000, 16_384 - 3, 16_384 + 5, 40_000]
        let n = sizes[seed % sizes.count]
        let text = Self.text(n, alphabet, &rng)
        let lengths: ClosedRange<Int> = seed % 2 == 0 ? 1...6 : 3...12
        var literals = Self.literals(Int.random(in: 1...60, using: &rng), lengths, alphabet, &rng)
        if n > 20 {  // some that surely occur, one a duplicate
            let at = Int.random(in: 0..<(n - 12), using: &rng)
            literals += [Array(text[at..<(at + 5)]), Array(text[at..<(at + 5)]), Array(text[(n - 4)..<n])]
        }
        let startLimit = seed % 4 == 3 ? max(0, n - Int.random(in: 0...min(n, 300), using: &rng)) : n
        try Self.check(literals, fold: fold, text, offset: seed % 16, startLimit: startLimit, "seed \(seed)")
    }

    /// Literals longer than the bytes staged past a tile (240), cut from the
    /// text across the first tile edge, so verification reads the chunk.
    @Test func longLiteralsAcrossATileEdge() throws {
        var rng = SeededRandom(state: 77)
        let text = Self.text(50_000, Array("abcd".utf8), &rng)
        let edge = 16_384
        let literals = [Array(text[(edge - 10)..<(edge + 290)]), Array(text[(edge - 300)..<(edge + 1)]), Array(text[5..<9])]
        for offset in [0, 3, 13] {
            try Self.check(literals, fold: false, text, offset: offset, startLimit: text.count, "long literals, offset \(offset)")
        }
    }

    /// 300,000 literals of 8-10 bytes (and a few short ones) are too many
    /// long keys for shared memory: the long filter is read from global
    /// memory while the short one stays in shared memory; with the short one
    /// widened past the cache too, both are read from global memory.
    @Test func theLongFilterPastTheSharedMemoryCache() throws {
        var rng = SeededRandom(state: 78)
        let alphabet = Array("abcdefgh".utf8)
        let literals = Self.literals(300_000, 8...10, alphabet, &rng) + Self.literals(20, 3...6, alphabet, &rng)
        let table = ScanTable(try PatternSet(literals: literals)).words
        typealias H = ScanTable.Header
        #expect((1 << table[H.filterBits.rawValue]) + (1 << table[H.longFilterBits.rawValue]) > ScanTable.filterBudgetBits)
        let text = Self.text(20_000, alphabet, &rng)
        try Self.check(literals, fold: false, text, offset: 5, startLimit: 20_000, "300,000 literals")
        let expected = Self.oracle(literals, fold: false, text, startLimit: text.count)
        let both = Self.kernel(Self.widenShortFilter(table, toBits: 20), text, offset: 9, startLimit: text.count, records: expected.count)
        #expect(both.found == UInt64(expected.count))
        #expect(both.records == expected, "first difference \(Self.firstDifference(both.records, expected))")
    }

    /// A short filter of 2^20 bits, past the cache: the short filter is read
    /// from global memory and the long one from shared memory, where it
    /// then starts at word 0.
    @Test func aShortFilterPastTheSharedMemoryCache() throws {
        var rng = SeededRandom(state: 81)
        let alphabet = Array("abcd".utf8)
        let literals = Self.literals(60, 2...12, alphabet, &rng)
        let table = Self.widenShortFilter(ScanTable(try PatternSet(literals: literals)).words, toBits: 20)
        let text = Self.text(30_000, alphabet, &rng)
        let expected = Self.oracle(literals, fold: false, text, startLimit: text.count)
        let run = Self.kernel(table, text, offset: 7, startLimit: text.count, records: expected.count)
        #expect(run.found == UInt64(expected.count))
        #expect(run.records == expected, "first difference \(Self.firstDifference(run.records, expected))")
    }

    /// The same table with its short filter rebuilt at 2^bits bits from the
    /// documented hashes of its short literals' keys, every later section moved.
    static func widenShortFilter(_ table: [UInt32], toBits bits: UInt32) -> [UInt32] {
        typealias H = ScanTable.Header
        let offset = Int(table[H.filterOffset.rawValue]), oldWords = (1 << Int(table[H.filterBits.rawValue])) / 32
        var filter = [UInt32](repeating: 0, count: (1 << Int(bits)) / 32)
        let patternStart = Int(table[H.patternStartOffset.rawValue]), blob = Int(table[H.blobOffset.rawValue])
        func byte(_ i: Int) -> UInt32 { (table[blob + i / 4] >> (8 * UInt32(i % 4))) & 0xFF }
        for p in 0..<Int(table[H.patternCount.rawValue]) {
            let start = Int(table[patternStart + p]), length = Int(table[patternStart + p + 1]) - start
            guard length < Int(table[H.longKeyOffset.rawValue]) + ScanTable.longKeyBytes else { continue }
            let k = min(length, 4)
            let key = (0..<k).reduce(UInt32(0)) { $0 | byte(start + $1) << (8 * UInt32($1)) }
            for h in [ScanTable.hash(key: key, length: k), ScanTable.secondHash(key: key, length: k)] {
                let bit = h >> (32 - bits)
                filter[Int(bit >> 5)] |= 1 << (bit & 31)
            }
        }
        var out = Array(table[0..<offset]) + filter + Array(table[(offset + oldWords)...])
        let delta = UInt32(filter.count - oldWords)
        for field in [H.longFilterOffset, .bucketStartOffset, .entriesOffset, .patternStartOffset, .blobOffset] {
            out[field.rawValue] += delta
        }
        out[H.filterBits.rawValue] = bits
        out[H.totalWords.rawValue] = UInt32(out.count)
        return out
    }

    /// A table that sets one filter bit a key is matched exactly; a probe
    /// count of 3 is refused (the slot would fault badArguments).
    @Test func oneProbeTablesAndRefusedTables() throws {
        var rng = SeededRandom(state: 79)
        let alphabet = Array("abc".utf8)
        let literals = Self.literals(40, 2...6, alphabet, &rng)
        let text = Self.text(30_000, alphabet, &rng)
        var table = ScanTable(try PatternSet(literals: literals)).words
        let expected = Self.oracle(literals, fold: false, text, startLimit: text.count)
        table[ScanTable.Header.filterProbes.rawValue] = 1
        let one = Self.kernel(table, text, offset: 0, startLimit: text.count, records: expected.count)
        #expect(one.found == UInt64(expected.count))
        #expect(one.records == expected, "first difference \(Self.firstDifference(one.records, expected))")
        table[ScanTable.Header.filterProbes.rawValue] = 3
        #expect(Self.kernel(table, text, offset: 0, startLimit: text.count, records: 8).completion == -1)
        table[ScanTable.Header.filterProbes.rawValue] = 2
        for longKeyOffset: UInt32 in [2, 28] {  // not a multiple of 4; past the maximum
            table[ScanTable.Header.longKeyOffset.rawValue] = longKeyOffset
            #expect(Self.kernel(table, text, offset: 0, startLimit: text.count, records: 8).completion == -1)
        }
    }

    /// Literals that share a long prefix ("https://www." and the like) are
    /// keyed at an offset past it (4-24 bytes): the long key is read from
    /// the tile words after the position's own, across tile edges and near
    /// the chunk's end; literals too short for the offset become short ones.
    /// Every alignment, -i on alternate seeds, start limits.
    @Test(arguments: 0..<16)
    func sharedPrefixSets(seed: Int) throws {
        var rng = SeededRandom(state: UInt64(seed) &+ 900)
        let prefixes = ["https://www.", "/usr/lib/x86_64/", "AKIAAKIAAKIA", "ab"].map { Array($0.utf8) }
        let prefix = prefixes[seed % prefixes.count]
        let alphabet = Array("xyzXYZ.".utf8)
        var literals = (0..<Int.random(in: 20...80, using: &rng)).map { _ in
            prefix + Self.text(Int.random(in: 0...16, using: &rng), alphabet, &rng)
        }
        literals += [Array(prefix.prefix(3)), Array(prefix.prefix(9)), prefix + Array("xy".utf8)]
        literals += [4, 8, 12].map { prefix + Self.text($0, alphabet, &rng) }
        let fold = seed % 2 == 1
        let table = ScanTable(try PatternSet(literals: literals, caseInsensitive: fold)).words
        let longKeyOffset = Int(table[ScanTable.Header.longKeyOffset.rawValue])
        if prefix.count >= 12 { #expect(longKeyOffset > 0, "seed \(seed): offset") }
        let n = [100, 16_384 + 7, 40_000, 16_384 - 20][seed % 4]
        var text: [UInt8] = []
        while text.count < n {
            text += Int.random(in: 0..<3, using: &rng) == 0 ? literals.randomElement(using: &rng)! : prefix
            text += Self.text(Int.random(in: 0...6, using: &rng), alphabet, &rng)
        }
        // The chunk ends in a literal of exactly the long key's reach where
        // there is one (the last long candidate), else in a key that runs
        // past the end.
        let last = literals.first { $0.count == longKeyOffset + ScanTable.longKeyBytes } ?? prefix
        text = Array(text.prefix(n - last.count)) + last
        let startLimit = seed % 3 == 2 ? max(0, n - Int.random(in: 1...50, using: &rng)) : n
        try Self.check(literals, fold: fold, text, offset: seed % 16, startLimit: startLimit, "seed \(seed)")
    }

    /// One persistent block runs slots of three tables in turn (short
    /// literals; URLs keyed past their shared prefix; a short filter past the
    /// cache), keeping its shared memory and loaded table between slots as
    /// the megakernel's workers do: each slot's matches equal the oracle's,
    /// so a table switch reloads what the previous table left behind, and a
    /// repeat of the same table reuses it.
    @Test func aPersistentBlockSwitchesTables() throws {
        var rng = SeededRandom(state: 95)
        let alphabet = Array("abcd:/w.".utf8)
        let short = Self.literals(40, 1...6, alphabet, &rng)
        let urls = (0..<30).map { _ in Array("https://www.".utf8) + Self.text(Int.random(in: 2...10, using: &rng), alphabet, &rng) }
        let wide = Self.literals(50, 2...12, alphabet, &rng)
        let sets = [short, urls, wide]
        let tables = [
            ScanTable(try PatternSet(literals: short)).words, ScanTable(try PatternSet(literals: urls)).words,
            Self.widenShortFilter(ScanTable(try PatternSet(literals: wide)).words, toBits: 20),
        ]
        #expect(tables[1][ScanTable.Header.longKeyOffset.rawValue] > 0)
        let order = [0, 1, 0, 2, 1, 1, 2, 0]
        let texts: [[UInt8]] = order.map { set in
            var text: [UInt8] = []
            while text.count < 20_000 {
                text += Self.text(Int.random(in: 0...20, using: &rng), alphabet, &rng)
                text += sets[set].randomElement(using: &rng)!
            }
            return text
        }
        let expected = order.indices.map { Self.oracle(sets[order[$0]], fold: false, texts[$0], startLimit: texts[$0].count) }
        var results = expected.map { [UInt32](repeating: 0xDEAD_BEEF, count: ScanOp.headerWords + 2 * $0.count) }
        var completions = [Int64](repeating: 0, count: order.count)
        // Every buffer stays put while the jobs hold pointers into it.
        func copy<T>(_ values: [T]) -> UnsafeMutableBufferPointer<T> {
            let buffer = UnsafeMutableBufferPointer<T>.allocate(capacity: values.count)
            _ = buffer.initialize(from: values)
            return buffer
        }
        let tablePointers = tables.map(copy), textPointers = texts.map(copy), resultPointers = results.map(copy)
        defer {
            tablePointers.forEach { $0.deallocate() }
            textPointers.forEach { $0.deallocate() }
            resultPointers.forEach { $0.deallocate() }
        }
        let jobs = order.indices.map { j in
            SluiceTwinJob(
                table: UnsafePointer(tablePointers[order[j]].baseAddress), tableWords: tables[order[j]].count,
                chunk: UnsafePointer(textPointers[j].baseAddress), length: UInt32(texts[j].count),
                startLimit: UInt32(texts[j].count), flags: 0, result: resultPointers[j].baseAddress,
                resultWords: UInt32(resultPointers[j].count))
        }
        sluice_scan_kernel_twin_jobs(jobs, jobs.count, &completions)
        for j in order.indices {
            results[j] = Array(resultPointers[j])
            let stored = Int(results[j][2])
            let records = (0..<stored).map {
                ScanMatchRecord(position: results[j][ScanOp.headerWords + 2 * $0], pattern: results[j][ScanOp.headerWords + 2 * $0 + 1])
            }.sorted()
            #expect(completions[j] == Int64(ScanOp.headerWords + 2 * expected[j].count), "slot \(j)")
            #expect(records == expected[j], "slot \(j) (table \(order[j])): \(Self.firstDifference(records, expected[j]))")
        }
    }
}
