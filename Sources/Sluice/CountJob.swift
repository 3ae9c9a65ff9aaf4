import SluiceCore
import SluiceOps

/// Per-file byte and line counts, summed from the `count` opcode's chunk results.
public struct FileCount: Sendable {
    /// The file counted.
    public var path: RawPath
    /// Bytes, newlines and the byte histogram of the whole file (partial when `errors` is not empty).
    public var result: CountResult
    /// Empty when the whole file was counted.
    public var errors: [PipelineError]
}

/// Runs the `count` opcode over files and reports each file's totals.
public enum CountJob {
    /// Counts every file in `paths` (already expanded to regular files),
    /// calling `onFile` in the order of `paths`; `ranges` (empty, or one per
    /// path) limits a path to a range of it.
    public static func run(
        scanner: ChunkScheduler, paths: [RawPath], ranges: [FileRange?] = [], onFile: (FileCount) -> Void,
        onProgress: ((ChunkScheduler.Progress) -> Void)? = nil
    ) throws(PipelineError) -> ChunkScheduler.Summary {
        try withoutActuallyEscaping(onFile) { onFile throws(PipelineError) in
            try scanner.run(
                jobs: [job(tenant: scanner.options.tenant, paths: paths, ranges: ranges, onFile: onFile)],
                onProgress: onProgress)
        }
    }

    /// The scheduler job `run` runs, for `tenant`: what a run of several
    /// jobs (`ChunkScheduler.run(jobs:admitting:)`) takes.
    public static func job(
        tenant: UInt32, paths: [RawPath], ranges: [FileRange?] = [], onFile: @escaping (FileCount) -> Void
    ) -> ChunkScheduler.Job {
        var partial: [Int: CountResult] = [:]
        var decodeErrors: [Int: [PipelineError]] = [:]
        var finished: [Int: FileCount] = [:]
        var nextToReport = 0
        return ChunkScheduler.Job(
            tenant: tenant, paths: paths, ranges: ranges, opcode: .count,
            onChunk: { chunk in
                do throws(PipelineError) {
                    let r = try CountResult(words: chunk.words)
                    guard r.bytes == UInt64(chunk.length) else {
                        throw .malformed(
                            what: "count result of chunk \(chunk.chunkNumber) of \(chunk.path)",
                            detail: "worker counted \(r.bytes) bytes of a \(chunk.length)-byte chunk")
                    }
                    partial[chunk.fileIndex, default: CountResult()].add(r)
                } catch {
                    decodeErrors[chunk.fileIndex, default: []].append(error)
                }
            },
            onFile: { outcome in
                finished[outcome.fileIndex] = FileCount(
                    path: outcome.path, result: partial.removeValue(forKey: outcome.fileIndex) ?? CountResult(),
                    errors: outcome.errors + (decodeErrors.removeValue(forKey: outcome.fileIndex) ?? []))
                // Files finish out of order when chunks do; report in input order.
                while let next = finished.removeValue(forKey: nextToReport) {
                    onFile(next)
                    nextToReport += 1
                }
            })
    }
}
