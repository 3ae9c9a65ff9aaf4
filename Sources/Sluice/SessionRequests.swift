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
        _ paths: [FilePath], engine: Engine, channel: ResultChannel<Element>, waits: Bool = true,
        failed: (RawPath, PipelineError) -> Element
    ) -> (files: [RawPath], walk: FileWalker.Result) {
        walk(paths, onNote: engine.configuration.onNote, channel: channel, waits: waits, failed: failed)
    }

    /// `walk` for a session without an engine (one connected to a server).
    static func walk<Element: Sendable>(
        _ paths: [FilePath], onNote: ((String) -> Void)?, channel: ResultChannel<Element>, waits: Bool = true,
        failed: (RawPath, PipelineError) -> Element
    ) -> (files: [RawPath], walk: FileWalker.Result) {
        let walk = FileWalker().expand(paths.map { RawPath($0) }, shouldStop: { channel.isStopped })
        for text in walk.notes { onNote?(text) }
        for error in walk.errors {
            let outcome = failed(SluiceError(error).path.map { RawPath($0) } ?? RawPath(""), error)
            if waits { channel.send(outcome) } else { channel.push(outcome) }
        }
        return (PathOrder.sortedUnique(walk.files), walk)
    }

    /// The literals as a pattern set, refused when the longest cannot
    /// straddle two chunks of `chunkBytes`.
    static func patterns(_ literals: [[UInt8]], options: ScanOptions, chunkBytes: Int) throws(PipelineError) -> PatternSet {
        let patterns = try PatternSet(literals: literals, caseInsensitive: options.caseInsensitive)
        let overlap = ScanJob.overlap(for: patterns)
        guard overlap < chunkBytes / 2 else {
            throw .invalidRequest(
                chunk: nil, slot: nil,
                reason: "a literal of \(patterns.maxLength) bytes needs chunks of at least \((2 * overlap + 4095) / 4096 * 4096 + 4096) bytes; this session's are \(chunkBytes)")
        }
        return patterns
    }

    static func output(_ options: ScanOptions) -> ScanJob.Output {
        ScanJob.Output(mode: options.mode, lineNumbers: options.mode == .matches && options.lineNumbers)
    }

    /// A scan as a tenant of a shared run: its table installed in its
    /// directory entry, bound to its tenant; results pushed without waiting.
    static func scanJob(
        place: TenantPlace, engine: Engine, paths: [FilePath], literals: [[UInt8]], options: ScanOptions,
        channel: ResultChannel<FileMatches>
    ) throws(PipelineError) -> ChunkScheduler.Job {
        // Bad literals fail the request before anything is walked.
        _ = try self.patterns(literals, options: options, chunkBytes: place.scanner.chunkBytes)
        let (files, walk) = self.walk(paths, engine: engine, channel: channel, waits: false) { path, error in
            FileMatches(path: path, matches: [], count: 0, errors: [error])
        }
        var job = try scanJob(place: place, files: files, literals: literals, options: options, push: { channel.push($0) })
        job.onFinish = { walk.closeStreamCopies() }
        return job
    }

    /// A scan of passed files as a tenant of a shared run.
    static func scanJob(
        place: TenantPlace, files: PassedFiles, literals: [[UInt8]], options: ScanOptions,
        channel: ResultChannel<FileMatches>
    ) throws(PipelineError) -> ChunkScheduler.Job {
        var job = try scanJob(place: place, files: files.paths, literals: literals, options: options, push: { channel.push($0) })
        job.descriptors = files
        return job
    }

    /// The scan job of `files` in `place`, its table installed there and bound to its tenant.
    private static func scanJob(
        place: TenantPlace, files: [RawPath], literals: [[UInt8]], options: ScanOptions,
        push: @escaping (FileMatches) -> Void
    ) throws(PipelineError) -> ChunkScheduler.Job {
        let chunkBytes = place.scanner.chunkBytes
        let patterns = try self.patterns(literals, options: options, chunkBytes: chunkBytes)
        let table = place.tables.table(for: patterns)
        try place.scanner.installScanTable(
            table.words, literals: patterns.literals, caseInsensitive: patterns.caseInsensitive, at: place.tableIndex,
            owner: place.tenant)
        return ScanJob.job(
            tenant: place.tenant, tableIndex: place.tableIndex, chunkBytes: chunkBytes, patterns: patterns, table: table,
            paths: files, output: output(options), packing: options.packing, onMatches: push)
    }

    /// A scan of passed files on a pool of several engines: on the first
    /// alone (passed descriptors are not split into ranges).
    static func scanPassed(
        pool: DevicePool, files: PassedFiles, literals: [[UInt8]], options: ScanOptions,
        channel: ResultChannel<FileMatches>
    ) throws(PipelineError) {
        let scanner = try pool.engines[0].scanner()
        let place = TenantPlace(
            engine: pool.engines[0], scanner: scanner, tables: RecentTables(), tenant: scanner.options.tenant, tableIndex: 0)
        var job = try scanJob(place: place, files: files.paths, literals: literals, options: options, push: { channel.send($0) })
        job.descriptors = files
        try scanner.run(jobs: [job])
    }

    /// `job` over passed `files` on the pool's first engine alone.
    static func runAlone(pool: DevicePool, _ job: ChunkScheduler.Job, _ files: PassedFiles) throws(PipelineError) {
        var job = job
        job.descriptors = files
        try pool.engines[0].scanner().run(jobs: [job])
    }

    /// A count as a tenant of a shared run.
    static func countJob(
        place: TenantPlace, engine: Engine, paths: [FilePath], channel: ResultChannel<FileCount>
    ) -> ChunkScheduler.Job {
        let (files, walk) = self.walk(paths, engine: engine, channel: channel, waits: false) { path, error in
            FileCount(path: path, result: CountResult(), errors: [error])
        }
        var job = CountJob.job(tenant: place.tenant, paths: files, onFile: { channel.push($0) })
        job.onFinish = { walk.closeStreamCopies() }
        return job
    }

    /// A CRC-32C as a tenant of a shared run.
    static func crc32cJob(
        place: TenantPlace, engine: Engine, paths: [FilePath], channel: ResultChannel<FileHash>
    ) throws(PipelineError) -> ChunkScheduler.Job {
        try HashJob.checkBackend(of: place.scanner)
        let (files, walk) = self.walk(paths, engine: engine, channel: channel, waits: false) { path, error in
            FileHash(path: path, crc32c: 0, bytes: 0, errors: [error])
        }
        var job = HashJob.job(tenant: place.tenant, paths: files, onFile: { channel.push($0) })
        job.onFinish = { walk.closeStreamCopies() }
        return job
    }

    static func scan(
        pool: DevicePool, paths: [FilePath], literals: [[UInt8]], options: ScanOptions, records: Int,
        channel: ResultChannel<FileMatches>
    ) throws(PipelineError) {
        let patterns = try self.patterns(literals, options: options, chunkBytes: pool.engines[0].configuration.chunkBytes)
        let table = ScanTable(patterns)
        for engine in pool.engines { _ = try engine.installScan(table: table, patterns: patterns) }
        let (files, walk) = self.walk(paths, engine: pool.engines[0], channel: channel) { path, error in
            FileMatches(path: path, matches: [], count: 0, errors: [error])
        }
        defer { walk.closeStreamCopies() }
        try pool.scan(
            files, patterns: patterns, table: table, output: output(options), packing: options.packing,
            onMatches: { channel.send($0) })
    }

    static func count(pool: DevicePool, paths: [FilePath], channel: ResultChannel<FileCount>) throws(PipelineError) {
        let (files, walk) = self.walk(paths, engine: pool.engines[0], channel: channel) { path, error in
            FileCount(path: path, result: CountResult(), errors: [error])
        }
        defer { walk.closeStreamCopies() }
        try pool.count(files, onFile: { channel.send($0) })
    }

    static func crc32c(pool: DevicePool, paths: [FilePath], channel: ResultChannel<FileHash>) throws(PipelineError) {
        let (files, walk) = self.walk(paths, engine: pool.engines[0], channel: channel) { path, error in
            FileHash(path: path, crc32c: 0, bytes: 0, errors: [error])
        }
        defer { walk.closeStreamCopies() }
        try pool.crc32c(files, onFile: { channel.send($0) })
    }
}

extension SessionRequests {
    /// A user operation as a tenant of a shared run.
    static func operationJob<Op: SluiceOperation>(
        _ operation: Op, opcode: Opcode, place: TenantPlace, paths: [FilePath], channel: ResultChannel<FileResult<Op.Result>>
    ) -> ChunkScheduler.Job {
        let (files, walk) = self.walk(paths, engine: place.engine, channel: channel, waits: false) { path, error in
            FileResult(path: path, value: operation.initialResult, bytes: 0, errors: [error])
        }
        var job = OperationJob.job(
            operation, opcode: opcode, tenant: place.tenant, paths: files, chunkBytes: place.scanner.chunkBytes,
            onFile: { channel.push($0) })
        job.onFinish = { walk.closeStreamCopies() }
        return job
    }

    /// A user operation on a pool of several engines: on the first alone
    /// (its files are not split into ranges, whose values could not be joined).
    static func operation<Op: SluiceOperation>(
        _ operation: Op, opcode: Opcode, pool: DevicePool, paths: [FilePath], channel: ResultChannel<FileResult<Op.Result>>
    ) throws(PipelineError) {
        let (files, walk) = self.walk(paths, engine: pool.engines[0], channel: channel) { path, error in
            FileResult(path: path, value: operation.initialResult, bytes: 0, errors: [error])
        }
        defer { walk.closeStreamCopies() }
        let scanner = try pool.engines[0].scanner()
        try scanner.run(jobs: [
            OperationJob.job(
                operation, opcode: opcode, tenant: scanner.options.tenant, paths: files, chunkBytes: scanner.chunkBytes,
                onFile: { channel.send($0) })
        ])
    }
}
