import SluiceCore
import SluiceOps

/// One occurrence of a literal in a file.
public struct ScanMatch: Hashable, Sendable, Comparable {
    /// Byte offset of the match's first byte in the file.
    public var offset: UInt64
    /// Index of the literal in the pattern set.
    public var pattern: Int

    public init(offset: UInt64, pattern: Int) {
        self.offset = offset
        self.pattern = pattern
    }

    public static func < (a: ScanMatch, b: ScanMatch) -> Bool {
        (a.offset, a.pattern) < (b.offset, b.pattern)
    }
}

/// The matches of one file, sorted by offset then pattern.
public struct FileMatches: Sendable {
    public var path: String
    /// Empty in count-only mode.
    public var matches: [ScanMatch]
    /// Every match found, including those not kept in count-only mode.
    public var count: UInt64
    /// Empty when the whole file was scanned.
    public var errors: [PipelineError]
}

/// What a scan reports per file.
public enum ScanMode: Sendable {
    /// Every match with its offset and pattern.
    case matches
    /// Only how many matches each file has (no records: dense sets stay cheap).
    case count
}

/// Runs the `scan` opcode over files: installs the compiled table, overlaps
/// chunks by the longest literal so a match across a chunk boundary is seen
/// once, rescans on the host any chunk whose result area overflowed, and
/// reports each file's sorted matches in input order.
///
/// Small files (up to a quarter of a chunk) are packed several to a chunk
/// (`Scanner.Packing`): their slots always store match records (in count
/// mode too), which the host maps back to files and file offsets, dropping
/// any match that spans two files; a packed chunk whose records overflowed
/// is scanned again on the host one file at a time. The output is the same
/// as with one file per chunk.
public enum ScanJob {
    /// Bytes of overlap between consecutive chunks for `patterns`: the longest
    /// literal less one, rounded up to 4 KiB so chunk offsets stay O_DIRECT-aligned.
    public static func overlap(for patterns: PatternSet) -> Int {
        (patterns.maxLength - 1 + 4095) / 4096 * 4096
    }

    /// Result words per slot that hold `records` match records.
    public static func resultWords(records: Int) -> Int { ScanOp.headerWords + 2 * records }

    /// - Parameter installTable: false when `table` is already installed in
    ///   the scanner's backend (a pool running many batches installs it once).
    /// - Parameter ranges: empty, or per path the range of it to scan (see `FileRange`).
    public static func run(
        scanner: Scanner, patterns: PatternSet, table: ScanTable, paths: [String], ranges: [FileRange?] = [],
        mode: ScanMode = .matches, installTable: Bool = true, packing: Bool = true, onFile: (FileMatches) -> Void,
        onProgress: ((Scanner.Progress) -> Void)? = nil
    ) throws(PipelineError) -> Scanner.Summary {
        if installTable {
            _ = try scanner.installScanTable(
                table.words, literals: patterns.literals, caseInsensitive: patterns.caseInsensitive)
        }
        // The host's own copy of the table for rescans of overflowed chunks,
        // validated once, on the first overflow, not once per chunk.
        let hostWords = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: table.words.count)
        _ = hostWords.initialize(from: table.words)
        defer { hostWords.deallocate() }
        var hostView: ScanTableView?
        var partial: [Int: (matches: [ScanMatch], count: UInt64)] = [:]
        var problems: [Int: [PipelineError]] = [:]
        // Files finish out of order (packs, chunks); each waits here, by its
        // index, until every file before it was reported: an array, not a
        // dictionary, since a tree of small files passes every file through.
        var finished = [FileMatches?](repeating: nil, count: paths.count)
        var nextToReport = 0
        func validatedHostView() throws(PipelineError) -> ScanTableView {
            if let validated = hostView { return validated }
            let view = try ScanTableView(UnsafeBufferPointer(hostWords))
            hostView = view
            return view
        }
        let lengths = patterns.literals.map(\.count)

        /// A packed chunk: each record goes to the file that holds all its
        /// bytes; one that spans two files (or lies in the gap a failed file
        /// left) belongs to none and is dropped.
        func packedChunk(_ chunk: Scanner.ChunkResult) {
            let files = chunk.packed
            let w = chunk.words
            var counts = [UInt64](repeating: 0, count: files.count)
            var matches = [[ScanMatch]](repeating: [], count: files.count)
            var problem: PipelineError?
            let what = "scan result of the packed chunk of \(files.count) files from \(chunk.path)"
            if w.count < ScanOp.headerWords {
                problem = .malformed(what: what, detail: "\(w.count) words, fewer than the header")
            } else {
                let found = UInt64(w[0]) | UInt64(w[1]) << 32
                let stored = Int(w[2])
                if UInt64(stored) == found, w.count >= ScanOp.headerWords + 2 * stored {
                    for r in 0..<stored {
                        let position = Int(w[ScanOp.headerWords + 2 * r])
                        let pattern = Int(w[ScanOp.headerWords + 2 * r + 1])
                        guard pattern < lengths.count else {
                            problem = .malformed(what: what, detail: "record \(r) names pattern \(pattern) of \(lengths.count)")
                            continue
                        }
                        // The last file that starts at or before the position.
                        var lo = 0, hi = files.count
                        while hi - lo > 1 {
                            let mid = (lo + hi) / 2
                            if files[mid].offset <= position { lo = mid } else { hi = mid }
                        }
                        let f = files[lo]
                        guard position >= f.offset, position + lengths[pattern] <= f.offset + f.length else { continue }
                        counts[lo] += 1
                        if mode == .matches {
                            matches[lo].append(ScanMatch(offset: UInt64(position - f.offset), pattern: pattern))
                        }
                    }
                } else {
                    // The slot's area overflowed: scan each file again on the host,
                    // alone, so that no match can span two of them.
                    do throws(PipelineError) {
                        let view = try validatedHostView()
                        for (i, f) in files.enumerated() {
                            let bytes = UnsafeRawBufferPointer(rebasing: try chunk.bytes[f.offset..<(f.offset + f.length)])
                            ScanOp.forEachMatch(table: view, chunk: bytes, startLimit: f.length) { p, pattern in
                                counts[i] += 1
                                if mode == .matches { matches[i].append(ScanMatch(offset: UInt64(p), pattern: Int(pattern))) }
                            }
                        }
                        let kept = counts.reduce(0, +)
                        if kept > found {
                            throw .malformed(
                                what: what, detail: "the worker found \(found) matches, the host rescan \(kept) within the files")
                        }
                    } catch {
                        problem = error
                    }
                }
            }
            for (i, f) in files.enumerated() {
                if let problem { problems[f.fileIndex, default: []].append(problem) }
                // Most packed files match nothing: they need no entry at all.
                guard counts[i] > 0 || !matches[i].isEmpty else { continue }
                var entry = partial[f.fileIndex] ?? ([], 0)
                entry.count += counts[i]
                entry.matches += matches[i]
                partial[f.fileIndex] = entry
            }
        }

        let summary = try scanner.run(
            paths: paths, ranges: ranges, opcode: .scan, flags: mode == .count ? ScanOp.countOnlyFlag : 0,
            overlap: overlap(for: patterns),
            // Packed slots always store records: the host must split them per file.
            packing: packing ? Scanner.Packing(maxFileBytes: scanner.chunkBytes / 4, flags: 0) : nil,
            onChunk: { chunk in
                if !chunk.packed.isEmpty {
                    packedChunk(chunk)
                    return
                }
                let w = chunk.words
                guard w.count >= ScanOp.headerWords else {
                    problems[chunk.fileIndex, default: []].append(.malformed(
                        what: "scan result of chunk \(chunk.chunkNumber) of \(chunk.path)",
                        detail: "\(w.count) words, fewer than the header"))
                    return
                }
                let found = UInt64(w[0]) | UInt64(w[1]) << 32
                let stored = Int(w[2])
                var entry = partial[chunk.fileIndex] ?? ([], 0)
                entry.count += found
                if mode == .matches {
                    if UInt64(stored) == found, w.count >= ScanOp.headerWords + 2 * stored {
                        for r in 0..<stored {
                            let position = UInt64(w[ScanOp.headerWords + 2 * r])
                            entry.matches.append(ScanMatch(
                                offset: chunk.fileOffset + position, pattern: Int(w[ScanOp.headerWords + 2 * r + 1])))
                        }
                    } else {
                        // The slot's area overflowed: find this chunk's matches again on the host.
                        do throws(PipelineError) {
                            let before = entry.matches.count
                            let view = try validatedHostView()
                            ScanOp.forEachMatch(table: view, chunk: try chunk.bytes, startLimit: chunk.length) { p, pattern in
                                entry.matches.append(ScanMatch(offset: chunk.fileOffset + UInt64(p), pattern: Int(pattern)))
                            }
                            if UInt64(entry.matches.count - before) != found {
                                throw .malformed(
                                    what: "scan result of chunk \(chunk.chunkNumber) of \(chunk.path)",
                                    detail: "the worker found \(found) matches, the host rescan \(entry.matches.count - before)")
                            }
                        } catch {
                            problems[chunk.fileIndex, default: []].append(error)
                        }
                    }
                }
                partial[chunk.fileIndex] = entry
            },
            onFile: { outcome in
                var entry = partial.removeValue(forKey: outcome.fileIndex) ?? ([], 0)
                entry.matches.sort()
                finished[outcome.fileIndex] = FileMatches(
                    path: outcome.path, matches: entry.matches, count: entry.count,
                    errors: outcome.errors + (problems.removeValue(forKey: outcome.fileIndex) ?? []))
                // Chunks and files finish out of order; report in input order.
                while nextToReport < finished.count, let next = finished[nextToReport] {
                    finished[nextToReport] = nil
                    onFile(next)
                    nextToReport += 1
                }
            },
            onProgress: onProgress)
        return summary
    }
}
