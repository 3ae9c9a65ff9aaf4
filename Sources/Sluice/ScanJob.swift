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
    public static func run(
        scanner: Scanner, patterns: PatternSet, table: ScanTable, paths: [String], mode: ScanMode = .matches,
        installTable: Bool = true, onFile: (FileMatches) -> Void, onProgress: ((Scanner.Progress) -> Void)? = nil
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
        var finished: [Int: FileMatches] = [:]
        var nextToReport = 0
        let summary = try scanner.run(
            paths: paths, opcode: .scan, flags: mode == .count ? ScanOp.countOnlyFlag : 0,
            overlap: overlap(for: patterns),
            onChunk: { chunk in
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
                            let view: ScanTableView
                            if let validated = hostView {
                                view = validated
                            } else {
                                view = try ScanTableView(UnsafeBufferPointer(hostWords))
                                hostView = view
                            }
                            ScanOp.forEachMatch(table: view, chunk: chunk.bytes, startLimit: chunk.length) { p, pattern in
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
                while let next = finished.removeValue(forKey: nextToReport) {
                    onFile(next)
                    nextToReport += 1
                }
            },
            onProgress: onProgress)
        return summary
    }
}
