import SluiceCore
import SystemPackage

/// One read of a file range into an ingest chunk buffer.
public struct ReadRequest: Sendable, Hashable {
    /// The open file to read from; not owned by the request.
    public var fd: FileDescriptor
    /// For error messages only.
    public var path: String
    /// Offset in the file of the first byte to read.
    public var fileOffset: UInt64
    /// Bytes wanted; at most the stream's `chunkBytes`.
    public var length: Int
    /// Which buffer: bytes land at `chunkIndex * chunkBytes` in the region.
    public var chunkIndex: Int

    /// A read of `length` bytes at `fileOffset` of `fd` into buffer `chunkIndex`.
    public init(fd: FileDescriptor, path: String, fileOffset: UInt64, length: Int, chunkIndex: Int) {
        self.fd = fd
        self.path = path
        self.fileOffset = fileOffset
        self.length = length
        self.chunkIndex = chunkIndex
    }
}

/// A finished read, matched to its request by chunk index (never by order).
public struct ReadCompletion: Sendable {
    /// The read this completes.
    public var request: ReadRequest
    /// Bytes now in the buffer (short reads already completed), at most
    /// `request.length`; fewer means the file ended first. Or the error,
    /// naming file, offset, chunk and errno.
    public var result: Result<Int, PipelineError>

    /// A completion of `request` with `result`.
    public init(request: ReadRequest, result: Result<Int, PipelineError>) {
        self.request = request
        self.result = result
    }

    /// The buffer the read was for.
    public var chunkIndex: Int { request.chunkIndex }
}

/// Reads file ranges into fixed chunk buffers carved out of one region, and
/// reports completions in whatever order they finish.
///
/// Implementations: `UringStream` (io_uring `READ_FIXED` into registered
/// buffers, one ring on the caller's thread), `ParallelUringStream` (the same
/// over several rings, each on its own thread, so cached pages are copied in
/// parallel), `PreadStream` (a pread thread pool, where io_uring is not
/// available), `ChunkReaderStream` (a thread pool driving a `ChunkReader`:
/// cuFile into GPU memory), `ScriptedReadStream` (a deterministic twin for
/// tests that can reorder completions and inject errors and short reads).
public protocol ChunkReadStream: AnyObject {
    /// "io_uring", "pread", "scripted" or the `ChunkReader`'s kind ("cuFile").
    var kind: String { get }
    /// Bytes per chunk buffer, a multiple of 4096.
    var chunkBytes: Int { get }
    /// Chunk buffers carved from `region`.
    var chunkCount: Int { get }
    /// The region the buffers are carved from; chunk i is
    /// `region[i * chunkBytes ..< (i + 1) * chunkBytes]`.
    var region: UnsafeMutableRawBufferPointer { get }
    /// Reads submitted and not yet reaped.
    var inflight: Int { get }
    /// Posts a read. Throws before submitting anything when the request breaks
    /// a rule (chunk out of range or already in flight, length above `chunkBytes`).
    func submit(_ request: ReadRequest) throws(PipelineError)
    /// Returns every completion available now; when none is and `timeout` is
    /// not nil, first waits up to `timeout` for one (with nothing in flight
    /// there is nothing to wait for, and it returns at once). Short reads are
    /// finished and EINTR/EAGAIN retried inside; every other failure is a
    /// completion carrying a `PipelineError`.
    func reap(waitingUpTo timeout: Duration?) throws(PipelineError) -> [ReadCompletion]
    /// Where the chunks land: `.host` (in `region`, which the workers read in
    /// place) or `.device` (at the same offsets in the GPU's device ingest
    /// region; `region` then only lays the chunks out). The pump writes it
    /// into each slot it publishes.
    var landing: ChunkRegion { get }
    /// The first `count` bytes of a chunk whose read completed, in host
    /// memory, valid until the next call or until the chunk is read again:
    /// `region`'s own bytes for a host stream, a copy for a device one (for
    /// a host that must look at a chunk again, as a scan whose result area
    /// overflowed does).
    func hostBytes(ofChunk chunk: Int, count: Int) throws(PipelineError) -> UnsafeRawBufferPointer
    /// Whether the workers read the chunks in `region` itself. Packed small
    /// files are written straight into `region`, so they need it; a stream
    /// that copies its chunks elsewhere before the workers read them does not.
    var readsInPlace: Bool { get }
}

extension ChunkReadStream {
    /// `.host`: by default a stream reads into `region` itself.
    public var landing: ChunkRegion { .host }

    /// By default, the workers read `region` when the chunks land in host memory.
    public var readsInPlace: Bool { landing == .host }

    /// The chunk's bytes in `region`, for a stream that lands chunks in host memory.
    public func hostBytes(ofChunk chunk: Int, count: Int) throws(PipelineError) -> UnsafeRawBufferPointer {
        guard chunk >= 0, chunk < chunkCount, count >= 0, count <= chunkBytes else {
            throw .invalidRequest(chunk: chunk, slot: nil, reason: "\(count) bytes of chunk \(chunk) of \(chunkCount) × \(chunkBytes)")
        }
        let start = chunk * chunkBytes
        return UnsafeRawBufferPointer(rebasing: region[start..<(start + count)])
    }
}
