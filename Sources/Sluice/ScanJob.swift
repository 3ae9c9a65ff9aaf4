import SluiceCore
import SluiceOps

/// One occurrence of a literal in a file.
public struct ScanMatch: Hashable, Sendable, Comparable {
    /// Byte offset of the match's first byte in the file.
    public var offset: UInt64
    /// Index of the literal in the pattern set.
    public var pattern: Int
    /// The 1-based line the match starts on, when the scan counts lines
    /// (`ScanJob.Output.lineNumbers`); nil otherwise, or where an earlier
    /// chunk of the file failed and the count is unknown.
    public var line: UInt64?

    /// A match of literal `pattern` at `offset`, on `line` when lines are counted.
    public init(offset: UInt64, pattern: Int, line: UInt64? = nil) {
        self.offset = offset
        self.pattern = pattern
        self.line = line
    }

    /// Offset order, then pattern order: the order of the output.
    public static func < (a: ScanMatch, b: ScanMatch) -> Bool {
        (a.offset, a.pattern) < (b.offset, b.pattern)
    }
}

/// Matches of one file: the whole file, or, from a streaming scan, one
/// piece of it. A file's pieces arrive consecutively, in offset order, and
/// the last one has `isComplete` set and carries the file's errors.
public struct FileMatches: Sendable {
    /// The file, as the walk named it (raw bytes; `filePath` gives a `FilePath`).
    public var path: RawPath
    /// Sorted by offset then pattern. Empty in count-only mode.
    public var matches: [ScanMatch]
    /// The matches this piece stands for, including those not kept in count-only mode.
    public var count: UInt64
    /// Empty when the whole file was scanned; set only on the complete piece.
    public var errors: [PipelineError]
    /// True on the file's last piece.
    public var isComplete: Bool
    /// On the complete piece of a scan that counts lines: the newlines in
    /// the bytes the file (or its range) covers; nil when not counted or unknown.
    public var newlines: UInt64?

    /// A piece of `path`'s matches; `count` includes matches not kept in count-only mode.
    public init(
        path: RawPath, matches: [ScanMatch], count: UInt64, errors: [PipelineError], isComplete: Bool = true,
        newlines: UInt64? = nil
    ) {
        self.path = path
        self.matches = matches
        self.count = count
        self.errors = errors
        self.isComplete = isComplete
        self.newlines = newlines
    }
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
/// hands out each file's matches in input order (`ScanResultOrder`).
///
/// Small files (up to a quarter of a chunk) are packed several to a chunk
/// (`ChunkScheduler.Packing`): their slots always store match records (in count
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

    /// Match records a slot holds by default: one per 512 bytes of chunk,
    /// at least 4096, so that a text with a match every few hundred bytes
    /// fits in the slot at any chunk size and the host rescans only dense chunks.
    public static func defaultRecords(chunkBytes: Int) -> Int { max(4096, min(1 << 20, chunkBytes / 512)) }

    /// Result words per slot that hold `records` match records.
    public static func resultWords(records: Int) -> Int { ScanOp.headerWords + 2 * records }

    /// What a streaming scan hands out and how.
    public struct Output: Sendable {
        /// Every match, or only counts.
        public var mode: ScanMode
        /// Give each match its line number (and each file its newline count).
        public var lineNumbers: Bool
        /// Matches per piece at most when a chunk is rescanned on the host.
        public var matchesPerPiece: Int

        /// What a scan hands out; `matchesPerPiece` is at least 1.
        public init(mode: ScanMode = .matches, lineNumbers: Bool = false, matchesPerPiece: Int = 1 << 14) {
            self.mode = mode
            self.lineNumbers = lineNumbers
            self.matchesPerPiece = max(1, matchesPerPiece)
        }
    }

    /// Scans `paths` and hands each file's matches to `onMatches` as they
    /// become final: in input order, a file's pieces in offset order, each
    /// piece as soon as every earlier chunk of its file is done. Memory is
    /// bounded by the chunks in flight, not by the number of matches.
    ///
    /// - Parameters:
    ///   - scanner: runs the chunks; its backend gets the table.
    ///   - patterns: the literals; a match's `pattern` indexes them.
    ///   - table: `patterns` compiled (`ScanTable(patterns)`).
    ///   - paths: regular files, in the order their matches are handed out.
    ///   - ranges: empty, or per path the range of it to scan (see `FileRange`).
    ///   - output: what is handed out and how.
    ///   - installTable: false when `table` is already installed in the
    ///     scanner's backend (a pool running many batches installs it once).
    ///   - packing: pack small files several to a chunk (the output is the same).
    ///   - onMatches: receives each piece, in order.
    ///   - onProgress: receives progress now and then.
    public static func run(
        scanner: ChunkScheduler, patterns: PatternSet, table: ScanTable, paths: [RawPath], ranges: [FileRange?] = [],
        output: Output, installTable: Bool = true, packing: Bool = true, onMatches: (FileMatches) -> Void,
        onProgress: ((ChunkScheduler.Progress) -> Void)? = nil
    ) throws(PipelineError) -> ChunkScheduler.Summary {
        if installTable {
            _ = try scanner.installScanTable(
                table.words, literals: patterns.literals, caseInsensitive: patterns.caseInsensitive)
        }
        return try withoutActuallyEscaping(onMatches) { emit throws(PipelineError) in
            let job = job(
                tenant: scanner.options.tenant, tableIndex: 0, chunkBytes: scanner.chunkBytes, patterns: patterns,
                table: table, paths: paths, ranges: ranges, output: output, packing: packing, onMatches: emit)
            return try scanner.run(jobs: [job], onProgress: onProgress)
        }
    }

    /// The scheduler job `run` runs, for `tenant`, with `table` installed
    /// as entry `tableIndex` of the backend's scan-table directory (see
    /// `ChunkScheduler.installScanTable(_:literals:caseInsensitive:at:owner:)`):
    /// what a run of several jobs (`ChunkScheduler.run(jobs:admitting:)`) takes.
    public static func job(
        tenant: UInt32, tableIndex: Int, chunkBytes: Int, patterns: PatternSet, table: ScanTable, paths: [RawPath],
        ranges: [FileRange?] = [], output: Output, packing: Bool = true,
        onMatches: @escaping (FileMatches) -> Void
    ) -> ChunkScheduler.Job {
        let order = ScanResultOrder(table: table, patterns: patterns, output: output, emit: onMatches)
        var job = ChunkScheduler.Job(
            tenant: tenant, paths: paths, ranges: ranges, opcode: .scan,
            flags: ScanDirectory.argument1(index: tableIndex, flags: output.mode == .count ? ScanOp.countOnlyFlag : 0),
            overlap: overlap(for: patterns),
            // Packed slots always store records: the host must split them per file.
            packing: packing
                ? ChunkScheduler.Packing(maxFileBytes: chunkBytes / 4, flags: ScanDirectory.argument1(index: tableIndex, flags: 0))
                : nil,
            onChunk: { order.chunkFinished($0) }, onFile: { order.fileFinished($0) })
        // Match records come out in order without copying chunks aside.
        job.finishInOrder = output.mode == .matches
        return job
    }

    /// Scans `paths` and hands out each file's matches whole, once per file
    /// in input order: for callers that need a file's matches together
    /// (checks, benchmarks). A file's matches are all held in memory; the
    /// streaming `run(..., output:, onMatches:)` is the one for output.
    public static func run(
        scanner: ChunkScheduler, patterns: PatternSet, table: ScanTable, paths: [RawPath], ranges: [FileRange?] = [],
        mode: ScanMode = .matches, installTable: Bool = true, packing: Bool = true, onFile: (FileMatches) -> Void,
        onProgress: ((ChunkScheduler.Progress) -> Void)? = nil
    ) throws(PipelineError) -> ChunkScheduler.Summary {
        var joiner = FileMatchesJoiner()
        return try run(
            scanner: scanner, patterns: patterns, table: table, paths: paths, ranges: ranges, output: Output(mode: mode),
            installTable: installTable, packing: packing,
            onMatches: { piece in if let whole = joiner.add(piece) { onFile(whole) } }, onProgress: onProgress)
    }
}

/// Joins the consecutive pieces of each file into one `FileMatches`.
public struct FileMatchesJoiner {
    private var current: FileMatches?

    /// A joiner with no file in progress.
    public init() {}

    /// Adds a piece; returns the whole file once its complete piece came.
    public mutating func add(_ piece: FileMatches) -> FileMatches? {
        guard var whole = current else {
            if piece.isComplete { return piece }
            current = piece
            return nil
        }
        whole.matches += piece.matches
        whole.count += piece.count
        whole.errors += piece.errors
        whole.newlines = piece.newlines
        whole.isComplete = piece.isComplete
        guard piece.isComplete else {
            current = whole
            return nil
        }
        current = nil
        return whole
    }
}
