import SluiceCore
import SluiceIngest
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
        public var fileIndex: Int
        public var path: String
        /// The chunk's number within its file (0-based).
        public var chunkNumber: Int
        public var fileOffset: UInt64
        public var length: Int
        /// The result words the worker wrote (`completion` of them).
        public var words: [UInt32]
        /// The chunk's bytes (overlap included) in the data region; valid only
        /// during the callback, for jobs that must look again (scan overflow).
        public var bytes: UnsafeRawBufferPointer
    }

    /// The outcome of one file, once every chunk of it finished or failed.
    public struct FileOutcome: Sendable {
        public var fileIndex: Int
        public var path: String
        public var size: UInt64
        public var chunks: Int
        /// Empty when every byte was processed exactly once.
        public var errors: [PipelineError]
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

    public let backend: any MegakernelBackend
    public let options: Options
    private let pump: Pump
    private let stream: any ChunkReadStream
    private let units: Int

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

    private enum Unit {
        case free
        case reading(file: Int, chunk: Int, offset: UInt64, length: Int)
        case published(file: Int, chunk: Int, offset: UInt64, length: Int)
    }

    private final class OpenFile {
        let index: Int
        let path: String
        let fd: FileDescriptor
        let stamp: FileStamp
        let chunks: Int
        var nextChunk = 0
        var finished = 0
        var errors: [PipelineError] = []

        init(index: Int, path: String, fd: FileDescriptor, stamp: FileStamp, stride: Int) {
            self.index = index
            self.path = path
            self.fd = fd
            self.stamp = stamp
            chunks = Int((stamp.size + UInt64(stride) - 1) / UInt64(stride))
        }
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
    public func run(
        paths: [String], opcode: Opcode, flags: UInt32 = 0, overlap: Int = 0,
        onChunk: (ChunkResult) -> Void, onFile: (FileOutcome) -> Void,
        onProgress: ((Progress) -> Void)? = nil
    ) throws(PipelineError) -> Summary {
        let ring = backend.ring
        let chunkBytes = stream.chunkBytes
        guard overlap >= 0, overlap % 4096 == 0, overlap < chunkBytes else {
            throw .invalidConfiguration(
                "chunk overlap \(overlap) must be a multiple of 4096 below the chunk size \(chunkBytes); raise --chunk-size")
        }
        let stride = chunkBytes - overlap
        var unitState = [Unit](repeating: .free, count: units)
        var cursor = 0
        var nextPath = 0
        var current: OpenFile?
        var open: [Int: OpenFile] = [:]
        var summary = Summary()
        var progress = Progress(bytesDone: 0, bytesTotal: 0, filesDone: 0)
        var busyUnits = 0
        var published = 0
        var lastEpoch = ring.epoch
        var lastProgressAt = ContinuousClock.now
        var lastReadAt = ContinuousClock.now

        func finishIfComplete(_ f: OpenFile) {
            guard f.nextChunk == f.chunks, f.finished == f.chunks else { return }
            if f.errors.isEmpty {
                do {
                    let after = try FileStamp(fd: f.fd, path: f.path)
                    if let change = after.difference(from: f.stamp) {
                        f.errors.append(.fileChanged(path: f.path, detail: change))
                    }
                } catch {
                    f.errors.append(error)
                }
            }
            try? f.fd.close()
            open[f.index] = nil
            summary.files += 1
            if !f.errors.isEmpty { summary.filesFailed += 1 }
            progress.filesDone += 1
            onFile(FileOutcome(fileIndex: f.index, path: f.path, size: f.stamp.size, chunks: f.chunks, errors: f.errors))
        }

        func chunkFinished(file: Int, error: PipelineError?) {
            guard let f = open[file] else { return }
            f.finished += 1
            if let error { f.errors.append(error) }
            finishIfComplete(f)
        }

        /// The next file with chunks left to submit, opening files as needed;
        /// files that cannot be opened or are empty are reported at once.
        func nextFile() -> OpenFile? {
            if let c = current, c.nextChunk < c.chunks { return c }
            current = nil
            while nextPath < paths.count {
                let index = nextPath
                let path = paths[index]
                nextPath += 1
                do throws(PipelineError) {
                    let fd = try openForIngest(path: path, direct: options.direct)
                    let stamp: FileStamp
                    do { stamp = try FileStamp(fd: fd, path: path) } catch {
                        try? fd.close()
                        throw error
                    }
                    let f = OpenFile(index: index, path: path, fd: fd, stamp: stamp, stride: stride)
                    open[index] = f
                    progress.bytesTotal += stamp.size
                    if f.chunks == 0 {
                        finishIfComplete(f)
                        continue
                    }
                    current = f
                    return f
                } catch {
                    summary.files += 1
                    summary.filesFailed += 1
                    progress.filesDone += 1
                    onFile(FileOutcome(fileIndex: index, path: path, size: 0, chunks: 0, errors: [error]))
                }
            }
            return nil
        }

        func remainingChunks(after next: Int) -> Int { paths.count - next }
        var interrupted = false
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
            // 1. Fill every free unit with the next chunk.
            var scanned = 0
            while !interrupted, busyUnits < units, scanned < units {
                let u = cursor
                cursor = (cursor + 1) % units
                scanned += 1
                guard case .free = unitState[u] else { continue }
                guard let f = nextFile() else { break }
                let chunk = f.nextChunk
                let offset = UInt64(chunk) * UInt64(stride)
                let length = Int(min(UInt64(chunkBytes), f.stamp.size - offset))
                let starts = min(stride, length)
                f.nextChunk += 1
                do {
                    try pump.submitFileScan(
                        fd: f.fd, path: f.path, fileOffset: offset, length: length, chunkIndex: u, slotIndex: u,
                        tenant: options.tenant, opcode: opcode, args: (UInt32(starts), flags), ring: ring)
                    unitState[u] = .reading(file: f.index, chunk: chunk, offset: offset, length: starts)
                    busyUnits += 1
                } catch {
                    chunkFinished(file: f.index, error: error)
                }
            }
            if busyUnits == 0 && (interrupted || nextFile() == nil) { break }

            // 2. Publish chunks whose reads landed.
            let mustWaitForReads = published == 0 && pump.inflight > 0
            var moved = false
            let events = try pump.drainIntoRing(ring, waitingUpTo: mustWaitForReads ? .milliseconds(100) : nil)
            if !events.isEmpty || pump.inflight == 0 {
                lastReadAt = ContinuousClock.now
            } else if ContinuousClock.now - lastReadAt > options.watchdog {
                let reading = unitState.compactMap { unit -> (Int, Int)? in
                    if case .reading(let file, let n, _, _) = unit { return (file, n) }
                    return nil
                }
                let path = reading.first.flatMap { open[$0.0]?.path } ?? ""
                throw .readsStuck(path: path, chunks: reading.map(\.1), seconds: seconds(options.watchdog))
            }
            for event in events {
                moved = true
                switch event {
                case .published(let chunk, _, _):
                    guard case .reading(let file, let n, let offset, let length) = unitState[chunk] else { continue }
                    unitState[chunk] = .published(file: file, chunk: n, offset: offset, length: length)
                    published += 1
                case .failed(let chunk, _, let error):
                    guard case .reading(let file, _, _, _) = unitState[chunk] else { continue }
                    unitState[chunk] = .free
                    busyUnits -= 1
                    chunkFinished(file: file, error: error)
                }
            }

            // 3. Reclaim finished slots and hand out their results.
            if published > 0 {
                let epoch = ring.epoch
                if epoch != lastEpoch {
                    lastEpoch = epoch
                    lastProgressAt = ContinuousClock.now
                }
                for u in 0..<units {
                    guard case .published(let file, let n, let offset, let length) = unitState[u] else { continue }
                    guard try ring.status(ofSlot: u).isTerminal else { continue }
                    let record = try ring.reclaim(slot: u)
                    let path = open[file]?.path ?? ""
                    unitState[u] = .free
                    busyUnits -= 1
                    published -= 1
                    moved = true
                    switch record.status {
                    case .done:
                        let area = ring.resultArea(ofSlot: u)
                        let count = min(Int(record.completion), area.count)
                        summary.chunks += 1
                        summary.bytes += UInt64(length)
                        progress.bytesDone += UInt64(length)
                        let start = u * chunkBytes
                        let readBytes = Int(record.payload.length)
                        onChunk(ChunkResult(
                            fileIndex: file, path: path, chunkNumber: n, fileOffset: offset, length: length,
                            words: Array(area[0..<count]),
                            bytes: UnsafeRawBufferPointer(rebasing: stream.region[start..<(start + readBytes)])))
                        chunkFinished(file: file, error: nil)
                    case .faulted:
                        chunkFinished(file: file, error: .slotFaulted(
                            slot: u, chunk: n, path: path, code: record.fault ?? .badArguments))
                    default:
                        // CANCELLED: only an interrupt cancels; the file stays unfinished
                        // and is counted as pending when the run ends.
                        break
                    }
                }
                onProgress?(progress)
                if !moved {
                    if ContinuousClock.now - lastProgressAt > options.watchdog {
                        let claimed = (0..<units).filter { (try? ring.status(ofSlot: $0)) == .claimed }
                        if !claimed.isEmpty {
                            throw .stuck(slots: claimed, seconds: seconds(options.watchdog))
                        }
                    }
                    _ = try backend.waitForProgress(after: lastEpoch, timeout: .milliseconds(pump.inflight > 0 ? 1 : 20))
                }
            }
        }
        onProgress?(progress)
        if interrupted {
            // Files opened but not finished are reported as such, then the run ends.
            var pending = 0
            for f in open.values.sorted(by: { $0.index < $1.index }) {
                pending += f.chunks - f.finished
                try? f.fd.close()
            }
            throw .interrupted(finishedChunks: summary.chunks, pendingChunks: pending + remainingChunks(after: nextPath))
        }
        return summary
    }
}

private func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}
