import Glibc
import SluiceCore

/// A compiled pattern set in one flat array of 32-bit words: the layout the
/// CPU matcher and the GPU kernel both read (docs/protocol.md, "scan").
///
/// A literal at least `longKeyOffset + longKeyBytes` bytes long is *long*:
/// its key is the `longKeyBytes` bytes at `longKeyOffset` (folded for `-i`).
/// Every other literal is *short*, keyed by its first k = min(length, 4)
/// bytes. A multiplicative hash of the key picks a bucket of (check word,
/// pattern) entries; the check word is a short literal's key and a long
/// literal's key hash. Two Bloom filters (two probes each, as built) reject most text
/// positions before any bucket is read: the short filter holds the short
/// keys, the long filter the long ones, so a long literal's position passes
/// only when eight text bytes agree (four bytes of text match some literal's
/// prefix far too often once there are 100,000 literals). The offset is
/// chosen per set (`longKeyOffset(_:)`) so that literals sharing a long
/// prefix, such as URLs, still spread over many buckets. Exact verification
/// means the filters and buckets can only cost time, never a match.
public struct ScanTable: Sendable {
    /// Word indices of the header.
    public enum Header: Int, CaseIterable {
        /// `ScanTable.magic`.
        case magic = 0
        /// Literals in the set, duplicates included (pattern numbers run below it).
        case patternCount
        /// `caseInsensitiveFlag` or 0.
        case flags
        /// Bytes of the shortest literal.
        case minLength
        /// Bytes of the longest literal.
        case maxLength
        /// log2 of the bucket count: a key's bucket is the top `hashBits` bits of its hash.
        case hashBits
        /// log2 of the short filter's size in bits (0: no literal is short).
        case filterBits
        /// Bit k-1 set when some short literal has a key of k bytes (k = 1...4).
        case keyLengthMask
        /// Word index of the short filter.
        case filterOffset
        /// Word index of the bucket starts: bucket b's entries are `bucketStart[b] ..< bucketStart[b + 1]`.
        case bucketStartOffset
        /// Word index of the entries: pairs of words (check word, pattern number), by bucket.
        case entriesOffset
        /// Word index of the pattern starts: literal i is blob bytes `patternStart[i] ..< patternStart[i + 1]`.
        case patternStartOffset
        /// Word index of the blob: every literal's bytes (folded for -i), back to back, packed little-endian.
        case blobOffset
        /// Bytes in the blob.
        case blobBytes
        /// Words in the whole table.
        case totalWords
        /// Filter bits each key sets in its filter: 1 (the first probe only) or 2.
        case filterProbes
        /// log2 of the long filter's size in bits (0: no literal is long).
        case longFilterBits
        /// Word index of the long filter (the builder places it right after the short one).
        case longFilterOffset
        /// Where a long literal's key starts in it: a multiple of 4, at most
        /// `maximumLongKeyOffset`; literals of `longKeyOffset + longKeyBytes`
        /// bytes or more are long.
        case longKeyOffset
        /// Zero.
        case reserved19
        /// Words in the header.
        public static let words = 20
    }

    /// "SCN3" (version 2 added the long filter, version 3 the long key's
    /// offset and buckets of its own for the long literals).
    public static let magic: UInt32 = 0x334E_4353
    /// `Header.flags` bit: literals and text are compared with ASCII letters folded to lower case.
    public static let caseInsensitiveFlag: UInt32 = 1
    /// The odd multiplier of the key hash, near 2^32 / φ (Fibonacci hashing).
    public static let hashMultiplier: UInt32 = 0x9E37_79B1
    /// The odd multiplier of the filters' second probe (the constant xxHash32 calls PRIME32_2).
    public static let secondHashMultiplier: UInt32 = 0x85EB_CA77
    /// The odd multiplier that mixes a long key's hash for its second probe (xxHash32's PRIME32_3).
    public static let longMixMultiplier: UInt32 = 0xC2B2_AE3D
    /// Bytes of a long literal's key.
    public static let longKeyBytes = 8
    /// The furthest a long key may start into its literal (the kernel reads
    /// it from the staged tile, whose overlap holds it).
    public static let maximumLongKeyOffset = 24
    /// The largest filter kept in shared memory, log2 of its bits: 2^19 bits (64 KiB).
    public static let maximumFilterBits = 19
    /// The two filters' shared-memory budget in bits: 2^19 + 2^15 (68 KiB),
    /// what the megakernel keeps in shared memory (`SLUICE_FILTER_CACHE_WORDS`),
    /// so that a full filter fits beside a small one. A filter the GPU reads
    /// from global memory costs far more than the extra false positives of
    /// a smaller one, until there are too many keys for it.
    public static let filterBudgetBits = (1 << 19) + (1 << 15)

    /// The table image, to copy into backend memory as is.
    public let words: [UInt32]

    /// A (folded) key of `k` bytes packed little-endian in `key`, tagged
    /// with its length below 4 so that keys of different lengths differ.
    @inline(__always)
    static func tagged(key: UInt32, length k: Int) -> UInt32 {
        k == 4 ? key : key | UInt32(k) << 24
    }

    /// The hash of a (folded) key of `k` bytes packed little-endian in `key`.
    @inline(__always)
    public static func hash(key: UInt32, length k: Int) -> UInt32 {
        tagged(key: key, length: k) &* hashMultiplier
    }

    /// The short filter's second probe for the same key: a second
    /// multiplicative hash, so that a key's two bits are independent.
    @inline(__always)
    public static func secondHash(key: UInt32, length k: Int) -> UInt32 {
        tagged(key: key, length: k) &* secondHashMultiplier
    }

    /// The long filter's first probe: the hash of eight (folded) key bytes,
    /// `low` the first four and `high` the next four, packed little-endian.
    @inline(__always)
    public static func longHash(low: UInt32, high: UInt32) -> UInt32 {
        (low &* hashMultiplier ^ high) &* secondHashMultiplier
    }

    /// The long filter's second probe, mixed from its first.
    @inline(__always)
    public static func longSecondHash(_ first: UInt32) -> UInt32 {
        first &* longMixMultiplier
    }

    /// The share of random keys that pass a filter of 2^`log2Bits` bits
    /// holding `keys` keys with two probes, (1 - e^(-2 keys / bits))^2.
    public static func falsePositiveRate(log2Bits: Int, keys: Int) -> Double {
        guard keys > 0 else { return 0 }
        guard log2Bits > 0 else { return 1 }
        let fill = 1 - exp(-2 * Double(keys) / Double(1 << log2Bits))
        return fill * fill
    }

    /// The false-positive rate above which a filter leaves shared memory for
    /// global memory, where it can be as large as its keys need (every
    /// position then reads it through L2, which costs about as much as a
    /// bucket search for one position in six or seven: not yet measured on the GPU).
    public static let sharedFilterRateLimit = 0.15

    /// log2 of the two filters' sizes in bits (0: that filter is empty and
    /// absent) for `short` and `long` distinct keys. Each wants 256-512 bits
    /// a key (two probes then pass a random key about once in 16,000), at
    /// most 2^`maximumFilterBits`; when both cannot have that within
    /// `filterBudgetBits`, the pair of sizes within it that passes the fewest
    /// random keys in all. A filter that would still pass more than
    /// `sharedFilterRateLimit` is sized for global memory instead (8-16 bits
    /// a key, where the GPU's L2 holds it), and the other has the budget.
    public static func filterSizes(short: Int, long: Int) -> (short: Int, long: Int) {
        func wanted(_ n: Int) -> Int { n == 0 ? 0 : min(maximumFilterBits, max(5, bitWidth(n) + 8)) }
        func bits(_ f: Int) -> Int { f == 0 ? 0 : 1 << f }
        func rate(_ s: Int, _ l: Int) -> Double {
            falsePositiveRate(log2Bits: s, keys: short) + falsePositiveRate(log2Bits: l, keys: long)
        }
        let (ws, wl) = (wanted(short), wanted(long))
        var best = (s: ws, l: wl)
        if bits(ws) + bits(wl) > filterBudgetBits {
            var bestRate = Double.infinity
            for s in short == 0 ? [0] : Array(5...ws) {
                for l in long == 0 ? [0] : Array(5...wl) where bits(s) + bits(l) <= filterBudgetBits && rate(s, l) < bestRate {
                    (best, bestRate) = ((s, l), rate(s, l))
                }
            }
        }
        func global(_ n: Int) -> Int { min(26, bitWidth(n) + 3) }
        let shortGlobal = falsePositiveRate(log2Bits: best.s, keys: short) > sharedFilterRateLimit
        let longGlobal = falsePositiveRate(log2Bits: best.l, keys: long) > sharedFilterRateLimit
        switch (shortGlobal, longGlobal) {
        case (false, false): return (best.s, best.l)
        case (true, false): return (global(short), wl)
        case (false, true): return (ws, global(long))
        case (true, true): return (global(short), global(long))
        }
    }

    /// One literal's place in the table: its bucket hash, the check word its
    /// entry holds, and which filter bits it sets.
    struct Keyed {
        /// A short literal's key (its first `keyLength` bytes); a long one's key hash.
        var check: UInt32
        /// Bytes in a short literal's key, at most 4; 0 for a long literal.
        var keyLength: Int
        /// The hash whose top bits pick the literal's bucket.
        var hash: UInt32
        /// Short-filter probes (nil for a long literal).
        var short: (UInt32, UInt32)?
        /// Long-filter probes (nil for a short literal).
        var long: (UInt32, UInt32)?
    }

    /// Where `folded` goes: long when it holds the long key at `offset`.
    static func keyed(_ folded: [UInt8], longKeyOffset offset: Int) -> Keyed {
        guard let (low, high) = longKey(folded, at: offset) else {
            let (key, k) = shortKey(folded)
            let h = hash(key: key, length: k)
            return Keyed(check: key, keyLength: k, hash: h, short: (h, secondHash(key: key, length: k)), long: nil)
        }
        let first = longHash(low: low, high: high)
        return Keyed(check: first, keyLength: 0, hash: first, short: nil, long: (first, longSecondHash(first)))
    }

    /// The long key of `literal` at `offset` (its two little-endian words),
    /// or nil when the literal is too short for it, so short.
    static func longKey(_ literal: [UInt8], at offset: Int) -> (low: UInt32, high: UInt32)? {
        guard literal.count >= offset + longKeyBytes else { return nil }
        return (littleEndianWord(literal[offset..<offset + 4]), littleEndianWord(literal[offset + 4..<offset + 8]))
    }

    /// A short literal's key: its first k = min(length, 4) bytes, little-endian.
    static func shortKey(_ literal: [UInt8]) -> (key: UInt32, length: Int) {
        let k = min(literal.count, 4)
        return (littleEndianWord(literal[0..<k]), k)
    }

    /// The long key's offset for these distinct (folded) literals. 0 while
    /// no more than `smallWalk` literals share a check word there; else, of
    /// the multiples of 4 up to `maximumLongKeyOffset`, the one whose
    /// largest group (`Keying.largestWalk`) is smallest (the nearest to 0 on
    /// a tie), among those that leave fewer literals short than offset 0's
    /// largest group: a literal too short for the offset is keyed by its
    /// first 4 bytes, which ordinary text passes far more often than 8.
    static func longKeyOffset(_ literals: [[UInt8]]) -> Int {
        let atZero = Keying(literals, longKeyOffset: 0)
        guard atZero.largestWalk > smallWalk else { return 0 }
        var best = (offset: 0, walk: atZero.largestWalk)
        for offset in stride(from: 4, through: maximumLongKeyOffset, by: 4) {
            let keying = Keying(literals, longKeyOffset: offset)
            if keying.demoted < atZero.largestWalk, keying.largestWalk < best.walk {
                best = (offset, keying.largestWalk)
            }
        }
        return best.offset
    }

    /// The largest group of literals (`Keying.largestWalk`) left as it is: a
    /// set whose offset-0 walk is no larger keeps offset 0.
    public static let smallWalk = 8

    /// How the long key at one offset keys a set of distinct literals.
    struct Keying {
        /// The most literals that share one check word: long literals with
        /// the same eight key bytes, or short ones with the same key of the
        /// same length. A candidate position verifies each of them.
        var largestWalk = 0
        /// Literals of `longKeyBytes` bytes or more that are too short for
        /// the offset, so short.
        var demoted = 0

        init(_ literals: [[UInt8]], longKeyOffset offset: Int) {
            var long: [UInt64: Int] = [:]
            var short: [UInt64: Int] = [:]
            long.reserveCapacity(literals.count)
            for literal in literals {
                let count: Int
                if let (low, high) = longKey(literal, at: offset) {
                    let key = UInt64(low) | UInt64(high) << 32
                    count = long[key, default: 0] + 1
                    long[key] = count
                } else {
                    let (word, k) = shortKey(literal)
                    let key = UInt64(word) | UInt64(k) << 32
                    count = short[key, default: 0] + 1
                    short[key] = count
                    if literal.count >= longKeyBytes { demoted += 1 }
                }
                largestWalk = max(largestWalk, count)
            }
        }
    }

    /// The literals folded (for -i) and packed: each distinct one with its
    /// first pattern number and key, the pattern starts and the blob.
    struct Literals {
        var unique: [(pattern: UInt32, keyed: Keyed)] = []
        var patternStart: [UInt32] = [0]
        var blob: [UInt8] = []
        var longKeyOffset = 0

        init(_ set: PatternSet) {
            var seen: Set<[UInt8]> = []
            var distinct: [(pattern: UInt32, folded: [UInt8])] = []
            for (i, literal) in set.literals.enumerated() {
                let folded = set.caseInsensitive ? literal.map(foldASCII) : literal
                blob += folded
                patternStart.append(UInt32(blob.count))
                if seen.insert(folded).inserted { distinct.append((UInt32(i), folded)) }
            }
            longKeyOffset = ScanTable.longKeyOffset(distinct.map(\.folded))
            unique = distinct.map { ($0.pattern, ScanTable.keyed($0.folded, longKeyOffset: longKeyOffset)) }
        }

        /// The blob as little-endian words.
        var blobWords: [UInt32] {
            var words = [UInt32](repeating: 0, count: (blob.count + 3) / 4)
            for (j, b) in blob.enumerated() { words[j >> 2] |= UInt32(b) << (8 * (j & 3)) }
            return words
        }
    }

    /// Both prefilters, sized by `filterSizes` for the distinct keys, and
    /// the key lengths of the short literals.
    struct Filters {
        var short: BloomBits
        var long: BloomBits
        var keyMask: UInt32 = 0

        init(_ literals: Literals) {
            // Distinct keys, as distinct probe pairs packed into one word each.
            func distinct(_ probes: KeyPath<Keyed, (UInt32, UInt32)?>) -> Int {
                Set(literals.unique.compactMap { $0.keyed[keyPath: probes].map { UInt64($0.0) | UInt64($0.1) << 32 } }).count
            }
            let sizes = ScanTable.filterSizes(short: distinct(\.short), long: distinct(\.long))
            short = BloomBits(log2Bits: sizes.short)
            long = BloomBits(log2Bits: sizes.long)
            for (_, keyed) in literals.unique {
                if let (a, b) = keyed.short {
                    short.set(a, b)
                    keyMask |= 1 << (keyed.keyLength - 1)
                }
                if let (a, b) = keyed.long { long.set(a, b) }
            }
        }
    }

    /// Compiles `set`. Exact duplicate literals (after folding, for -i) keep
    /// only their first pattern number, so a match is reported once.
    public init(_ set: PatternSet) {
        let bucketBits = max(8, min(22, bitWidth(set.count) + 1))
        let literals = Literals(set)
        let filters = Filters(literals)
        var entries: [[(check: UInt32, pattern: UInt32)]] = Array(repeating: [], count: 1 << bucketBits)
        for (pattern, keyed) in literals.unique {
            entries[Int(keyed.hash >> (32 - bucketBits))].append((keyed.check, pattern))
        }
        var w = [UInt32](repeating: 0, count: Header.words)
        w[Header.magic.rawValue] = ScanTable.magic
        w[Header.patternCount.rawValue] = UInt32(set.count)
        w[Header.flags.rawValue] = set.caseInsensitive ? ScanTable.caseInsensitiveFlag : 0
        w[Header.minLength.rawValue] = UInt32(set.minLength)
        w[Header.maxLength.rawValue] = UInt32(set.maxLength)
        w[Header.hashBits.rawValue] = UInt32(bucketBits)
        w[Header.filterBits.rawValue] = UInt32(filters.short.log2Bits)
        w[Header.longFilterBits.rawValue] = UInt32(filters.long.log2Bits)
        w[Header.longKeyOffset.rawValue] = UInt32(literals.longKeyOffset)
        w[Header.keyLengthMask.rawValue] = filters.keyMask
        w[Header.filterProbes.rawValue] = 2
        w[Header.filterOffset.rawValue] = UInt32(w.count)
        w += filters.short.words
        w[Header.longFilterOffset.rawValue] = UInt32(w.count)
        w += filters.long.words
        ScanTable.appendBuckets(entries, to: &w)
        w[Header.patternStartOffset.rawValue] = UInt32(w.count)
        w += literals.patternStart
        w[Header.blobOffset.rawValue] = UInt32(w.count)
        w[Header.blobBytes.rawValue] = UInt32(literals.blob.count)
        w += literals.blobWords
        w[Header.totalWords.rawValue] = UInt32(w.count)
        words = w
    }

    /// The bucket starts, then the entries by bucket.
    static func appendBuckets(_ entries: [[(check: UInt32, pattern: UInt32)]], to w: inout [UInt32]) {
        var bucketStart: [UInt32] = [0]
        var flat: [UInt32] = []
        for bucket in entries {
            for e in bucket { flat += [e.check, e.pattern] }
            bucketStart.append(UInt32(flat.count / 2))
        }
        w[Header.bucketStartOffset.rawValue] = UInt32(w.count)
        w += bucketStart
        w[Header.entriesOffset.rawValue] = UInt32(w.count)
        w += flat
    }
}

/// A Bloom filter's bit array: 2^log2Bits bits indexed by the top bits of
/// each probe's hash (no words at all for log2Bits 0, an absent filter).
struct BloomBits {
    let log2Bits: Int
    var words: [UInt32]

    init(log2Bits: Int) {
        self.log2Bits = log2Bits
        words = [UInt32](repeating: 0, count: log2Bits == 0 ? 0 : (1 << log2Bits) / 32)
    }

    /// Sets the bits of a key's two probes.
    mutating func set(_ first: UInt32, _ second: UInt32) {
        set(bitOf: first)
        set(bitOf: second)
    }

    private mutating func set(bitOf h: UInt32) {
        let bit = Int(h >> (32 - UInt32(log2Bits)))
        words[bit >> 5] |= 1 << (bit & 31)
    }
}

/// Up to four bytes packed little-endian (missing high bytes are zero).
private func littleEndianWord(_ bytes: ArraySlice<UInt8>) -> UInt32 {
    var word: UInt32 = 0
    for j in bytes.indices { word |= UInt32(bytes[j]) << (8 * UInt32(j - bytes.startIndex)) }
    return word
}

func bitWidth(_ n: Int) -> Int { Int.bitWidth - max(n, 1).leadingZeroBitCount }
