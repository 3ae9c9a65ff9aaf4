import SluiceCore
import SluiceIngest

/// The scanner's side of small-file packing (`ChunkScheduler.Job.packing`): hands
/// a unit's chunk buffer and a list of files to a `SmallFileLoader` task,
/// which opens, reads and closes them there, and turns the task's answer
/// into events: the pack is read, these files failed, are empty, are too
/// large to pack, or found no room.
///
/// The scanner still decides everything that is visible: which files go
/// to which pack, when a unit is free, what is published and reported.
/// This type keeps the buffers straight: `drain` returns only when no pool
/// thread can write into a chunk buffer any more. No descriptor outlives a
/// load task.
final class SmallFileFeed {
    /// One file placed in a pack.
    struct Entry {
        var file: ChunkScheduler.PackedFile
        /// Stamp taken right after its open (for a file packed before, the
        /// stamp of its first open, which it still had).
        var stamp: FileStamp
        /// Packs it was in before, lost with their backend.
        var attempt = 0
    }

    /// The files of one unit's chunk buffer.
    final class Pack {
        let job: Int
        /// Files asked for, until the load answers.
        var candidates: Int
        var entries: [Entry] = []
        var loaded = false

        init(job: Int, candidates: Int) {
            self.job = job
            self.candidates = candidates
        }

        /// The files whose bytes are all in place, in buffer order.
        var intact: [ChunkScheduler.PackedFile] { entries.map(\.file) }
        /// The most packs any of its files was in before (fault injection sees it).
        var attempt: Int { entries.map(\.attempt).max() ?? 0 }
    }

    /// What the pool's completions mean to the scanner.
    enum Event {
        /// A file failed (open, stat or read error, ended early, changed); report it now.
        case fileFailed(job: Int, file: SmallFileLoader.Candidate, error: PipelineError)
        /// A 0-byte file: scanned, nothing in it; report it now.
        case fileEmpty(job: Int, file: SmallFileLoader.Candidate)
        /// Files too large to pack: scan them by chunks.
        case tooLarge(job: Int, files: [SmallFileLoader.Candidate])
        /// Files a full buffer had no room for: pack them later.
        case noRoom(job: Int, files: [SmallFileLoader.Candidate])
        /// The unit's load ended: publish its pack or free the unit.
        case packRead(unit: Int)
    }

    let loader: SmallFileLoader
    /// The chunk buffers; a recovery moves them to the new backend's (`rebase`).
    private var region: UnsafeMutableRawBufferPointer
    private let chunkBytes: Int
    private(set) var packs: [Pack?]
    /// Events not handed out yet.
    private var pending: [Event] = []
    /// Files placed and their bytes, over every load: the typical file size
    /// decides how many files the next load is given.
    private var placedFiles = 0
    private var placedBytes = 0

    init(loader: SmallFileLoader, region: UnsafeMutableRawBufferPointer, chunkBytes: Int, units: Int) {
        self.loader = loader
        self.region = region
        self.chunkBytes = chunkBytes
        packs = Array(repeating: nil, count: units)
    }

    /// How many files to give the next load: about as many as a buffer
    /// holds at the sizes seen so far (the rest of a list that does not fit
    /// comes back as `noRoom`, unopened), at most `maxFiles` and
    /// `filesPerLoad`.
    func filesWanted(maxFiles: Int) -> Int {
        let most = min(maxFiles, SmallFileFeed.filesPerLoad)
        guard placedFiles > 0, placedBytes > 0 else { return min(most, 64) }
        let perFile = Double(placedBytes) / Double(placedFiles)
        return max(1, min(most, Int(Double(chunkBytes) / perFile) + 2))
    }

    /// Files one load task takes at most. At about 12 us a file (open, two
    /// stats, read, close; benchmarks/RESULTS.md, 2026-12-06) a task of 1,024
    /// tiny files runs 12 ms, so a tree of tiny files still spreads over
    /// every pool thread and no single task holds up the end of a run.
    static let filesPerLoad = 1024

    /// Starts loading `files` into `unit`'s buffer; `packRead` follows.
    func load(unit: Int, job: Int, files: [SmallFileLoader.Candidate], maxFileBytes: Int) {
        precondition(packs[unit] == nil, "a pack in unit \(unit) already")
        packs[unit] = Pack(job: job, candidates: files.count)
        let buffer = UnsafeMutableRawBufferPointer(rebasing: region[(unit * chunkBytes)..<((unit + 1) * chunkBytes)])
        loader.loadPack(files, into: buffer, maxFileBytes: min(maxFileBytes, chunkBytes), chunk: unit, token: unit)
    }

    /// Forgets `unit`'s pack (its slot was reclaimed or never published).
    func release(unit: Int) -> Pack? {
        defer { packs[unit] = nil }
        return packs[unit]
    }

    /// Events since the last poll; waits until `deadline` for one when
    /// none is ready and loads are in flight.
    func poll(waitingUntil deadline: ContinuousClock.Instant?) -> [Event] {
        collect(loader.take(waitingUntil: pending.isEmpty ? deadline : nil))
        defer { pending.removeAll() }
        return pending
    }

    var readsInFlight: Bool { loader.inflight > 0 }

    /// Files handed to this feed and not reported yet: those in packs and
    /// those in events not taken (for the pending count of an interrupt;
    /// after `drain`, when no load is in flight).
    var unreportedFiles: Int {
        var n = packs.reduce(0) { n, pack in n + (pack.map { $0.loaded ? $0.entries.count : $0.candidates } ?? 0) }
        for event in pending {
            switch event {
            case .fileFailed, .fileEmpty: n += 1
            case .tooLarge(_, let files), .noRoom(_, let files): n += files.count
            case .packRead: break
            }
        }
        return n
    }

    /// The packs of a unit whose backend was lost, as `abandonPacks` hands them back.
    struct LostPack {
        var unit: Int
        var job: Int
        /// Its placed files, in buffer order.
        var files: [Entry]
    }

    /// After the backend lost its context: waits for every load on the pool
    /// (after it no thread writes into the lost backend's buffers), then
    /// forgets every pack, with any `packRead` not yet taken (a unit filled
    /// later must not see it), and hands back their files to be packed
    /// again. The loads' other events stay for the next `poll`.
    func abandonPacks() -> [LostPack] {
        collect(loader.drain())
        var lost: [LostPack] = []
        for (unit, pack) in packs.enumerated() {
            guard let pack, !pack.entries.isEmpty else { continue }
            lost.append(LostPack(unit: unit, job: pack.job, files: pack.entries))
        }
        packs = Array(repeating: nil, count: packs.count)
        pending.removeAll { event in
            if case .packRead = event { return true }
            return false
        }
        return lost
    }

    /// Packs from now on go into `region` (a rebuilt backend's chunk
    /// buffers) with `units` units; only after `abandonPacks`.
    func rebase(region: UnsafeMutableRawBufferPointer, units: Int) {
        precondition(packs.allSatisfy { $0 == nil }, "rebase with packs in flight")
        self.region = region
        packs = Array(repeating: nil, count: units)
    }

    /// Waits for every load in flight; its answers become packs and pending
    /// events. After it, no pool thread touches the chunk buffers.
    func drain() {
        collect(loader.drain())
    }

    private func collect(_ completions: [SmallFileLoader.Completion]) {
        for completion in completions {
            let unit = completion.token
            guard let pack = packs[unit] else { continue }
            let load = completion.load
            pack.loaded = true
            pack.entries = load.placed.map { placed in
                Entry(
                    file: ChunkScheduler.PackedFile(
                        fileIndex: placed.candidate.index, path: placed.candidate.path, offset: placed.offset,
                        length: placed.length),
                    stamp: placed.stamp, attempt: placed.candidate.attempt)
            }
            placedFiles += load.placed.count
            placedBytes += load.bytes
            for (file, error) in load.failed { pending.append(.fileFailed(job: pack.job, file: file, error: error)) }
            for file in load.empty { pending.append(.fileEmpty(job: pack.job, file: file)) }
            if !load.large.isEmpty { pending.append(.tooLarge(job: pack.job, files: load.large)) }
            if !load.unplaced.isEmpty { pending.append(.noRoom(job: pack.job, files: load.unplaced)) }
            pending.append(.packRead(unit: unit))
        }
    }
}
