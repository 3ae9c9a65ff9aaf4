import SluiceCore
import SluiceIngest

// MARK: recovering from a lost backend

extension ChunkRun {
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
        let inFlight = unitState.compactMap(\.placement).filter { !$0.packed }
        try replaceBackend(cause: cause, unfinished: unfinishedChunks(lostPacks: lostPacks))
        try resetUnits()
        // A job cancelled meanwhile (or before) is not rerun: its chunks end here.
        cancelJobsIfAsked()
        for p in inFlight where isCancelled(job: p.job) { ledger.chunkFinished(job: p.job, file: p.file, error: nil) }
        // Rerun in file order; chunks still waiting from an earlier
        // recovery were not submitted again, so their count stays.
        queue.retry = (inFlight.filter { !isCancelled(job: $0.job) }.map { p in
            var again = p
            again.attempt += 1
            return again
        } + queue.retry).sorted { $0.key < $1.key }
        for lost in lostPacks where isCancelled(job: lost.job) {
            for entry in lost.files { ledger.reportPacked(job: lost.job, file: entry.file, errors: []) }
        }
        for lost in lostPacks where !isCancelled(job: lost.job) {
            queue.jobs[lost.job].packQueue += lost.files.map { entry in
                SmallFileLoader.Candidate(
                    index: entry.file.fileIndex, path: entry.file.path, expected: entry.stamp, attempt: entry.attempt + 1)
            }
        }
        for j in queue.jobs { j.packQueue.sort { $0.index < $1.index } }
        lastEpoch = ring.epoch
        clocks.workers.progressed()
        clocks.reads.progressed()
    }

    /// Every chunk not finished, in (job, file, chunk) order, as the user is shown them.
    private func unfinishedChunks(lostPacks: [SmallFileFeed.LostPack]) -> [UnfinishedChunk] {
        var unfinished: [(key: (Int, Int, Int), chunk: UnfinishedChunk)] = []
        func path(_ p: ChunkPlacement) -> String { ledger.file(job: p.job, index: p.file)?.path.description ?? "" }
        for (u, unit) in unitState.enumerated() {
            guard let p = unit.placement, !p.packed else { continue }
            unfinished.append((p.key, UnfinishedChunk(path: path(p), fileOffset: p.offset, length: p.length, slot: u)))
        }
        for p in queue.retry {
            unfinished.append((p.key, UnfinishedChunk(path: path(p), fileOffset: p.offset, length: p.length, slot: -1)))
        }
        for lost in lostPacks {
            for entry in lost.files {
                unfinished.append(((lost.job, entry.file.fileIndex, 0), UnfinishedChunk(
                    path: entry.file.path.description, fileOffset: 0, length: entry.file.length, slot: lost.unit)))
            }
        }
        for (jobIndex, j) in queue.jobs.enumerated() {
            for lost in j.packQueue {
                guard let stamp = lost.expected else { continue }   // never in a pack yet
                unfinished.append(((jobIndex, lost.index, 0), UnfinishedChunk(
                    path: lost.path.description, fileOffset: 0, length: Int(stamp.size), slot: -1)))
            }
        }
        unfinished.sort { $0.key < $1.key }
        return unfinished.map(\.chunk)
    }

    /// Rebuilds the backend, trying again while this run has recoveries left.
    private func replaceBackend(cause: PipelineError, unfinished chunks: [UnfinishedChunk]) throws(PipelineError) {
        var why = cause
        while true {
            guard recoveriesThisRun < scanner.recoveryAttempts, let rebuild = scanner.rebuildBackend else {
                throw .recoveryFailed(attempts: recoveriesThisRun, cause: why.message, unfinished: chunks)
            }
            recoveriesThisRun += 1
            scanner.recoveries += 1
            scanner.onRecovery?(ChunkScheduler.Recovery(attempt: recoveriesThisRun, cause: why, unfinished: chunks))
            do {
                try scanner.replaceBackend(using: rebuild, cause: why.message)
                return
            } catch {
                why = error
            }
        }
    }

    /// Every unit free on the new backend's ring; packs go into its buffers.
    private func resetUnits() throws(PipelineError) {
        ring = scanner.backend.ring
        unitState = Array(repeating: .free, count: scanner.units)
        cursor = 0
        busyUnits = 0
        for j in queue.jobs { j.held = 0 }
        published = 0
        if let feed {
            // Packs go into the new backend's buffers, which must be host memory as before.
            guard scanner.stream.readsInPlace else {
                throw .invalidConfiguration("the rebuilt read stream's workers read chunks elsewhere than the host region; packed files need the host buffers")
            }
            feed.rebase(region: scanner.stream.region, units: scanner.units)
        }
    }
}
