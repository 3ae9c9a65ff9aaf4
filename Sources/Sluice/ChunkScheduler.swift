#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceIngest
import SluiceThreads
import SystemPackage

/// Drives whole files through a pump and a backend, doing the bookkeeping a
/// user should not: round-robin slots, backpressure when every slot is busy
/// (waiting on the epoch, never spinning), buffer reuse only after the slot
/// that read it is reclaimed, and an account of every chunk of every file.
///
/// At the end every byte of every file was processed exactly once, or the
/// file's outcome names the chunk that was not and why.
public final class ChunkScheduler {
    /// Knobs of one run.
    public struct Options: Sendable {
        /// Open files with O_DIRECT (bypassing the page cache).
        public var direct: Bool
        /// Give up when slots stay claimed with no progress for this long.
        public var watchdog: Duration
        /// Tenant whose result areas the run's slots use (`run(paths:...)`); 0 when tenants are not checked.
        public var tenant: UInt32

        /// Polled like Ctrl-C: true stops the run as an interrupt does.
        public var shouldStop: @Sendable () -> Bool
        /// Whether the process-wide `Interrupt` (the CLI's Ctrl-C) stops the
        /// run too; a `Session` turns it off, as its requests stop by cancellation.
        public var stopsOnInterrupt = true

        /// Options with the defaults: buffered reads, a 30-second watchdog, tenant 0, never stopped.
        public init(
            direct: Bool = false, watchdog: Duration = .seconds(30), tenant: UInt32 = 0,
            shouldStop: @escaping @Sendable () -> Bool = { false }
        ) {
            self.direct = direct
            self.watchdog = watchdog
            self.tenant = tenant
            self.shouldStop = shouldStop
        }
    }

    /// The outcome of one chunk whose slot finished DONE.
    public struct ChunkResult {
        /// Which job (tenant) of a multi-job run; 0 for `run(paths:...)`.
        public var job: Int
        /// Index of the chunk's file in the job's `paths`.
        public var fileIndex: Int
        /// The chunk's file (for a packed chunk, its first file).
        public var path: RawPath
        /// The chunk's number within its file (0-based).
        public var chunkNumber: Int
        /// Offset in the file of the chunk's first byte.
        public var fileOffset: UInt64
        /// Bytes read into the chunk, overlap included.
        public var length: Int
        /// The result words the worker wrote (`completion` of them).
        public var words: [UInt32]
        /// The chunk's bytes (overlap included) in host memory, valid only
        /// during the callback, for jobs that must look again (scan
        /// overflow): the data region itself, or a copy made on demand when
        /// ingest read the chunk into GPU memory.
        public var bytes: UnsafeRawBufferPointer {
            get throws(PipelineError) { try loadBytes() }
        }
        let loadBytes: () throws(PipelineError) -> UnsafeRawBufferPointer
        /// For a packed chunk (`Job.packing`), its whole files in buffer order
        /// (`fileIndex`, `path` and `chunkNumber` above then describe the first);
        /// empty for a chunk of one file.
        public var packed: [PackedFile] = []
    }

    /// One whole file laid out in a packed chunk.
    public struct PackedFile: Sendable, Equatable {
        /// Index of the file in the job's `paths`.
        public var fileIndex: Int
        /// The file.
        public var path: RawPath
        /// Where the file's first byte is in the chunk.
        public var offset: Int
        /// The file's size in bytes, all of which is in the chunk.
        public var length: Int
    }

    /// Small-file packing for a job: files of 1 to `maxFileBytes` bytes are
    /// laid out whole, back to back, in one chunk buffer and scanned by one
    /// slot, whose `argument0` is the bytes in the chunk and `argument1` is
    /// `flags`; opens, stats and reads run on a pool of threads. The job's
    /// `onChunk` must split the results per file (`ChunkResult.packed`): a
    /// result that spans two files belongs to neither. Ignored with `direct`
    /// (O_DIRECT needs aligned offsets in the buffer) and with a stream that
    /// lands chunks in GPU memory (the pool reads into host memory).
    public struct Packing: Sendable {
        /// Largest file packed, in bytes; larger files get chunks of their own.
        public var maxFileBytes: Int
        /// Passed to each packed slot as `argument1` (the op's flags).
        public var flags: UInt32
        /// Files per chunk at most (the host's table of a chunk stays small).
        public var maxFiles: Int

        /// Packing of files up to `maxFileBytes` bytes; `maxFiles` is clamped to 1...1,048,576.
        public init(maxFileBytes: Int, flags: UInt32 = 0, maxFiles: Int = 4096) {
            self.maxFileBytes = maxFileBytes
            self.flags = flags
            self.maxFiles = max(1, min(maxFiles, 1 << 20))
        }
    }

    /// The outcome of one file, once every chunk of it finished or failed.
    public struct FileOutcome: Sendable {
        /// Which job (tenant) of a multi-job run; 0 for `run(paths:...)`.
        public var job: Int
        /// Index of the file in the job's `paths`.
        public var fileIndex: Int
        /// The file.
        public var path: RawPath
        /// The file's size in bytes when it was opened.
        public var size: UInt64
        /// Chunks the file (or its range) was cut into.
        public var chunks: Int
        /// Empty when every byte was processed exactly once.
        public var errors: [PipelineError]
        /// The range of the file this outcome covers; nil for the whole file.
        public var range: FileRange? = nil

        /// The start positions this outcome covers: the range's, or the file's size.
        public var coveredBytes: UInt64 { range?.length ?? size }
    }

    /// Totals of a run.
    public struct Summary: Sendable, Equatable {
        /// Files reported, failed or not.
        public var files = 0
        /// Files reported with at least one error.
        public var filesFailed = 0
        /// Chunks whose slots finished DONE.
        public var chunks = 0
        /// Bytes those chunks covered (their start positions: overlap is not counted twice).
        public var bytes: UInt64 = 0
    }

    /// Bytes done of bytes known so far (files are opened as the run reaches them).
    public struct Progress: Sendable {
        /// Bytes covered by the chunks finished so far (overlap not counted twice).
        public var bytesDone: UInt64
        /// Bytes of the files (or ranges) found so far; grows as the run opens more.
        public var bytesTotal: UInt64
        /// Files reported so far.
        public var filesDone: Int
    }

    /// One tenant's work in a multi-job run.
    public struct Job {
        /// The tenant number written into each of the job's slots; selects its result areas.
        public var tenant: UInt32
        /// Units handed to this job per round of the weighted round-robin;
        /// while other jobs want units, it holds at most its weight's share of the ring.
        public var weight: Int
        /// Units (chunk buffers with their slots) the job holds at once at
        /// most, even alone, from its first unit on; nil: as many as are
        /// free. A `Session` sets it (with `maxUnitsDoublesEvery`), so that a
        /// request that arrives first cannot put a whole file in flight ahead
        /// of requests arriving just after it.
        public var maxUnits: Int?
        /// How often `maxUnits` doubles after the job took its first unit;
        /// nil: never. A job alone soon has the whole ring, while one that
        /// came a moment before others cannot take it all.
        public var maxUnitsDoublesEvery: Duration?
        /// The files to process, in submission order.
        public var paths: [RawPath]
        /// The operation each slot runs on its chunk.
        public var opcode: Opcode
        /// Passed to each slot as `argument1`.
        public var flags: UInt32
        /// Bytes each chunk reads past its stride so that a match may cross a chunk boundary; a multiple of 4096 below the chunk size.
        public var overlap: Int
        /// Per path, the range of it to process (nil: the whole file); empty: every file whole.
        public var ranges: [FileRange?]
        /// Called once per finished chunk, in completion order (or file order with `finishInOrder`).
        public var onChunk: (ChunkResult) -> Void
        /// Called once per file, when all its chunks are accounted for.
        public var onFile: (FileOutcome) -> Void
        /// Several small files per chunk; nil: one file per chunk.
        public var packing: Packing?
        /// Hand a finished chunk to `onChunk` only once no earlier chunk of
        /// this job is still in flight, its slot (and buffer) staying taken
        /// until then: for a job that must hand results out in file order and
        /// would otherwise copy each early chunk's bytes to keep them.
        public var finishInOrder = false
        /// Polled once per turn of the run: once true, the job is cancelled.
        /// No more of its reads or packs start, its published slots are
        /// cancelled, results of its chunks still in flight are dropped (no
        /// `onChunk`), and each of its files not reported yet is reported
        /// once with `PipelineError.cancelled`; the other jobs go on, and
        /// `run` returns normally.
        public var isCancelled: (@Sendable () -> Bool)?
        /// Descriptors opened already (by a client of `sluice serve`), file i
        /// of `paths` read from descriptor i; the paths then only name the
        /// files and are never opened (nor are small files packed, which
        /// opens them). Nil: each path is opened.
        public var descriptors: PassedFiles?
        /// Polled before the job is given work and before each of its
        /// finished chunks is handed out: true holds its next reads back
        /// and keeps its finished chunks in the ring (up to its share of the
        /// ring while other jobs want units), for a consumer that fell
        /// behind; its chunks in flight go on. Nil never pauses.
        public var isPaused: (() -> Bool)?
        /// Called on the run's thread once every file of the job was
        /// reported (at once for a job of no paths), before the run goes on
        /// with its other jobs.
        public var onFinish: (() -> Void)?

        /// A job over `paths` for `tenant`; see the properties for each argument.
        public init(
            tenant: UInt32, weight: Int = 1, paths: [RawPath], ranges: [FileRange?] = [], opcode: Opcode,
            flags: UInt32 = 0, overlap: Int = 0, packing: Packing? = nil,
            isCancelled: (@Sendable () -> Bool)? = nil,
            onChunk: @escaping (ChunkResult) -> Void, onFile: @escaping (FileOutcome) -> Void
        ) {
            self.tenant = tenant
            self.weight = weight
            self.paths = paths
            self.ranges = ranges
            self.opcode = opcode
            self.flags = flags
            self.overlap = overlap
            self.packing = packing
            self.isCancelled = isCancelled
            self.onChunk = onChunk
            self.onFile = onFile
        }
    }

    /// What one tenant used and suffered, for `--stats`.
    public struct TenantStats: Sendable, Equatable {
        /// Slots the tenant's chunks used.
        public var slots = 0
        /// Bytes the tenant's slots processed.
        public var bytes: UInt64 = 0
        /// Slots of the tenant that ended FAULTED.
        public var faults = 0
        /// Time its slots spent published or claimed, summed over slots.
        public var busy: Duration = .zero
    }

    /// What a recovery found lost, for a note to the user.
    public struct Recovery: Sendable {
        /// 1 for the first recovery of a run, 2 for the next, ...
        public var attempt: Int
        /// How the backend was lost (`.contextLost`, or why the last rebuild failed).
        public var cause: PipelineError
        /// The chunks that were in flight and will be submitted again.
        public var unfinished: [UnfinishedChunk]
    }

    /// One chunk about to be submitted, as `injectFault` sees it.
    public struct Submission: Sendable {
        /// Index of the chunk's job in `run(jobs:)`.
        public var job: Int
        /// The job's tenant.
        public var tenant: UInt32
        /// The chunk's file (for a packed chunk, its first file).
        public var path: RawPath
        /// The chunk's number within its file (0-based).
        public var chunkNumber: Int
        /// Offset in the file of the chunk's first byte.
        public var fileOffset: UInt64
        /// How often this chunk was submitted before (0: first time; n after n recoveries).
        /// For a packed chunk, the most any of its files was.
        public var attempt: Int
        /// The ring slot the chunk is about to be published in.
        public var slot: Int
        /// A packed chunk's files in buffer order (`path` is the first);
        /// empty for a chunk of one file.
        public var packed: [RawPath] = []
    }

    /// Makes a new backend and stream after the current backend lost its
    /// context. Contract: drain the reads of the stream it handed out, shut
    /// the lost backend down and drop every reference to it before making
    /// the new one (a CUDA context is reset only once its backend is gone),
    /// and return them started. Set by `Engine.makeScanner`; nil: a lost
    /// context ends the run with the error.
    public var rebuildBackend: (() throws(PipelineError) -> (any MegakernelBackend, any ChunkReadStream))?
    /// Recoveries one run may make before it gives up with `.recoveryFailed`
    /// naming the chunks that were not finished.
    public var recoveryAttempts = 2
    /// Called before each recovery with the chunks that will be rerun.
    public var onRecovery: ((Recovery) -> Void)?
    /// Recoveries over every run of this scanner.
    public internal(set) var recoveries = 0
    /// Fault injection (tests, `sluice soak`): may rewrite the slot a chunk
    /// is published with (its read is unaffected).
    package var injectFault: ((Submission, inout SlotPayload) -> Void)?
    /// Called with the job's index each time a job takes a unit (its read
    /// posted or its pack started), for tests of how units are shared.
    package var onUnitTaken: ((Int) -> Void)?

    /// The backend the runs use; replaced by `rebuildBackend` after a lost context.
    public private(set) var backend: any MegakernelBackend
    /// The options every run of this scheduler uses.
    public let options: Options
    /// Per-tenant counters, accumulated over every run of this scanner.
    public internal(set) var tenantStats: [UInt32: TenantStats] = [:]
    /// The host view of the tenant table, when tenants are checked.
    private var tenantOwners: UnsafeMutableBufferPointer<UInt32>?
    /// The one owner of the read stream; the runs post and drain reads through it.
    var pump: Pump
    /// The pump's stream (its layout, landing and host bytes).
    var stream: any ChunkReadStream { pump.stream }
    /// Chunk buffer i and slot i make unit i.
    private(set) var units: Int
    /// What a replacement backend must be given again: tenant checks and the scan table.
    private var tenantCount: Int?
    /// The scan tables installed through this scheduler, by directory index:
    /// what a replacement backend is given again.
    private var scanTables: [Int: InstalledScanTable] = [:]
    /// The pool that opens and reads small files, made on the first packed run.
    private var loader: SmallFileLoader?

    /// Bytes per chunk buffer.
    public var chunkBytes: Int { stream.chunkBytes }

    /// `backend` must be started; `stream` must read into `backend.dataRegion`
    /// (or, when its workers read copies of the chunks, lay out no more chunks than it holds).
    public init(backend: any MegakernelBackend, stream: any ChunkReadStream, options: Options = Options()) throws(PipelineError) {
        guard !stream.readsInPlace || stream.region.baseAddress == backend.dataRegion.baseAddress,
              stream.chunkCount * stream.chunkBytes <= backend.dataRegion.count else {
            throw .invalidConfiguration("the read stream's buffers are not the backend's data region")
        }
        self.backend = backend
        self.options = options
        pump = try Pump(stream: stream, chunkBytes: stream.chunkBytes)
        units = min(backend.ring.geometry.slotCount, stream.chunkCount)
    }

    /// The pool that opens and reads small files, made on the first packed run.
    func smallFileLoader() throws(PipelineError) -> SmallFileLoader {
        if let loader { return loader }
        let pool = try SmallFileLoader(threads: min(16, max(2, ProcessorCount.online)))
        loader = pool
        return pool
    }

    /// Turns on tenant checks: every slot may touch only the chunk buffer and
    /// result area the scanner handed its tenant. `tenants` is the number of
    /// tenant ids in use (0..<tenants).
    public func enableTenantChecks(tenants: Int) throws(PipelineError) {
        let geometry = backend.ring.geometry
        let table = try TenantTable.make(
            tenants: tenants, chunkBytes: stream.chunkBytes, chunkCount: stream.chunkCount,
            resultWordsPerArea: max(1, geometry.resultWordsPerSlot), areaCount: geometry.slotCount)
        tenantOwners = try backend.enableTenants(table)
        tenantCount = tenants
    }

    /// Installs a compiled scan table (and the literals it came from) in the
    /// backend, and keeps it to install again in a replacement after a
    /// recovery. Returns the line naming the matcher that runs.
    @discardableResult
    public func installScanTable(
        _ words: [UInt32], literals: [[UInt8]], caseInsensitive: Bool, at index: Int = 0,
        owner: UInt32 = ScanDirectory.anyTenant
    ) throws(PipelineError) -> String {
        let table = InstalledScanTable(words: words, literals: literals, caseInsensitive: caseInsensitive, owner: owner)
        let line = try table.install(in: backend, at: index)
        scanTables[index] = table
        return line
    }

    /// Empties entry `index` of the backend's scan-table directory (no slot
    /// naming it may be in flight) and forgets it.
    public func removeScanTable(at index: Int) throws(PipelineError) {
        scanTables[index] = nil
        try backend.removeScanTable(at: index)
    }

    /// Lets go of the backend, its stream and the pump (placeholders take
    /// their place), so that a lost backend can be released. Idempotent.
    func detachLostBackend(cause: String) throws(PipelineError) {
        guard !(backend is LostBackend) else { return }
        let placeholder = try LostBackend(replacing: backend, cause: cause)
        tenantOwners = nil
        backend = placeholder
        let closed = ClosedReadStream(
            chunkBytes: stream.chunkBytes, chunkCount: stream.chunkCount, region: placeholder.dataRegion)
        pump = try Pump(stream: closed, chunkBytes: closed.chunkBytes)
    }

    /// Notes a table already installed in the backend (by the engine), so a
    /// replacement backend gets it too.
    func remember(scanTable words: [UInt32], literals: [[UInt8]], caseInsensitive: Bool) {
        scanTables[0] = InstalledScanTable(
            words: words, literals: literals, caseInsensitive: caseInsensitive, owner: ScanDirectory.anyTenant)
    }

    /// Swaps the lost backend for a new one from `rebuild`: this scanner
    /// first lets go of the old backend, stream and pump (placeholders take
    /// their place, so a failed rebuild leaves nothing dangling), then gives
    /// the new backend the tenant table and scan table the old one had.
    func replaceBackend(
        using rebuild: () throws(PipelineError) -> (any MegakernelBackend, any ChunkReadStream), cause: String
    ) throws(PipelineError) {
        let chunkBytes = stream.chunkBytes
        try detachLostBackend(cause: cause)
        let (newBackend, newStream) = try rebuild()
        guard newStream.chunkBytes == chunkBytes, newStream.region.baseAddress == newBackend.dataRegion.baseAddress,
              newStream.chunkCount * newStream.chunkBytes <= newBackend.dataRegion.count
        else {
            throw .invalidConfiguration("the rebuilt read stream's buffers are not the rebuilt backend's data region")
        }
        backend = newBackend
        pump = try Pump(stream: newStream, chunkBytes: chunkBytes)
        units = min(newBackend.ring.geometry.slotCount, newStream.chunkCount)
        if let tenantCount { try enableTenantChecks(tenants: tenantCount) }
        for (index, table) in scanTables { _ = try table.install(in: newBackend, at: index) }
    }

    /// Hands unit `u`'s chunk buffer and result area to `owner` (when tenants are checked).
    func setOwner(unit u: Int, to owner: UInt32) {
        guard let t = tenantOwners else { return }
        t[TenantTable.headerWords + u] = owner
        t[TenantTable.headerWords + stream.chunkCount + u] = owner
    }

    /// Runs `opcode` over every chunk of every file in `paths`, in order of
    /// submission; results arrive through `onChunk` (in completion order)
    /// and `onFile` (once per file, when all its chunks are accounted for).
    ///
    /// With `overlap` > 0, chunks start every `chunkBytes - overlap` bytes
    /// and each reads `overlap` bytes more, so an op can see a match that
    /// starts in its chunk and ends in the next; `argument0` of each slot is
    /// the number of start positions that belong to the chunk (the stride,
    /// or less for the last chunk), and `argument1` is `flags`.
    /// `ranges` (empty, or one per path) limits a path to a range of its
    /// start positions, for a large file shared by several devices.
    @discardableResult
    public func run(
        paths: [RawPath], ranges: [FileRange?] = [], opcode: Opcode, flags: UInt32 = 0, overlap: Int = 0,
        packing: Packing? = nil, finishInOrder: Bool = false,
        onChunk: (ChunkResult) -> Void, onFile: (FileOutcome) -> Void,
        onProgress: ((Progress) -> Void)? = nil
    ) throws(PipelineError) -> Summary {
        try withoutActuallyEscaping(onChunk) { onChunk throws(PipelineError) in
            try withoutActuallyEscaping(onFile) { onFile throws(PipelineError) in
                var job = Job(
                    tenant: options.tenant, paths: paths, ranges: ranges, opcode: opcode, flags: flags,
                    overlap: overlap, packing: packing, onChunk: onChunk, onFile: onFile)
                job.finishInOrder = finishInOrder
                return try run(jobs: [job], onProgress: onProgress)
            }
        }
    }

    /// Runs several jobs (tenants) at once over the one pump and backend.
    /// Free units go to the jobs in weighted round-robin, so a tenant with a
    /// huge tree cannot starve one with a small file: each job with work left
    /// gets up to `weight` units per round.
    @discardableResult
    public func run(jobs: [Job], onProgress: ((Progress) -> Void)? = nil) throws(PipelineError) -> Summary {
        try ChunkRun(scanner: self, jobs: jobs, onProgress: onProgress).run()
    }

    /// `run(jobs:)` that also takes in, at every turn of the run, the jobs
    /// `admit` returns: they join the running jobs (weighted round-robin,
    /// as the first ones) and share the ring with them. The run ends once
    /// every job finished and `admit` returned none. What a `Session` runs
    /// its concurrent requests as, each job a tenant.
    @discardableResult
    public func run(
        jobs: [Job], admitting admit: @escaping () throws(PipelineError) -> [Job],
        onProgress: ((Progress) -> Void)? = nil
    ) throws(PipelineError) -> Summary {
        try ChunkRun(scanner: self, jobs: jobs, onProgress: onProgress, admit: admit).run()
    }
}

/// A scan table as installed through a scheduler: what it takes to install
/// it again in a replacement backend.
struct InstalledScanTable {
    var words: [UInt32]
    var literals: [[UInt8]]
    var caseInsensitive: Bool
    var owner: UInt32

    /// Installs it as entry `index` of `backend`'s directory; the matcher's line.
    func install(in backend: any MegakernelBackend, at index: Int) throws(PipelineError) -> String {
        try backend.installScanTable(words, literals: literals, caseInsensitive: caseInsensitive, at: index, owner: owner)
    }
}
