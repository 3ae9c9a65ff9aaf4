#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore

/// What one `ChunkReader.read` call did.
public enum ChunkReaderResult: Sendable, Equatable {
    /// Bytes now in the buffer (0: end of file).
    case transferred(Int)
    /// A system call failed with this errno; EINTR and EAGAIN are retried,
    /// anything else fails the chunk with the errno's text.
    case systemError(Int32)
    /// The library failed the read with its own status: the chunk fails at
    /// once with `reason` (which names the status) and `errno` (0 when the
    /// status carries none).
    case failed(errno: Int32, reason: String)
}

/// Reads chunk ranges with something other than a host pread: cuFile's
/// `cuFileRead` into GPU memory, or a test's fake of it.
///
/// `ChunkReaderStream` calls `prepare` on its owner's thread before it
/// submits a request, `read` from its pool threads (several at once, each on
/// a different chunk), and `copyToHost` on the owner's thread.
public protocol ChunkReader: AnyObject, Sendable {
    /// The stream kind this reader makes ("cuFile").
    var kind: String { get }
    /// The operation errors name ("cuFileRead").
    var readOperation: String { get }
    /// Where chunk i's bytes land: `.host` (the stream's region) or `.device`
    /// (the device ingest region, at the same offsets).
    var landing: ChunkRegion { get }
    /// Readies the request's file (cuFile registers the descriptor once per open file).
    func prepare(_ request: ReadRequest) throws(PipelineError)
    /// Reads `length` bytes at `fileOffset` into the request's chunk buffer,
    /// `bufferOffset` bytes from its start. One call, no retries.
    func read(_ request: ReadRequest, bufferOffset: Int, fileOffset: UInt64, length: Int) -> ChunkReaderResult
    /// Copies the first `into.count` bytes of chunk `chunk` into host memory.
    func copyToHost(chunk: Int, into: UnsafeMutableRawBufferPointer) throws(PipelineError)
}

/// A thread pool that drives a `ChunkReader` with the same semantics as
/// `PreadStream` (short reads finished, EINTR/EAGAIN retried, O_DIRECT
/// remainders realigned, each chunk completed once, in any order), for
/// readers whose calls block: cuFile's `cuFileRead` is synchronous, so
/// reads overlap only across threads.
///
/// `submit`, `reap` and `hostBytes` belong to one thread (the owner). The
/// region is not owned and must outlive the stream; for a reader that lands
/// in device memory it only lays the chunks out. Deinit stops the threads
/// and joins them: reads not yet started are dropped, a read underway finishes.
public final class ChunkReaderStream: ChunkReadStream {
    /// The reader's kind ("cuFile").
    public var kind: String { reader.kind }
    /// Bytes per chunk buffer, a multiple of 4096.
    public var chunkBytes: Int { layout.chunkBytes }
    /// Chunk buffers carved from `region`.
    public var chunkCount: Int { layout.chunkCount }
    /// The memory the chunk buffers are carved from; not owned, it must outlive the stream.
    public var region: UnsafeMutableRawBufferPointer { layout.region }
    /// Where the reader puts the chunks: host memory, or the GPU's device ingest region.
    public var landing: ChunkRegion { reader.landing }
    /// Reads submitted and not yet reaped.
    public var inflight: Int { pool.inflight }
    /// Threads in the pool.
    public var threadCount: Int { pool.threadCount }
    /// The reader the pool's threads call, one read at a time each.
    public let reader: any ChunkReader

    private var layout: ChunkLayout { pool.layout }
    private let pool: ReadThreadPool
    /// Host copy of one chunk for `hostBytes` on a device stream, made on first use.
    private var staging: UnsafeMutableRawBufferPointer?

    /// Starts `threads` threads calling `reader`.
    ///
    /// - Parameters:
    ///   - reader: what reads one chunk (cuFile).
    ///   - region: page-aligned memory that lays out the chunks (and holds
    ///     them for a host reader); not owned.
    ///   - chunkBytes: bytes per chunk buffer, a multiple of 4096.
    ///   - chunkCount: chunk buffers to carve; nil: as many as fit in `region`.
    ///   - threads: 1 to 64.
    public init(
        reader: any ChunkReader, region: UnsafeMutableRawBufferPointer, chunkBytes: Int, chunkCount: Int? = nil,
        threads: Int
    ) throws(PipelineError) {
        let layout = try ChunkLayout(region: region, chunkBytes: chunkBytes, chunkCount: chunkCount)
        self.reader = reader
        pool = try ReadThreadPool(
            layout: layout, threads: threads, what: "\(reader.kind) reader threads", name: "sluice-\(reader.kind)"
        ) { read in ChunkReaderStream.run(read, reader: reader) }
    }

    deinit {
        // No read may still be underway while the staging copy goes.
        pool.stop()
        staging?.deallocate()
    }

    /// Posts a read of `request` into its chunk buffer; throws, submitting nothing, when the request breaks a rule (chunk out of range or in flight, length above `chunkBytes`).
    public func submit(_ request: ReadRequest) throws(PipelineError) {
        try pool.check(request)
        try reader.prepare(request)
        pool.start(request)
    }

    /// Returns the completions available now, first waiting up to `timeout` for one when none is and a read is in flight.
    public func reap(waitingUpTo timeout: Duration?) throws(PipelineError) -> [ReadCompletion] {
        pool.reap(waitingUpTo: timeout)
    }

    /// The first `count` bytes of chunk `chunk` in host memory: the buffer itself for a host reader, a copy (made on demand, valid until the next call) for a device one.
    public func hostBytes(ofChunk chunk: Int, count: Int) throws(PipelineError) -> UnsafeRawBufferPointer {
        guard chunk >= 0, chunk < chunkCount, count >= 0, count <= chunkBytes else {
            throw .invalidRequest(chunk: chunk, slot: nil, reason: "\(count) bytes of chunk \(chunk) of \(chunkCount) × \(chunkBytes)")
        }
        guard reader.landing == .device else {
            return UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(layout.buffer(ofChunk: chunk))[0..<count])
        }
        guard !pool.isBusy(chunk) else {
            throw .invalidRequest(chunk: chunk, slot: nil, reason: "chunk \(chunk) is being read; its bytes cannot be copied yet")
        }
        let buffer: UnsafeMutableRawBufferPointer
        if let staging {
            buffer = staging
        } else {
            buffer = .allocate(byteCount: chunkBytes, alignment: ChunkLayout.alignment)
            staging = buffer
        }
        let target = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count])
        try reader.copyToHost(chunk: chunk, into: target)
        return UnsafeRawBufferPointer(target)
    }

    /// A read's steps through `reader`, on a pool thread.
    static func run(_ read: ChunkReadProgress, reader: any ChunkReader) -> ReadCompletion {
        var read = read
        let request = read.request
        let fd = request.fd.rawValue
        while true {
            let step = read.step
            let result: Int
            switch reader.read(request, bufferOffset: step.bufferOffset, fileOffset: step.fileOffset, length: step.length) {
            case .transferred(let bytes):
                result = max(0, bytes)
            case .systemError(let code):
                result = -Int(code == 0 ? EIO : code)
            case .failed(let code, let reason):
                return ReadCompletion(request: request, result: .failure(.io(IOFailure(
                    operation: reader.readOperation, path: request.path, fileOffset: request.fileOffset,
                    length: request.length, chunk: request.chunkIndex, errno: code, reason: reason))))
            }
            switch read.record(result, isDirect: { isDirectIO(fd) }) {
            case .next:
                continue
            case .finished(let completion):
                return named(completion, operation: reader.readOperation)
            }
        }
    }

    /// The completion with its failure naming the reader's operation
    /// ("cuFileRead", or "cuFileRead (direct read)" where the O_DIRECT hint applies).
    private static func named(_ completion: ReadCompletion, operation: String) -> ReadCompletion {
        guard case .failure(.io(var failure)) = completion.result else { return completion }
        failure.operation = failure.operation == "read" ? operation : "\(operation) (\(failure.operation))"
        return ReadCompletion(request: completion.request, result: .failure(.io(failure)))
    }
}
