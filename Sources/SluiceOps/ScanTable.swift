import SluiceCore

/// A compiled pattern set in one flat array of 32-bit words: the layout the
/// CPU matcher and the GPU kernel both read (docs/protocol.md, "scan").
///
/// Every literal is keyed by its first k = min(length, 4) bytes (folded for
/// `-i`). A multiplicative hash of that key picks a bucket; a bitmap indexed
/// by two finer hashes (a Bloom filter of two probes) rejects most text
/// positions with one or two bit tests; the bucket's entries (key, pattern)
/// are then checked against the key and verified byte by byte. Exact
/// verification means the prefilter can only cost time, never a match.
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
        /// log2 of the prefilter bitmap's size in bits, indexed by the top `filterBits` bits of a key's hash.
        case filterBits
        /// Bit k-1 set when some literal has a key of k bytes (k = 1...4).
        case keyLengthMask
        /// Word index of the prefilter bitmap.
        case filterOffset
        /// Word index of the bucket starts: bucket b's entries are `bucketStart[b] ..< bucketStart[b + 1]`.
        case bucketStartOffset
        /// Word index of the entries: pairs of words (key, pattern number), by bucket.
        case entriesOffset
        /// Word index of the pattern starts: literal i is blob bytes `patternStart[i] ..< patternStart[i + 1]`.
        case patternStartOffset
        /// Word index of the blob: every literal's bytes (folded for -i), back to back, packed little-endian.
        case blobOffset
        /// Bytes in the blob.
        case blobBytes
        /// Words in the whole table.
        case totalWords
        /// Filter bits each key sets: 1 (the top `filterBits` of `hash`) or 2 (those of `secondHash` too).
        case filterProbes
        /// Words in the header.
        public static let words = 16
    }

    /// "SCN1".
    public static let magic: UInt32 = 0x314E_4353
    /// `Header.flags` bit: literals and text are compared with ASCII letters folded to lower case.
    public static let caseInsensitiveFlag: UInt32 = 1
    /// The odd multiplier of the key hash, near 2^32 / φ (Fibonacci hashing).
    public static let hashMultiplier: UInt32 = 0x9E37_79B1

    /// The odd multiplier of the filter's second probe (the constant xxHash32 calls PRIME32_2).
    public static let secondHashMultiplier: UInt32 = 0x85EB_CA77
    /// The filter's size ceiling, log2 of its bits: 2^19 bits (64 KiB), what the
    /// megakernel keeps in shared memory (`SLUICE_FILTER_CACHE_WORDS`), since
    /// a filter the GPU reads from global memory costs far more than its
    /// extra false positives would.
    public static let maximumFilterBits = 19

    /// The table image, to copy into backend memory as is.
    public let words: [UInt32]

    /// The hash of a (folded) key of `k` bytes packed little-endian in `key`.
    @inline(__always)
    public static func hash(key: UInt32, length k: Int) -> UInt32 {
        let tagged = k == 4 ? key : key | UInt32(k) << 24
        return tagged &* hashMultiplier
    }

    /// The filter's second probe for the same key: a second multiplicative
    /// hash, so that a key's two bits are independent of each other.
    @inline(__always)
    public static func secondHash(key: UInt32, length k: Int) -> UInt32 {
        let tagged = k == 4 ? key : key | UInt32(k) << 24
        return tagged &* secondHashMultiplier
    }

    /// log2 of the filter's bits for `n` literals: about 256 bits a literal
    /// (two probes then pass a random key about once in 16,000), at most
    /// `maximumFilterBits` unless the buckets need more (a filter is never
    /// coarser than the buckets).
    static func filterBits(literals n: Int, bucketBits: Int) -> Int {
        max(bucketBits, min(maximumFilterBits, bitWidth(n) + 8))
    }

    /// Compiles `set`. Exact duplicate literals (after folding, for -i) keep
    /// only their first pattern number, so a match is reported once.
    public init(_ set: PatternSet) {
        let fold = set.caseInsensitive
        let n = set.count
        let bucketBits = max(8, min(22, bitWidth(n) + 1))
        let filterBits = ScanTable.filterBits(literals: n, bucketBits: bucketBits)
        var seen: [[UInt8]: Int] = [:]
        var entries: [[(key: UInt32, pattern: UInt32)]] = Array(repeating: [], count: 1 << bucketBits)
        var filter = [UInt32](repeating: 0, count: max(1, (1 << filterBits) / 32))
        var keyMask: UInt32 = 0
        var patternStart: [UInt32] = [0]
        var blob: [UInt8] = []
        for (i, literal) in set.literals.enumerated() {
            let folded = fold ? literal.map(foldASCII) : literal
            blob += folded
            patternStart.append(UInt32(blob.count))
            if seen[folded] != nil { continue }
            seen[folded] = i
            let k = min(folded.count, 4)
            var key: UInt32 = 0
            for j in 0..<k { key |= UInt32(folded[j]) << (8 * j) }
            let h = ScanTable.hash(key: key, length: k)
            entries[Int(h >> (32 - bucketBits))].append((key, UInt32(i)))
            for probe in [h, ScanTable.secondHash(key: key, length: k)] {
                let bit = Int(probe >> (32 - filterBits))
                filter[bit >> 5] |= 1 << (bit & 31)
            }
            keyMask |= 1 << (k - 1)
        }
        var bucketStart: [UInt32] = [0]
        var flat: [UInt32] = []
        for bucket in entries {
            for e in bucket { flat += [e.key, e.pattern] }
            bucketStart.append(UInt32(flat.count / 2))
        }
        var blobWords = [UInt32](repeating: 0, count: (blob.count + 3) / 4)
        for (j, b) in blob.enumerated() { blobWords[j >> 2] |= UInt32(b) << (8 * (j & 3)) }

        var w = [UInt32](repeating: 0, count: Header.words)
        w[Header.magic.rawValue] = ScanTable.magic
        w[Header.patternCount.rawValue] = UInt32(n)
        w[Header.flags.rawValue] = fold ? ScanTable.caseInsensitiveFlag : 0
        w[Header.minLength.rawValue] = UInt32(set.minLength)
        w[Header.maxLength.rawValue] = UInt32(set.maxLength)
        w[Header.hashBits.rawValue] = UInt32(bucketBits)
        w[Header.filterBits.rawValue] = UInt32(filterBits)
        w[Header.keyLengthMask.rawValue] = keyMask
        w[Header.filterProbes.rawValue] = 2
        w[Header.filterOffset.rawValue] = UInt32(w.count)
        w += filter
        w[Header.bucketStartOffset.rawValue] = UInt32(w.count)
        w += bucketStart
        w[Header.entriesOffset.rawValue] = UInt32(w.count)
        w += flat
        w[Header.patternStartOffset.rawValue] = UInt32(w.count)
        w += patternStart
        w[Header.blobOffset.rawValue] = UInt32(w.count)
        w[Header.blobBytes.rawValue] = UInt32(blob.count)
        w += blobWords
        w[Header.totalWords.rawValue] = UInt32(w.count)
        words = w
    }
}

private func bitWidth(_ n: Int) -> Int { Int.bitWidth - max(n, 1).leadingZeroBitCount }
