#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceOps

/// Turns a scan's chunk results, which finish in any order, into pieces of
/// `FileMatches` in input order: files one after another, a file's chunks in
/// offset order. A chunk is handed out as soon as it and every chunk before
/// it are done; one that finishes early waits in a compact form (its
/// records, or a copy of its bytes to scan again at its turn when its
/// result area overflowed), so memory is bounded by the chunks in flight,
/// never by the number of matches.
final class ScanResultOrder {
    private let output: ScanJob.Output
    private let lengths: [Int]
    private let rescanner: HostRescanner
    private let emit: (FileMatches) -> Void
    private var files: [Int: FileState] = [:]
    /// The file whose pieces go out now; every file before it is complete.
    private var head = 0
    /// Buffers of held chunks' bytes, kept for the next chunk to hold: the
    /// same few chunk-sized buffers serve the whole run, rather than a new
    /// one for each chunk, which the allocator may keep resident after free.
    private var spareCopies: [[UInt8]] = []

    init(table: ScanTable, patterns: PatternSet, output: ScanJob.Output, emit: @escaping (FileMatches) -> Void) {
        self.output = output
        self.lengths = patterns.literals.map(\.count)
        self.rescanner = HostRescanner(table)
        self.emit = emit
    }

    /// A chunk whose slot finished DONE.
    func chunkFinished(_ chunk: ChunkScheduler.ChunkResult) {
        if !chunk.packed.isEmpty {
            packedChunkFinished(chunk)
            return
        }
        let file = state(chunk.fileIndex)
        let what = "scan result of chunk \(chunk.chunkNumber) of \(chunk.path)"
        if chunk.fileIndex == head, chunk.chunkNumber == file.nextChunk {
            do throws(PipelineError) {
                let finding = try decode(chunk, what: what, keepBytes: false)
                let needsBytes = output.mode == .matches && (finding.records == nil || output.lineNumbers)
                hand(finding, bytes: needsBytes ? try chunk.bytes : nil, of: file, path: chunk.path)
            } catch {
                file.problems.append(error)
                file.newlinesBefore = nil
            }
            file.nextChunk += 1
            handHeld(of: file, path: chunk.path)
        } else {
            do throws(PipelineError) {
                file.held[chunk.chunkNumber] = try decode(chunk, what: what, keepBytes: true)
            } catch {
                file.problems.append(error)
            }
        }
    }

    /// A file whose every chunk finished or failed.
    func fileFinished(_ outcome: ChunkScheduler.FileOutcome) {
        state(outcome.fileIndex).outcome = outcome
        while let file = files[head], let outcome = file.outcome {
            // Chunks still held follow a chunk that failed: their lines are unknown.
            while let number = file.held.keys.min() {
                if number != file.nextChunk { file.newlinesBefore = nil }
                file.nextChunk = number
                handHeld(of: file, path: outcome.path)
            }
            let errors = outcome.errors + file.problems
            emit(FileMatches(
                path: outcome.path, matches: [], count: 0, errors: errors, isComplete: true,
                newlines: output.lineNumbers && errors.isEmpty ? file.newlinesBefore : nil))
            files[head] = nil
            head += 1
        }
    }

    // MARK: - Per file

    private final class FileState {
        var nextChunk = 0
        var held: [Int: Finding] = [:]
        /// Newlines in the chunks handed out so far; nil once a gap made it unknown.
        var newlinesBefore: UInt64? = 0
        var problems: [PipelineError] = []
        var outcome: ChunkScheduler.FileOutcome?
    }

    private func state(_ index: Int) -> FileState {
        if let existing = files[index] { return existing }
        let made = FileState()
        files[index] = made
        return made
    }

    /// Hands out the file's held chunks that are next in line.
    private func handHeld(of file: FileState, path: RawPath) {
        while let finding = file.held.removeValue(forKey: file.nextChunk) {
            finding.bytes.withUnsafeBytes { hand(finding, bytes: $0, of: file, path: path) }
            if finding.bytes.capacity > 0 { spareCopies.append(finding.bytes) }
            file.nextChunk += 1
        }
    }

    // MARK: - One chunk's matches

    /// What a finished chunk found, in the form it waits in.
    private struct Finding {
        var fileOffset: UInt64
        /// The start positions that belong to the chunk.
        var length: Int
        /// Matches the worker found (all of them, records or not); nil where
        /// it cannot be told per file (a packed chunk that overflowed).
        var found: UInt64?
        /// Sorted, offsets in the file, `line` the newlines before the match
        /// within the chunk; nil: scan `bytes` again on the host.
        var records: [ScanMatch]?
        /// Newlines among the start positions, when lines are counted and `records` is set.
        var newlines: UInt64?
        /// A copy of the chunk's bytes for a later rescan; empty otherwise.
        var bytes: [UInt8] = []
        var what: String
    }

    /// Reads a chunk's result words. With `keepBytes`, a chunk that must be
    /// scanned again keeps a copy of its bytes, and lines are counted now,
    /// while the bytes are there.
    private func decode(_ chunk: ChunkScheduler.ChunkResult, what: String, keepBytes: Bool) throws(PipelineError) -> Finding {
        let w = chunk.words
        guard w.count >= ScanOp.headerWords else {
            throw .malformed(what: what, detail: "\(w.count) words, fewer than the header")
        }
        let found = UInt64(w[0]) | UInt64(w[1]) << 32
        let stored = Int(w[2])
        var finding = Finding(
            fileOffset: chunk.fileOffset, length: chunk.length, found: found, records: nil, newlines: nil, what: what)
        guard output.mode == .matches else {
            finding.records = []
            return finding
        }
        guard UInt64(stored) == found, w.count >= ScanOp.headerWords + 2 * stored else {
            if keepBytes { finding.bytes = copy(try chunk.bytes) }
            return finding
        }
        var records: [ScanMatch] = []
        records.reserveCapacity(stored)
        for r in 0..<stored {
            let position = UInt64(w[ScanOp.headerWords + 2 * r])
            let pattern = Int(w[ScanOp.headerWords + 2 * r + 1])
            guard pattern < lengths.count, position < UInt64(chunk.length) else {
                throw .malformed(
                    what: what, detail: "record \(r) names pattern \(pattern) of \(lengths.count) at \(position) of \(chunk.length)")
            }
            records.append(ScanMatch(offset: chunk.fileOffset + position, pattern: pattern))
        }
        records.sort()
        finding.records = records
        if keepBytes, output.lineNumbers {
            let bytes = try chunk.bytes
            finding.newlines = LineCounter.markLines(&finding.records!, base: chunk.fileOffset, in: bytes, length: chunk.length)
        }
        return finding
    }

    /// A copy of `bytes` in a spare buffer when there is one.
    private func copy(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var buffer = spareCopies.popLast() ?? []
        buffer.removeAll(keepingCapacity: true)
        buffer.append(contentsOf: bytes)
        return buffer
    }

    /// Hands out one chunk's matches, which are next in their file.
    /// `bytes`: the chunk's bytes, where a rescan or line count needs them.
    private func hand(_ finding: Finding, bytes: UnsafeRawBufferPointer?, of file: FileState, path: RawPath) {
        guard output.mode == .matches else {
            if let found = finding.found, found > 0 {
                emit(FileMatches(path: path, matches: [], count: found, errors: [], isComplete: false))
            }
            return
        }
        guard var records = finding.records else {
            rescan(finding, bytes: bytes, of: file, path: path)
            return
        }
        var newlines = finding.newlines
        if output.lineNumbers, newlines == nil, let bytes {
            newlines = LineCounter.markLines(&records, base: finding.fileOffset, in: bytes, length: finding.length)
        }
        if output.lineNumbers { number(&records, before: file.newlinesBefore) }
        file.newlinesBefore = add(file.newlinesBefore, newlines)
        guard !records.isEmpty else { return }
        emit(FileMatches(path: path, matches: records, count: UInt64(records.count), errors: [], isComplete: false))
    }

    /// Turns `line` (newlines before the match in its chunk) into the 1-based line in the file.
    private func number(_ records: inout [ScanMatch], before: UInt64?) {
        for i in records.indices {
            records[i].line = before.flatMap { b in records[i].line.map { b + $0 + 1 } }
        }
    }

    private func add(_ a: UInt64?, _ b: UInt64?) -> UInt64? {
        guard output.lineNumbers, let a, let b else { return nil }
        return a + b
    }

    /// A chunk whose result area overflowed: its matches found again on the
    /// host and handed out in pieces as they are found.
    private func rescan(_ finding: Finding, bytes: UnsafeRawBufferPointer?, of file: FileState, path: RawPath) {
        guard let bytes, bytes.count >= finding.length else {
            file.problems.append(.malformed(what: finding.what, detail: "its bytes were not kept for the host's rescan"))
            file.newlinesBefore = nil
            return
        }
        var lines = LineCounter(bytes: bytes)
        var piece: [ScanMatch] = []
        var total: UInt64 = 0
        let most = output.matchesPerPiece
        let before = file.newlinesBefore
        let counting = output.lineNumbers
        func send() {
            // Positions come in order, patterns at one position in table order.
            piece.sort()
            emit(FileMatches(path: path, matches: piece, count: UInt64(piece.count), errors: [], isComplete: false))
            piece.removeAll(keepingCapacity: true)
        }
        do throws(PipelineError) {
            let view = try rescanner.view()
            ScanOp.forEachMatch(table: view, chunk: bytes, startLimit: finding.length) { p, pattern in
                if piece.count >= most, let last = piece.last, last.offset != finding.fileOffset + UInt64(p) { send() }
                var line: UInt64?
                if counting, let before { line = before + lines.newlines(before: p) + 1 }
                piece.append(ScanMatch(offset: finding.fileOffset + UInt64(p), pattern: Int(pattern), line: line))
                total += 1
            }
        } catch {
            file.problems.append(error)
        }
        if !piece.isEmpty { send() }
        if let found = finding.found, total != found {
            file.problems.append(.malformed(
                what: finding.what, detail: "the worker found \(found) matches, the host rescan \(total)"))
        }
        file.newlinesBefore = counting ? before.map { $0 + lines.newlines(before: finding.length) } : nil
    }

    // MARK: - Packed chunks

    /// A packed chunk: each record goes to the file that holds all its
    /// bytes; one that spans two files (or lies in the gap a failed file
    /// left) belongs to none and is dropped. Each file is then one chunk of
    /// its own, handed out at its turn.
    private func packedChunkFinished(_ chunk: ChunkScheduler.ChunkResult) {
        let packed = chunk.packed
        let what = "scan result of the packed chunk of \(packed.count) files from \(chunk.path)"
        do throws(PipelineError) {
            let perFile = try packedRecords(chunk, what: what)
            for (i, f) in packed.enumerated() {
                var finding = Finding(
                    fileOffset: 0, length: f.length, found: perFile?[i].count, records: nil, newlines: nil,
                    what: "scan result of \(f.path) in a packed chunk")
                if let perFile {
                    finding.records = output.mode == .matches ? perFile[i].matches : []
                }
                let bytes = try fileBytes(chunk, f)
                if perFile == nil, output.mode == .count {
                    finding.found = try countMatches(in: bytes, length: f.length)
                    finding.records = []
                }
                let file = state(f.fileIndex)
                if f.fileIndex == head, file.nextChunk == 0 {
                    hand(finding, bytes: bytes, of: file, path: f.path)
                    file.nextChunk = 1
                } else {
                    if finding.records == nil || (output.lineNumbers && output.mode == .matches) {
                        finding.bytes = copy(bytes)
                    }
                    file.held[0] = finding
                }
            }
        } catch {
            for f in packed { state(f.fileIndex).problems.append(error) }
        }
    }

    /// The bytes of one packed file.
    private func fileBytes(_ chunk: ChunkScheduler.ChunkResult, _ f: ChunkScheduler.PackedFile) throws(PipelineError) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: try chunk.bytes[f.offset..<(f.offset + f.length)])
    }

    /// Matches in one packed file, counted on the host.
    private func countMatches(in bytes: UnsafeRawBufferPointer, length: Int) throws(PipelineError) -> UInt64 {
        let view = try rescanner.view()
        var n: UInt64 = 0
        ScanOp.forEachMatch(table: view, chunk: bytes, startLimit: length) { _, _ in n += 1 }
        return n
    }

    /// Per packed file its records (offsets within the file, sorted) and
    /// count; nil when the slot's area overflowed and each file must be
    /// scanned again on the host, alone, so that no match spans two files.
    private func packedRecords(
        _ chunk: ChunkScheduler.ChunkResult, what: String
    ) throws(PipelineError) -> [(matches: [ScanMatch], count: UInt64)]? {
        let files = chunk.packed
        let w = chunk.words
        guard w.count >= ScanOp.headerWords else {
            throw .malformed(what: what, detail: "\(w.count) words, fewer than the header")
        }
        let found = UInt64(w[0]) | UInt64(w[1]) << 32
        let stored = Int(w[2])
        guard UInt64(stored) == found, w.count >= ScanOp.headerWords + 2 * stored else { return nil }
        var out = [(matches: [ScanMatch], count: UInt64)](repeating: ([], 0), count: files.count)
        for r in 0..<stored {
            let position = Int(w[ScanOp.headerWords + 2 * r])
            let pattern = Int(w[ScanOp.headerWords + 2 * r + 1])
            guard pattern < lengths.count else {
                throw .malformed(what: what, detail: "record \(r) names pattern \(pattern) of \(lengths.count)")
            }
            // The last file that starts at or before the position.
            var lo = 0, hi = files.count
            while hi - lo > 1 {
                let mid = (lo + hi) / 2
                if files[mid].offset <= position { lo = mid } else { hi = mid }
            }
            let f = files[lo]
            guard position >= f.offset, position + lengths[pattern] <= f.offset + f.length else { continue }
            out[lo].count += 1
            if output.mode == .matches {
                out[lo].matches.append(ScanMatch(offset: UInt64(position - f.offset), pattern: pattern))
            }
        }
        for i in out.indices { out[i].matches.sort() }
        return out
    }
}

/// The host's own copy of the scan table, for rescans of overflowed chunks,
/// validated once, on the first rescan, not once per chunk.
private final class HostRescanner {
    private let words: UnsafeMutableBufferPointer<UInt32>
    private var validated: ScanTableView?

    init(_ table: ScanTable) {
        words = .allocate(capacity: table.words.count)
        _ = words.initialize(from: table.words)
    }

    deinit { words.deallocate() }

    func view() throws(PipelineError) -> ScanTableView {
        if let validated { return validated }
        let made = try ScanTableView(UnsafeBufferPointer(words))
        validated = made
        return made
    }
}

/// Counts newlines in a chunk up to increasing positions, each byte read once.
struct LineCounter {
    private let bytes: UnsafeRawBufferPointer
    private var position = 0
    private var counted: UInt64 = 0

    init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// Newlines in `bytes[0..<p]`; `p` must not decrease between calls.
    mutating func newlines(before p: Int) -> UInt64 {
        let end = min(p, bytes.count)
        guard end > position, let base = bytes.baseAddress else { return counted }
        var at = position
        while at < end, let hit = memchr(base + at, 0x0A, end - at) {
            counted += 1
            at = base.distance(to: UnsafeRawPointer(hit)) + 1
        }
        position = end
        return counted
    }

    /// Sets each sorted record's `line` to the newlines before it in the
    /// chunk that starts at file offset `base`; returns the newlines among
    /// the chunk's `length` start positions.
    static func markLines(_ records: inout [ScanMatch], base: UInt64, in bytes: UnsafeRawBufferPointer, length: Int) -> UInt64 {
        var counter = LineCounter(bytes: bytes)
        for i in records.indices {
            records[i].line = counter.newlines(before: Int(records[i].offset - base))
        }
        return counter.newlines(before: length)
    }
}
