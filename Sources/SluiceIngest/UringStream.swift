#if os(Linux) && compiler(>=6.2)
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SluiceCore
import SystemPackage

/// Reads chunks with io_uring `IORING_OP_READ_FIXED` into buffers registered
/// once, one per chunk, carved from the caller's region.
///
/// Registering pins the buffers, so the kernel reads straight into them
/// without mapping user pages per request. `READ_FIXED` in swift-system always
/// reads the whole registered buffer, so the first read of every chunk asks
/// for `chunkBytes`; the reported count is clamped to the request's length.
/// Short reads are finished with plain (unregistered) reads into the rest of
/// the same buffer (`ChunkReadProgress` has the rules).
///
/// Completions are matched to chunks by the request's user data (chunk index
/// + 1; 0 belongs to swift-system's untagged cancel requests), never by order.
///
/// Not thread-safe: one thread submits and reaps, as an `IORing` may not be
/// shared between threads. The region is not owned: it must outlive the
/// stream, which on deinit cancels and drains every read still in flight so
/// the kernel is done with the memory before the owner can free it.
public final class UringStream: ChunkReadStream {
    public let kind = "io_uring"
    public var chunkBytes: Int { layout.chunkBytes }
    public var chunkCount: Int { layout.chunkCount }
    public var region: UnsafeMutableRawBufferPointer { layout.region }
    public private(set) var inflight = 0

    /// Most buffers one ring can register (the kernel's IORING_MAX_REG_BUFFERS).
    public static let maxChunkCount = 1 << 14
    /// How long deinit waits for cancelled reads to come back.
    static let drainTimeout: Duration = .seconds(10)

    private let layout: ChunkLayout
    private var ring: IORing
    private let wakeup: CompletionEventFD
    /// The read in progress per chunk; nil when the chunk is idle.
    private var reads: [ChunkReadProgress?]
    /// Set when io_uring_enter failed: prepared entries still wait in the
    /// submission queue and go with the next successful enter.
    private var pendingSubmitError: PipelineError?
    /// Set in deinit: finish reads instead of continuing them.
    private var closing = false

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
        // One submission entry per chunk is enough: a chunk has at most one
        // read in the kernel at a time, and the completion queue is twice as deep.
        var ring: IORing
        do {
            ring = try IORing(queueDepth: UInt32(layout.chunkCount), flags: [.clampMaxEntries])
        } catch {
            throw UringStream.setupFailure("io_uring_setup", error)
        }
        do {
            _ = try ring.registerBuffers((0..<layout.chunkCount).map(layout.buffer(ofChunk:)))
        } catch {
            throw UringStream.setupFailure("io_uring_register(buffers)", error)
        }
        let wakeup = try CompletionEventFD()
        do {
            try ring.registerEventFD(wakeup.descriptor)
        } catch {
            throw UringStream.setupFailure("io_uring_register(eventfd)", error)
        }
        self.layout = layout
        self.ring = ring
        self.wakeup = wakeup
        self.reads = Array(repeating: nil, count: layout.chunkCount)
    }

    private static func setupFailure(_ call: String, _ error: Errno) -> PipelineError {
        .io(IOFailure(operation: call, path: "", errno: error.rawValue, reason: SystemErrors.text(error.rawValue)))
    }

    public func submit(_ request: ReadRequest) throws(PipelineError) {
        try layout.check(request) { reads[$0] != nil }
        let progress = ChunkReadProgress(request: request, chunkBytes: chunkBytes, firstStep: .wholeBuffer)
        reads[request.chunkIndex] = progress
        inflight += 1
        if !enqueue(progress.step, chunk: request.chunkIndex, fd: request.fd) {
            // Nothing reached the kernel: refuse the request and leave the
            // chunk free. (Cannot happen while the queue has a slot per chunk.)
            reads[request.chunkIndex] = nil
            inflight -= 1
            throw .io(IOFailure(
                operation: "io_uring submit", path: request.path, fileOffset: request.fileOffset,
                length: request.length, chunk: request.chunkIndex, errno: EBUSY, reason: "the submission queue is full"))
        }
        // On failure the entry stays queued (the read is in flight) and the
        // next submit or reap hands it over.
        try flushSubmissions()
    }

    public func reap(waitingUpTo timeout: Duration?) throws(PipelineError) -> [ReadCompletion] {
        if pendingSubmitError != nil { try flushSubmissions() }
        var done = drainCompletions()
        if done.isEmpty, let timeout, inflight > 0 {
            let deadline = ContinuousClock.now + timeout
            // A completion may only continue a short read, so keep waiting
            // until one finishes a chunk or the deadline passes.
            while done.isEmpty, inflight > 0, try wakeup.wait(until: deadline) {
                done = drainCompletions()
            }
            if done.isEmpty { done = drainCompletions() }
        }
        inflight -= done.count
        return done
    }

    /// Takes every posted completion; returns the chunks it finished and
    /// queues the next step of the ones it did not.
    private func drainCompletions() -> [ReadCompletion] {
        var done: [ReadCompletion] = []
        var queuedMore = false
        while let completion = ring.tryConsumeCompletion() {
            let context = completion.context
            let result = Int(completion.result)
            guard context > 0, context <= UInt64(chunkCount) else { continue }
            let chunk = Int(context - 1)
            guard var progress = reads[chunk] else { continue }
            let fd = progress.request.fd.rawValue
            switch progress.record(result, isDirect: { isDirectIO(fd) }) {
            case .finished(let completion):
                reads[chunk] = nil
                done.append(completion)
            case .next(let step):
                if closing {
                    reads[chunk] = nil
                } else if enqueue(step, chunk: chunk, fd: progress.request.fd) {
                    reads[chunk] = progress
                    queuedMore = true
                } else {
                    reads[chunk] = nil
                    done.append(ReadCompletion(request: progress.request, result: .failure(.io(IOFailure(
                        operation: "io_uring submit", path: progress.request.path,
                        fileOffset: progress.request.fileOffset, length: progress.request.length, chunk: chunk,
                        errno: EBUSY, reason: "the submission queue is full")))))
                }
            }
        }
        if queuedMore { try? flushSubmissions() }
        return done
    }

    /// Puts one read into the submission queue: `READ_FIXED` into the
    /// registered buffer when the step covers it all, else a plain read into
    /// that part of the same memory. False when the queue has no room even
    /// after handing the queued entries to the kernel.
    private func enqueue(_ step: ChunkReadProgress.Step, chunk: Int, fd: FileDescriptor) -> Bool {
        let context = UInt64(chunk) + 1
        let request: IORing.Request
        if step.isWholeBuffer(chunkBytes: chunkBytes) {
            request = .read(fd, into: ring.registeredBuffers[chunk], at: step.fileOffset, context: context)
        } else {
            let buffer = layout.buffer(ofChunk: chunk)
            let part = UnsafeMutableRawBufferPointer(
                rebasing: buffer[step.bufferOffset..<(step.bufferOffset + step.length)])
            request = .read(fd, into: part, at: step.fileOffset, context: context)
        }
        return prepare(request)
    }

    private func prepare(_ request: IORing.Request) -> Bool {
        if ring.prepare(request: request) { return true }
        try? flushSubmissions()
        return ring.prepare(request: request)
    }

    private func flushSubmissions() throws(PipelineError) {
        do {
            try ring.submitPreparedRequests()
            pendingSubmitError = nil
        } catch {
            let failure = PipelineError.io(IOFailure(
                operation: "io_uring_enter", path: "", errno: error.rawValue, reason: SystemErrors.text(error.rawValue)))
            pendingSubmitError = failure
            throw failure
        }
    }

    deinit {
        guard reads.contains(where: { $0 != nil }) else { return }
        // Never let the ring go (and the owner free the region) while the
        // kernel may still write into it: ask it to cancel every read, then
        // wait for each to come back, cancelled or finished.
        closing = true
        for chunk in reads.indices where reads[chunk] != nil {
            _ = prepare(.cancel(.all, matchingContext: UInt64(chunk) + 1))
        }
        try? flushSubmissions()
        let deadline = ContinuousClock.now + UringStream.drainTimeout
        while reads.contains(where: { $0 != nil }), ContinuousClock.now < deadline {
            let slice = min(deadline, ContinuousClock.now + .milliseconds(100))
            if (try? wakeup.wait(until: slice)) == nil {
                // The eventfd failed; fall back to polling the queue.
                var pause = timespec(tv_sec: 0, tv_nsec: 1_000_000)
                nanosleep(&pause, nil)
            }
            _ = drainCompletions()
        }
        let stuck = reads.indices.filter { reads[$0] != nil }
        if !stuck.isEmpty {
            let message = "sluice: io_uring reads for chunks \(stuck) did not finish within "
                + "\(UringStream.drainTimeout) of closing the stream; their buffers may still be written\n"
            // write(2), not stdio: deinit may run on any thread, and stderr is
            // shared mutable state to Swift's concurrency checking.
            var text = message
            text.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
        }
    }
}
#endif
