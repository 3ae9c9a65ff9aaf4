import SluiceCore
import SluiceThreads

/// One chunk's bytes to copy: `bytes` in the host region, to `offset` in the
/// destination (the same offset the chunk has in the host region).
public struct ChunkCopy: @unchecked Sendable {
    // @unchecked: a view of the stream's region, used on its owner's thread.
    /// The chunk's byte offset in the region (and in the destination).
    public var offset: Int
    /// The bytes read into the host region.
    public var bytes: UnsafeRawBufferPointer

    /// A copy of `bytes` to `offset`.
    public init(offset: Int, bytes: UnsafeRawBufferPointer) {
        self.offset = offset
        self.bytes = bytes
    }
}

/// Completes when the copies it was made after have landed.
public protocol ChunkCopyFence: AnyObject {
    /// True once every copy before the fence has landed; throws when one failed.
    func isComplete() throws(PipelineError) -> Bool
    /// Blocks until every copy before the fence has landed; throws when one failed.
    func wait() throws(PipelineError)
}

/// Moves chunks from the host region to where the workers read them: the
/// GPU's copy engine into the device ingest region, or a test's twin.
public protocol ChunkCopier: AnyObject {
    /// "copy engine", as reasons and `kind` show it.
    var kind: String { get }
    /// Where the copies land, which the pump writes into each slot.
    var landing: ChunkRegion { get }
    /// Starts the copies and returns a fence after them. Fences complete in
    /// the order they were made.
    func copy(_ chunks: [ChunkCopy]) throws(PipelineError) -> any ChunkCopyFence
}

/// A host read stream whose chunks are copied elsewhere before they are
/// reported: a read that completes in the host region starts a copy
/// (`ChunkCopier`), and its completion is returned by `reap` only once the
/// copy has landed, so the pump publishes a slot only over bytes the workers
/// can read. Each `reap` copies what the host stream completed as one batch
/// behind one fence and polls the fences: no wait per chunk.
///
/// Failed reads and reads of 0 bytes pass through at once; a copy that fails
/// completes its chunks with the copier's error. The host region keeps the
/// bytes, so `hostBytes` reads them there. The inner stream is owned; deinit
/// waits for the copies under way (they read the host region).
public final class CopyingReadStream: ChunkReadStream {
    /// The host stream's kind and the copier's ("io_uring, then the copy engine").
    public var kind: String { "\(inner.kind), then the \(copier.kind)" }
    /// Bytes per chunk buffer, as the host stream's.
    public var chunkBytes: Int { inner.chunkBytes }
    /// Chunk buffers, as the host stream's.
    public var chunkCount: Int { inner.chunkCount }
    /// The host region the reads land in.
    public var region: UnsafeMutableRawBufferPointer { inner.region }
    /// Reads in flight, completed reads whose copies have not landed, and
    /// completions not handed out yet.
    public var inflight: Int { inner.inflight + copying + ready.count }
    /// Where the copies land.
    public var landing: ChunkRegion { copier.landing }
    /// False: the workers read the copies, not the host region.
    public var readsInPlace: Bool { false }

    private let inner: any ChunkReadStream
    private let copier: any ChunkCopier
    /// Batches whose copies are under way, oldest first.
    private var batches: [(fence: any ChunkCopyFence, completions: [ReadCompletion])] = []
    private var copying = 0
    private var copyingChunks = Set<Int>()
    /// Completions to hand out: kept across a `reap` that throws, so none is lost.
    private var ready: [ReadCompletion] = []
    /// Nanoseconds between polls while a reap waits for a copy.
    static let pollPauseNanoseconds = 20_000

    /// Wraps `inner`, copying its chunks with `copier`.
    public init(inner: any ChunkReadStream, copier: any ChunkCopier) {
        self.inner = inner
        self.copier = copier
    }

    deinit {
        for batch in batches { try? batch.fence.wait() }
    }

    /// Posts the read on the host stream; a chunk whose copy is still under
    /// way is refused like a chunk in flight.
    public func submit(_ request: ReadRequest) throws(PipelineError) {
        guard !copyingChunks.contains(request.chunkIndex) else {
            throw .invalidRequest(chunk: request.chunkIndex, slot: nil, reason: "chunk \(request.chunkIndex) is still being copied")
        }
        try inner.submit(request)
    }

    /// The completions whose copies have landed (and failed reads). With
    /// copies under way and none landed, it polls the host stream and the
    /// oldest copy until one is ready or `timeout` has passed, starting the
    /// copies of reads that complete meanwhile.
    public func reap(waitingUpTo timeout: Duration?) throws(PipelineError) -> [ReadCompletion] {
        collectLanded()
        let innerWait = ready.isEmpty && batches.isEmpty ? timeout : nil
        ready += startCopies(try inner.reap(waitingUpTo: innerWait))
        collectLanded()
        if ready.isEmpty, let timeout, !batches.isEmpty {
            try pollUntilReady(deadline: ContinuousClock.now.advanced(by: timeout))
        }
        defer { ready = [] }
        return ready
    }

    /// The chunk's bytes in the host region, where they were read.
    public func hostBytes(ofChunk chunk: Int, count: Int) throws(PipelineError) -> UnsafeRawBufferPointer {
        try inner.hostBytes(ofChunk: chunk, count: count)
    }

    private func pollUntilReady(deadline: ContinuousClock.Instant) throws(PipelineError) {
        while ready.isEmpty, !batches.isEmpty, ContinuousClock.now < deadline {
            ready += startCopies(try inner.reap(waitingUpTo: nil))
            collectLanded()
            if ready.isEmpty { sleepNanoseconds(Self.pollPauseNanoseconds) }
        }
    }

    /// Starts one batch of copies for the reads that brought bytes; returns
    /// the rest (failures, empty reads), which need no copy.
    private func startCopies(_ completions: [ReadCompletion]) -> [ReadCompletion] {
        var passed: [ReadCompletion] = []
        var toCopy: [ReadCompletion] = []
        var copies: [ChunkCopy] = []
        for c in completions {
            guard case .success(let n) = c.result, n > 0 else {
                passed.append(c)
                continue
            }
            let offset = c.chunkIndex * chunkBytes
            copies.append(ChunkCopy(offset: offset, bytes: UnsafeRawBufferPointer(rebasing: region[offset..<(offset + n)])))
            toCopy.append(c)
        }
        guard !toCopy.isEmpty else { return passed }
        do {
            let fence = try copier.copy(copies)
            batches.append((fence, toCopy))
            copying += toCopy.count
            for c in toCopy { copyingChunks.insert(c.chunkIndex) }
        } catch {
            passed += toCopy.map { ReadCompletion(request: $0.request, result: .failure(error)) }
        }
        return passed
    }

    /// Moves the completions of every batch, oldest first, whose fence
    /// completed into `ready`; a fence that reports a failure fails its batch.
    private func collectLanded() {
        while let oldest = batches.first {
            do {
                guard try oldest.fence.isComplete() else { return }
                ready += removeOldest()
            } catch {
                ready += removeOldest().map { ReadCompletion(request: $0.request, result: .failure(error)) }
            }
        }
    }

    private func removeOldest() -> [ReadCompletion] {
        let batch = batches.removeFirst()
        copying -= batch.completions.count
        for c in batch.completions { copyingChunks.remove(c.chunkIndex) }
        return batch.completions
    }
}
