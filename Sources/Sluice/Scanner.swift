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
public final class Scanner {
    /// Knobs of one run.
    public struct Options: Sendable {
        /// Open files with O_DIRECT (bypassing the page cache).
        public var direct: Bool
        /// Give up when slots stay claimed with no progress for this long.
        public var watchdog: Duration
        public var tenant: UInt32

        /// Polled like Ctrl-C: true stops the run as an interrupt does.
        public var shouldStop: @Sendable () -> Bool

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
        public var fileIndex: Int
        public var path: RawPath
        /// The chunk's number within its file (0-based).
        public var chunkNumber: Int
        public var fileOffset: UInt64
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
        public var fileIndex: Int
        public var path: RawPath
        /// Where the file's first byte is in the chunk.
        public var offset: Int
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
        public var maxFileBytes: Int
        public var flags: UInt32
        /// Files per chunk at most (the host's table of a chunk stays small).
        public var maxFiles: Int

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
        public var fileIndex: Int
        public var path: RawPath
        public var size: UInt64
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
        public var files = 0
        public var filesFailed = 0
        public var chunks = 0
        public var bytes: UInt64 = 0
    }

    /// Bytes done of bytes known so far (files are opened as the run reaches them).
    public struct Progress: Sendable {
        public var bytesDone: UInt64
        public var bytesTotal: UInt64
        public var filesDone: Int
    }

    /// One tenant's work in a multi-job run.
    public struct Job {
        public var tenant: UInt32
        /// Units handed to this job per round of the weighted round-robin.
        public var weight: Int
        public var paths: [RawPath]
        public var opcode: Opcode
        public var flags: UInt32
        public var overlap: Int
        /// Per path, the range of it to process (nil: the whole file); empty: every file whole.
        public var ranges: [FileRange?]
        public var onChunk: (ChunkResult) -> Void
        public var onFile: (FileOutcome) -> Void
        /// Several small files per chunk; nil: one file per chunk.
        public var packing: Packing?
        /// Hand a finished chunk to `onChunk` only once no earlier chunk of
        /// this job is still in flight, its slot (and buffer) staying taken
        /// until then: for a job that must hand results out in file order and
        /// would otherwise copy each early chunk's bytes to keep them.
        public var finishInOrder = false

        public init(
            tenant: UInt32, weight: Int = 1, paths: [RawPath], ranges: [FileRange?] = [], opcode: Opcode,
            flags: UInt32 = 0, overlap: Int = 0, packing: Packing? = nil,
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
            self.onChunk = onChunk
            self.onFile = onFile
        }
    }

    /// What one tenant used and suffered, for `--stats`.
    public struct TenantStats: Sendable, Equatable {
        public var slots = 0
        public var bytes: UInt64 = 0
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
        public var job: Int
        public var tenant: UInt32
        public var path: RawPath
        public var chunkNumber: Int
        public var fileOffset: UInt64
        /// How often this chunk was submitted before (0: first time; n after n recoveries).
        /// For a packed chunk, the most any of its files was.
        public var attempt: Int
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
    public private(set) var recoveries = 0
    /// Fault injection (tests, `sluice soak`): may rewrite the slot a chunk
    /// is published with (its read is unaffected).
    package var injectFault: ((Submission, inout SlotPayload) -> Void)?

    public private(set) var backend: any MegakernelBackend
    public let options: Options
    /// Per-tenant counters, accumulated over every run of this scanner.
    public private(set) var tenantStats: [UInt32: TenantStats] = [:]
    /// The host view of the tenant table, when tenants are checked.
    private var tenantOwners: UnsafeMutableBufferPointer<UInt32>?
    private var pump: Pump
    private var stream: any ChunkReadStream
    private var units: Int
    /// What a replacement backend must be given again: tenant checks and the scan table.
    private var tenantCount: Int?
    private var scanTable: (words: [UInt32], literals: [[UInt8]], caseInsensitive: Bool)?
    /// The pool that opens and reads small files, made on the first packed run.
    private var loader: SmallFileLoader?

    /// Bytes per chunk buffer.
    public var chunkBytes: Int { stream.chunkBytes }

    /// `backend` must be started; `stream` must read into `backend.dataRegion`.
    public init(backend: any MegakernelBackend, stream: any ChunkReadStream, options: Options = Options()) throws(PipelineError) {
        guard stream.region.baseAddress == backend.dataRegion.baseAddress,
              stream.chunkCount * stream.chunkBytes <= backend.dataRegion.count else {
            throw .invalidConfiguration("the read stream's buffers are not the backend's data region")
        }
        self.backend = backend
        self.stream = stream
        self.options = options
        pump = try Pump(stream: stream, chunkBytes: stream.chunkBytes)
        units = min(backend.ring.geometry.slotCount, stream.chunkCount)
    }

    private struct Placement {
        var job: Int
        var file: Int
        var chunk: Int
        var offset: UInt64
        /// Start positions that belong to the chunk (its share of the file).
        var length: Int
        var publishedAt: ContinuousClock.Instant
        /// Submissions of this chunk before this one (recoveries rerun it).
        var attempt = 0
        /// A pack of small files (`SmallFileFeed` holds which): a recovery
        /// packs its files again rather than rerunning the chunk.
        var packed = false
    }

    private enum Unit {
        case free
        case reading(Placement)
        case published(Placement)
    }

    private final class OpenFile {
        let index: Int
        let path: RawPath
        let fd: FileDescriptor
        let stamp: FileStamp
        let chunks: Int
        /// The start positions to process: the whole file, or one range of it.
        let range: FileRange?
        let base: UInt64
        let end: UInt64
        var nextChunk = 0
        var finished = 0
        var errors: [PipelineError] = []

        /// A range must lie within `stamp.size` (checked when the file is opened).
        init(index: Int, path: RawPath, fd: FileDescriptor, stamp: FileStamp, stride: Int, range: FileRange? = nil) {
            self.index = index
            self.path = path
            self.fd = fd
            self.stamp = stamp
            self.range = range
            base = range?.start ?? 0
            end = range?.end ?? stamp.size
            chunks = Int((end - base + UInt64(stride) - 1) / UInt64(stride))
        }
    }

    /// What a job does next: chunks of a file, or a pack of small files.
    private enum Next {
        case chunks(OpenFile)
        /// Small files to pack: `packQueue` or the next paths.
        case pack
    }

    /// One job's progress through its files.
    private final class JobState {
        let job: Job
        let stride: Int
        var nextPath = 0
        var current: OpenFile?
        /// Files to pack before the next paths, in input order: files of
        /// lost packs (packed again, checked against their first stamp) and
        /// files a full pack had no room for.
        var packQueue: [SmallFileLoader.Candidate] = []
        /// Files a pack load found too large to pack, to scan by chunks first.
        var unpacked: [SmallFileLoader.Candidate] = []
        var open: [Int: OpenFile] = [:]
        var credit: Int

        init(job: Job, stride: Int) {
            self.job = job
            self.stride = stride
            credit = max(1, job.weight)
        }
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
    public func installScanTable(_ words: [UInt32], literals: [[UInt8]], caseInsensitive: Bool) throws(PipelineError) -> String {
        let line = try backend.installScanTable(words, literals: literals, caseInsensitive: caseInsensitive)
        scanTable = (words, literals, caseInsensitive)
        return line
    }

    /// Lets go of the backend, its stream and the pump (placeholders take
    /// their place), so that a lost backend can be released. Idempotent.
    func detachLostBackend(cause: String) throws(PipelineError) {
        guard !(backend is LostBackend) else { return }
        let placeholder = try LostBackend(replacing: backend, cause: cause)
        tenantOwners = nil
        backend = placeholder
        stream = ClosedReadStream(
            chunkBytes: stream.chunkBytes, chunkCount: stream.chunkCount, region: placeholder.dataRegion)
        pump = try Pump(stream: stream, chunkBytes: stream.chunkBytes)
    }

    /// Notes a table already installed in the backend (by the engine), so a
    /// replacement backend gets it too.
    func remember(scanTable words: [UInt32], literals: [[UInt8]], caseInsensitive: Bool) {
        scanTable = (words, literals, caseInsensitive)
    }

    /// Swaps the lost backend for a new one from `rebuild`: this scanner
    /// first lets go of the old backend, stream and pump (placeholders take
    /// their place, so a failed rebuild leaves nothing dangling), then gives
    /// the new backend the tenant table and scan table the old one had.
    private func replaceBackend(
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
        stream = newStream
        pump = try Pump(stream: newStream, chunkBytes: chunkBytes)
        units = min(newBackend.ring.geometry.slotCount, newStream.chunkCount)
        if let tenantCount { try enableTenantChecks(tenants: tenantCount) }
        if let t = scanTable {
            _ = try newBackend.installScanTable(t.words, literals: t.literals, caseInsensitive: t.caseInsensitive)
        }
    }

    private func setOwner(unit u: Int, to owner: UInt32) {
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
    @discardableResult
    /// `ranges` (empty, or one per path) limits a path to a range of its
    /// start positions, for a large file shared by several devices.
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

    /// Per job, the first (file, chunk) among units still reading or
    /// running (not in `terminal`): what a job that finishes in order waits for.
    private func earliestUnfinished(_ unitState: [Unit], terminal: [Int]) -> [Int: (Int, Int)] {
        var finished = [Bool](repeating: false, count: unitState.count)
        for u in terminal { finished[u] = true }
        var first: [Int: (Int, Int)] = [:]
        for (u, state) in unitState.enumerated() where !finished[u] {
            let p: Placement
            switch state {
            case .reading(let r): p = r
            case .published(let r): p = r
            case .free: continue
            }
            if let known = first[p.job], known <= (p.file, p.chunk) { continue }
            first[p.job] = (p.file, p.chunk)
        }
        return first
    }

    /// Runs several jobs (tenants) at once over the one pump and backend.
    /// Free units go to the jobs in weighted round-robin, so a tenant with a
    /// huge tree cannot starve one with a small file: each job with work left
    /// gets up to `weight` units per round.
    @discardableResult
    public func run(jobs: [Job], onProgress: ((Progress) -> Void)? = nil) throws(PipelineError) -> Summary {
        var ring = backend.ring
        let chunkBytes = stream.chunkBytes
        var states: [JobState] = []
        for job in jobs {
            guard job.overlap >= 0, job.overlap % 4096 == 0, job.overlap < chunkBytes else {
                throw .invalidConfiguration(
                    "chunk overlap \(job.overlap) must be a multiple of 4096 below the chunk size \(chunkBytes); raise --chunk-size")
            }
            guard job.weight >= 1 else { throw .invalidConfiguration("job weight \(job.weight) must be at least 1") }
            guard job.ranges.isEmpty || job.ranges.count == job.paths.count else {
                throw .invalidConfiguration("\(job.ranges.count) ranges for \(job.paths.count) paths")
            }
            states.append(JobState(job: job, stride: chunkBytes - job.overlap))
        }
        var unitState = [Unit](repeating: .free, count: units)
        let inOrder = jobs.contains { $0.finishInOrder }
        var cursor = 0
        var jobCursor = 0
        var summary = Summary()
        var progress = Progress(bytesDone: 0, bytesTotal: 0, filesDone: 0)
        var busyUnits = 0
        var published = 0
        var lastEpoch = ring.epoch
        // The watchdogs measure the workers and the reads: a reclaimed slot,
        // an epoch change or new work for idle workers is the workers'
        // progress, and the host's time in the job's callbacks (writing
        // output, rescanning a chunk) is counted against neither.
        var workerClock = StallClock()
        var readClock = StallClock()
        func noteProgress() { workerClock.progressed() }
        /// Runs a job's callback, its time left out of both watchdogs' counts.
        func callback(_ body: () -> Void) {
            let began = ContinuousClock.now
            body()
            let spent = ContinuousClock.now - began
            workerClock.hostWasBusy(for: spent)
            readClock.hostWasBusy(for: spent)
        }
        var interrupted = false
        /// Chunks a recovery will submit again, before any new chunk.
        var retry: [Placement] = []
        var recoveriesThisRun = 0
        // Packing (several small files per chunk) for the jobs that ask, unless O_DIRECT.
        var feed: SmallFileFeed?
        if !options.direct, stream.landing == .host, states.contains(where: { $0.job.packing != nil }) {
            let pool: SmallFileLoader
            if let existing = loader {
                pool = existing
            } else {
                pool = try SmallFileLoader(threads: min(16, max(2, ProcessorCount.online)))
                loader = pool
            }
            feed = SmallFileFeed(loader: pool, region: stream.region, chunkBytes: chunkBytes, units: units)
        }
        defer {
            // However the run ends, no pool thread may still write into a
            // buffer, and no file the run opened stays open.
            feed?.drain()
            for j in states {
                for f in j.open.values { try? f.fd.close() }
                j.open.removeAll()
            }
        }

        func finishIfComplete(_ j: JobState, _ f: OpenFile) {
            guard f.nextChunk == f.chunks, f.finished == f.chunks else { return }
            if f.errors.isEmpty {
                do {
                    let after = try FileStamp(fd: f.fd, path: f.path.description)
                    if let change = after.difference(from: f.stamp) {
                        f.errors.append(.fileChanged(path: f.path.description, detail: change))
                    }
                } catch {
                    f.errors.append(error)
                }
            }
            try? f.fd.close()
            j.open[f.index] = nil
            summary.files += 1
            if !f.errors.isEmpty { summary.filesFailed += 1 }
            progress.filesDone += 1
            callback {
                j.job.onFile(FileOutcome(
                    job: states.firstIndex { $0 === j } ?? 0, fileIndex: f.index, path: f.path, size: f.stamp.size,
                    chunks: f.chunks, errors: f.errors, range: f.range))
            }
        }

        func chunkFinished(job: Int, file: Int, error: PipelineError?) {
            let j = states[job]
            guard let f = j.open[file] else { return }
            f.finished += 1
            if let error { f.errors.append(error) }
            finishIfComplete(j, f)
        }

        /// A packed file's outcome (it is one chunk of its own, or none when empty).
        func reportPacked(job: Int, file: PackedFile, errors: [PipelineError]) {
            summary.files += 1
            if !errors.isEmpty { summary.filesFailed += 1 }
            progress.filesDone += 1
            callback {
                states[job].job.onFile(FileOutcome(
                    job: job, fileIndex: file.fileIndex, path: file.path, size: UInt64(file.length),
                    chunks: file.length > 0 ? 1 : 0, errors: errors))
            }
        }

        /// A file a pack load did not place, reported as a packed one of no bytes.
        func reportUnplaced(job: Int, _ file: SmallFileLoader.Candidate, errors: [PipelineError]) {
            reportPacked(job: job, file: PackedFile(fileIndex: file.index, path: file.path, offset: 0, length: 0), errors: errors)
        }

        /// The job's next file with chunks left to submit, or `.pack` when
        /// its next files are small-file candidates (files of lost or full
        /// packs first); other files are opened here, and those that cannot
        /// be opened or are empty are reported at once. A file a pack load
        /// found too large is scanned by chunks before anything else.
        func nextFile(_ jobIndex: Int) -> Next? {
            let j = states[jobIndex]
            if let c = j.current, c.nextChunk < c.chunks { return .chunks(c) }
            j.current = nil
            let packs = feed != nil && j.job.packing != nil
            if packs, j.unpacked.isEmpty, !j.packQueue.isEmpty { return .pack }
            while !j.unpacked.isEmpty || j.nextPath < j.job.paths.count {
                let index: Int
                let range: FileRange?
                if !j.unpacked.isEmpty {
                    index = j.unpacked.removeFirst().index
                    range = nil
                } else {
                    index = j.nextPath
                    range = j.job.ranges.isEmpty ? nil : j.job.ranges[index]
                    // Whole files of a packing job go to packs, unopened here.
                    if packs, range == nil { return .pack }
                    j.nextPath += 1
                }
                let path = j.job.paths[index]
                do throws(PipelineError) {
                    // A file whose size is not its length (procfs, sysfs) comes back as a copy read to its end.
                    let (fd, stamp) = try InputSource.open(path: path, direct: options.direct)
                    // A range was planned on the file as it was then; any other
                    // file is a changed one (and the range may not fit it).
                    if let range, let change = stamp.difference(from: range.plannedStamp) {
                        try? fd.close()
                        throw .fileChanged(path: path.description, detail: change)
                    }
                    let f = OpenFile(index: index, path: path, fd: fd, stamp: stamp, stride: j.stride, range: range)
                    j.open[index] = f
                    progress.bytesTotal += f.end - f.base
                    if f.chunks == 0 {
                        finishIfComplete(j, f)
                        continue
                    }
                    j.current = f
                    return .chunks(f)
                } catch {
                    summary.files += 1
                    summary.filesFailed += 1
                    progress.filesDone += 1
                    callback {
                        j.job.onFile(FileOutcome(
                            job: jobIndex, fileIndex: index, path: path, size: 0, chunks: 0, errors: [error], range: range))
                    }
                }
            }
            if packs, !j.packQueue.isEmpty { return .pack }
            return nil
        }

        /// Weighted round-robin: the current job keeps the turn while it has
        /// credit and work; then the next job with work gets its weight anew.
        func nextJob() -> (Int, Next)? {
            for _ in 0...(2 * states.count) {
                let j = states[jobCursor]
                if j.credit > 0, let f = nextFile(jobCursor) {
                    j.credit -= 1
                    return (jobCursor, f)
                }
                jobCursor = (jobCursor + 1) % states.count
                states[jobCursor].credit = max(1, states[jobCursor].job.weight)
            }
            return nil
        }

        func hasWork() -> Bool { !retry.isEmpty || states.indices.contains { nextFile($0) != nil } }

        /// The backend lost its context: every chunk in a unit (reading or
        /// published, finished or not: nothing of it was handed out yet) is
        /// rerun on a new backend, up to `recoveryAttempts` times per run.
        /// A pack's files are not rerun as that chunk: they go back to their
        /// job to be loaded and packed again (`packQueue`), each reported
        /// once, when its new pack finishes (or its load fails).
        func recover(from cause: PipelineError) throws(PipelineError) {
            // The pool reads into the lost backend's buffers: every read ends
            // before the backend may go. Files whose read failed are reported
            // now, as they would have been; the others are packed again.
            let lostPacks = feed?.abandonPacks() ?? []
            for event in feed?.poll(waitingUntil: nil) ?? [] { handle(event) }
            var inFlight: [Placement] = []
            // (job, file, chunk) orders the list the user is shown.
            var unfinished: [(key: (Int, Int, Int), chunk: UnfinishedChunk)] = []
            for (u, unit) in unitState.enumerated() {
                switch unit {
                case .reading(let p), .published(let p):
                    guard !p.packed else { continue }
                    inFlight.append(p)
                    unfinished.append(((p.job, p.file, p.chunk), UnfinishedChunk(
                        path: states[p.job].open[p.file]?.path.description ?? "", fileOffset: p.offset, length: p.length, slot: u)))
                case .free: break
                }
            }
            for p in retry {
                unfinished.append(((p.job, p.file, p.chunk), UnfinishedChunk(
                    path: states[p.job].open[p.file]?.path.description ?? "", fileOffset: p.offset, length: p.length, slot: -1)))
            }
            for lost in lostPacks {
                for entry in lost.files {
                    unfinished.append(((lost.job, entry.file.fileIndex, 0), UnfinishedChunk(
                        path: entry.file.path.description, fileOffset: 0, length: entry.file.length, slot: lost.unit)))
                }
            }
            for (jobIndex, j) in states.enumerated() {
                for lost in j.packQueue {
                    guard let stamp = lost.expected else { continue }   // never in a pack yet
                    unfinished.append(((jobIndex, lost.index, 0), UnfinishedChunk(
                        path: lost.path.description, fileOffset: 0, length: Int(stamp.size), slot: -1)))
                }
            }
            unfinished.sort { $0.key < $1.key }
            let chunks = unfinished.map(\.chunk)
            var why = cause
            while true {
                guard recoveriesThisRun < recoveryAttempts, let rebuild = rebuildBackend else {
                    throw .recoveryFailed(attempts: recoveriesThisRun, cause: why.message, unfinished: chunks)
                }
                recoveriesThisRun += 1
                recoveries += 1
                onRecovery?(Recovery(attempt: recoveriesThisRun, cause: why, unfinished: chunks))
                do {
                    try replaceBackend(using: rebuild, cause: why.message)
                    break
                } catch {
                    why = error
                }
            }
            ring = backend.ring
            unitState = [Unit](repeating: .free, count: units)
            cursor = 0
            busyUnits = 0
            published = 0
            if let feed {
                // Packs go into the new backend's buffers, which must be host memory as before.
                guard stream.landing == .host else {
                    throw .invalidConfiguration("the rebuilt read stream lands chunks in GPU memory; packed files need host buffers")
                }
                feed.rebase(region: stream.region, units: units)
            }
            // Rerun in file order; chunks still waiting from an earlier
            // recovery were not submitted again, so their count stays.
            retry = (inFlight.map { p in
                var again = p
                again.attempt += 1
                return again
            } + retry).sorted { ($0.job, $0.file, $0.chunk) < ($1.job, $1.file, $1.chunk) }
            for lost in lostPacks {
                states[lost.job].packQueue += lost.files.map { entry in
                    SmallFileLoader.Candidate(
                        index: entry.file.fileIndex, path: entry.file.path, expected: entry.stamp, attempt: entry.attempt + 1)
                }
            }
            for j in states { j.packQueue.sort { $0.index < $1.index } }
            lastEpoch = ring.epoch
            noteProgress()
            readClock.progressed()
        }

        /// Chunks of the files not opened yet (sizes from lstat; at least one each).
        func remainingChunks() -> Int {
            var n = 0
            for j in states {
                for (i, path) in j.job.paths.enumerated().dropFirst(j.nextPath) {
                    n += chunksToRead(path, stride: j.stride, range: j.job.ranges.isEmpty ? nil : j.job.ranges[i])
                }
            }
            return n
        }

        /// Chunks of a file not opened yet (its size from lstat; at least one).
        func chunksToRead(_ path: RawPath, stride: Int, range: FileRange?) -> Int {
            var st = stat()
            var size = path.withCString({ lstat($0, &st) }) == 0 ? Int(st.st_size) : 0
            if let range { size = Int(range.length) }
            return max(1, (size + stride - 1) / stride)
        }
        /// Hands unit `u` and the job's next small-file candidates, in input
        /// order, to a pool task that loads as many as fit; `packRead` says
        /// when it ended.
        func fillPack(unit u: Int, jobIndex: Int) {
            let j = states[jobIndex]
            guard let feed, let packing = j.job.packing else { return }
            let wanted = feed.filesWanted(maxFiles: packing.maxFiles)
            var files = Array(j.packQueue.prefix(wanted))
            j.packQueue.removeFirst(files.count)
            while files.count < wanted, j.nextPath < j.job.paths.count,
                  j.job.ranges.isEmpty || j.job.ranges[j.nextPath] == nil {
                files.append(SmallFileLoader.Candidate(index: j.nextPath, path: j.job.paths[j.nextPath]))
                j.nextPath += 1
            }
            guard let first = files.first else { return }
            setOwner(unit: u, to: j.job.tenant)
            feed.load(unit: u, job: jobIndex, files: files, maxFileBytes: packing.maxFileBytes)
            unitState[u] = .reading(Placement(
                job: jobIndex, file: first.index, chunk: 0, offset: 0, length: 0, publishedAt: .now, packed: true))
            busyUnits += 1
        }

        /// Reports files that failed or are empty, queues those a load
        /// handed back, and publishes a pack once its load ended.
        func handle(_ event: SmallFileFeed.Event) {
            switch event {
            case .fileFailed(let job, let file, let error):
                reportUnplaced(job: job, file, errors: [error])
            case .fileEmpty(let job, let file):
                reportUnplaced(job: job, file, errors: [])
            case .tooLarge(let job, let files):
                states[job].unpacked = (states[job].unpacked + files).sorted { $0.index < $1.index }
            case .noRoom(let job, let files):
                states[job].packQueue = (files + states[job].packQueue).sorted { $0.index < $1.index }
            case .packRead(let u):
                guard let feed, let pack = feed.packs[u] else { return }
                let intact = pack.intact
                // A lost pack's files were counted in their first pack.
                progress.bytesTotal += UInt64(pack.entries.reduce(0) { $0 + ($1.attempt == 0 ? $1.file.length : 0) })
                func freeUnit() {
                    unitState[u] = .free
                    setOwner(unit: u, to: TenantTable.unowned)
                    busyUnits -= 1
                }
                if interrupted {
                    // Not published: its files stay pending (the pack is kept to count them).
                    freeUnit()
                    return
                }
                guard let last = intact.last else {
                    _ = feed.release(unit: u)
                    freeUnit()
                    return
                }
                let j = states[pack.job]
                let length = last.offset + last.length
                let geometry = ring.geometry
                var payload = SlotPayload(
                    opcode: j.job.opcode, tenant: j.job.tenant, bufferOffset: UInt64(u) * UInt64(chunkBytes),
                    length: UInt32(length), fileOffset: 0, chunkIndex: UInt32(u),
                    arguments: (UInt32(length), j.job.packing?.flags ?? 0),
                    resultOffset: UInt32(geometry.resultOffset(ofSlot: u)),
                    resultCapacity: UInt32(geometry.resultWordsPerSlot))
                let attempt = pack.attempt
                if let inject = injectFault {
                    inject(Submission(
                        job: pack.job, tenant: j.job.tenant, path: intact[0].path, chunkNumber: 0, fileOffset: 0,
                        attempt: attempt, slot: u, packed: intact.map(\.path)), &payload)
                }
                do {
                    try ring.publish(slot: u, payload)
                    unitState[u] = .published(Placement(
                        job: pack.job, file: intact[0].fileIndex, chunk: 0, offset: 0,
                        length: intact.reduce(0) { $0 + $1.length }, publishedAt: .now, attempt: attempt, packed: true))
                    // Idle workers were not stalled: their wait starts now.
                    if published == 0 { noteProgress() }
                    published += 1
                } catch {
                    _ = feed.release(unit: u)
                    freeUnit()
                    for file in intact { reportPacked(job: pack.job, file: file, errors: [error]) }
                }
            }
        }

        while true {
            if !interrupted, Interrupt.isRequested || options.shouldStop() {
                // Stop feeding; cancel what no worker has claimed; let the rest finish.
                interrupted = true
                for u in 0..<units {
                    if case .published = unitState[u], (try? ring.status(ofSlot: u)) == .published {
                        try? ring.requestCancel(slot: u)
                    }
                }
            }
            // 1. Fill every free unit with the next chunk of the job whose turn it is.
            var scanned = 0
            while !interrupted, busyUnits < units, scanned < units {
                let u = cursor
                cursor = (cursor + 1) % units
                scanned += 1
                guard case .free = unitState[u] else { continue }
                let jobIndex: Int
                let f: OpenFile
                let chunk: Int
                var attempt = 0
                if let again = retry.first, let file = states[again.job].open[again.file] {
                    retry.removeFirst()
                    (jobIndex, f, chunk, attempt) = (again.job, file, again.chunk, again.attempt)
                } else if !retry.isEmpty {
                    retry.removeFirst()   // its file was closed already: nothing to rerun
                    continue
                } else {
                    guard let (next, work) = nextJob() else { break }
                    guard case .chunks(let file) = work else {
                        fillPack(unit: u, jobIndex: next)
                        // Publish packs whose reads ended meanwhile, so the backend
                        // scans while the next packs are being read.
                        for event in feed?.poll(waitingUntil: nil) ?? [] { handle(event) }
                        continue
                    }
                    (jobIndex, f, chunk) = (next, file, file.nextChunk)
                    f.nextChunk += 1
                }
                let j = states[jobIndex]
                let offset = f.base + UInt64(chunk) * UInt64(j.stride)
                // The start positions stop at the range's end; the read runs on
                // by the overlap (into the next range), no further.
                let starts = Int(min(UInt64(j.stride), f.end - offset))
                let length = Int(min(UInt64(chunkBytes), f.stamp.size - offset, UInt64(starts + j.job.overlap)))
                do {
                    setOwner(unit: u, to: j.job.tenant)
                    var adjust: ((inout SlotPayload) -> Void)?
                    if let inject = injectFault {
                        let site = Submission(
                            job: jobIndex, tenant: j.job.tenant, path: f.path, chunkNumber: chunk, fileOffset: offset,
                            attempt: attempt, slot: u)
                        adjust = { payload in inject(site, &payload) }
                    }
                    try pump.submitFileScan(
                        fd: f.fd, path: f.path.description, fileSize: f.stamp.size, fileOffset: offset, length: length,
                        chunkIndex: u, slotIndex: u,
                        tenant: j.job.tenant, opcode: j.job.opcode, args: (UInt32(starts), j.job.flags), ring: ring,
                        adjust: adjust)
                    unitState[u] = .reading(Placement(
                        job: jobIndex, file: f.index, chunk: chunk, offset: offset, length: starts,
                        publishedAt: .now, attempt: attempt))
                    busyUnits += 1
                } catch {
                    setOwner(unit: u, to: TenantTable.unowned)
                    chunkFinished(job: jobIndex, file: f.index, error: error)
                }
            }
            if busyUnits == 0 && (interrupted || !hasWork()) { break }

            // 2. Publish chunks whose reads landed.
            let packReads = feed?.readsInFlight ?? false
            let mustWaitForReads = published == 0 && (pump.inflight > 0 || packReads)
            var moved = false
            let events = try pump.drainIntoRing(ring, waitingUpTo: mustWaitForReads && !packReads ? .milliseconds(100) : nil)
            if !events.isEmpty || pump.inflight == 0 {
                readClock.progressed()
            } else if readClock.stalled > options.watchdog {
                let reading = unitState.compactMap { unit -> Placement? in
                    if case .reading(let p) = unit { return p }
                    return nil
                }
                let path = reading.first.flatMap { states[$0.job].open[$0.file]?.path } ?? ""
                throw .readsStuck(path: path.description, chunks: reading.map(\.chunk), seconds: options.watchdog.inSeconds)
            }
            for event in events {
                moved = true
                switch event {
                case .published(let chunk, _, _):
                    guard case .reading(var p) = unitState[chunk] else { continue }
                    p.publishedAt = .now
                    unitState[chunk] = .published(p)
                    if published == 0 { noteProgress() }
                    published += 1
                case .failed(let chunk, _, let error):
                    guard case .reading(let p) = unitState[chunk] else { continue }
                    unitState[chunk] = .free
                    setOwner(unit: chunk, to: TenantTable.unowned)
                    busyUnits -= 1
                    chunkFinished(job: p.job, file: p.file, error: error)
                }
            }

            if let feed {
                let wait = pump.inflight > 0 ? Duration.milliseconds(1) : .milliseconds(100)
                for event in feed.poll(waitingUntil: mustWaitForReads && events.isEmpty ? .now + wait : nil) {
                    moved = true
                    handle(event)
                }
            }

            // 3. Reclaim finished slots and hand out their results.
            if published > 0 {
                let epoch = ring.epoch
                if epoch != lastEpoch {
                    lastEpoch = epoch
                    noteProgress()
                }
                // In file and chunk order, not slot order: a job that hands
                // results out in file order then seldom has to hold one back.
                var terminal: [(unit: Int, placement: Placement)] = []
                for u in 0..<units {
                    guard case .published(let p) = unitState[u] else { continue }
                    guard try ring.status(ofSlot: u).isTerminal else { continue }
                    terminal.append((u, p))
                }
                terminal.sort { ($0.placement.job, $0.placement.file, $0.placement.chunk) < ($1.placement.job, $1.placement.file, $1.placement.chunk) }
                let waiting = inOrder ? earliestUnfinished(unitState, terminal: terminal.map(\.unit)) : [:]
                for (u, p) in terminal {
                    if states[p.job].job.finishInOrder, let first = waiting[p.job], first < (p.file, p.chunk) { continue }
                    let record = try ring.reclaim(slot: u)
                    let j = states[p.job]
                    let path = j.open[p.file]?.path ?? ""
                    var stats = tenantStats[j.job.tenant, default: TenantStats()]
                    stats.slots += 1
                    stats.busy += ContinuousClock.now - p.publishedAt
                    unitState[u] = .free
                    busyUnits -= 1
                    published -= 1
                    moved = true
                    switch record.status {
                    case .done:
                        let area = ring.resultArea(ofSlot: u)
                        let count = min(Int(record.completion), area.count)
                        summary.chunks += 1
                        summary.bytes += UInt64(p.length)
                        progress.bytesDone += UInt64(p.length)
                        stats.bytes += UInt64(p.length)
                        let readBytes = Int(record.payload.length)
                        let stream = self.stream
                        if let pack = feed?.release(unit: u) {
                            // Packs are only made on host-landing streams: the bytes are in the region.
                            let start = u * chunkBytes
                            let bytes = UnsafeRawBufferPointer(rebasing: stream.region[start..<(start + readBytes)])
                            let intact = pack.intact
                            callback {
                                j.job.onChunk(ChunkResult(
                                    job: p.job, fileIndex: p.file, path: intact.first?.path ?? "", chunkNumber: 0,
                                    fileOffset: 0, length: readBytes, words: Array(area[0..<count]), loadBytes: { bytes },
                                    packed: intact))
                            }
                            for file in intact { reportPacked(job: p.job, file: file, errors: []) }
                        } else {
                            callback {
                                j.job.onChunk(ChunkResult(
                                    job: p.job, fileIndex: p.file, path: path, chunkNumber: p.chunk, fileOffset: p.offset,
                                    length: p.length, words: Array(area[0..<count]),
                                    loadBytes: { () throws(PipelineError) in try stream.hostBytes(ofChunk: u, count: readBytes) }))
                            }
                            chunkFinished(job: p.job, file: p.file, error: nil)
                        }
                    case .faulted:
                        stats.faults += 1
                        let code = record.fault ?? .badArguments
                        if let pack = feed?.release(unit: u) {
                            for file in pack.intact {
                                reportPacked(job: p.job, file: file, errors: [.slotFaulted(slot: u, chunk: 0, path: file.path.description, code: code)])
                            }
                        } else {
                            chunkFinished(job: p.job, file: p.file, error: .slotFaulted(
                                slot: u, chunk: p.chunk, path: path.description, code: code))
                        }
                    default:
                        // CANCELLED: only an interrupt cancels; the file stays unfinished
                        // and is counted as pending when the run ends.
                        break
                    }
                    // The buffer and area go back to nobody only after the results were read.
                    setOwner(unit: u, to: TenantTable.unowned)
                    tenantStats[j.job.tenant] = stats
                    // A slot a worker finished is progress, counted after its callbacks.
                    noteProgress()
                }
                callback { onProgress?(progress) }
                if !moved {
                    if workerClock.stalled > options.watchdog {
                        let claimed = (0..<units).filter { (try? ring.status(ofSlot: $0)) == .claimed }
                        if !claimed.isEmpty {
                            throw .stuck(
                                slots: claimed, seconds: options.watchdog.inSeconds,
                                runner: backend.slotRunner)
                        }
                    }
                    if let feed, feed.readsInFlight {
                        // Pack reads finish on the pool, which the backend's wait would not see.
                        for event in feed.poll(waitingUntil: .now + .microseconds(250)) { handle(event) }
                    } else {
                        do {
                            _ = try backend.waitForProgress(
                                after: lastEpoch, timeout: .milliseconds(pump.inflight > 0 ? 1 : 20))
                        } catch {
                            guard case .contextLost = error else { throw error }
                            try recover(from: error)
                        }
                    }
                }
            }
        }
        onProgress?(progress)
        if interrupted {
            // Files opened but not finished are reported as pending, then the run ends.
            var pending = 0
            for j in states {
                for f in j.open.values {
                    pending += f.chunks - f.finished
                    try? f.fd.close()
                }
                pending += j.packQueue.count
                // Files too large to pack: all their chunks are still to read.
                pending += j.unpacked.reduce(0) { $0 + chunksToRead($1.path, stride: j.stride, range: nil) }
                j.open.removeAll()
            }
            feed?.drain()
            pending += feed?.unreportedFiles ?? 0
            throw .interrupted(finishedChunks: summary.chunks, pendingChunks: pending + remainingChunks())
        }
        return summary
    }
}

/// How long something the host waits on (the workers, the reads) has shown
/// no progress, less the host's own time in callbacks meanwhile: a busy
/// host is not a hung worker or a dead disk.
struct StallClock {
    private var since = ContinuousClock.now
    private var hostTime = Duration.zero

    /// Progress was seen: the wait starts again now.
    mutating func progressed() {
        since = .now
        hostTime = .zero
    }

    /// The host was busy elsewhere for `duration` (it could not have seen progress).
    mutating func hostWasBusy(for duration: Duration) {
        hostTime += duration
    }

    /// The time without progress that counts.
    var stalled: Duration { ContinuousClock.now - since - hostTime }
}
