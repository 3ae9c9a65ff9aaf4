import SluiceCore
import SluiceOps

/// The CRC-32C of one file, joined from the `crc32c` opcode's chunk results.
public struct FileHash: Sendable {
    /// The file checksummed.
    public var path: RawPath
    /// The finished CRC-32C of the whole file (meaningful only when `errors` is empty).
    public var crc32c: UInt32
    /// Bytes checksummed.
    public var bytes: UInt64
    /// Empty when every byte of the file was checksummed exactly once.
    public var errors: [PipelineError]
}

/// Runs the `crc32c` opcode over files (chunks do not overlap), joins each
/// file's chunk checksums in file order as they arrive (in any order), and
/// reports each file's checksum in input order.
public enum HashJob {
    /// Result words each slot needs.
    public static let resultWords = CRC32COp.resultWords

    /// Checksums every file in `paths` (already expanded to regular files),
    /// calling `onFile` in the order of `paths`. Throws `backendUnavailable`
    /// before reading anything when the backend does not run the opcode.
    /// `ranges` (empty, or one per path) limits a path to a range of it: the
    /// outcome is then that range's checksum, for `FileHash.merging`.
    public static func run(
        scanner: ChunkScheduler, paths: [RawPath], ranges: [FileRange?] = [], onFile: (FileHash) -> Void,
        onProgress: ((ChunkScheduler.Progress) -> Void)? = nil
    ) throws(PipelineError) -> ChunkScheduler.Summary {
        try checkBackend(of: scanner)
        return try withoutActuallyEscaping(onFile) { onFile throws(PipelineError) in
            try scanner.run(
                jobs: [job(tenant: scanner.options.tenant, paths: paths, ranges: ranges, onFile: onFile)],
                onProgress: onProgress)
        }
    }

    /// Throws `backendUnavailable` before anything is read when the
    /// scheduler's backend does not run the crc32c opcode.
    public static func checkBackend(of scanner: ChunkScheduler) throws(PipelineError) {
        guard scanner.backend.supportedOpcodes.contains(.crc32c) else {
            throw .backendUnavailable(
                backend: scanner.backend.name, reason: "this backend does not run the crc32c opcode yet")
        }
    }

    /// The scheduler job `run` runs, for `tenant` (the backend must run
    /// crc32c): what a run of several jobs (`ChunkScheduler.run(jobs:admitting:)`) takes.
    public static func job(
        tenant: UInt32, paths: [RawPath], ranges: [FileRange?] = [], onFile: @escaping (FileHash) -> Void
    ) -> ChunkScheduler.Job {
        var combiners: [Int: CRC32CChunkCombiner] = [:]
        var problems: [Int: [PipelineError]] = [:]
        var finished: [Int: FileHash] = [:]
        var nextToReport = 0
        return ChunkScheduler.Job(
            tenant: tenant, paths: paths, ranges: ranges, opcode: .crc32c,
            onChunk: { chunk in
                do throws(PipelineError) {
                    let r = try CRC32CResult(words: chunk.words)
                    guard Int(r.length) == chunk.length else {
                        throw .malformed(
                            what: "crc32c result of chunk \(chunk.chunkNumber) of \(chunk.path)",
                            detail: "the worker checksummed \(r.length) bytes of a \(chunk.length)-byte chunk")
                    }
                    // Offsets within the range: the combiner joins the range's bytes only.
                    let base = ranges.isEmpty ? 0 : ranges[chunk.fileIndex]?.start ?? 0
                    try combiners[chunk.fileIndex, default: CRC32CChunkCombiner()].add(
                        chunk: chunk.chunkNumber, offset: chunk.fileOffset - base, crc: r.crc, length: r.length)
                } catch {
                    problems[chunk.fileIndex, default: []].append(error)
                }
            },
            onFile: { outcome in
                let combiner = combiners.removeValue(forKey: outcome.fileIndex) ?? CRC32CChunkCombiner()
                var errors = outcome.errors + (problems.removeValue(forKey: outcome.fileIndex) ?? [])
                if errors.isEmpty, combiner.nextChunk != outcome.chunks || combiner.bytes != outcome.coveredBytes {
                    // The scanner accounts for every chunk; this is a guard, not a path.
                    errors.append(.unaccounted(
                        path: outcome.path.description,
                        chunks: Array(combiner.nextChunk..<max(combiner.nextChunk, outcome.chunks))))
                }
                finished[outcome.fileIndex] = FileHash(
                    path: outcome.path, crc32c: combiner.crc, bytes: combiner.bytes, errors: errors)
                // Files finish out of order when chunks do; report in input order.
                while let next = finished.removeValue(forKey: nextToReport) {
                    onFile(next)
                    nextToReport += 1
                }
            })
    }
}
