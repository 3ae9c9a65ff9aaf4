import SluiceCore
import SluiceIngest

// MARK: reclaiming finished slots, waiting

extension ChunkRun {
    /// Reclaims finished slots and hands out their results, in file and
    /// chunk order, not slot order: a job that hands results out in file
    /// order then seldom has to hold one back. True when any was reclaimed.
    func reclaimFinished() throws(PipelineError) -> Bool {
        let epoch = ring.epoch
        if epoch != lastEpoch {
            lastEpoch = epoch
            clocks.workers.progressed()
        }
        var terminal: [(unit: Int, placement: ChunkPlacement)] = []
        for u in unitState.indices {
            guard case .published(let p) = unitState[u] else { continue }
            guard try ring.status(ofSlot: u).isTerminal else { continue }
            terminal.append((u, p))
        }
        terminal.sort { $0.placement.key < $1.placement.key }
        let waiting = inOrder ? earliestUnfinished(terminal: terminal.map(\.unit)) : [:]
        var moved = false
        var held: Set<Int> = []
        for (u, p) in terminal {
            if queue.jobs[p.job].job.finishInOrder, let first = waiting[p.job], first < (p.file, p.chunk) { continue }
            // Once one chunk of a job waits, its later ones wait too (order).
            if held.contains(p.job) || holdsResults(of: p.job) {
                held.insert(p.job)
                continue
            }
            try reclaim(unit: u, placement: p)
            moved = true
        }
        holdingForReaders = !held.isEmpty
        return moved
    }

    /// Whether job `index`'s finished chunks wait, slot and buffer held: its
    /// consumer fell behind (`Job.isPaused`), and handing them out would
    /// pile their results up in memory (a dense scan's chunk is millions of
    /// matches). Asked before each chunk, so a consumer gets at most one
    /// chunk's results past the point where it asked to pause. Only up to
    /// the job's share of the ring while other jobs want units
    /// (`UnitShares.holdLimit`): past it, chunks are handed out and their
    /// units freed. Never after an interrupt or a cancel, which must end
    /// with nothing held.
    private func holdsResults(of index: Int) -> Bool {
        let j = queue.jobs[index]
        guard !interrupted, !j.cancelled, j.isPaused else { return false }
        return j.held <= UnitShares.holdLimit(for: index, jobs: queue.jobs, units: unitState.count)
    }

    /// Per job, the first (file, chunk) among units still reading or
    /// running (not in `terminal`): what a job that finishes in order waits for.
    private func earliestUnfinished(terminal: [Int]) -> [Int: (Int, Int)] {
        var finished = [Bool](repeating: false, count: unitState.count)
        for u in terminal { finished[u] = true }
        var first: [Int: (Int, Int)] = [:]
        for (u, state) in unitState.enumerated() where !finished[u] {
            guard let p = state.placement else { continue }
            if let known = first[p.job], known <= (p.file, p.chunk) { continue }
            first[p.job] = (p.file, p.chunk)
        }
        return first
    }

    /// Reclaims one terminal slot, hands its outcome to its job and frees the unit.
    private func reclaim(unit u: Int, placement p: ChunkPlacement) throws(PipelineError) {
        let record = try ring.reclaim(slot: u)
        let tenant = queue.jobs[p.job].job.tenant
        var stats = scanner.tenantStats[tenant, default: ChunkScheduler.TenantStats()]
        stats.slots += 1
        stats.busy += ContinuousClock.now - p.publishedAt
        unitState[u] = .free
        queue.jobs[p.job].held -= 1
        busyUnits -= 1
        published -= 1
        switch record.status {
        case .done where isCancelled(job: p.job):
            stats.bytes += UInt64(p.length)
            dropCancelled(unit: u, placement: p)
        case .done:
            stats.bytes += UInt64(p.length)
            deliverDone(unit: u, placement: p, record: record)
        case .faulted:
            stats.faults += 1
            deliverFault(unit: u, placement: p, code: record.fault ?? .badArguments)
        default:
            // CANCELLED: a cancelled job's file is accounted (and reported as
            // cancelled); after an interrupt the file stays unfinished and is
            // counted as pending when the run ends.
            if isCancelled(job: p.job) { dropCancelled(unit: u, placement: p) }
        }
        // The buffer and area go back to nobody only after the results were read.
        scanner.setOwner(unit: u, to: TenantTable.unowned)
        scanner.tenantStats[tenant] = stats
        // A slot a worker finished is progress, counted after its callbacks.
        clocks.workers.progressed()
    }

    /// Hands a DONE slot's result words (and bytes) to its job's `onChunk`.
    private func deliverDone(unit u: Int, placement p: ChunkPlacement, record: SlotRecord) {
        let area = ring.resultArea(ofSlot: u)
        let count = min(Int(record.completion), area.count)
        ledger.chunkProcessed(bytes: p.length)
        let readBytes = Int(record.payload.length)
        let stream = scanner.stream
        let job = queue.jobs[p.job].job
        if let pack = feed?.release(unit: u) {
            // Packs are only made on streams whose workers read the region in place.
            let start = u * chunkBytes
            let bytes = UnsafeRawBufferPointer(rebasing: stream.region[start..<(start + readBytes)])
            let intact = pack.intact
            clocks.callback {
                job.onChunk(ChunkScheduler.ChunkResult(
                    job: p.job, fileIndex: p.file, path: intact.first?.path ?? "", chunkNumber: 0,
                    fileOffset: 0, length: readBytes, words: Array(area[0..<count]), loadBytes: { bytes }, packed: intact))
            }
            for file in intact { ledger.reportPacked(job: p.job, file: file, errors: []) }
        } else {
            let path = ledger.file(job: p.job, index: p.file)?.path ?? ""
            clocks.callback {
                job.onChunk(ChunkScheduler.ChunkResult(
                    job: p.job, fileIndex: p.file, path: path, chunkNumber: p.chunk, fileOffset: p.offset,
                    length: p.length, words: Array(area[0..<count]),
                    loadBytes: { () throws(PipelineError) in try stream.hostBytes(ofChunk: u, count: readBytes) }))
            }
            ledger.chunkFinished(job: p.job, file: p.file, error: nil)
        }
    }

    /// Accounts a FAULTED slot to its file (or to each file of its pack).
    private func deliverFault(unit u: Int, placement p: ChunkPlacement, code: FaultCode) {
        if let pack = feed?.release(unit: u) {
            for file in pack.intact {
                ledger.reportPacked(
                    job: p.job, file: file, errors: [.slotFaulted(slot: u, chunk: 0, path: file.path.description, code: code)])
            }
        } else {
            let path = ledger.file(job: p.job, index: p.file)?.path ?? ""
            ledger.chunkFinished(job: p.job, file: p.file, error: .slotFaulted(
                slot: u, chunk: p.chunk, path: path.description, code: code))
        }
    }

    /// Nothing moved this turn: fires the workers' watchdog when claimed
    /// slots made no progress for too long, else waits briefly for the pack
    /// loads or the backend, replacing a backend that lost its context.
    func idle() throws(PipelineError) {
        if clocks.workers.stalled > scanner.options.watchdog {
            let claimed = unitState.indices.filter { (try? ring.status(ofSlot: $0)) == .claimed }
            if !claimed.isEmpty {
                throw .stuck(slots: claimed, seconds: scanner.options.watchdog.inSeconds, runner: scanner.backend.slotRunner)
            }
        }
        if let feed, feed.readsInFlight {
            // Pack reads finish on the pool, which the backend's wait would not see.
            for event in feed.poll(waitingUntil: .now + .microseconds(250)) { handle(event) }
            return
        }
        do {
            // A reader that catches up is not a backend event: look again soon.
            let timeout: Duration = holdingForReaders ? .microseconds(200) : .milliseconds(scanner.pump.inflight > 0 ? 1 : 20)
            _ = try scanner.backend.waitForProgress(after: lastEpoch, timeout: timeout)
        } catch {
            guard case .contextLost = error else { throw error }
            try recover(from: error)
        }
    }
}
