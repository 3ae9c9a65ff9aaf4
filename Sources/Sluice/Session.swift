import SluiceCPU
import SluiceCore
import SluiceIngest
import SluiceOps
import SystemPackage

/// The long-lived engine: one backend per device (CUDA or CPU), its pinned
/// ring and data region, the read stream and the installed tables, all
/// owned by the session's own thread, which serves requests one after
/// another. Create it once and send it many requests:
///
/// ```swift
/// import Sluice
///
/// let session = try await Session()
/// for try await piece in session.scan([FilePath("logs")], literals: [Array("ERROR".utf8)]) {
///     for match in piece.matches { print("\(piece.path):\(match.offset)") }
/// }
/// await session.close()
/// ```
///
/// Requests may be made from any task at the same time; they queue and run
/// in the order they were made, each as its own run over the ring, so one
/// request's failure never touches another's results. Each request's
/// results stream as an `AsyncSequence` whose memory stays bounded: the
/// session waits while the consumer is behind. Cancelling the consuming
/// task (or dropping the sequence) stops the request within about one
/// chunk's time and the session serves the next.
///
/// `close()` stops the session, cancelling what is queued; a session that
/// is dropped closes itself.
public final class Session: Sendable {
    /// How a session is set up; the default is what `sluice scan` picks
    /// with no options.
    public struct Configuration: Sendable {
        /// Which megakernel runs the work: `.auto` takes CUDA where a usable
        /// GPU is found, else the CPU backend.
        public var backend: BackendChoice = .auto
        /// Which devices: every GPU, or a list of CUDA ordinals (with the
        /// CPU backend, that many simulated devices).
        public var devices: DeviceSelection = .all
        /// How files are read.
        public var ingest: IngestChoice = .auto
        /// How host reads reach the CUDA workers (`CopyEnginePlan`).
        public var ingestCopy: IngestCopyChoice = .auto
        /// Bytes per chunk: a multiple of 4096 between 4 KiB and 1 GiB.
        public var chunkBytes = 4 << 20
        /// Ring slots per device; 0 picks a default for the backend.
        public var slots = 0
        /// CPU backend worker threads; 0 uses every core.
        public var workers = 0
        /// Read with O_DIRECT, bypassing the page cache.
        public var direct = false
        /// How long slots may make no progress before a run gives up.
        public var watchdog: Duration = .seconds(30)
        /// The CPU backend's scan matcher.
        public var cpuScanEngine: ScanEngineChoice = .auto
        /// Match records a slot holds before the host rescans its chunk;
        /// nil picks `ScanJob.defaultRecords(chunkBytes:)`.
        public var recordsPerSlot: Int?
        /// Slots one request holds at once when it starts, even alone; the
        /// cap doubles every few milliseconds, so that the request that
        /// arrives first cannot put a whole file in flight ahead of requests
        /// arriving just after it (a server's clients started together), yet
        /// soon has the whole ring alone. While several requests have work,
        /// each holds at most its share of the ring anyway. nil: a quarter of
        /// the ring, at least 8; 0: no cap beyond the share.
        public var slotsPerRequest: Int?
        /// Receives notes worth a user's attention while running (a lost
        /// backend and what is rerun, a skipped special file).
        public var onNote: (@Sendable (String) -> Void)?

        /// The defaults.
        public init() {}

        /// Match records per slot after defaults.
        var records: Int { recordsPerSlot ?? ScanJob.defaultRecords(chunkBytes: chunkBytes) }
        /// The user operations the session's backends run (`Session.init(_:operations:)`).
        var operations = OperationSet()
        /// Result words per slot: a scan's records, or the largest user operation's declaration.
        var resultWordsPerSlot: Int { max(ScanJob.resultWords(records: records), operations.largestResultWords) }
    }

    /// What runs the requests: this session's own thread and backends, or
    /// a `sluice serve` it is connected to.
    private enum Runner: Sendable {
        case local(SessionWorker)
        case remote(RemoteEngine)
    }

    private let runner: Runner

    /// Per device, which backend and ingest path run and why (what
    /// `sluice --verbose` prints); for a session connected to a server, the
    /// server's socket, protocol version and what it runs.
    public let reasons: [String]

    /// Starts the backends and their rings with `operations` installed
    /// (each gets an opcode of `Opcode.userRange`, in order; the CUDA
    /// backend compiles them into its megakernel before it starts); throws
    /// when no backend of the kind asked for can start, `invalidConfiguration`
    /// for an operation that cannot be installed (a bad name, a duplicate
    /// name, result words or overlap out of range), and
    /// `operationDidNotCompile` (no kernel started) for CUDA source that
    /// does not compile, with `.auto` too.
    public init(_ configuration: Configuration = Configuration(), operations: [any SluiceOperation] = []) async throws(SluiceError) {
        var configuration = configuration
        do throws(PipelineError) {
            configuration.operations = try Session.install(operations, chunkBytes: configuration.chunkBytes)
        } catch {
            throw SluiceError(error)
        }
        let worker = try await SessionWorker.start(configuration)
        runner = .local(worker)
        reasons = worker.reasons
    }

    /// The operations as a backend runs them, the `i`th with `Opcode.user(i)`
    /// (checked as `init(_:operations:)` checks them), for tools that
    /// compile them without a session.
    package static func operationSet(_ operations: [any SluiceOperation], chunkBytes: Int = 4 << 20) throws(PipelineError) -> OperationSet {
        try install(operations, chunkBytes: chunkBytes)
    }

    /// The operations as a backend runs them, the `i`th with `Opcode.user(i)`.
    private static func install(_ operations: [any SluiceOperation], chunkBytes: Int) throws(PipelineError) -> OperationSet {
        for op in operations where op.overlapBytes < 0 || op.overlapBytes % 4096 != 0 || op.overlapBytes >= chunkBytes / 2 {
            throw .invalidConfiguration(
                "user operation \(op.name): overlap \(op.overlapBytes) must be a multiple of 4096 below half the chunk size \(chunkBytes)")
        }
        return try OperationSet(operations.enumerated().map { i, op in op.installed(as: .user(i)) })
    }

    /// The opcode `operation` was installed with: one of the same name,
    /// function, source and result words. Nil when there is none.
    func opcode(of operation: some SluiceOperation) -> Opcode? {
        worker?.configuration.operations.operations.first { op in
            op.name == operation.name && op.cudaFunction == operation.cudaFunction
                && op.cudaSource == operation.cudaSource && op.resultWords == operation.resultWords
        }?.opcode
    }

    /// A session whose requests run on the `sluice serve` listening at
    /// `socket` (`ServerSocketPath`: `$XDG_RUNTIME_DIR/sluice.sock`, else
    /// `/tmp/sluice-UID.sock`), with the same API and results as a local
    /// one: paths are walked here, every file is opened here and passed to
    /// the server by descriptor, so the server reads only what this process
    /// can read. Throws `SluiceError.Code.serverUnavailable` (naming the
    /// socket) when no server answers there or its protocol version is not
    /// this build's (naming both versions). A request whose server goes
    /// away before its end fails with `SluiceError.Code.serverLost`.
    /// `onNote` receives the walk's notes (a skipped special file).
    ///
    /// What differs from a local session: the server's engine options are
    /// its own; `FileCount.result.histogram` is all zeros (only bytes and
    /// lines travel); `ScanOptions.packing` is the server's choice.
    public init(connectingTo socket: FilePath, onNote: (@Sendable (String) -> Void)? = nil) async throws(SluiceError) {
        let engine = try await RemoteEngine.connectAsync(to: socket, onNote: onNote)
        runner = .remote(engine)
        reasons = engine.reasons
    }

    /// A session over a server connection made already (the CLI connects
    /// first, to fall back to a local run when no server answers).
    package init(remote engine: RemoteEngine) {
        runner = .remote(engine)
        reasons = engine.reasons
    }

    /// The local worker, or nil for a session connected to a server.
    var worker: SessionWorker? {
        if case .local(let worker) = runner { return worker }
        return nil
    }

    /// The server engine, or nil for a local session.
    private var remote: RemoteEngine? {
        if case .remote(let engine) = runner { return engine }
        return nil
    }

    /// Every occurrence of `literals` in `paths` (files and directories,
    /// walked and sorted by path bytes as `sluice scan` does). Each element
    /// holds matches of one file in offset order; a file's matches may come
    /// in several consecutive elements (the last has `isComplete` set and
    /// the file's errors). `ScanMatch.pattern` indexes `literals`.
    public func scan(
        _ paths: [FilePath], literals: [[UInt8]], options: ScanOptions = ScanOptions()
    ) -> SluiceResults<FileMatches> {
        guard let worker else { return remote!.scan(paths, literals: literals, options: options) }
        let records = worker.configuration.records
        return worker.submit(
            usesScanTable: true,
            { pool, channel throws(PipelineError) in
                try SessionRequests.scan(
                    pool: pool, paths: paths, literals: literals, options: options, records: records, channel: channel)
            },
            job: { place, channel throws(PipelineError) in
                try SessionRequests.scanJob(
                    place: place, engine: place.engine, paths: paths, literals: literals, options: options, channel: channel)
            })
    }

    /// Bytes and lines of each file in `paths`, one element per file, in path order.
    public func count(_ paths: [FilePath]) -> SluiceResults<FileCount> {
        guard let worker else { return remote!.count(paths) }
        return worker.submit(
            { pool, channel throws(PipelineError) in try SessionRequests.count(pool: pool, paths: paths, channel: channel) },
            job: { place, channel in
                SessionRequests.countJob(place: place, engine: place.engine, paths: paths, channel: channel)
            })
    }

    /// The CRC-32C of each file in `paths`, one element per file, in path order.
    public func crc32c(_ paths: [FilePath]) -> SluiceResults<FileHash> {
        guard let worker else { return remote!.crc32c(paths) }
        return worker.submit(
            { pool, channel throws(PipelineError) in try SessionRequests.crc32c(pool: pool, paths: paths, channel: channel) },
            job: { place, channel throws(PipelineError) in
                try SessionRequests.crc32cJob(place: place, engine: place.engine, paths: paths, channel: channel)
            })
    }

    /// `scan` over files opened already (what `sluice serve` runs for a
    /// client): `files.paths[i]` is read from its passed descriptor and
    /// only names the file; nothing is walked, sorted or opened by path.
    /// Results come in the order of `files`. The session owns `files`.
    public func scan(
        passing files: PassedFiles, literals: [[UInt8]], options: ScanOptions = ScanOptions()
    ) -> SluiceResults<FileMatches> {
        guard let worker else { return remote!.scan(files: .passed(files), literals: literals, options: options) }
        return worker.submit(
            usesScanTable: true,
            { pool, channel throws(PipelineError) in
                try SessionRequests.scanPassed(pool: pool, files: files, literals: literals, options: options, channel: channel)
            },
            job: { place, channel throws(PipelineError) in
                try SessionRequests.scanJob(place: place, files: files, literals: literals, options: options, channel: channel)
            })
    }

    /// `count` over files opened already; see `scan(passing:literals:options:)`.
    public func count(passing files: PassedFiles) -> SluiceResults<FileCount> {
        guard let worker else { return remote!.count(files: .passed(files)) }
        return worker.submit(
            { pool, channel throws(PipelineError) in
                try SessionRequests.runAlone(pool: pool, CountJob.job(tenant: 0, paths: files.paths, onFile: { channel.send($0) }), files)
            },
            job: { place, channel in
                var job = CountJob.job(tenant: place.tenant, paths: files.paths, onFile: { channel.push($0) })
                job.descriptors = files
                return job
            })
    }

    /// `crc32c` over files opened already; see `scan(passing:literals:options:)`.
    public func crc32c(passing files: PassedFiles) -> SluiceResults<FileHash> {
        guard let worker else { return remote!.crc32c(files: .passed(files)) }
        return worker.submit(
            { pool, channel throws(PipelineError) in
                try HashJob.checkBackend(of: pool.engines[0].scanner())
                try SessionRequests.runAlone(pool: pool, HashJob.job(tenant: 0, paths: files.paths, onFile: { channel.send($0) }), files)
            },
            job: { place, channel throws(PipelineError) in
                try HashJob.checkBackend(of: place.scanner)
                var job = HashJob.job(tenant: place.tenant, paths: files.paths, onFile: { channel.push($0) })
                job.descriptors = files
                return job
            })
    }

    /// `operation`'s value for each file in `paths` (files and directories,
    /// walked and sorted by path bytes as `count` does), one element per
    /// file, in path order, streamed as files finish; cancelling the
    /// consuming task stops the request within about one chunk's time. A
    /// file whose chunk faulted (a write past the declared result words, a
    /// `badArguments` fault, the watchdog) carries the error, naming the
    /// file, the chunk and the slot; the other files go on. The operation
    /// must have been given to `init(_:operations:)` (else the sequence
    /// fails with `invalidRequest`); a session connected to a server runs none.
    public func run<Op: SluiceOperation>(_ operation: Op, over paths: [FilePath]) -> SluiceResults<FileResult<Op.Result>> {
        guard let worker else {
            return .failed(SluiceError(
                code: .invalidRequest, message: "a session connected to a server runs no user operations (\(operation.name))"))
        }
        guard let opcode = opcode(of: operation) else {
            return .failed(SluiceError(.invalidRequest(
                chunk: nil, slot: nil,
                reason: "the operation \(operation.name) is not installed in this session; pass it to Session(_:operations:)")))
        }
        return worker.submit(
            { pool, channel throws(PipelineError) in
                try SessionRequests.operation(operation, opcode: opcode, pool: pool, paths: paths, channel: channel)
            },
            job: { place, channel in
                SessionRequests.operationJob(operation, opcode: opcode, place: place, paths: paths, channel: channel)
            })
    }

    /// Stops the session: cancels queued and running requests (their
    /// sequences end with `SluiceError.Code.sessionClosed`), stops the
    /// backends and releases their memory. Later requests fail the same way.
    public func close() async {
        switch runner {
        case .local(let worker): await worker.close()
        case .remote(let engine): engine.close()
        }
    }

    deinit {
        switch runner {
        case .local(let worker): worker.closeAndWait()
        case .remote(let engine): engine.close()
        }
    }
}

/// How a scan reports.
public struct ScanOptions: Sendable {
    /// ASCII case-insensitive matching.
    public var caseInsensitive: Bool
    /// Every match, or only how many each file has.
    public var mode: ScanMode
    /// Give each match its 1-based line number (`ScanMatch.line`).
    public var lineNumbers: Bool
    /// Pack small files several to a chunk (the results are the same).
    public var packing: Bool

    /// Options for a scan; the defaults report every match without line numbers.
    public init(caseInsensitive: Bool = false, mode: ScanMode = .matches, lineNumbers: Bool = false, packing: Bool = true) {
        self.caseInsensitive = caseInsensitive
        self.mode = mode
        self.lineNumbers = lineNumbers
        self.packing = packing
    }
}

extension RawPath {
    /// The bytes of `path` exactly, whatever their encoding.
    init(_ path: FilePath) {
        self = path.withCString { text in
            var length = 0
            while text[length] != 0 { length += 1 }
            return RawPath(bytes: UnsafeRawBufferPointer(start: text, count: length))
        }
    }
}

extension FileMatches {
    /// `path` as a `FilePath`.
    public var filePath: FilePath { FilePath(path) }
}

extension FilePath {
    /// The path of `raw`'s bytes, whatever their encoding.
    public init(_ raw: RawPath) {
        self = raw.withCString { FilePath(platformString: $0) }
    }
}
