#if os(Linux) && compiler(>=6.2)
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SluiceCore
import SluiceSystem
import SystemPackage

/// One io_uring instance reading chunks into buffers it registered once, one
/// per slot: the io_uring mechanics `UringStream` (one ring for every chunk)
/// and each thread of `ParallelUringStream` (one ring per share of the
/// chunks) are built on.
///
/// A slot is this ring's own index of a buffer: slot s reads into
/// `buffers[s]`, registered as buffer s. Which chunk of the region that
/// buffer is, and so how requests map to slots, is the owner's business; a
/// completion carries its request, whose chunk index is what the stream
/// reports.
///
/// `READ_FIXED` in swift-system always reads the whole registered buffer, so
/// the first read of every chunk asks for `chunkBytes`; the reported count is
/// clamped to the request's length. Short reads are finished with plain
/// (unregistered) reads into the rest of the same buffer (`ChunkReadProgress`
/// has the rules). Completions are matched to slots by the request's user
/// data (slot + 1; 0 belongs to swift-system's untagged cancel requests),
/// never by order.
///
/// Not thread-safe: create, use and release it on one thread, as an `IORing`
/// may not be shared between threads. The buffers are not owned: on deinit
/// the ring cancels and drains every read still in flight, so the kernel is
/// done with the memory before the owner can free it.
final class UringChunkRing {
    /// Most buffers one ring can register (the kernel's IORING_MAX_REG_BUFFERS).
    static let maxBuffers = 1 << 14
    /// How long deinit waits for cancelled reads to come back.
    static let drainTimeout: Duration = .seconds(10)

    let chunkBytes: Int
    /// Signalled by the kernel for every completion it posts.
    let wakeup: CompletionEventFD
    private let buffers: [UnsafeMutableRawBufferPointer]
    private var ring: IORing
    /// The read in progress per slot; nil when the slot is idle.
    private var reads: [ChunkReadProgress?]
    /// Set when io_uring_enter failed: prepared entries still wait in the
    /// submission queue and go with the next successful enter.
    private(set) var pendingSubmitError: PipelineError?
    /// Set in deinit: finish reads instead of continuing them.
    private var closing = false

    /// Sets up a ring, registers `buffers` (slot s is `buffers[s]`) and `wakeup`.
    ///
    /// - Parameters:
    ///   - buffers: page-aligned buffers of `chunkBytes` each; not owned.
    ///   - wakeup: the eventfd to register for completions (others may also
    ///     write to it, to wake whoever waits on it).
    /// - Throws: `.invalidConfiguration` for too many buffers; `.io` naming
    ///   the failing call ("io_uring_setup", "io_uring_register(buffers)",
    ///   "io_uring_register(eventfd)") with its errno.
    init(buffers: [UnsafeMutableRawBufferPointer], chunkBytes: Int, wakeup: CompletionEventFD) throws(PipelineError) {
        precondition(!buffers.isEmpty && buffers.allSatisfy { $0.count == chunkBytes })
        guard buffers.count <= UringChunkRing.maxBuffers else {
            throw .invalidConfiguration(
                "io_uring registers at most \(UringChunkRing.maxBuffers) buffers per ring; \(buffers.count) asked")
        }
        // One submission entry per slot is enough: a slot has at most one
        // read in the kernel at a time, and the completion queue is twice as deep.
        var ring: IORing
        do {
            ring = try IORing(queueDepth: UInt32(buffers.count), flags: [.clampMaxEntries])
        } catch {
            throw UringChunkRing.setupFailure("io_uring_setup", error)
        }
        do {
            _ = try ring.registerBuffers(buffers)
        } catch {
            // Registration pins the buffers: ENOMEM here is the memlock limit.
            throw UringChunkRing.setupFailure("io_uring_register(buffers)", error, allocatesMemory: true)
        }
        do {
            try ring.registerEventFD(wakeup.descriptor)
        } catch {
            throw UringChunkRing.setupFailure("io_uring_register(eventfd)", error)
        }
        self.chunkBytes = chunkBytes
        self.buffers = buffers
        self.ring = ring
        self.wakeup = wakeup
        self.reads = Array(repeating: nil, count: buffers.count)
    }

    private static func setupFailure(_ call: String, _ error: Errno, allocatesMemory: Bool = false) -> PipelineError {
        .io(IOFailure(
            operation: call, path: "", errno: error.rawValue, reason: SystemErrors.text(error.rawValue),
            allocatesMemory: allocatesMemory))
    }

    var slotCount: Int { reads.count }

    /// Whether `slot` has a read in progress.
    func isBusy(slot: Int) -> Bool { reads[slot] != nil }

    /// Queues the first step of `request` (a `READ_FIXED` of the whole
    /// buffer) into idle `slot`, without handing it to the kernel yet
    /// (`flushSubmissions` does). False when the submission queue has no room
    /// even after flushing: then nothing was queued and the slot stays idle.
    func enqueueFirstRead(_ request: ReadRequest, slot: Int) -> Bool {
        precondition(reads[slot] == nil, "slot \(slot) already has a read")
        let progress = ChunkReadProgress(request: request, chunkBytes: chunkBytes, firstStep: .wholeBuffer)
        guard enqueue(progress.step, slot: slot, fd: request.fd) else { return false }
        reads[slot] = progress
        return true
    }

    /// Hands every queued entry to the kernel. On failure the entries stay
    /// queued (their reads are in flight) and the error is kept in
    /// `pendingSubmitError` until a later flush succeeds.
    func flushSubmissions() throws(PipelineError) {
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

    /// Takes every posted completion; returns the chunks it finished and
    /// queues (and submits) the next step of the ones it did not.
    func drainCompletions() -> [ReadCompletion] {
        var done: [ReadCompletion] = []
        var queuedMore = false
        while let completion = ring.tryConsumeCompletion() {
            let context = completion.context
            let result = Int(completion.result)
            guard context > 0, context <= UInt64(reads.count) else { continue }
            let slot = Int(context - 1)
            guard var progress = reads[slot] else { continue }
            let fd = progress.request.fd.rawValue
            switch progress.record(result, isDirect: { isDirectIO(fd) }) {
            case .finished(let completion):
                reads[slot] = nil
                done.append(completion)
            case .next(let step):
                if closing {
                    reads[slot] = nil
                } else if enqueue(step, slot: slot, fd: progress.request.fd) {
                    reads[slot] = progress
                    queuedMore = true
                } else {
                    reads[slot] = nil
                    done.append(UringChunkRing.queueFull(progress.request))
                }
            }
        }
        if queuedMore { try? flushSubmissions() }
        return done
    }

    /// The completion for a read that never reached the kernel because the
    /// submission queue was full (cannot happen while it has an entry per slot).
    static func queueFull(_ request: ReadRequest) -> ReadCompletion {
        ReadCompletion(request: request, result: .failure(queueFullError(request)))
    }

    static func queueFullError(_ request: ReadRequest) -> PipelineError {
        .io(IOFailure(
            operation: "io_uring submit", path: request.path, fileOffset: request.fileOffset,
            length: request.length, chunk: request.chunkIndex, errno: EBUSY, reason: "the submission queue is full"))
    }

    /// Puts one read into the submission queue: `READ_FIXED` into the
    /// registered buffer when the step covers it all, else a plain read into
    /// that part of the same memory. False when the queue has no room even
    /// after handing the queued entries to the kernel.
    private func enqueue(_ step: ChunkReadProgress.Step, slot: Int, fd: FileDescriptor) -> Bool {
        let context = UInt64(slot) + 1
        let request: IORing.Request
        if step.isWholeBuffer(chunkBytes: chunkBytes) {
            request = .read(fd, into: ring.registeredBuffers[slot], at: step.fileOffset, context: context)
        } else {
            let part = UnsafeMutableRawBufferPointer(
                rebasing: buffers[slot][step.bufferOffset..<(step.bufferOffset + step.length)])
            request = .read(fd, into: part, at: step.fileOffset, context: context)
        }
        return prepare(request)
    }

    private func prepare(_ request: IORing.Request) -> Bool {
        if ring.prepare(request: request) { return true }
        try? flushSubmissions()
        return ring.prepare(request: request)
    }

    deinit {
        guard reads.contains(where: { $0 != nil }) else { return }
        // Never let the ring go (and the owner free the buffers) while the
        // kernel may still write into them: ask it to cancel every read, then
        // wait for each to come back, cancelled or finished.
        closing = true
        for slot in reads.indices where reads[slot] != nil {
            _ = prepare(.cancel(.all, matchingContext: UInt64(slot) + 1))
        }
        try? flushSubmissions()
        let deadline = ContinuousClock.now + UringChunkRing.drainTimeout
        while reads.contains(where: { $0 != nil }), ContinuousClock.now < deadline {
            let slice = min(deadline, ContinuousClock.now + .milliseconds(100))
            if (try? wakeup.wait(until: slice)) == nil {
                // The eventfd failed; fall back to polling the queue.
                var pause = timespec(tv_sec: 0, tv_nsec: 1_000_000)
                nanosleep(&pause, nil)
            }
            if pendingSubmitError != nil { try? flushSubmissions() }
            _ = drainCompletions()
        }
        let stuck = reads.compactMap { $0?.request.chunkIndex }
        if !stuck.isEmpty {
            let message = "sluice: io_uring reads for chunks \(stuck) did not finish within "
                + "\(UringChunkRing.drainTimeout) of closing the stream; their buffers may still be written\n"
            // write(2), not stdio: deinit may run on any thread, and stderr is
            // shared mutable state to Swift's concurrency checking.
            var text = message
            text.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
        }
    }
}
#endif
