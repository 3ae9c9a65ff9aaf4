import SluiceCore
import SluiceOps

/// The jobs run over every engine of a pool, large files split into ranges
/// that any engine may take, outcomes in the order of `files`: what `sluice
/// scan`, `count` and `hash` and a `Session` run.
extension DevicePool {
    /// Scans `files` for `patterns` with `table` already installed on every
    /// engine (`Engine.installScan`), handing each file's matches to
    /// `onMatches` in pieces, in order (`ScanJob.run(..., output:, onMatches:)`).
    /// `onIdle` is called now and then while the pool waits for engines.
    public func scan(
        _ files: [RawPath], patterns: PatternSet, table: ScanTable, output: ScanJob.Output, packing: Bool,
        onMatches: (FileMatches) -> Void, onProgress: ((ChunkScheduler.Progress) -> Void)? = nil,
        onIdle: (() -> Void)? = nil
    ) throws(PipelineError) {
        try run(
            splitting: files,
            job: { engine, batch, report, progress throws(PipelineError) in
                _ = try ScanJob.run(
                    scanner: try engine.scanner(), patterns: patterns, table: table, paths: batch.map(\.path),
                    ranges: batch.ranges, output: output, installTable: false, packing: packing, onMatches: report,
                    onProgress: progress)
            },
            onOutcome: onMatches, onProgress: onProgress, onIdle: onIdle)
    }

    /// Counts bytes and lines of `files`, one outcome per file, in order.
    public func count(
        _ files: [RawPath], onFile: (FileCount) -> Void, onProgress: ((ChunkScheduler.Progress) -> Void)? = nil
    ) throws(PipelineError) {
        try run(
            splitting: files,
            job: { engine, batch, report, progress throws(PipelineError) in
                _ = try CountJob.run(
                    scanner: try engine.scanner(), paths: batch.map(\.path), ranges: batch.ranges, onFile: report,
                    onProgress: progress)
            },
            onOutcome: onFile, onProgress: onProgress)
    }

    /// The CRC-32C of each of `files`, one outcome per file, in order.
    public func crc32c(
        _ files: [RawPath], onFile: (FileHash) -> Void, onProgress: ((ChunkScheduler.Progress) -> Void)? = nil
    ) throws(PipelineError) {
        try run(
            splitting: files,
            job: { engine, batch, report, progress throws(PipelineError) in
                _ = try HashJob.run(
                    scanner: try engine.scanner(), paths: batch.map(\.path), ranges: batch.ranges, onFile: report,
                    onProgress: progress)
            },
            onOutcome: onFile, onProgress: onProgress)
    }
}
