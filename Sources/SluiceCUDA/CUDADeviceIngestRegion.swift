import SluiceCore

/// The device ingest region: device memory (`cuMemAlloc`) that cuFile reads
/// chunks into and the megakernel reads them from, carved into chunk buffers
/// at the same offsets as the data region. Slots name it with
/// `ChunkRegion.device` (docs/protocol.md, "Memory").
///
/// Allocated with the backend, before the kernel starts (the kernel gets its
/// address at launch), and freed when the last owner lets go, which the
/// engine arranges to be after the kernel has ended: freeing device memory
/// may wait for the device to go idle.
public final class CUDADeviceIngestRegion: @unchecked Sendable {
    /// The region's address in device memory.
    public var deviceAddress: UInt64 { memory.deviceAddress }
    /// The region's size in bytes.
    public var byteCount: Int { memory.byteCount }
    /// The device's ordinal.
    public var device: Int { context.ordinal }

    let context: CUDAContext
    private let memory: CUDADeviceBuffer
    /// A non-blocking stream for copies back to the host, so that a copy
    /// never waits for the persistent kernel.
    private let copyStream: CUDAStream
    /// A non-blocking stream for chunks copied in from the host (the copy
    /// engine ingest path), apart from `copyStream`'s waits.
    private let ingestStream: CUDAStream

    init(context: CUDAContext, byteCount: Int) throws(PipelineError) {
        guard byteCount > 0 else { throw .invalidConfiguration("a device ingest region of \(byteCount) bytes") }
        self.context = context
        memory = try CUDADeviceBuffer(context: context, byteCount: byteCount)
        copyStream = try CUDAStream(context: context)
        ingestStream = try CUDAStream(context: context)
    }

    /// Starts copies of host bytes (pinned, for the copy engine to move them
    /// while the caller goes on) to offsets of the region, and returns a fence
    /// that completes when all of them have landed. Fences complete in the
    /// order they were made. Throws before queueing anything when a copy
    /// falls outside the region.
    public func copyIn(_ copies: [(offset: Int, bytes: UnsafeRawBufferPointer)]) throws(PipelineError) -> CUDACopyFence {
        for copy in copies where copy.offset < 0 || copy.bytes.count > byteCount - copy.offset {
            throw .invalidConfiguration(
                "copy of \(copy.bytes.count) bytes to offset \(copy.offset) of a \(byteCount)-byte device ingest region")
        }
        let event = try CUDAEvent(context: context)
        let base = deviceAddress
        try ingestStream.enqueueCopies(copies.map { ($0.bytes, base + UInt64($0.offset)) }, then: event)
        return CUDACopyFence(event: event)
    }

    /// Registers the whole region with cuFile; the registration keeps the
    /// region alive and is undone before it is freed.
    public func register(with session: CuFileDriverSession) throws(PipelineError) -> CuFileRegisteredBuffer {
        try context.withCurrent { () throws(PipelineError) in
            try CuFileRegisteredBuffer(session: session, deviceAddress: deviceAddress, byteCount: byteCount, owner: self, context: context)
        }
    }

    /// Runs `body` with the region's CUDA context current on the calling
    /// thread (cuFile calls on GPU buffers need it). A context that cannot be
    /// made current is the error.
    public func withContext<R>(_ body: () -> R) -> Result<R, PipelineError> {
        Result { () throws(PipelineError) -> R in try context.withCurrent { body() } }
    }

    /// Copies `into.count` bytes at `offset` of the region to host memory and
    /// waits for them.
    public func copyToHost(offset: Int, into target: UnsafeMutableRawBufferPointer) throws(PipelineError) {
        guard offset >= 0, target.count <= byteCount - offset else {
            throw .invalidConfiguration("copy of \(target.count) bytes from offset \(offset) of a \(byteCount)-byte device ingest region")
        }
        guard target.count > 0 else { return }
        try copyStream.copyToHost(target, from: deviceAddress + UInt64(offset))
    }

    /// Copies `source` into the region at `offset` and waits for it (`copyIn`
    /// on the non-blocking ingest stream, so it never waits for the persistent
    /// kernel); `sluice bench resident` loads its chunks this way, once.
    public func copyFromHost(offset: Int, _ source: UnsafeRawBufferPointer) throws(PipelineError) {
        try copyIn([(offset, source)]).wait()
    }
}

/// Completes when the copies `CUDADeviceIngestRegion.copyIn` queued before it have landed.
public final class CUDACopyFence: @unchecked Sendable {
    // @unchecked: the event is an immutable handle; the driver's calls on it are thread-safe.
    private let event: CUDAEvent

    init(event: CUDAEvent) { self.event = event }

    /// True once the copies have landed; throws the error the stream ended with.
    public func isComplete() throws(PipelineError) -> Bool { try event.isComplete() }

    /// Blocks until the copies have landed.
    public func wait() throws(PipelineError) { try event.synchronize() }
}
