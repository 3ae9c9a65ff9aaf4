#if os(Linux) && compiler(>=6.2)
import SluiceCore
import SystemPackage

/// Reads chunks with io_uring `IORING_OP_READ_FIXED` into buffers registered
/// once, one per chunk, carved from the caller's region: one ring, driven by
/// the thread that submits and reaps.
///
/// Registering pins the buffers, so the kernel reads straight into them
/// without mapping user pages per request. `READ_FIXED` in swift-system always
/// reads the whole registered buffer, so the first read of every chunk asks
/// for `chunkBytes`; the reported count is clamped to the request's length.
/// Short reads are finished with plain (unregistered) reads into the rest of
/// the same buffer (`ChunkReadProgress` has the rules; `UringChunkRing` the
/// ring mechanics).
///
/// Completions are matched to chunks by the request's user data (chunk index
/// + 1; 0 belongs to swift-system's untagged cancel requests), never by order.
///
/// Buffered reads of cached pages are copied inside io_uring_enter on the
/// submitting thread, so one ring reads a warm file at one thread's copy
/// rate; `ParallelUringStream` spreads the chunks over several rings and threads.
///
/// Not thread-safe: one thread submits and reaps, as an `IORing` may not be
/// shared between threads. The region is not owned: it must outlive the
/// stream, which on deinit cancels and drains every read still in flight so
/// the kernel is done with the memory before the owner can free it.
public final class UringStream: ChunkReadStream {
    /// "io_uring": one io_uring instance, READ_FIXED into registered buffers.
    public let kind = "io_uring"
    /// Bytes per chunk buffer, a multiple of 4096.
    public var chunkBytes: Int { layout.chunkBytes }
    /// Chunk buffers carved from `region`.
    public var chunkCount: Int { layout.chunkCount }
    /// The memory the chunk buffers are carved from; not owned, it must outlive the stream.
    public var region: UnsafeMutableRawBufferPointer { layout.region }
    /// Reads submitted and not yet reaped.
    public private(set) var inflight = 0

    /// Most buffers one ring can register (the kernel's IORING_MAX_REG_BUFFERS).
    public static let maxChunkCount = UringChunkRing.maxBuffers
    /// How long deinit waits for cancelled reads to come back.
    static var drainTimeout: Duration { UringChunkRing.drainTimeout }

    private let layout: ChunkLayout
    /// Slot i is chunk i.
    private let ring: UringChunkRing

    /// Sets up a ring, registers one buffer per chunk and an eventfd for waiting.
    ///
    /// - Parameters:
    ///   - region: page-aligned memory the chunks are carved from; not owned,
    ///     and must outlive the stream.
    ///   - chunkBytes: bytes per chunk, a multiple of 4096.
    ///   - chunkCount: chunks to carve; nil carves as many as fit.
    /// - Throws: `.invalidConfiguration` for a bad layout; `.io` naming the
    ///   failing call ("io_uring_setup", "io_uring_register(buffers)",
    ///   "io_uring_register(eventfd)") with its errno.
    public init(region: UnsafeMutableRawBufferPointer, chunkBytes: Int, chunkCount: Int? = nil) throws(PipelineError) {
        let layout = try ChunkLayout(region: region, chunkBytes: chunkBytes, chunkCount: chunkCount)
        guard layout.chunkCount <= UringStream.maxChunkCount else {
            throw .invalidConfiguration(
                "io_uring registers at most \(UringStream.maxChunkCount) buffers; \(layout.chunkCount) chunks asked")
        }
        self.layout = layout
        self.ring = try UringChunkRing(
            buffers: (0..<layout.chunkCount).map(layout.buffer(ofChunk:)), chunkBytes: layout.chunkBytes,
            wakeup: try CompletionEventFD())
    }

    /// Posts a read of `request` into its chunk buffer; throws, submitting nothing, when the request breaks a rule (chunk out of range or in flight, length above `chunkBytes`).
    public func submit(_ request: ReadRequest) throws(PipelineError) {
        try layout.check(request) { ring.isBusy(slot: $0) }
        guard ring.enqueueFirstRead(request, slot: request.chunkIndex) else {
            // Nothing reached the kernel: refuse the request and leave the
            // chunk free. (Cannot happen while the queue has a slot per chunk.)
            throw UringChunkRing.queueFullError(request)
        }
        inflight += 1
        // On failure the entry stays queued (the read is in flight) and the
        // next submit or reap hands it over.
        try ring.flushSubmissions()
    }

    /// Returns the completions available now, first waiting up to `timeout` for one when none is and a read is in flight.
    public func reap(waitingUpTo timeout: Duration?) throws(PipelineError) -> [ReadCompletion] {
        if ring.pendingSubmitError != nil { try ring.flushSubmissions() }
        var done = ring.drainCompletions()
        if done.isEmpty, let timeout, inflight > 0 {
            let deadline = ContinuousClock.now + timeout
            // A completion may only continue a short read, so keep waiting
            // until one finishes a chunk or the deadline passes.
            while done.isEmpty, inflight > 0, try ring.wakeup.wait(until: deadline) {
                done = ring.drainCompletions()
            }
            if done.isEmpty { done = ring.drainCompletions() }
        }
        inflight -= done.count
        return done
    }
}
#endif
