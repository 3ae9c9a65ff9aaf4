import SluiceCore

/// A validated view of a `ScanTable` image in memory (host or shared).
/// Validation happens once, when a table is installed; matching then trusts it.
public struct ScanTableView: @unchecked Sendable {
    /// The table's words; the memory must outlive the view.
    public let words: UnsafeBufferPointer<UInt32>
    let patternCount: Int
    let caseInsensitive: Bool
    let maxLength: Int
    let bucketBits: UInt32
    let filterBits: UInt32
    /// log2 of the long filter's bits; 0: no literal has a long key.
    let longFilterBits: UInt32
    /// Where a long literal's key starts in it.
    let longKeyOffset: Int
    /// Literals at least this long are long (keyed at `longKeyOffset`).
    let longMinimumLength: Int
    /// Whether each key set a second filter bit.
    let secondProbe: Bool
    /// Key lengths of the literals in the short filter, ascending.
    let keyLengths: [Int]
    /// Whether some short literal has a 4-byte key.
    let shortKeysOfFour: Bool
    let filter: UnsafePointer<UInt32>
    let longFilter: UnsafePointer<UInt32>
    let bucketStart: UnsafePointer<UInt32>
    let entries: UnsafePointer<UInt32>
    let patternStart: UnsafePointer<UInt32>
    let blob: UnsafeRawPointer
    /// Host-only side data (the GPU kernel never sees it): for each literal
    /// of at least `ScanOp.shiftMinimumLength` bytes that the table can report,
    /// where its Z-function starts in `zValues`.
    let zStart: [UInt32: Int]
    /// `zValues[zStart[p] + d]` = the length of the longest common prefix of
    /// literal p and its suffix from d (folded for -i), for 0 < d < length.
    let zValues: [UInt32]

    /// Checks every offset and index in the image, so that matching can never
    /// read outside it.
    public init(_ words: UnsafeBufferPointer<UInt32>) throws(PipelineError) {
        guard words.count >= ScanTable.Header.words, let base = words.baseAddress else {
            throw Self.bad("shorter than its header")
        }
        let header = try CheckedHeader(words)
        let sections = try CheckedSections(words, header)
        let maxLength = try Self.checkedIndexes(words, header, sections)
        self.words = words
        patternCount = header.patternCount
        caseInsensitive = words[ScanTable.Header.flags.rawValue] & ScanTable.caseInsensitiveFlag != 0
        self.maxLength = maxLength
        bucketBits = UInt32(header.bucketBits)
        filterBits = UInt32(header.filterBits)
        longFilterBits = UInt32(header.longFilterBits)
        longKeyOffset = header.longKeyOffset
        longMinimumLength = header.longKeyOffset + ScanTable.longKeyBytes
        secondProbe = header.probes == 2
        keyLengths = (1...4).filter { header.keyLengthMask & (1 << ($0 - 1)) != 0 }
        shortKeysOfFour = header.keyLengthMask & 8 != 0
        filter = base + sections.filter
        longFilter = base + sections.longFilter
        bucketStart = base + sections.bucketStart
        entries = base + sections.entries
        patternStart = base + sections.patternStart
        blob = UnsafeRawPointer(base + sections.blob)
        (zStart, zValues) = ScanTableView.zFunctions(
            entries: UnsafeBufferPointer(start: base + sections.entries, count: 2 * sections.entryCount),
            patternStart: base + sections.patternStart, blob: UnsafeRawPointer(base + sections.blob))
    }

    static func bad(_ detail: String) -> PipelineError { .malformed(what: "scan table", detail: detail) }

    /// The header's sizes and switches, each checked against what matching relies on.
    struct CheckedHeader {
        var patternCount: Int
        var bucketBits: Int
        var filterBits: Int
        var longFilterBits: Int
        var filterWords: Int
        var longFilterWords: Int
        var keyLengthMask: UInt32
        var probes: UInt32
        var longKeyOffset: Int

        init(_ words: UnsafeBufferPointer<UInt32>) throws(PipelineError) {
            typealias H = ScanTable.Header
            func h(_ f: H) -> Int { Int(words[f.rawValue]) }
            guard words[H.magic.rawValue] == ScanTable.magic else { throw bad("wrong magic") }
            guard h(.totalWords) == words.count else { throw bad("says \(h(.totalWords)) words, has \(words.count)") }
            patternCount = h(.patternCount)
            (bucketBits, filterBits, longFilterBits) = (h(.hashBits), h(.filterBits), h(.longFilterBits))
            func filterSize(_ bits: Int) -> Int? { bits == 0 ? 0 : (5...26).contains(bits) ? (1 << bits) / 32 : nil }
            guard (1...26).contains(bucketBits), let filterWords = filterSize(filterBits),
                let longFilterWords = filterSize(longFilterBits)
            else { throw bad("hash sizes \(bucketBits)/\(filterBits)/\(longFilterBits) out of range") }
            (self.filterWords, self.longFilterWords) = (filterWords, longFilterWords)
            keyLengthMask = words[H.keyLengthMask.rawValue]
            guard keyLengthMask <= 0xF, filterBits != 0 || keyLengthMask == 0 else {
                throw bad("key lengths \(keyLengthMask) without a short filter")
            }
            probes = words[H.filterProbes.rawValue]
            guard probes == 1 || probes == 2 else { throw bad("\(probes) filter probes (1 or 2)") }
            longKeyOffset = h(.longKeyOffset)
            guard longKeyOffset % 4 == 0, longKeyOffset <= ScanTable.maximumLongKeyOffset else {
                throw bad("long key offset \(longKeyOffset) (a multiple of 4 up to \(ScanTable.maximumLongKeyOffset))")
            }
            guard words[H.reserved19.rawValue] == 0 else { throw bad("reserved word set") }
        }
    }

    /// Where each section starts (word indices), each checked to lie inside the image.
    struct CheckedSections {
        var filter: Int
        var longFilter: Int
        var bucketStart: Int
        var entries: Int
        var entryCount: Int
        var patternStart: Int
        var blob: Int

        init(_ words: UnsafeBufferPointer<UInt32>, _ header: CheckedHeader) throws(PipelineError) {
            typealias H = ScanTable.Header
            func section(_ f: H, _ count: Int) throws(PipelineError) -> Int {
                let o = Int(words[f.rawValue])
                guard o >= H.words, count >= 0, o + count <= words.count else { throw bad("\(f) section out of bounds") }
                return o
            }
            let buckets = 1 << header.bucketBits
            filter = try section(.filterOffset, header.filterWords)
            longFilter = try section(.longFilterOffset, header.longFilterWords)
            bucketStart = try section(.bucketStartOffset, buckets + 1)
            entryCount = Int(words[bucketStart + buckets])
            entries = try section(.entriesOffset, 2 * entryCount)
            patternStart = try section(.patternStartOffset, header.patternCount + 1)
            blob = try section(.blobOffset, (Int(words[H.blobBytes.rawValue]) + 3) / 4)
        }
    }

    /// Checks the indexes inside the sections (bucket starts ascending within
    /// the entries, pattern starts spanning the blob, every entry naming a
    /// pattern) and returns the longest literal's length.
    static func checkedIndexes(
        _ words: UnsafeBufferPointer<UInt32>, _ header: CheckedHeader, _ sections: CheckedSections
    ) throws(PipelineError) -> Int {
        let n = header.patternCount, buckets = 1 << header.bucketBits
        var previous: UInt32 = 0
        for b in 0...buckets {
            let s = words[sections.bucketStart + b]
            guard s >= previous, Int(s) <= sections.entryCount else { throw bad("bucket starts are not ascending") }
            previous = s
        }
        let blobBytes = Int(words[ScanTable.Header.blobBytes.rawValue])
        guard words[sections.patternStart] == 0, Int(words[sections.patternStart + n]) == blobBytes else {
            throw bad("pattern starts do not span the blob")
        }
        var maxLength = 0
        for i in 0..<n {
            let a = words[sections.patternStart + i], b = words[sections.patternStart + i + 1]
            guard b > a else { throw bad("pattern \(i) is empty or out of order") }
            maxLength = max(maxLength, Int(b - a))
        }
        for e in 0..<sections.entryCount where Int(words[sections.entries + 2 * e + 1]) >= n {
            throw bad("entry \(e) names pattern \(words[sections.entries + 2 * e + 1]) of \(n)")
        }
        return maxLength
    }

    /// Whether the short filter passes a key with these two hashes: the bit
    /// the top `filterBits` of `first` index, and with a second probe also
    /// the one of `second`. Both words are loaded and one branch decides (the
    /// two bits are close to random: a branch on each mispredicts often).
    @inline(__always)
    func filterPasses(_ first: UInt32, _ second: UInt32) -> Bool {
        bothBits(filter, filterBits, first, second)
    }

    /// Whether the long filter passes the long key whose hash is `first`.
    @inline(__always)
    func longFilterPasses(_ first: UInt32) -> Bool {
        bothBits(longFilter, longFilterBits, first, ScanTable.longSecondHash(first))
    }

    @inline(__always)
    func bothBits(_ bits: UnsafePointer<UInt32>, _ log2Bits: UInt32, _ first: UInt32, _ second: UInt32) -> Bool {
        let a = first >> (32 - log2Bits)
        let b = (secondProbe ? second : first) >> (32 - log2Bits)
        return (bits[Int(a >> 5)] >> (a & 31)) & (bits[Int(b >> 5)] >> (b & 31)) & 1 != 0
    }

    /// The Z-functions of the long literals the entries name (a duplicate
    /// literal has no entry, so none is computed twice).
    static func zFunctions(
        entries: UnsafeBufferPointer<UInt32>, patternStart: UnsafePointer<UInt32>, blob: UnsafeRawPointer
    ) -> ([UInt32: Int], [UInt32]) {
        var starts: [UInt32: Int] = [:]
        var values: [UInt32] = []
        for e in stride(from: 1, to: entries.count, by: 2) {
            let pattern = entries[e]
            let start = Int(patternStart[Int(pattern)])
            let length = Int(patternStart[Int(pattern) + 1]) - start
            guard length >= ScanOp.shiftMinimumLength, starts[pattern] == nil else { continue }
            starts[pattern] = values.count
            values += zFunction((0..<length).map { blob.load(fromByteOffset: start + $0, as: UInt8.self) })
        }
        return (starts, values)
    }

    /// The Z-function of `s` in linear time: `z[d]` is the length of the
    /// longest common prefix of `s` and `s[d...]` (`z[0]` is the length).
    public static func zFunction(_ s: [UInt8]) -> [UInt32] {
        let n = s.count
        var z = [UInt32](repeating: 0, count: n)
        guard n > 0 else { return z }
        z[0] = UInt32(n)
        // [left, right) is the rightmost window known to equal a prefix of s.
        var left = 0, right = 0
        for i in 1..<n {
            var k = i < right ? min(Int(z[i - left]), right - i) : 0
            while i + k < n, s[k] == s[i + k] { k += 1 }
            z[i] = UInt32(k)
            if i + k > right { (left, right) = (i, i + k) }
        }
        return z
    }
}

/// The `scan` opcode: every occurrence of every literal starting in the
/// first `startLimit` bytes of a chunk (later bytes are the overlap that lets
/// a match straddle into the next chunk).
///
/// Result words: `[0]` matches found (low 32 bits), `[1]` high 32 bits,
/// `[2]` match records stored, `[3]` zero, then records of two words
/// (position in the chunk, pattern number). When more matches are found than
/// fit, the slot still finishes DONE with found > stored: the host rescans
/// that chunk into a larger area, so no match is ever dropped.
public enum ScanOp {
    /// Words before the first match record in a slot's result area.
    public static let headerWords = 4
    /// Slot `argument1` bit: count matches, store no records.
    public static let countOnlyFlag: UInt32 = 1

    /// How a scan slot ended.
    public enum Outcome: Equatable {
        /// Finished; `resultWords` words of the result area were written.
        case done(resultWords: UInt32)
        /// Failed with this fault code.
        case fault(FaultCode)
    }

    /// Runs the op into `result`.
    public static func run(
        table: ScanTableView, chunk: UnsafeRawBufferPointer, startLimit: Int, flags: UInt32,
        into result: UnsafeMutableBufferPointer<UInt32>
    ) -> Outcome {
        guard startLimit >= 0, startLimit <= chunk.count else { return .fault(.badArguments) }
        guard result.count >= headerWords else { return .fault(.resultOverflow) }
        let countOnly = flags & countOnlyFlag != 0
        let capacity = countOnly ? 0 : (result.count - headerWords) / 2
        var found: UInt64 = 0
        var stored = 0
        forEachMatch(table: table, chunk: chunk, startLimit: startLimit) { position, pattern in
            if stored < capacity {
                result[headerWords + 2 * stored] = UInt32(position)
                result[headerWords + 2 * stored + 1] = pattern
                stored += 1
            }
            found += 1
        }
        result[0] = UInt32(truncatingIfNeeded: found)
        result[1] = UInt32(truncatingIfNeeded: found >> 32)
        result[2] = UInt32(stored)
        result[3] = 0
        return .done(resultWords: UInt32(headerWords + 2 * stored))
    }

    /// Calls `body(position, pattern)` for every match starting before
    /// `startLimit`, in position order.
    public static func forEachMatch(
        table t: ScanTableView, chunk: UnsafeRawBufferPointer, startLimit: Int,
        _ body: (Int, UInt32) -> Void
    ) {
        guard let text = chunk.baseAddress, startLimit > 0 else { return }
        let length = chunk.count
        var windows: [UInt32: Window] = [:]
        let limit = min(startLimit, length)
        let fold = t.caseInsensitive
        func word(_ at: Int) -> UInt32 {
            let raw = UInt32(littleEndian: text.loadUnaligned(fromByteOffset: at, as: UInt32.self))
            return fold ? foldWord(raw) : raw
        }
        // Where a long literal fits (its key can be loaded), then where four bytes can be.
        let longEnd = t.longFilterBits == 0 ? 0 : min(limit, max(0, length - t.longMinimumLength + 1))
        let fastEnd = min(limit, max(0, length - 3))
        let onlyLong = t.keyLengths.isEmpty
        let o = t.longKeyOffset
        var p = 0
        while p < longEnd {
            let first = ScanTable.longHash(low: word(p + o), high: word(p + o + 4))
            if t.longFilterPasses(first) {
                walkLongBucket(t, text: text, at: p, available: length - p, hash: first, windows: &windows, body)
            }
            if !onlyLong {
                probe(t, text: text, at: p, available: length - p, key4: word(p), have: 4, windows: &windows, body)
            }
            p += 1
        }
        while p < fastEnd {
            probe(t, text: text, at: p, available: length - p, key4: word(p), have: 4, windows: &windows, body)
            p += 1
        }
        while p < limit {
            let have = min(length - p, 4)
            var key4: UInt32 = 0
            for j in 0..<have {
                let b = text.load(fromByteOffset: p + j, as: UInt8.self)
                key4 |= UInt32(fold ? foldASCII(b) : b) << (8 * j)
            }
            probe(t, text: text, at: p, available: length - p, key4: key4, have: have, windows: &windows, body)
            p += 1
        }
    }

    /// ASCII case folding of four bytes at once: each byte in 'A'...'Z' gains 0x20.
    @inline(__always)
    public static func foldWord(_ x: UInt32) -> UInt32 {
        let low7 = x & 0x7F7F_7F7F
        let atLeastA = low7 &+ 0x3F3F_3F3F  // high bit set where the byte's low 7 bits are >= 0x41
        let pastZ = low7 &+ 0x2525_2525  // high bit set where they are >= 0x5B
        let upper = atLeastA & ~pastZ & ~x & 0x8080_8080
        return x | (upper >> 2)
    }

    /// Literals at least this long are verified with `Window`s: below it, a
    /// byte-by-byte check costs less than the window's bookkeeping.
    public static let shiftMinimumLength = 32

    /// What the last verification of one long literal learned: the text from
    /// `start` equals the literal's first `matched` bytes (and the next byte
    /// differs, unless the whole literal matched).
    struct Window {
        var start: Int
        var matched: Int
    }

    /// Checks every short key length at one position: each key the short
    /// filter passes has its bucket walked.
    @inline(__always)
    static func probe(
        _ t: ScanTableView, text: UnsafeRawPointer, at p: Int, available: Int, key4: UInt32, have: Int,
        windows: inout [UInt32: Window], _ body: (Int, UInt32) -> Void
    ) {
        for k in t.keyLengths where k < 4 && k <= have {
            let key = key4 & ((1 << (8 * UInt32(k))) - 1)
            let h = ScanTable.hash(key: key, length: k)
            guard t.filterPasses(h, ScanTable.secondHash(key: key, length: k)) else { continue }
            walkBucket(t, text: text, at: p, available: available, key: key, keyLength: k, hash: h, windows: &windows, body)
        }
        guard have == 4, t.shortKeysOfFour else { return }
        let h = ScanTable.hash(key: key4, length: 4)
        guard t.filterPasses(h, ScanTable.secondHash(key: key4, length: 4)) else { return }
        walkBucket(t, text: text, at: p, available: available, key: key4, keyLength: 4, hash: h, windows: &windows, body)
    }

    /// The bucket of a short key that passed the short filter: each short
    /// literal with that key and key length is verified byte by byte.
    @inline(__always)
    static func walkBucket(
        _ t: ScanTableView, text: UnsafeRawPointer, at p: Int, available: Int, key: UInt32, keyLength k: Int,
        hash h: UInt32, windows: inout [UInt32: Window], _ body: (Int, UInt32) -> Void
    ) {
        walkEntries(
            t, text: text, at: p, available: available, bucketHash: h, check: key, long: false, keyLength: k,
            windows: &windows, body)
    }

    /// The bucket of a long key that passed the long filter (`first` its
    /// hash): each long literal with that hash is verified byte by byte
    /// (kept out of line, so that the position loop stays small).
    @inline(never)
    static func walkLongBucket(
        _ t: ScanTableView, text: UnsafeRawPointer, at p: Int, available: Int, hash first: UInt32,
        windows: inout [UInt32: Window], _ body: (Int, UInt32) -> Void
    ) {
        walkEntries(
            t, text: text, at: p, available: available, bucketHash: first, check: first, long: true, keyLength: 0,
            windows: &windows, body)
    }

    /// The entries of the bucket `bucketHash` picks whose check word is
    /// `check` and whose literal is of the candidate's kind (`long`, or short
    /// with a key of `k` bytes) and fits the text, each verified past its
    /// `k` known key bytes (0 for a long literal: its key is only a hash).
    /// `long` is a constant at each call, so the kind test folds away.
    @inline(__always)
    static func walkEntries(
        _ t: ScanTableView, text: UnsafeRawPointer, at p: Int, available: Int, bucketHash: UInt32, check: UInt32,
        long: Bool, keyLength k: Int, windows: inout [UInt32: Window], _ body: (Int, UInt32) -> Void
    ) {
        let bucket = Int(bucketHash >> (32 - t.bucketBits))
        var e = Int(t.bucketStart[bucket])
        let end = Int(t.bucketStart[bucket + 1])
        while e < end {
            defer { e += 1 }
            guard t.entries[2 * e] == check else { continue }
            let pattern = t.entries[2 * e + 1]
            let start = Int(t.patternStart[Int(pattern)])
            let len = Int(t.patternStart[Int(pattern) + 1]) - start
            let kind = long ? len >= t.longMinimumLength : min(len, 4) == k && len < t.longMinimumLength
            guard kind, len <= available else { continue }
            if verify(t, text: text, at: p, pattern: pattern, start: start, length: len, from: k, windows: &windows) {
                body(p, pattern)
            }
        }
    }

    /// Whether `pattern` (blob bytes `start ..< start + len`) matches at
    /// `p`, its first `known` bytes already compared: byte by byte, or with
    /// its window when it is long enough.
    @inline(__always)
    static func verify(
        _ t: ScanTableView, text: UnsafeRawPointer, at p: Int, pattern: UInt32, start: Int, length len: Int,
        from known: Int, windows: inout [UInt32: Window]
    ) -> Bool {
        if len >= shiftMinimumLength {
            // Always a long literal (no long key reaches past 32 bytes), so
            // no byte of it is known yet.
            return verifyLong(t, text: text, at: p, pattern: pattern, start: start, length: len, windows: &windows)
        }
        let fold = t.caseInsensitive
        var j = known
        while j < len {
            let b = text.load(fromByteOffset: p + j, as: UInt8.self)
            if (fold ? foldASCII(b) : b) != t.blob.load(fromByteOffset: start + j, as: UInt8.self) { return false }
            j += 1
        }
        return true
    }

    /// Whether a literal of `shiftMinimumLength` bytes or more, whose long
    /// key's hash matched, matches at `p`: compares only the bytes past what
    /// its last window already proved (kept out of line, so that the short
    /// literals' loop stays small).
    @inline(never)
    static func verifyLong(
        _ t: ScanTableView, text: UnsafeRawPointer, at p: Int, pattern: UInt32, start: Int, length len: Int,
        windows: inout [UInt32: Window]
    ) -> Bool {
        guard var j = knownPrefix(t, pattern: pattern, at: p, windows: windows) else { return false }
        let fold = t.caseInsensitive
        while j < len {
            let b = text.load(fromByteOffset: p + j, as: UInt8.self)
            if (fold ? foldASCII(b) : b) != t.blob.load(fromByteOffset: start + j, as: UInt8.self) { break }
            j += 1
        }
        windows[pattern] = Window(start: p, matched: j)
        return j == len
    }

    /// How many bytes of a long literal are already known to match at `p`
    /// from its last window (a Z-function shift, as in Galil's rule), so
    /// that no text byte is compared twice for one literal and a match scan
    /// stays linear however long and periodic the literal is. Nil when the
    /// window proves a mismatch at `p`.
    @inline(__always)
    static func knownPrefix(
        _ t: ScanTableView, pattern: UInt32, at p: Int, windows: [UInt32: Window]
    ) -> Int? {
        guard let w = windows[pattern], p < w.start + w.matched, let z = t.zStart[pattern] else { return 0 }
        // text[p ..< w.start + w.matched] equals the literal from d; the
        // literal's prefix agrees with that for zd bytes, then differs.
        let d = p - w.start
        let known = w.matched - d
        let zd = Int(t.zValues[z + d])
        // Within the window the text follows the literal from d, which
        // differs from the literal's prefix at byte zd: no match here.
        if zd < known { return nil }
        return known
    }
}
