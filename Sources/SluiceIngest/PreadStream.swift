import SluiceCore
import Synchronization

/// The fallback where io_uring is unavailable: a small pool of threads doing
/// pread(2) into the same chunk buffers, with the same semantics as
/// `UringStream` (short reads finished, EINTR/EAGAIN retried, every other
/// failure a completion carrying `PipelineError.io`).
///
/// Reads queue in submission order; finished reads come back through a
/// mutex-protected queue in whatever order the threads finish them.
///
/// `submit` and `reap` belong to one thread (the owner); the pool's threads
/// only ever touch the buffer of the chunk they are reading. The region is
/// not owned and must outlive the stream. Deinit stops the threads and joins
/// them: reads not yet started are dropped, a read underway finishes first,
/// so nothing writes into the region once the stream is gone.
public final class PreadStream: ChunkReadStream {
    /// "pread": a thread pool calling pread(2).
    public let kind = "pread"
    /// Bytes per chunk buffer, a multiple of 4096.
    public var chunkBytes: Int { pool.layout.chunkBytes }
    /// Chunk buffers carved from `region`.
    public var chunkCount: Int { pool.layout.chunkCount }
    /// The memory the chunk buffers are carved from; not owned, it must outlive the stream.
    public var region: UnsafeMutableRawBufferPointer { pool.layout.region }
    /// Reads submitted and not yet reaped.
    public var inflight: Int { pool.inflight }
    /// Threads in the pool.
    public var threadCount: Int { pool.threadCount }

    private let pool: ReadThreadPool

    /// Starts `threads` reader threads.
    ///
    /// - Parameters:
    ///   - region: page-aligned memory the chunks are carved from; not owned,
    ///     and must outlive the stream.
    ///   - chunkBytes: bytes per chunk, a multiple of 4096.
    ///   - chunkCount: chunks to carve; nil carves as many as fit.
    ///   - threads: reader threads, 1 to 64. More than a few only help on
    ///     devices that serve many reads at once (NVMe).
    public init(
        region: UnsafeMutableRawBufferPointer, chunkBytes: Int, chunkCount: Int? = nil, threads: Int = 2
    ) throws(PipelineError) {
        let layout = try ChunkLayout(region: region, chunkBytes: chunkBytes, chunkCount: chunkCount)
        let memory = ChunkMemory(layout: layout)
        pool = try ReadThreadPool(
            layout: layout, threads: threads, what: "pread threads", name: "sluice-pread"
        ) { read in PreadWorkQueue.pread(read, memory: memory) }
    }

    /// Posts a read of `request` into its chunk buffer; throws, submitting nothing, when the request breaks a rule (chunk out of range or in flight, length above `chunkBytes`).
    public func submit(_ request: ReadRequest) throws(PipelineError) {
        try pool.check(request)
        pool.start(request)
    }

    /// Returns the completions available now, first waiting up to `timeout` for one when none is and a read is in flight.
    public func reap(waitingUpTo timeout: Duration?) throws(PipelineError) -> [ReadCompletion] {
        pool.reap(waitingUpTo: timeout)
    }
}

/// The chunk buffers as the pool's threads see them.
struct ChunkMemory: @unchecked Sendable {
    // @unchecked: a raw pointer is not Sendable, but each chunk's bytes are
    // written by exactly one thread at a time (the one reading that chunk),
    // and handed over through the queue's mutex before the owner looks at them.
    let layout: ChunkLayout

    func buffer(ofChunk index: Int) -> UnsafeMutableRawBufferPointer { layout.buffer(ofChunk: index) }
}

/// The work and results shared between a `PreadStream` and its threads.
final class PreadWorkQueue: Sendable {
    private struct State {
        /// Reads waiting for a thread, oldest first from `next`.
        var waiting: [ChunkReadProgress] = []
        var next = 0
        var finished: [ReadCompletion] = []
        var stopping = false
    }

    private let state = Mutex(State())
    /// Notified when a read is posted or the pool stops.
    private let posted = WakeSignal()
    /// Notified when a read finishes.
    private let finishedSignal = WakeSignal()
    /// Runs one read to its end on the calling pool thread.
    private let perform: @Sendable (ChunkReadProgress) -> ReadCompletion

    /// `perform` runs each read to its end (every step, retries included) on
    /// a pool thread: pread for `PreadStream`, a `ChunkReader` for `ChunkReaderStream`.
    init(perform: @escaping @Sendable (ChunkReadProgress) -> ReadCompletion) { self.perform = perform }

    func post(_ read: ChunkReadProgress) {
        state.withLock { $0.waiting.append(read) }
        // One read needs one thread (see WakeSignal.notifyOne); `stop` wakes all.
        posted.notifyOne()
    }

    /// Makes every thread return from `work()` once its current read is done.
    func stop() {
        state.withLock { $0.stopping = true }
        posted.notifyAll()
    }

    /// Returns the finished reads; when there are none and `deadline` is
    /// given, first waits until one finishes or the deadline passes.
    func takeFinished(waitingUntil deadline: ContinuousClock.Instant?) -> [ReadCompletion] {
        while true {
            let seen = finishedSignal.sequence
            let done = state.withLock { state -> [ReadCompletion] in
                defer { state.finished.removeAll(keepingCapacity: true) }
                return state.finished
            }
            guard done.isEmpty, let deadline else { return done }
            if !finishedSignal.wait(after: seen, until: deadline) {
                return state.withLock { state -> [ReadCompletion] in
                    defer { state.finished.removeAll(keepingCapacity: true) }
                    return state.finished
                }
            }
        }
    }

    /// A pool thread's loop: take the oldest waiting read, run it to the end, repeat.
    func work() {
        while true {
            let seen = posted.sequence
            let job = state.withLock { state -> ChunkReadProgress?? in
                if state.stopping { return .some(nil) }
                guard state.next < state.waiting.count else { return nil }
                let read = state.waiting[state.next]
                state.next += 1
                if state.next == state.waiting.count {
                    state.waiting.removeAll(keepingCapacity: true)
                    state.next = 0
                }
                return .some(read)
            }
            switch job {
            case .some(.some(let read)):
                let completion = perform(read)
                state.withLock { $0.finished.append(completion) }
                finishedSignal.notifyAll()
            case .some(.none):
                return
            case .none:
                posted.wait(after: seen, until: nil)
            }
        }
    }

    /// A read's steps with pread(2) into its chunk buffer.
    static func pread(_ read: ChunkReadProgress, memory: ChunkMemory) -> ReadCompletion {
        var read = read
        let fd = read.request.fd.rawValue
        let buffer = memory.buffer(ofChunk: read.request.chunkIndex)
        while true {
            let result = read.step.pread(fd: fd, into: buffer)
            switch read.record(result, isDirect: { isDirectIO(fd) }) {
            case .finished(let completion): return completion
            case .next: continue
            }
        }
    }
}
