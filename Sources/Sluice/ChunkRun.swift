import SluiceCore
import SluiceIngest
import SluiceThreads

/// Where one chunk (or pack) of a job went, from its submission to its reclaim.
struct ChunkPlacement {
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

    /// The order results are handed out and chunks rerun in.
    var key: (Int, Int, Int) { (job, file, chunk) }
}

/// Chunk buffer i with slot i: free, its read in flight, or its slot published.
enum UnitState {
    case free
    case reading(ChunkPlacement)
    case published(ChunkPlacement)

    var placement: ChunkPlacement? {
        switch self {
        case .free: return nil
        case .reading(let p), .published(let p): return p
        }
    }
}

/// One `ChunkScheduler.run(jobs:)`: the state its steps share, made per run, and a
/// method per step. Each turn of the loop stops feeding if asked (all jobs,
/// or one cancelled job), fills free
/// units, publishes chunks whose reads landed, reclaims finished slots and
/// hands out their results, and otherwise waits (or the watchdog fires, or a
/// lost backend is replaced).
final class ChunkRun {
    let scanner: ChunkScheduler
    let onProgress: ((ChunkScheduler.Progress) -> Void)?
    let chunkBytes: Int
    let clocks = RunClocks()
    let ledger: FileLedger
    let queue: JobQueue
    /// Small-file packing for the jobs that ask, unless O_DIRECT or GPU
    /// landing; made when the first such job comes.
    var feed: SmallFileFeed?
    /// Whether any job finishes in order (slots are then reclaimed in order).
    var inOrder: Bool
    /// Jobs taken in while the run goes on (`ChunkScheduler.run(jobs:admitting:)`).
    let admit: (() throws(PipelineError) -> [ChunkScheduler.Job])?
    /// Jobs whose `onFinish` was called.
    var finishedJobs: Set<Int> = []
    var ring: RingView
    var unitState: [UnitState]
    /// The unit the next fill looks at first (round-robin).
    var cursor = 0
    var busyUnits = 0
    var published = 0
    var lastEpoch: UInt64
    var interrupted = false
    var recoveriesThisRun = 0
    /// Whether the last reclaim left finished chunks waiting for their readers.
    var holdingForReaders = false

    init(
        scanner: ChunkScheduler, jobs: [ChunkScheduler.Job], onProgress: ((ChunkScheduler.Progress) -> Void)?,
        admit: (() throws(PipelineError) -> [ChunkScheduler.Job])? = nil
    ) throws(PipelineError) {
        let chunkBytes = scanner.chunkBytes
        try ChunkRun.validate(jobs, chunkBytes: chunkBytes)
        self.scanner = scanner
        self.onProgress = onProgress
        self.admit = admit
        self.chunkBytes = chunkBytes
        ring = scanner.backend.ring
        unitState = Array(repeating: .free, count: scanner.units)
        inOrder = false
        lastEpoch = ring.epoch
        ledger = FileLedger(clocks: clocks)
        queue = JobQueue(ledger: ledger, direct: scanner.options.direct)
        for job in jobs { try add(job) }
    }

    /// Whether small files can be packed at all: not with O_DIRECT (aligned
    /// offsets) nor where the workers read the chunks elsewhere than the
    /// host region (cuFile or the copy engine put them in GPU memory).
    private var packsPossible: Bool { !scanner.options.direct && scanner.stream.readsInPlace }

    /// Takes a job into the run: its files queue behind the others' turns.
    func add(_ job: ChunkScheduler.Job) throws(PipelineError) {
        let packs = packsPossible && job.packing != nil && job.descriptors == nil
        if packs, feed == nil {
            feed = SmallFileFeed(
                loader: try scanner.smallFileLoader(), region: scanner.stream.region, chunkBytes: chunkBytes,
                units: scanner.units)
        }
        inOrder = inOrder || job.finishInOrder
        ledger.add(job)
        queue.add(JobState(job: job, stride: chunkBytes - job.overlap, packs: packs))
    }

    /// Takes in the jobs `admit` has now (each validated like the first ones).
    private func admitJobs() throws(PipelineError) {
        guard let admit else { return }
        let jobs = try admit()
        try ChunkRun.validate(jobs, chunkBytes: chunkBytes)
        for job in jobs { try add(job) }
    }

    /// Calls `onFinish` of each job all of whose files were reported.
    private func finishJobs() {
        for (index, j) in queue.jobs.enumerated() where !finishedJobs.contains(index) {
            guard ledger.reportedFiles(job: index) >= j.job.paths.count else { continue }
            finishedJobs.insert(index)
            let onFinish = j.job.onFinish
            j.release()
            ledger.release(job: index)
            if let onFinish { clocks.callback { onFinish() } }
        }
    }

    static func validate(_ jobs: [ChunkScheduler.Job], chunkBytes: Int) throws(PipelineError) {
        for job in jobs {
            guard job.overlap >= 0, job.overlap % 4096 == 0, job.overlap < chunkBytes else {
                throw .invalidConfiguration(
                    "chunk overlap \(job.overlap) must be a multiple of 4096 below the chunk size \(chunkBytes); use larger chunks")
            }
            guard job.weight >= 1 else { throw .invalidConfiguration("job weight \(job.weight) must be at least 1") }
            guard (job.maxUnits ?? 1) >= 1 else {
                throw .invalidConfiguration("a job's most units \(job.maxUnits ?? 0) must be at least 1")
            }
            guard job.ranges.isEmpty || job.ranges.count == job.paths.count else {
                throw .invalidConfiguration("\(job.ranges.count) ranges for \(job.paths.count) paths")
            }
        }
    }

    /// Runs until every job's work is done (or an interrupt drained what was in flight).
    func run() throws(PipelineError) -> ChunkScheduler.Summary {
        defer {
            // However the run ends, no pool thread may still write into a
            // buffer, and no file the run opened stays open.
            feed?.drain()
            _ = ledger.closeUnfinished()
        }
        while true {
            stopIfAsked()
            if !interrupted { try admitJobs() }
            cancelJobsIfAsked()
            fillUnits()
            finishJobs()
            if busyUnits == 0 && (interrupted || !queue.hasWork()) {
                guard !interrupted, queue.hasWorkLeft() else { break }
                // Every job with work left waits for its consumer.
                sleepNanoseconds(200_000)
                continue
            }
            var moved = try publishLanded()
            if published > 0 {
                if try reclaimFinished() { moved = true }
                clocks.callback { onProgress?(ledger.progress) }
                if !moved { try idle() }
            }
        }
        finishJobs()
        onProgress?(ledger.progress)
        if interrupted { throw interruptedError() }
        return ledger.summary
    }

    /// On an interrupt (or `shouldStop`): stop feeding; cancel what no
    /// worker has claimed; let the rest finish.
    private func stopIfAsked() {
        guard !interrupted, (scanner.options.stopsOnInterrupt && Interrupt.isRequested) || scanner.options.shouldStop() else {
            return
        }
        interrupted = true
        for u in unitState.indices {
            if case .published = unitState[u], (try? ring.status(ofSlot: u)) == .published {
                try? ring.requestCancel(slot: u)
            }
        }
    }

    /// What an interrupted run throws: files opened but not finished, and
    /// those not reached, are counted as pending.
    private func interruptedError() -> PipelineError {
        var pending = ledger.closeUnfinished() + queue.queuedChunks()
        feed?.drain()
        pending += feed?.unreportedFiles ?? 0
        return .interrupted(finishedChunks: ledger.summary.chunks, pendingChunks: pending + queue.remainingChunks())
    }

    /// Gives back a unit that holds nothing for a worker (its read failed, or its pack was not published).
    func freeUnit(_ u: Int) {
        if let p = unitState[u].placement { queue.jobs[p.job].held -= 1 }
        unitState[u] = .free
        scanner.setOwner(unit: u, to: TenantTable.unowned)
        busyUnits -= 1
    }

    /// The first chunk of a job was handed to the idle workers: their wait starts now.
    func notePublished() {
        if published == 0 { clocks.workers.progressed() }
        published += 1
    }
}

// MARK: filling units

extension ChunkRun {
    /// Fills every free unit with the next chunk of the job whose turn it is.
    private func fillUnits() {
        let units = unitState.count
        var scanned = 0
        let shares = UnitShares(units: units, jobs: queue.jobs)
        while !interrupted, busyUnits < units, scanned < units {
            let u = cursor
            cursor = (cursor + 1) % units
            scanned += 1
            guard case .free = unitState[u] else { continue }
            guard let work = queue.nextWork(shares: shares) else { break }
            switch work {
            case .staleRetry:
                continue
            case .pack(let job):
                fillPack(unit: u, job: job)
                // Publish packs whose reads ended meanwhile, so the backend
                // scans while the next packs are being read.
                for event in feed?.poll(waitingUntil: nil) ?? [] { handle(event) }
            case .chunk(let job, let file, let chunk, let attempt):
                submit(unit: u, job: job, file: file, chunk: chunk, attempt: attempt)
            }
        }
    }

    /// Posts the read of one chunk into unit `u`; the pump publishes it once it lands.
    private func submit(unit u: Int, job: Int, file f: OpenFile, chunk: Int, attempt: Int) {
        let j = queue.jobs[job]
        let offset = f.base + UInt64(chunk) * UInt64(j.stride)
        // The start positions stop at the range's end; the read runs on
        // by the overlap (into the next range), no further.
        let starts = Int(min(UInt64(j.stride), f.end - offset))
        let length = Int(min(UInt64(chunkBytes), f.stamp.size - offset, UInt64(starts + j.job.overlap)))
        do {
            scanner.setOwner(unit: u, to: j.job.tenant)
            var adjust: ((inout SlotPayload) -> Void)?
            if let inject = scanner.injectFault {
                let site = ChunkScheduler.Submission(
                    job: job, tenant: j.job.tenant, path: f.path, chunkNumber: chunk, fileOffset: offset,
                    attempt: attempt, slot: u)
                adjust = { payload in inject(site, &payload) }
            }
            try scanner.pump.submitFileScan(
                fd: f.fd, path: f.path.description, fileSize: f.stamp.size, fileOffset: offset, length: length,
                chunkIndex: u, slotIndex: u,
                tenant: j.job.tenant, opcode: j.job.opcode, args: (UInt32(starts), j.job.flags), ring: ring,
                adjust: adjust)
            unitState[u] = .reading(ChunkPlacement(
                job: job, file: f.index, chunk: chunk, offset: offset, length: starts,
                publishedAt: .now, attempt: attempt))
            busyUnits += 1
            j.held += 1
            scanner.onUnitTaken?(job)
        } catch {
            scanner.setOwner(unit: u, to: TenantTable.unowned)
            ledger.chunkFinished(job: job, file: f.index, error: error)
        }
    }

    /// Hands unit `u` and the job's next small-file candidates, in input
    /// order, to a pool task that loads as many as fit; `packRead` says
    /// when it ended.
    private func fillPack(unit u: Int, job: Int) {
        let j = queue.jobs[job]
        guard let feed, let packing = j.job.packing else { return }
        let files = queue.packCandidates(job: job, wanted: feed.filesWanted(maxFiles: packing.maxFiles))
        guard let first = files.first else { return }
        scanner.setOwner(unit: u, to: j.job.tenant)
        feed.load(unit: u, job: job, files: files, maxFileBytes: packing.maxFileBytes)
        unitState[u] = .reading(ChunkPlacement(
            job: job, file: first.index, chunk: 0, offset: 0, length: 0, publishedAt: .now, packed: true))
        busyUnits += 1
        j.held += 1
        scanner.onUnitTaken?(job)
    }
}

// MARK: publishing

extension ChunkRun {
    /// Publishes chunks whose reads landed (and packs whose loads ended);
    /// waits for a read when nothing is published for the workers. True
    /// when anything moved.
    func publishLanded() throws(PipelineError) -> Bool {
        let packReads = feed?.readsInFlight ?? false
        let mustWaitForReads = published == 0 && (scanner.pump.inflight > 0 || packReads)
        var moved = false
        let events = try scanner.pump.drainIntoRing(
            ring, waitingUpTo: mustWaitForReads && !packReads ? .milliseconds(100) : nil)
        if !events.isEmpty || scanner.pump.inflight == 0 {
            clocks.reads.progressed()
        } else if clocks.reads.stalled > scanner.options.watchdog {
            throw readsStuck()
        }
        for event in events {
            moved = true
            landed(event)
        }
        if let feed {
            let wait = scanner.pump.inflight > 0 ? Duration.milliseconds(1) : .milliseconds(100)
            for event in feed.poll(waitingUntil: mustWaitForReads && events.isEmpty ? .now + wait : nil) {
                moved = true
                handle(event)
            }
        }
        return moved
    }

    /// The error for reads that made no progress within the watchdog.
    private func readsStuck() -> PipelineError {
        let reading = unitState.compactMap { unit -> ChunkPlacement? in
            if case .reading(let p) = unit { return p }
            return nil
        }
        let path = reading.first.flatMap { ledger.file(job: $0.job, index: $0.file)?.path } ?? ""
        return .readsStuck(path: path.description, chunks: reading.map(\.chunk), seconds: scanner.options.watchdog.inSeconds)
    }

    /// One read the pump reaped: its slot is published, or its chunk failed.
    private func landed(_ event: Pump.Event) {
        switch event {
        case .published(let chunk, _, _):
            guard case .reading(var p) = unitState[chunk] else { return }
            p.publishedAt = .now
            unitState[chunk] = .published(p)
            notePublished()
            if isCancelled(job: p.job) { cancelIfUnclaimed(slot: chunk) }
        case .failed(let chunk, _, let error):
            guard case .reading(let p) = unitState[chunk] else { return }
            freeUnit(chunk)
            ledger.chunkFinished(job: p.job, file: p.file, error: error)
        }
    }

    /// Reports files that failed or are empty, queues those a load
    /// handed back, and publishes a pack once its load ended.
    func handle(_ event: SmallFileFeed.Event) {
        switch event {
        case .fileFailed(let job, let file, let error):
            ledger.reportUnplaced(job: job, file, errors: [error])
        case .fileEmpty(let job, let file):
            ledger.reportUnplaced(job: job, file, errors: [])
        case .tooLarge(let job, let files) where isCancelled(job: job), .noRoom(let job, let files) where isCancelled(job: job):
            reportCancelled(job: job, files)
        case .tooLarge(let job, let files):
            queue.scanUnpacked(job: job, files)
        case .noRoom(let job, let files):
            queue.packAgain(job: job, files)
        case .packRead(let u):
            publishPack(unit: u)
        }
    }

    /// Publishes the pack in unit `u` whose load ended (or frees the unit
    /// when it holds no file, its job was cancelled, or the run was interrupted).
    private func publishPack(unit u: Int) {
        guard let feed, let pack = feed.packs[u] else { return }
        let intact = pack.intact
        // A lost pack's files were counted in their first pack.
        ledger.packBytesFound(UInt64(pack.entries.reduce(0) { $0 + ($1.attempt == 0 ? $1.file.length : 0) }))
        if interrupted {
            // Not published: its files stay pending (the pack is kept to count them).
            freeUnit(u)
            return
        }
        guard let last = intact.last, !isCancelled(job: pack.job) else {
            _ = feed.release(unit: u)
            freeUnit(u)
            // A cancelled job's files are reported, not published.
            for file in intact { ledger.reportPacked(job: pack.job, file: file, errors: []) }
            return
        }
        let j = queue.jobs[pack.job]
        var payload = packPayload(unit: u, job: j.job, length: last.offset + last.length)
        if let inject = scanner.injectFault {
            inject(ChunkScheduler.Submission(
                job: pack.job, tenant: j.job.tenant, path: intact[0].path, chunkNumber: 0, fileOffset: 0,
                attempt: pack.attempt, slot: u, packed: intact.map(\.path)), &payload)
        }
        do {
            try ring.publish(slot: u, payload)
            unitState[u] = .published(ChunkPlacement(
                job: pack.job, file: intact[0].fileIndex, chunk: 0, offset: 0,
                length: intact.reduce(0) { $0 + $1.length }, publishedAt: .now, attempt: pack.attempt, packed: true))
            notePublished()
        } catch {
            _ = feed.release(unit: u)
            freeUnit(u)
            for file in intact { ledger.reportPacked(job: pack.job, file: file, errors: [error]) }
        }
    }

    /// The slot of a pack of `length` bytes in unit `u`.
    private func packPayload(unit u: Int, job: ChunkScheduler.Job, length: Int) -> SlotPayload {
        let geometry = ring.geometry
        return SlotPayload(
            opcode: job.opcode, tenant: job.tenant, bufferOffset: UInt64(u) * UInt64(chunkBytes),
            length: UInt32(length), fileOffset: 0, chunkIndex: UInt32(u),
            arguments: (UInt32(length), job.packing?.flags ?? 0),
            resultOffset: UInt32(geometry.resultOffset(ofSlot: u)),
            resultCapacity: UInt32(geometry.resultWordsPerSlot))
    }
}
