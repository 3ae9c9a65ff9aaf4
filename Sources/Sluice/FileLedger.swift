import SluiceCore
import SluiceIngest
import SystemPackage

/// One file a run opened: its descriptor and stamp, the chunks it is cut
/// into, and how many of them were submitted and finished.
final class OpenFile {
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

/// A run's account of its files: which are open, how many of their chunks
/// are still out, and each file's one outcome, handed to its job once every
/// chunk of it is accounted for; with the run's totals and progress.
final class FileLedger {
    private(set) var summary = ChunkScheduler.Summary()
    private(set) var progress = ChunkScheduler.Progress(bytesDone: 0, bytesTotal: 0, filesDone: 0)
    /// Per job, the files opened and not reported yet, by file index.
    private var open: [[Int: OpenFile]] = []
    private var onFile: [(ChunkScheduler.FileOutcome) -> Void] = []
    /// Per job, the outcomes handed out so far.
    private var reported: [Int] = []
    private let clocks: RunClocks
    /// Jobs cancelled: each outcome they still report carries `.cancelled`.
    private var cancelled: Set<Int> = []

    /// An account with no jobs yet (`add` takes them in).
    init(clocks: RunClocks) {
        self.clocks = clocks
    }

    /// Takes a job into the account; it gets the next job number.
    func add(_ job: ChunkScheduler.Job) {
        open.append([:])
        onFile.append(job.onFile)
        reported.append(0)
    }

    /// Drops the finished `job`'s callback (and what it holds).
    func release(job: Int) { onFile[job] = { _ in } }

    /// Outcomes of `job` handed out so far: one per path once it is done.
    func reportedFiles(job: Int) -> Int { reported[job] }

    /// The open file `index` of `job`, or nil once it was reported (or never opened).
    func file(job: Int, index: Int) -> OpenFile? { open[job][index] }

    /// Open files of `job`, in no particular order.
    func openFiles(job: Int) -> [OpenFile] { Array(open[job].values) }

    /// Takes a newly opened file into the account; one of no chunks is reported at once.
    func opened(_ f: OpenFile, job: Int) {
        open[job][f.index] = f
        progress.bytesTotal += f.end - f.base
        finishIfComplete(job: job, f)
    }

    /// One submitted chunk of the file ended, failed with `error` or not.
    func chunkFinished(job: Int, file: Int, error: PipelineError?) {
        guard let f = open[job][file] else { return }
        f.finished += 1
        if let error { f.errors.append(error) }
        finishIfComplete(job: job, f)
    }

    /// A chunk (or pack) of `bytes` start positions ended DONE.
    func chunkProcessed(bytes: Int) {
        summary.chunks += 1
        summary.bytes += UInt64(bytes)
        progress.bytesDone += UInt64(bytes)
    }

    /// Bytes of small files found by a pack load, which no open counted.
    func packBytesFound(_ bytes: UInt64) {
        progress.bytesTotal += bytes
    }

    /// A file that could not be opened (or changed since it was planned).
    func reportUnopened(job: Int, index: Int, path: RawPath, range: FileRange?, error: PipelineError) {
        record(ChunkScheduler.FileOutcome(
            job: job, fileIndex: index, path: path, size: 0, chunks: 0, errors: [error], range: range))
    }

    /// A packed file's outcome (it is one chunk of its own, or none when empty).
    func reportPacked(job: Int, file: ChunkScheduler.PackedFile, errors: [PipelineError]) {
        record(ChunkScheduler.FileOutcome(
            job: job, fileIndex: file.fileIndex, path: file.path, size: UInt64(file.length),
            chunks: file.length > 0 ? 1 : 0, errors: errors))
    }

    /// A file a pack load did not place, reported as a packed one of no bytes.
    func reportUnplaced(job: Int, _ file: SmallFileLoader.Candidate, errors: [PipelineError]) {
        reportPacked(job: job, file: ChunkScheduler.PackedFile(fileIndex: file.index, path: file.path, offset: 0, length: 0), errors: errors)
    }

    /// The job was cancelled: the chunks of its open files not submitted
    /// yet count as ended, so each file is reported (with `.cancelled`) as
    /// soon as its chunks in flight are back, or now when none is.
    func cancel(job: Int) {
        cancelled.insert(job)
        for f in open[job].values {
            f.finished += f.chunks - f.nextChunk
            f.nextChunk = f.chunks
            finishIfComplete(job: job, f)
        }
    }

    /// A file of a cancelled job that the job never reached.
    func reportCancelled(job: Int, index: Int, path: RawPath, range: FileRange?) {
        record(ChunkScheduler.FileOutcome(job: job, fileIndex: index, path: path, size: 0, chunks: 0, errors: [], range: range))
    }

    /// Closes every open file without reporting it; returns the chunks
    /// they still had to finish (for an interrupt's pending count).
    func closeUnfinished() -> Int {
        var pending = 0
        for files in open {
            for f in files.values {
                pending += f.chunks - f.finished
                try? f.fd.close()
            }
        }
        open = Array(repeating: [:], count: open.count)
        return pending
    }

    /// Reports the file once every chunk was submitted and ended, after
    /// checking it did not change while it was read.
    private func finishIfComplete(job: Int, _ f: OpenFile) {
        guard f.nextChunk == f.chunks, f.finished == f.chunks else { return }
        if f.errors.isEmpty, !cancelled.contains(job) {
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
        open[job][f.index] = nil
        record(ChunkScheduler.FileOutcome(
            job: job, fileIndex: f.index, path: f.path, size: f.stamp.size, chunks: f.chunks, errors: f.errors,
            range: f.range))
    }

    /// Counts the outcome and hands it to its job.
    private func record(_ outcome: ChunkScheduler.FileOutcome) {
        var outcome = outcome
        if cancelled.contains(outcome.job) { outcome.errors.append(.cancelled(path: outcome.path.description)) }
        summary.files += 1
        if !outcome.errors.isEmpty { summary.filesFailed += 1 }
        progress.filesDone += 1
        reported[outcome.job] += 1
        let onFile = onFile[outcome.job]
        clocks.callback { onFile(outcome) }
    }
}
