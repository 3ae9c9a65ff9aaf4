import SluiceCore
import SluiceOps
import SystemPackage

/// What each `Session` request does on the session's thread: walk the
/// paths as the CLI does, run the job on the pool, and send each outcome
/// into the request's channel.
enum SessionRequests {
    /// Walks `paths` (directories included) and returns the files in path
    /// order; sends one failed outcome per path the walk could not read.
    static func walk<Element: Sendable>(
        _ paths: [FilePath], pool: DevicePool, channel: ResultChannel<Element>,
        failed: (RawPath, PipelineError) -> Element
    ) -> (files: [RawPath], walk: FileWalker.Result) {
        let walk = FileWalker().expand(paths.map { RawPath($0) }, shouldStop: { channel.isStopped })
        let note = pool.engines.first?.configuration.onNote
        for text in walk.notes { note?(text) }
        for error in walk.errors { channel.send(failed(SluiceError(error).path.map { RawPath($0) } ?? RawPath(""), error)) }
        return (PathOrder.sortedUnique(walk.files), walk)
    }

    static func scan(
        pool: DevicePool, paths: [FilePath], literals: [[UInt8]], options: ScanOptions, records: Int,
        channel: ResultChannel<FileMatches>
    ) throws(PipelineError) {
        let patterns = try PatternSet(literals: literals, caseInsensitive: options.caseInsensitive)
        let chunkBytes = pool.engines[0].configuration.chunkBytes
        let overlap = ScanJob.overlap(for: patterns)
        guard overlap < chunkBytes / 2 else {
            throw .invalidRequest(
                chunk: nil, slot: nil,
                reason: "a literal of \(patterns.maxLength) bytes needs chunks of at least \((2 * overlap + 4095) / 4096 * 4096 + 4096) bytes; this session's are \(chunkBytes)")
        }
        let table = ScanTable(patterns)
        for engine in pool.engines { _ = try engine.installScan(table: table, patterns: patterns) }
        let (files, walk) = self.walk(paths, pool: pool, channel: channel) { path, error in
            FileMatches(path: path, matches: [], count: 0, errors: [error])
        }
        defer { walk.closeStreamCopies() }
        let output = ScanJob.Output(mode: options.mode, lineNumbers: options.mode == .matches && options.lineNumbers)
        try pool.scan(
            files, patterns: patterns, table: table, output: output, packing: options.packing,
            onMatches: { channel.send($0) })
    }

    static func count(pool: DevicePool, paths: [FilePath], channel: ResultChannel<FileCount>) throws(PipelineError) {
        let (files, walk) = self.walk(paths, pool: pool, channel: channel) { path, error in
            FileCount(path: path, result: CountResult(), errors: [error])
        }
        defer { walk.closeStreamCopies() }
        try pool.count(files, onFile: { channel.send($0) })
    }

    static func crc32c(pool: DevicePool, paths: [FilePath], channel: ResultChannel<FileHash>) throws(PipelineError) {
        let (files, walk) = self.walk(paths, pool: pool, channel: channel) { path, error in
            FileHash(path: path, crc32c: 0, bytes: 0, errors: [error])
        }
        defer { walk.closeStreamCopies() }
        try pool.crc32c(files, onFile: { channel.send($0) })
    }
}
