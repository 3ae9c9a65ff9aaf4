#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceThreads
import Synchronization
import SystemPackage

/// Loads packs of small files on a pool of threads: one task opens, stats,
/// reads and closes a whole list of files into one chunk buffer, back to
/// back, so that a tree of many small files costs one hand-off per pack,
/// not two per file, and the files' system calls run on every core.
///
/// Why threads and not io_uring `OPENAT`/`READ`/`CLOSE`: a file must be
/// stat-ed between its open and its read (its size decides where it lands in
/// the pack, or whether it goes at all) and again after the read
/// (changed-file detection), so an io_uring chain would be open, then a
/// round trip to user space, then statx, read, statx, close; linked requests
/// with direct descriptors save little there, and buffered reads of cached
/// pages are copies the kernel does on the calling thread either way
/// (io_uring hands them to its own worker threads). Plain calls on a few
/// threads keep one code path, the same error texts as the rest of ingest,
/// and work where io_uring is disabled.
///
/// Not thread-safe: one owner posts tasks and takes completions. Tasks run
/// on whichever thread is free, oldest first.
public final class SmallFileLoader {
    /// One file a pack load is asked to place.
    public struct Candidate: Sendable, Equatable {
        /// The caller's number for the file (its place in the input).
        public var index: Int
        /// The file to place.
        public var path: RawPath
        /// For a file packed before whose pack was lost: the stamp of its
        /// first open, which the file must still have.
        public var expected: FileStamp?
        /// Packs it was in before.
        public var attempt: Int

        /// A candidate numbered `index`; `expected` and `attempt` for a file being packed again after its pack was lost.
        public init(index: Int, path: RawPath, expected: FileStamp? = nil, attempt: Int = 0) {
            self.index = index
            self.path = path
            self.expected = expected
            self.attempt = attempt
        }
    }

    /// What one pack load did with each of its candidates.
    public struct PackLoad: Sendable {
        /// A file whose bytes are all in the buffer, unchanged.
        public struct Placed: Sendable, Equatable {
            /// The file.
            public var candidate: Candidate
            /// Where its first byte is in the buffer.
            public var offset: Int
            /// Its size in bytes, all of which is in the buffer.
            public var length: Int
            /// Its stamp when opened (the expected one for a file packed before).
            public var stamp: FileStamp
        }

        /// Placed files, in buffer order.
        public var placed: [Placed] = []
        /// Files that could not be opened, stat-ed or read, or that changed
        /// (their bytes are not in the buffer).
        public var failed: [(Candidate, PipelineError)] = []
        /// Files of 0 bytes: nothing to read.
        public var empty: [Candidate] = []
        /// Files over the size limit: to be read in chunks by the caller.
        public var large: [Candidate] = []
        /// Files the buffer had no room left for (not opened, or closed
        /// again): to be packed later.
        public var unplaced: [Candidate] = []

        /// Bytes of the buffer that placed files fill.
        public var bytes: Int { placed.last.map { $0.offset + $0.length } ?? 0 }
    }

    /// The answer to one pack load, carrying the token it was posted with.
    public struct Completion: Sendable {
        /// The token the load was posted with.
        public var token: Int
        /// What the load placed, skipped and failed.
        public var load: PackLoad
    }

    private let queue: SmallFileQueue
    private var threads: [PosixThread] = []
    /// Loads posted whose completions were not taken yet.
    public private(set) var inflight = 0

    /// Starts `threads` threads (at least 1). `beforeRead`, for tests, runs on
    /// the pool thread between a file's open and stat and its read.
    public init(threads count: Int, beforeRead: (@Sendable (RawPath) -> Void)? = nil) throws(PipelineError) {
        queue = SmallFileQueue(beforeRead: beforeRead)
        for i in 0..<max(1, count) {
            let q = queue
            do {
                threads.append(try PosixThread.start(name: "small-file loader \(i)") { q.work() })
            } catch {
                shutdown()
                throw error
            }
        }
    }

    deinit { shutdown() }

    /// Number of pool threads.
    public var threadCount: Int { threads.count }

    /// Posts the load of `candidates`, in order, into `buffer`: each file is
    /// opened, stat-ed, read whole right after the files before it, stat-ed
    /// again and closed. Files of more than `maxFileBytes` bytes, and files
    /// once the buffer is full, are handed back unread. `chunk` names the
    /// buffer in error messages. The buffer must stay valid and untouched
    /// until the completion is taken.
    public func loadPack(
        _ candidates: [Candidate], into buffer: UnsafeMutableRawBufferPointer, maxFileBytes: Int, chunk: Int, token: Int
    ) {
        inflight += 1
        queue.post(SmallFileQueue.Task(
            candidates: candidates, address: UInt(bitPattern: buffer.baseAddress), capacity: buffer.count,
            maxFileBytes: maxFileBytes, chunk: chunk, token: token))
    }

    /// The completions ready now; when there are none and `deadline` is
    /// given (and something is in flight), first waits for one until then.
    public func take(waitingUntil deadline: ContinuousClock.Instant?) -> [Completion] {
        let done = queue.takeFinished(waitingUntil: inflight > 0 ? deadline : nil)
        inflight -= done.count
        return done
    }

    /// Waits for every task in flight and returns their completions, so that
    /// no thread still writes into a buffer the caller is about to reuse.
    public func drain() -> [Completion] {
        var all: [Completion] = []
        while inflight > 0 {
            all += take(waitingUntil: .now + .milliseconds(100))
        }
        return all
    }

    /// Stops and joins the threads once their current task is done; tasks
    /// not started are dropped. Idempotent.
    public func shutdown() {
        queue.stop()
        threads.forEach { $0.join() }
        threads = []
    }
}

/// The tasks and completions shared between a `SmallFileLoader` and its threads.
final class SmallFileQueue: Sendable {
    struct Task: Sendable {
        var candidates: [SmallFileLoader.Candidate]
        var address: UInt
        var capacity: Int
        var maxFileBytes: Int
        var chunk: Int
        var token: Int
    }

    private struct State {
        var tasks: [Task] = []
        var next = 0
        var finished: [SmallFileLoader.Completion] = []
        var stopping = false
    }

    private let state = Mutex(State())
    private let posted = WakeSignal()
    private let finishedSignal = WakeSignal()
    private let beforeRead: (@Sendable (RawPath) -> Void)?

    init(beforeRead: (@Sendable (RawPath) -> Void)?) {
        self.beforeRead = beforeRead
    }

    func post(_ task: Task) {
        state.withLock { $0.tasks.append(task) }
        posted.notifyOne()
    }

    func stop() {
        state.withLock { s in
            s.stopping = true
            s.tasks = []
            s.next = 0
        }
        // Every thread must see `stopping`.
        posted.notifyAll()
    }

    func takeFinished(waitingUntil deadline: ContinuousClock.Instant?) -> [SmallFileLoader.Completion] {
        while true {
            let seen = finishedSignal.sequence
            let done = state.withLock { s -> [SmallFileLoader.Completion] in
                defer { s.finished.removeAll(keepingCapacity: true) }
                return s.finished
            }
            guard done.isEmpty, let deadline else { return done }
            if !finishedSignal.wait(after: seen, until: deadline) { return [] }
        }
    }

    /// A thread's loop: take the oldest task, run it, publish its completion, repeat.
    func work() {
        while true {
            let seen = posted.sequence
            let task = state.withLock { s -> Task?? in
                if s.stopping { return .some(nil) }
                guard s.next < s.tasks.count else { return nil }
                defer {
                    s.next += 1
                    if s.next == s.tasks.count {
                        s.tasks.removeAll(keepingCapacity: true)
                        s.next = 0
                    }
                }
                return s.tasks[s.next]
            }
            guard let task else {
                posted.wait(after: seen, until: nil)
                continue
            }
            guard let task else { return }
            let done = SmallFileLoader.Completion(token: task.token, load: load(task))
            state.withLock { $0.finished.append(done) }
            finishedSignal.notifyAll()
        }
    }

    private func load(_ task: Task) -> SmallFileLoader.PackLoad {
        let buffer = UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(bitPattern: task.address), count: task.capacity)
        var out = SmallFileLoader.PackLoad()
        var end = 0
        for (k, candidate) in task.candidates.enumerated() {
            let path = candidate.path
            let fd: FileDescriptor
            let stamp: FileStamp
            // A file whose size is not its length (procfs, sysfs) comes back as a copy read to its end.
            do throws(PipelineError) { (fd, stamp) = try InputSource.open(path: path, direct: false) } catch {
                out.failed.append((candidate, error))
                continue
            }
            defer { try? fd.close() }
            if let expected = candidate.expected, let change = stamp.difference(from: expected) {
                out.failed.append((candidate, .fileChanged(path: path.description, detail: change)))
                continue
            }
            if stamp.size == 0 {
                out.empty.append(candidate)
                continue
            }
            if stamp.size > UInt64(task.maxFileBytes) {
                out.large.append(candidate)
                continue
            }
            let length = Int(stamp.size)
            guard length <= task.capacity - end else {
                out.unplaced = Array(task.candidates[k...])
                break
            }
            beforeRead?(path)
            switch SmallFileQueue.readWhole(
                fd: fd, path: path.description, into: UnsafeMutableRawBufferPointer(rebasing: buffer[end..<(end + length)]),
                chunk: task.chunk)
            {
            case .failure(let error):
                out.failed.append((candidate, error))
            case .success(let read) where read.bytes < length:
                out.failed.append((candidate, .fileChanged(
                    path: path.description, detail: "read \(read.bytes) of \(length) bytes before the end of the file")))
            case .success(let read):
                if let change = read.after.difference(from: stamp) {
                    out.failed.append((candidate, .fileChanged(path: path.description, detail: change)))
                } else {
                    // A failed file leaves no gap: the next one takes its place.
                    out.placed.append(.init(candidate: candidate, offset: end, length: length, stamp: stamp))
                    end += length
                }
            }
        }
        return out
    }

    /// Reads `buffer.count` bytes from offset 0 (driven by
    /// `ChunkReadProgress`, so EINTR, short reads and errors behave as in
    /// every stream), then stats the file again.
    private static func readWhole(
        fd: FileDescriptor, path: String, into buffer: UnsafeMutableRawBufferPointer, chunk: Int
    ) -> Result<(bytes: Int, after: FileStamp), PipelineError> {
        // The file's own extent is the "chunk": no step may write past it.
        var read = ChunkReadProgress(
            request: ReadRequest(fd: fd, path: path, fileOffset: 0, length: buffer.count, chunkIndex: chunk),
            chunkBytes: buffer.count, firstStep: .requestLength)
        while true {
            let result = read.step.pread(fd: fd.rawValue, into: buffer)
            switch read.record(result, isDirect: { isDirectIO(fd.rawValue) }) {
            case .next: continue
            case .finished(let completion):
                switch completion.result {
                case .failure(let error):
                    return .failure(error)
                case .success(let bytes):
                    do throws(PipelineError) {
                        return .success((bytes, try FileStamp(fd: fd, path: path)))
                    } catch {
                        return .failure(error)
                    }
                }
            }
        }
    }
}
