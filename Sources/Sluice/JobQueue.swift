#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceIngest
import SluiceSystem

/// One job's progress through its files.
final class JobState {
    private(set) var job: ChunkScheduler.Job
    let stride: Int
    /// Whether its whole files go to packs (the job asks, and the run packs).
    let packs: Bool
    var nextPath = 0
    var current: OpenFile?
    /// Files to pack before the next paths, in input order: files of
    /// lost packs (packed again, checked against their first stamp) and
    /// files a full pack had no room for.
    var packQueue: [SmallFileLoader.Candidate] = []
    /// Files a pack load found too large to pack, to scan by chunks first.
    var unpacked: [SmallFileLoader.Candidate] = []
    var credit: Int
    /// Units (chunk buffers with their slots) the job holds now: reading, published or packing.
    var held = 0 {
        didSet { if firstUnitAt == nil, held > 0 { firstUnitAt = .now } }
    }
    /// When the job took its first unit (its `maxUnits` doubles from then on).
    private(set) var firstUnitAt: ContinuousClock.Instant?
    /// Set once its `isCancelled` said so: nothing more of it starts.
    var cancelled = false
    /// Not cancelled, with a file open or files still to open or pack
    /// (paused or not: a reader may catch up at any time).
    var hasFilesLeft: Bool {
        !cancelled && (current != nil || !packQueue.isEmpty || !unpacked.isEmpty || nextPath < job.paths.count)
    }
    /// Whether its consumer asked to hold its next reads back (`Job.isPaused`).
    var isPaused: Bool { job.isPaused?() ?? false }

    /// Drops what a finished job holds (its callbacks and what they hold:
    /// its consumer's channel, its result order), keeping its number and
    /// tenant; it has no work from then on.
    func release() {
        job = ChunkScheduler.Job(
            tenant: job.tenant, weight: job.weight, paths: [], opcode: job.opcode, onChunk: { _ in }, onFile: { _ in })
        job.maxUnits = nil
        current = nil
        packQueue = []
        unpacked = []
        nextPath = 0
    }

    init(job: ChunkScheduler.Job, stride: Int, packs: Bool) {
        self.job = job
        self.stride = stride
        self.packs = packs && job.packing != nil
        credit = max(1, job.weight)
    }
}

/// What a job does next: chunks of a file, or a pack of small files.
enum NextWork {
    case chunks(OpenFile)
    /// Small files to pack: `packQueue` or the next paths.
    case pack
}

/// What a free unit gets next.
enum UnitWork {
    /// A chunk of an open file; `attempt` > 0 for a rerun after a recovery.
    case chunk(job: Int, file: OpenFile, chunk: Int, attempt: Int)
    /// A rerun whose file was closed meanwhile: nothing to do for it.
    case staleRetry
    /// A pack of the job's next small files.
    case pack(job: Int)
}

/// Which job and file a free unit goes to: chunks a recovery reruns first,
/// then the jobs in weighted round-robin, each through its files in input
/// order (opened here; those that cannot be opened are reported at once).
final class JobQueue {
    private(set) var jobs: [JobState] = []
    /// Chunks a recovery will submit again, before any new chunk.
    var retry: [ChunkPlacement] = []
    private var cursor = 0
    private let ledger: FileLedger
    private let direct: Bool

    /// A queue with no jobs yet (`add` takes them in).
    init(ledger: FileLedger, direct: Bool) {
        self.ledger = ledger
        self.direct = direct
    }

    /// Takes a job in behind the others; it gets the next job number.
    func add(_ job: JobState) { jobs.append(job) }

    /// The next work for a free unit; nil when no job has any now. `shares`
    /// (`fairShares(units:)`) says how many units each job may hold while
    /// others want some.
    func nextWork(shares: UnitShares) -> UnitWork? {
        if let again = retry.first {
            retry.removeFirst()
            guard let file = ledger.file(job: again.job, index: again.file) else { return .staleRetry }
            return .chunk(job: again.job, file: file, chunk: again.chunk, attempt: again.attempt)
        }
        guard let (job, next) = nextJob(shares: shares) else { return nil }
        guard case .chunks(let file) = next else { return .pack(job: job) }
        let chunk = file.nextChunk
        file.nextChunk += 1
        return .chunk(job: job, file: file, chunk: chunk, attempt: 0)
    }

    /// Whether anything is left to submit (opens the next files to know).
    func hasWork() -> Bool { !retry.isEmpty || jobs.indices.contains { nextFile($0) != nil } }

    /// Whether any job not cancelled still has files to submit, paused or
    /// not. It never asks a job whether it is paused: its reader may catch up
    /// between two such questions, and a run that then saw neither work nor
    /// a paused job would end with that job unfinished.
    func hasWorkLeft() -> Bool {
        !retry.isEmpty || jobs.contains(where: \.hasFilesLeft)
    }

    /// Weighted round-robin among the jobs below their fair share; when
    /// none of those has work, among every job below its own cap (a unit
    /// never idles while a job could use it).
    private func nextJob(shares: UnitShares) -> (Int, NextWork)? {
        if let found = nextJob(below: { shares.limit(for: $0) }) { return found }
        guard shares.limitsAnyJob else { return nil }
        return nextJob(below: { $0.unitCap(at: shares.now) ?? Int.max })
    }

    /// Weighted round-robin: the current job keeps the turn while it has
    /// credit, work and fewer units than `limit`; then the next such job
    /// gets its weight anew.
    private func nextJob(below limit: (JobState) -> Int) -> (Int, NextWork)? {
        guard !jobs.isEmpty else { return nil }
        for _ in 0...(2 * jobs.count) {
            let j = jobs[cursor]
            if j.credit > 0, j.held < limit(j), let f = nextFile(cursor) {
                j.credit -= 1
                return (cursor, f)
            }
            cursor = (cursor + 1) % jobs.count
            jobs[cursor].credit = max(1, jobs[cursor].job.weight)
        }
        return nil
    }

    /// The job's next file with chunks left to submit, or `.pack` when its
    /// next files are small-file candidates (files of lost or full packs
    /// first); other files are opened here, and those that cannot be opened
    /// or are empty are reported at once. A file a pack load found too
    /// large is scanned by chunks before anything else.
    private func nextFile(_ jobIndex: Int) -> NextWork? {
        let j = jobs[jobIndex]
        guard !j.cancelled, !j.isPaused else { return nil }
        if let c = j.current, c.nextChunk < c.chunks { return .chunks(c) }
        j.current = nil
        if j.packs, j.unpacked.isEmpty, !j.packQueue.isEmpty { return .pack }
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
                if j.packs, range == nil { return .pack }
                j.nextPath += 1
            }
            guard let f = open(index: index, range: range, job: jobIndex), f.chunks > 0 else { continue }
            j.current = f
            return .chunks(f)
        }
        if j.packs, !j.packQueue.isEmpty { return .pack }
        return nil
    }

    /// Opens file `index` of the job into the ledger; nil (reported) when it cannot be.
    private func open(index: Int, range: FileRange?, job jobIndex: Int) -> OpenFile? {
        let j = jobs[jobIndex]
        let path = j.job.paths[index]
        do throws(PipelineError) {
            // A file whose size is not its length (procfs, sysfs) comes back as a copy read to its end.
            let (fd, stamp) = try Self.open(index: index, path: path, passed: j.job.descriptors, direct: direct)
            // A range was planned on the file as it was then; any other
            // file is a changed one (and the range may not fit it).
            if let range, let change = stamp.difference(from: range.plannedStamp) {
                try? fd.close()
                throw .fileChanged(path: path.description, detail: change)
            }
            let f = OpenFile(index: index, path: path, fd: fd, stamp: stamp, stride: j.stride, range: range)
            ledger.opened(f, job: jobIndex)
            return f
        } catch {
            ledger.reportUnopened(job: jobIndex, index: index, path: path, range: range, error: error)
            return nil
        }
    }

    /// File `index`: from the descriptors passed with the job, or opened by path.
    private static func open(
        index: Int, path: RawPath, passed: PassedFiles?, direct: Bool
    ) throws(PipelineError) -> (fd: FileDescriptor, stamp: FileStamp) {
        if let passed { return try passed.open(index) }
        return try InputSource.open(path: path, direct: direct)
    }

    /// Up to `wanted` small-file candidates of the job, in input order:
    /// queued ones first, then the next paths (until one with a range).
    func packCandidates(job jobIndex: Int, wanted: Int) -> [SmallFileLoader.Candidate] {
        let j = jobs[jobIndex]
        var files = Array(j.packQueue.prefix(wanted))
        j.packQueue.removeFirst(files.count)
        while files.count < wanted, j.nextPath < j.job.paths.count,
              j.job.ranges.isEmpty || j.job.ranges[j.nextPath] == nil {
            files.append(SmallFileLoader.Candidate(index: j.nextPath, path: j.job.paths[j.nextPath]))
            j.nextPath += 1
        }
        return files
    }

    /// Files a pack load found too large: scanned by chunks next.
    func scanUnpacked(job: Int, _ files: [SmallFileLoader.Candidate]) {
        jobs[job].unpacked = (jobs[job].unpacked + files).sorted { $0.index < $1.index }
    }

    /// Files to pack again (no room in a full pack, or a lost pack), in input order.
    func packAgain(job: Int, _ files: [SmallFileLoader.Candidate]) {
        jobs[job].packQueue = (files + jobs[job].packQueue).sorted { $0.index < $1.index }
    }

    /// A file a cancelled job never reached.
    struct Unreached {
        var index: Int
        var path: RawPath
        var range: FileRange?
    }

    /// Stops the job: nothing more of it is opened, packed or rerun.
    /// Returns the chunks it had to rerun and the files it had not reached
    /// (in input order), for the caller to account.
    func cancel(job: Int) -> (reruns: [ChunkPlacement], unreached: [Unreached]) {
        let j = jobs[job]
        j.cancelled = true
        j.current = nil
        let reruns = retry.filter { $0.job == job }
        retry.removeAll { $0.job == job }
        var unreached = (j.unpacked + j.packQueue).map { Unreached(index: $0.index, path: $0.path, range: nil) }
        for index in j.nextPath..<j.job.paths.count {
            unreached.append(Unreached(
                index: index, path: j.job.paths[index], range: j.job.ranges.isEmpty ? nil : j.job.ranges[index]))
        }
        j.unpacked = []
        j.packQueue = []
        j.nextPath = j.job.paths.count
        return (reruns, unreached.sorted { $0.index < $1.index })
    }

    /// Chunks of files queued but not opened or packed (for an interrupt's pending count).
    func queuedChunks() -> Int {
        var n = 0
        for j in jobs {
            n += j.packQueue.count
            // Files too large to pack: all their chunks are still to read.
            n += j.unpacked.reduce(0) { $0 + JobQueue.chunksToRead($1.path, stride: j.stride, range: nil) }
        }
        return n
    }

    /// Chunks of the files not reached yet (sizes from lstat; at least one each).
    func remainingChunks() -> Int {
        var n = 0
        for j in jobs {
            // Passed files are never looked up by name: one chunk each.
            if j.job.descriptors != nil {
                n += max(0, j.job.paths.count - j.nextPath)
                continue
            }
            for (i, path) in j.job.paths.enumerated().dropFirst(j.nextPath) {
                n += JobQueue.chunksToRead(path, stride: j.stride, range: j.job.ranges.isEmpty ? nil : j.job.ranges[i])
            }
        }
        return n
    }

    /// Chunks of a file not opened yet (its size from lstat; at least one).
    static func chunksToRead(_ path: RawPath, stride: Int, range: FileRange?) -> Int {
        var size = (try? path.stat(followingLinks: false)).map { Int($0.size) } ?? 0
        if let range { size = Int(range.length) }
        return max(1, (size + stride - 1) / stride)
    }
}
