#if os(Linux) && compiler(>=6.2)
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SluiceCore
import SluiceThreads
import Synchronization
import SystemPackage

/// io_uring `READ_FIXED` into registered buffers, spread over several rings,
/// each driven by its own thread.
///
/// Why: a buffered read of cached pages is copied inside io_uring_enter, on
/// the thread that submits it, so a single ring (`UringStream`) reads a warm
/// file at one thread's copy rate. Here `ringCount` threads each own a ring and
/// submit (and so copy) in parallel, while every read still lands, pinned,
/// in the caller's chunk buffers.
///
/// Carving: chunk i belongs to ring `i % ringCount`, as that ring's slot
/// `i / ringCount`. Each ring registers exactly its own chunks' buffers of the
/// shared region (slot s of ring r is chunk `r + s * ringCount`), so no buffer
/// is registered twice and a completion's chunk index is its request's.
///
/// Flow: `submit` validates the request against the whole layout (the same
/// `ChunkLayout` rules as every stream), marks the chunk busy, appends the
/// request to its ring's queue (a `Mutex`) and writes that ring's eventfd,
/// the same one the kernel signals for the ring's completions, so a ring
/// thread sleeps in one poll(2) for either. The thread takes its queue,
/// prepares a `READ_FIXED` per request, submits them with one
/// io_uring_enter, drains its completion queue (finishing short reads and
/// retrying EINTR/EAGAIN through `ChunkReadProgress`), and posts finished
/// chunks to one queue shared by all rings, which `reap` drains, waiting on a
/// condition when it is empty.
///
/// `submit` and `reap` belong to one thread (the owner); a ring is created,
/// used and released on its own thread only, as an `IORing` may not be shared
/// between threads. A failed io_uring_enter on a ring thread leaves the
/// entries queued; the thread retries, and `reap` throws the failure (when it
/// has no completion to return) until a retry succeeds.
///
/// The region is not owned and must outlive the stream. Deinit stops every
/// thread: reads still waiting in a queue never reached the kernel and are
/// dropped; each ring cancels and drains the reads it has in flight before
/// its thread returns, and deinit joins every thread, so no read lands in the
/// region after the stream is gone.
public final class ParallelUringStream: ChunkReadStream {
    /// "io_uring": several rings, one thread each.
    public let kind = "io_uring"
    /// Bytes per chunk buffer, a multiple of 4096.
    public var chunkBytes: Int { layout.chunkBytes }
    /// Chunk buffers carved from `region`.
    public var chunkCount: Int { layout.chunkCount }
    /// The memory the chunk buffers are carved from; not owned, it must outlive the stream.
    public var region: UnsafeMutableRawBufferPointer { layout.region }
    /// Reads submitted and not yet reaped.
    public private(set) var inflight = 0
    /// Rings, one thread each; chunk i is read by ring `i % ringCount`.
    public let ringCount: Int

    /// Most rings (and threads) one stream starts.
    public static let maxRings = IngestSelection.maxUringRings

    private let layout: ChunkLayout
    private let board: UringCompletionBoard
    private let lanes: [UringLane]
    private var threads: [PosixThread] = []
    /// Chunks submitted and not yet reaped.
    private var busy: [Bool]

    /// Starts `rings` threads, each setting up a ring that registers its
    /// share of the chunk buffers and an eventfd, and returns once all are ready.
    ///
    /// - Parameters:
    ///   - region: page-aligned memory the chunks are carved from; not owned,
    ///     and must outlive the stream.
    ///   - chunkBytes: bytes per chunk, a multiple of 4096.
    ///   - chunkCount: chunks to carve; nil carves as many as fit.
    ///   - rings: rings and threads, 1 to `min(maxRings, chunkCount)` (every
    ///     ring gets at least one chunk).
    /// - Throws: `.invalidConfiguration` for a bad layout or ring count; `.io`
    ///   naming the failing call of the first ring that could not be set up
    ///   ("io_uring_setup", "io_uring_register(buffers)",
    ///   "io_uring_register(eventfd)", "pthread_create", "eventfd") with its errno.
    public init(
        region: UnsafeMutableRawBufferPointer, chunkBytes: Int, chunkCount: Int? = nil, rings: Int
    ) throws(PipelineError) {
        let layout = try ChunkLayout(region: region, chunkBytes: chunkBytes, chunkCount: chunkCount)
        let most = min(ParallelUringStream.maxRings, layout.chunkCount)
        guard rings >= 1, rings <= most else {
            throw .invalidConfiguration(
                "io_uring rings \(rings) must be between 1 and \(most) (at most \(ParallelUringStream.maxRings), "
                    + "and no more than the \(layout.chunkCount) chunks)")
        }
        let perRing = (layout.chunkCount + rings - 1) / rings
        guard perRing <= UringChunkRing.maxBuffers else {
            throw .invalidConfiguration(
                "io_uring registers at most \(UringChunkRing.maxBuffers) buffers per ring; "
                    + "\(layout.chunkCount) chunks over \(rings) rings asks \(perRing)")
        }
        var lanes: [UringLane] = []
        for index in 0..<rings {
            lanes.append(UringLane(index: index, ringCount: rings, wakeup: try CompletionEventFD()))
        }
        self.layout = layout
        self.ringCount = rings
        self.board = UringCompletionBoard(rings: rings)
        self.lanes = lanes
        self.busy = Array(repeating: false, count: layout.chunkCount)
        for lane in lanes {
            let share = RingShare(
                buffers: ParallelUringStream.chunks(ofRing: lane.index, rings: rings, chunkCount: layout.chunkCount)
                    .map(layout.buffer(ofChunk:)))
            let board = self.board
            do {
                threads.append(try PosixThread.start(name: "sluice-uring-\(lane.index)") {
                    lane.run(share: share, chunkBytes: chunkBytes, board: board)
                })
            } catch {
                stopThreads()
                throw error
            }
        }
        if let failure = board.waitForSetup() {
            stopThreads()
            throw failure
        }
    }

    /// The chunks ring `ring` of `rings` reads, in slot order: slot s is
    /// chunk `ring + s * rings`.
    static func chunks(ofRing ring: Int, rings: Int, chunkCount: Int) -> StrideTo<Int> {
        stride(from: ring, to: chunkCount, by: rings)
    }

    deinit { stopThreads() }

    /// Stops and joins every thread; each first drains its ring. Calling it again does nothing.
    private func stopThreads() {
        for lane in lanes { lane.stop() }
        for thread in threads { thread.join() }
    }

    /// Posts a read of `request` into its chunk buffer; throws, submitting nothing, when the request breaks a rule (chunk out of range or in flight, length above `chunkBytes`).
    public func submit(_ request: ReadRequest) throws(PipelineError) {
        try layout.check(request) { busy[$0] }
        busy[request.chunkIndex] = true
        inflight += 1
        lanes[request.chunkIndex % ringCount].post(request)
    }

    /// Returns the completions available now, first waiting up to `timeout` for one when none is and a read is in flight.
    public func reap(waitingUpTo timeout: Duration?) throws(PipelineError) -> [ReadCompletion] {
        // With nothing in flight nothing can arrive: return rather than sleep.
        let deadline = inflight > 0 ? timeout.map { ContinuousClock.now + $0 } : nil
        let done = try board.take(waitingUntil: deadline)
        for completion in done { busy[completion.chunkIndex] = false }
        inflight -= done.count
        return done
    }
}

/// One ring's buffers, handed to its thread.
struct RingShare: @unchecked Sendable {
    // @unchecked: raw pointers are not Sendable, but each buffer is written
    // only by the kernel for the ring that registered it, and its bytes are
    // handed to the owner through the completion board's mutex.
    let buffers: [UnsafeMutableRawBufferPointer]
}

/// What a `ParallelUringStream` and one of its ring threads share: the
/// queue of reads to submit, and the eventfd that wakes the thread (written
/// by the kernel for each completion, and by the owner for each new read).
final class UringLane: Sendable {
    private struct Inbox {
        var requests: [ReadRequest] = []
        var stopping = false
    }

    let index: Int
    let ringCount: Int
    let wakeup: CompletionEventFD
    private let inbox = Mutex(Inbox())

    init(index: Int, ringCount: Int, wakeup: CompletionEventFD) {
        self.index = index
        self.ringCount = ringCount
        self.wakeup = wakeup
    }

    /// Queues `request` for the thread and wakes it.
    func post(_ request: ReadRequest) {
        let wasEmpty = inbox.withLock { inbox -> Bool in
            let wasEmpty = inbox.requests.isEmpty
            inbox.requests.append(request)
            return wasEmpty
        }
        // A non-empty queue has not been taken since its first read was
        // posted, and that post's signal wakes the thread to take it all.
        if wasEmpty { wakeup.signal() }
    }

    /// Makes the thread drain its ring and return.
    func stop() {
        inbox.withLock { $0.stopping = true }
        wakeup.signal()
    }

    /// The thread's body: set up the ring, report, then submit, reap and
    /// post until stopped; the ring drains every read in flight as it goes.
    func run(share: RingShare, chunkBytes: Int, board: UringCompletionBoard) {
        let ring: UringChunkRing
        do {
            ring = try UringChunkRing(buffers: share.buffers, chunkBytes: chunkBytes, wakeup: wakeup)
        } catch {
            board.reportSetup(ofRing: index, failure: error)
            return
        }
        board.reportSetup(ofRing: index, failure: nil)
        var reportedError: PipelineError?
        var retryPause: Duration = .milliseconds(1)
        while true {
            let (requests, stopping) = inbox.withLock { inbox -> ([ReadRequest], Bool) in
                var taken: [ReadRequest] = []
                swap(&taken, &inbox.requests)
                return (taken, inbox.stopping)
            }
            // Reads still queued never reached the kernel; the ring's deinit
            // cancels and drains the ones that did.
            if stopping { return }
            var done: [ReadCompletion] = []
            var queued = false
            for request in requests {
                if ring.enqueueFirstRead(request, slot: request.chunkIndex / ringCount) {
                    queued = true
                } else {
                    done.append(UringChunkRing.queueFull(request))
                }
            }
            // Buffered reads of cached pages are copied right here, inside
            // io_uring_enter, on this thread: the point of having several.
            if queued || ring.pendingSubmitError != nil { try? ring.flushSubmissions() }
            done += ring.drainCompletions()
            let error = ring.pendingSubmitError
            if !done.isEmpty || error != reportedError {
                board.post(done, submitError: error, fromRing: index)
                reportedError = error
            }
            let pause: Duration
            if error != nil {
                // Entries wait in the submission queue: try again soon.
                pause = retryPause
                retryPause = min(retryPause * 2, .milliseconds(100))
            } else {
                pause = .seconds(1)
                retryPause = .milliseconds(1)
            }
            if (try? wakeup.wait(until: ContinuousClock.now + pause)) == nil {
                // The eventfd failed; fall back to polling.
                var nap = timespec(tv_sec: 0, tv_nsec: 1_000_000)
                nanosleep(&nap, nil)
            }
        }
    }
}

/// Where the ring threads of a `ParallelUringStream` post setup results,
/// finished reads and submission failures, for the owner to take.
final class UringCompletionBoard: Sendable {
    private struct State {
        var finished: [ReadCompletion] = []
        /// Per ring: the io_uring_enter failure its entries wait behind, if any.
        var submitErrors: [PipelineError?]
        /// Per ring: nil until set up, then `.success` or the failure.
        var setups: [Result<Void, PipelineError>?]
    }

    private let state: Mutex<State>
    /// Notified whenever `state` changes.
    private let changed = WakeSignal()

    init(rings: Int) {
        state = Mutex(State(
            submitErrors: Array(repeating: nil, count: rings), setups: Array(repeating: nil, count: rings)))
    }

    func reportSetup(ofRing ring: Int, failure: PipelineError?) {
        state.withLock { $0.setups[ring] = failure.map { .failure($0) } ?? .success(()) }
        changed.notifyAll()
    }

    /// Waits until every ring reported; returns the failure of the first
    /// ring (by index) that could not be set up, or nil.
    func waitForSetup() -> PipelineError? {
        while true {
            let seen = changed.sequence
            let setups = state.withLock { $0.setups }
            if setups.allSatisfy({ $0 != nil }) {
                for case .failure(let error)? in setups { return error }
                return nil
            }
            changed.wait(after: seen, until: nil)
        }
    }

    func post(_ done: [ReadCompletion], submitError: PipelineError?, fromRing ring: Int) {
        state.withLock { state in
            state.finished.append(contentsOf: done)
            state.submitErrors[ring] = submitError
        }
        changed.notifyAll()
    }

    /// Returns the finished reads; when there are none and `deadline` is
    /// given, first waits until one finishes or the deadline passes. Throws
    /// a ring's io_uring_enter failure when it has no completion to return.
    func take(waitingUntil deadline: ContinuousClock.Instant?) throws(PipelineError) -> [ReadCompletion] {
        var deadline = deadline
        while true {
            let seen = changed.sequence
            let (done, error) = state.withLock { state -> ([ReadCompletion], PipelineError?) in
                var taken: [ReadCompletion] = []
                swap(&taken, &state.finished)
                return (taken, state.submitErrors.lazy.compactMap { $0 }.first)
            }
            if !done.isEmpty { return done }
            if let error { throw error }
            guard let limit = deadline else { return [] }
            // Past the deadline: one last look, then give up.
            if !changed.wait(after: seen, until: limit) { deadline = nil }
        }
    }
}
#endif
