import SluiceCore
import Synchronization

/// A host read stream that is set up at its first read, not before.
///
/// Why: a scan of packed small files reads every file with a pack load (a
/// pread into a unit's buffer) and may never read a chunk through the stream
/// at all, while setting up io_uring registers every chunk buffer, which
/// faults in and pins the whole data region first: 31 ms of a 114 ms scan
/// of 40,000 small files on the H100 machine's 16 cores (run 20 in
/// `benchmarks/RESULTS.md`). Deferred, that cost is paid only by a run that
/// reads a file too large to pack.
///
/// The chunk layout (`chunkBytes`, `chunkCount`, `region`) is known from the
/// start; `make` builds the real stream over it, on the thread of the first
/// `submit`. A failing `make` fails that submit (naming the request's file)
/// and is tried again by the next one.
public final class DeferredReadStream: ChunkReadStream {
    /// Bytes per chunk buffer, a multiple of 4096.
    public let chunkBytes: Int
    /// Chunk buffers carved from `region`.
    public let chunkCount: Int
    /// The memory the chunk buffers are carved from; not owned, it must outlive the stream.
    public let region: UnsafeMutableRawBufferPointer
    private let make: () throws(PipelineError) -> IngestSelection
    private var made: (any ChunkReadStream)?
    /// The reason of the stream `make` built, readable from any thread.
    private let madeReason = Mutex<String?>(nil)

    /// The layout (`region`, `chunkBytes`, `chunkCount`) is checked now, so
    /// a bad one fails at once rather than at the first read.
    ///
    /// - Parameters:
    ///   - region: the memory the chunk buffers are carved from; not owned.
    ///   - chunkBytes: bytes per chunk buffer, a multiple of 4096.
    ///   - chunkCount: chunk buffers to carve.
    ///   - make: builds the real stream over that layout; it must carve the same chunks.
    public init(
        region: UnsafeMutableRawBufferPointer, chunkBytes: Int, chunkCount: Int,
        make: @escaping () throws(PipelineError) -> IngestSelection
    ) throws(PipelineError) {
        let layout = try ChunkLayout(region: region, chunkBytes: chunkBytes, chunkCount: chunkCount)
        self.region = region
        self.chunkBytes = chunkBytes
        self.chunkCount = layout.chunkCount
        self.make = make
    }

    /// Whether the real stream has been set up.
    public var isSetUp: Bool { madeReason.withLock { $0 != nil } }

    /// The real stream's reason ("io_uring (READ_FIXED, ...)"), nil before it is set up.
    public var setUpReason: String? { madeReason.withLock { $0 } }

    /// The real stream's kind once set up; "deferred" before.
    public var kind: String { made?.kind ?? "deferred" }
    /// Reads submitted and not yet reaped; 0 before the set-up.
    public var inflight: Int { made?.inflight ?? 0 }

    /// Sets the real stream up if it is not yet (a failure fails this submit, naming the request's file), then posts the read.
    public func submit(_ request: ReadRequest) throws(PipelineError) {
        try stream(for: request).submit(request)
    }

    /// The real stream's completions; none before the set-up, since nothing was submitted.
    public func reap(waitingUpTo timeout: Duration?) throws(PipelineError) -> [ReadCompletion] {
        // Nothing was ever submitted before the set-up: nothing to wait for.
        guard let made else { return [] }
        return try made.reap(waitingUpTo: timeout)
    }

    /// The chunk's bytes in host memory, straight from `region` before the set-up.
    public func hostBytes(ofChunk chunk: Int, count: Int) throws(PipelineError) -> UnsafeRawBufferPointer {
        guard let made else {
            throw .invalidRequest(chunk: chunk, slot: nil, reason: "no chunk was read yet: the read stream is not set up")
        }
        return try made.hostBytes(ofChunk: chunk, count: count)
    }

    private func stream(for request: ReadRequest) throws(PipelineError) -> any ChunkReadStream {
        if let made { return made }
        let selection: IngestSelection
        do {
            selection = try make()
        } catch {
            // A set-up failure names no file of its own: name the read it stopped.
            guard case .io(var failure) = error, failure.path.isEmpty else { throw error }
            failure.path = request.path
            failure.fileOffset = request.fileOffset
            failure.length = request.length
            failure.chunk = request.chunkIndex
            throw .io(failure)
        }
        guard selection.stream.chunkBytes == chunkBytes, selection.stream.chunkCount == chunkCount,
              selection.stream.region.baseAddress == region.baseAddress, selection.stream.landing == .host
        else {
            throw PipelineError.invalidConfiguration(
                "the deferred read stream was set up with another chunk layout (\(selection.reason))")
        }
        made = selection.stream
        madeReason.withLock { $0 = selection.reason }
        return selection.stream
    }
}
