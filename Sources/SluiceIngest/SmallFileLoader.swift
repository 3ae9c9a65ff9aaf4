#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import Synchronization
import SystemPackage

/// Opens, stats and reads whole small files on a pool of threads, so that a
/// tree of many small files is not limited by one thread's system calls.
///
/// Two kinds of task, each answered by one `Completion`:
/// - `open`: `open(2)` (through `openForIngest`, same flags and errors) and
///   `fstat(2)`; the caller then owns the descriptor.
/// - `readWhole`: `pread(2)` of a whole file into a caller's buffer (driven
///   by `ChunkReadProgress`, so EINTR, short reads and errors behave as in
///   every stream), then `fstat(2)` again and `close(2)`. The descriptor is
///   always closed, whatever happened.
///
/// Why threads and not io_uring `OPENAT`/`READ`/`CLOSE`: a file must be
/// stat-ed between its open and its read (its size decides where it lands in
/// a packed chunk) and again after the read (changed-file detection), so an
/// io_uring chain would be open, then a round trip to user space, then statx,
/// read, statx, close; linked requests with direct descriptors save little
/// there, and buffered reads of cached pages are copies the kernel does on
/// the calling thread either way (io_uring hands them to its own worker
/// threads). Plain calls on a few threads keep one code path, the same error
/// texts as the rest of ingest, and work where io_uring is disabled.
///
/// Not thread-safe: one owner posts tasks and takes completions. Tasks run
/// on whichever thread is free: reads first, then opens, each kind oldest first.
public final class SmallFileLoader {
    /// A descriptor opened by the pool and its stamp right after the open.
    public struct OpenedFile: Sendable {
        public var fd: FileDescriptor
        public var stamp: FileStamp
    }

    /// What a whole-file read left behind.
    public struct WholeRead: Sendable {
        /// Bytes now in the buffer; fewer than asked for means the file ended first.
        public var bytes: Int
        /// The file's stamp after the read (before the close).
        public var after: FileStamp
    }

    /// The answer to one task, carrying the token it was posted with.
    public enum Completion: Sendable {
        case opened(token: Int, Result<OpenedFile, PipelineError>)
        case read(token: Int, Result<WholeRead, PipelineError>)
    }

    private let queue: SmallFileQueue
    private var threads: [PosixThread] = []
    /// Tasks posted whose completions were not taken yet.
    public private(set) var inflight = 0

    /// Starts `threads` threads (at least 1).
    public init(threads count: Int) throws(PipelineError) {
        queue = SmallFileQueue()
        for i in 0..<max(1, count) {
            let q = queue
            do {
                threads.append(try PosixThread(name: "small-file loader \(i)") { q.work() })
            } catch {
                shutdown()
                throw error
            }
        }
    }

    deinit { shutdown() }

    /// Number of pool threads.
    public var threadCount: Int { threads.count }

    /// Posts the open and stat of `path`.
    public func open(path: String, direct: Bool, token: Int) {
        inflight += 1
        queue.post(.open(path: path, direct: direct, token: token))
    }

    /// Posts the read of `buffer.count` bytes from offset 0 of `fd` into
    /// `buffer`, then a stat and the close of `fd`. `chunk` names the chunk
    /// buffer in error messages. The buffer must stay valid and untouched
    /// until the completion is taken.
    public func readWhole(fd: FileDescriptor, path: String, into buffer: UnsafeMutableRawBufferPointer, chunk: Int, token: Int) {
        inflight += 1
        queue.post(.read(
            fd: fd, path: path, address: UInt(bitPattern: buffer.baseAddress), length: buffer.count, chunk: chunk,
            token: token))
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
    /// not started are dropped (their descriptors closed). Idempotent.
    public func shutdown() {
        queue.stop()
        threads.forEach { $0.join() }
        threads = []
    }
}

/// The tasks and completions shared between a `SmallFileLoader` and its threads.
final class SmallFileQueue: Sendable {
    enum Task: Sendable {
        case open(path: String, direct: Bool, token: Int)
        case read(fd: FileDescriptor, path: String, address: UInt, length: Int, chunk: Int, token: Int)
    }

    /// A first-in first-out list that reuses its storage.
    private struct Pending {
        var tasks: [Task] = []
        var next = 0

        var count: Int { tasks.count - next }

        mutating func take(_ n: Int) -> ArraySlice<Task> {
            let taken = tasks[next..<(next + n)]
            next += n
            if next == tasks.count {
                tasks.removeAll(keepingCapacity: true)
                next = 0
            }
            return taken
        }
    }

    private struct State {
        /// Tasks waiting for a thread: reads, which complete chunks that are
        /// waiting, go before opens, which only feed the next ones.
        var reads = Pending()
        var opens = Pending()
        var finished: [SmallFileLoader.Completion] = []
        var stopping = false
    }

    private let state = Mutex(State())
    private let posted = WakeSignal()
    private let finishedSignal = WakeSignal()

    func post(_ task: Task) {
        state.withLock { s in
            if case .read = task { s.reads.tasks.append(task) } else { s.opens.tasks.append(task) }
        }
        posted.notifyOne()
    }

    func stop() {
        let dropped = state.withLock { s -> [Task] in
            s.stopping = true
            defer { s.reads = Pending() }
            return Array(s.reads.take(s.reads.count))
        }
        for case .read(let fd, _, _, _, _, _) in dropped { try? fd.close() }
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

    /// A thread's loop: take up to a few of the oldest tasks, run them,
    /// publish their completions together (fewer wake-ups), repeat.
    func work() {
        while true {
            let seen = posted.sequence
            let batch = state.withLock { s -> [Task]? in
                if s.stopping { return nil }
                if s.reads.count > 0 { return Array(s.reads.take(min(4, s.reads.count))) }
                return Array(s.opens.take(min(4, s.opens.count)))
            }
            guard let batch else { return }
            if batch.isEmpty {
                posted.wait(after: seen, until: nil)
                continue
            }
            let done = batch.map(SmallFileQueue.run)
            state.withLock { $0.finished += done }
            finishedSignal.notifyAll()
        }
    }

    private static func run(_ task: Task) -> SmallFileLoader.Completion {
        switch task {
        case .open(let path, let direct, let token):
            do throws(PipelineError) {
                let fd = try openForIngest(path: path, direct: direct)
                do {
                    return .opened(token: token, .success(.init(fd: fd, stamp: try FileStamp(fd: fd, path: path))))
                } catch {
                    try? fd.close()
                    throw error
                }
            } catch {
                return .opened(token: token, .failure(error))
            }
        case .read(let fd, let path, let address, let length, let chunk, let token):
            defer { try? fd.close() }
            let buffer = UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(bitPattern: address), count: length)
            // The file's own extent is the "chunk": no step may write past it.
            var read = ChunkReadProgress(
                request: ReadRequest(fd: fd, path: path, fileOffset: 0, length: length, chunkIndex: chunk),
                chunkBytes: length, firstStep: .requestLength)
            while true {
                let result = read.step.pread(fd: fd.rawValue, into: buffer)
                switch read.record(result, isDirect: { isDirectIO(fd.rawValue) }) {
                case .next: continue
                case .finished(let completion):
                    switch completion.result {
                    case .failure(let error):
                        return .read(token: token, .failure(error))
                    case .success(let bytes):
                        do throws(PipelineError) {
                            return .read(token: token, .success(.init(bytes: bytes, after: try FileStamp(fd: fd, path: path))))
                        } catch {
                            return .read(token: token, .failure(error))
                        }
                    }
                }
            }
        }
    }
}
