import SluiceCore
import SluiceIngest

// MARK: cancelling one job

extension ChunkRun {
    /// Cancels every job whose `isCancelled` now says so (once each).
    func cancelJobsIfAsked() {
        for (index, j) in queue.jobs.enumerated() where !j.cancelled {
            guard let isCancelled = j.job.isCancelled, isCancelled() else { continue }
            cancel(job: index)
        }
    }

    /// Stops the job: nothing more of it starts, its published slots are
    /// cancelled, and every file of it not reported yet is reported with
    /// `.cancelled`, now or once its chunks in flight are back.
    private func cancel(job: Int) {
        let (reruns, unreached) = queue.cancel(job: job)
        ledger.cancel(job: job)
        for p in reruns { ledger.chunkFinished(job: job, file: p.file, error: nil) }
        for file in unreached {
            ledger.reportCancelled(job: job, index: file.index, path: file.path, range: file.range)
        }
        for u in unitState.indices {
            guard case .published(let p) = unitState[u], p.job == job else { continue }
            cancelIfUnclaimed(slot: u)
        }
    }

    /// Whether `job` was cancelled.
    func isCancelled(job: Int) -> Bool { queue.jobs[job].cancelled }

    /// Asks the workers not to run a slot of a cancelled job; one claimed
    /// already runs to the end and its result is dropped.
    func cancelIfUnclaimed(slot u: Int) {
        if (try? ring.status(ofSlot: u)) == .published { try? ring.requestCancel(slot: u) }
    }

    /// A reclaimed slot of a cancelled job: no `onChunk`; its file (or each
    /// file of its pack) is accounted, and reported with `.cancelled`.
    func dropCancelled(unit u: Int, placement p: ChunkPlacement) {
        if let pack = feed?.release(unit: u) {
            for file in pack.intact { ledger.reportPacked(job: p.job, file: file, errors: []) }
        } else {
            ledger.chunkFinished(job: p.job, file: p.file, error: nil)
        }
    }

    /// Files of a cancelled job that a pack load handed back (too large, no
    /// room, or a lost pack's): reported, not queued.
    func reportCancelled(job: Int, _ files: [SmallFileLoader.Candidate]) {
        for file in files { ledger.reportUnplaced(job: job, file, errors: []) }
    }
}
