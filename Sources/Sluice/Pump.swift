#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceIngest
import SluiceSystem
import SystemPackage

/// Composes ingest and the ring: posts file reads into chunk buffers, and
/// publishes each chunk's slot once its bytes have landed.
///
/// The pump owns its read stream and no memory or workers of its own. It
/// stages the slot payload of every read it submits, keyed by chunk, so that
/// completions can arrive in any order. It never publishes a slot whose read
/// failed or came up short: those come back from `drainIntoRing` as failures
/// naming the chunk.
///
/// A pump is not copyable: it is the one owner of its stream and of the reads
/// it staged. `takeStream()` consumes it and hands the stream back. A pump
/// that goes away with reads in flight (dropped, or its stream taken)
/// publishes none of them, so their slots stay EMPTY; the reads themselves
/// stay with the stream, whose deinit cancels them and waits for any that
/// already reached the kernel, so no byte lands in the region once the last
/// owner of the stream is gone.
public struct Pump: ~Copyable {
    /// What `drainIntoRing` did with one completion.
    public enum Event: Sendable {
        /// The chunk's bytes landed and its slot is now PUBLISHED.
        case published(chunk: Int, slot: Int, bytes: Int)
        /// The read failed or the file ended early; the slot was not published.
        case failed(chunk: Int, slot: Int, error: PipelineError)
    }

    private struct Staged {
        var slot: Int
        /// What the read must deliver (its length is checked against the bytes read).
        var payload: SlotPayload
        var path: String
        /// What is published: `payload`, or what fault injection made of it.
        var published: SlotPayload
    }

    /// Bytes per chunk buffer, the stream's.
    public let chunkBytes: Int
    /// The stream the reads go through; the scheduler in this module reads
    /// its layout and host bytes here rather than keeping a reference of its own.
    let stream: any ChunkReadStream
    private var staged: [Int: Staged] = [:]
    private var stagedSlots: Set<Int> = []

    /// Takes `stream` over; `chunkBytes` must be the stream's chunk size.
    public init(stream: any ChunkReadStream, chunkBytes: Int) throws(PipelineError) {
        guard chunkBytes == stream.chunkBytes else {
            throw .invalidConfiguration("pump chunk size \(chunkBytes) differs from the stream's \(stream.chunkBytes)")
        }
        self.stream = stream
        self.chunkBytes = chunkBytes
    }

    /// Reads submitted whose slots are not yet published.
    public var inflight: Int { staged.count }

    /// Whether `slot` is waiting for its read.
    public func isStaged(slot: Int) -> Bool { stagedSlots.contains(slot) }

    /// Posts the read of `length` bytes at `fileOffset` into chunk buffer
    /// `chunkIndex`, staging the payload for `slotIndex`. `length` must be
    /// `chunkBytes`, a multiple of 4096 below it (a range of a file), or end
    /// at the end of the file. Every rule is checked before anything is
    /// submitted. `fileSize` is the size the caller planned the
    /// read by, when it has one: a file whose size is no longer that is
    /// then reported as changed (naming `path`), not as a bad request.
    /// `tenant`, `priority`, `opcode` and `args` go into the slot as given.
    public mutating func submitFileScan(
        fd: FileDescriptor, path: String = "", fileSize: UInt64? = nil, fileOffset: UInt64, length: Int,
        chunkIndex: Int, slotIndex: Int,
        tenant: UInt32, priority: UInt32 = 0, opcode: Opcode, args: (UInt32, UInt32) = (0, 0), ring: RingView
    ) throws(PipelineError) {
        try submitFileScan(
            fd: fd, path: path, fileSize: fileSize, fileOffset: fileOffset, length: length, chunkIndex: chunkIndex,
            slotIndex: slotIndex, tenant: tenant, priority: priority, opcode: opcode, args: args, ring: ring,
            adjust: nil)
    }

    /// `submitFileScan` where `adjust` (fault injection, for the diagnostics
    /// and tests only) rewrites the slot that is published once the read lands.
    package mutating func submitFileScan(
        fd: FileDescriptor, path: String = "", fileSize: UInt64? = nil, fileOffset: UInt64, length: Int,
        chunkIndex: Int, slotIndex: Int,
        tenant: UInt32, priority: UInt32 = 0, opcode: Opcode, args: (UInt32, UInt32) = (0, 0), ring: RingView,
        adjust: ((inout SlotPayload) -> Void)?
    ) throws(PipelineError) {
        guard chunkIndex >= 0, chunkIndex < stream.chunkCount else {
            throw .invalidRequest(chunk: chunkIndex, slot: slotIndex, reason: "chunk index outside 0..<\(stream.chunkCount)")
        }
        guard staged[chunkIndex] == nil else {
            throw .invalidRequest(chunk: chunkIndex, slot: slotIndex, reason: "chunk \(chunkIndex) already has a read in flight")
        }
        guard slotIndex >= 0, slotIndex < ring.geometry.slotCount else {
            throw .invalidRequest(chunk: chunkIndex, slot: slotIndex, reason: "slot index outside 0..<\(ring.geometry.slotCount)")
        }
        guard !stagedSlots.contains(slotIndex) else {
            throw .invalidRequest(chunk: chunkIndex, slot: slotIndex, reason: "slot \(slotIndex) is already staged for another chunk")
        }
        let status = try ring.status(ofSlot: slotIndex)
        guard status == .empty else {
            throw .invalidRequest(chunk: chunkIndex, slot: slotIndex, reason: "slot \(slotIndex) is \(status), not EMPTY")
        }
        guard length > 0, length <= chunkBytes else {
            throw .invalidRequest(chunk: chunkIndex, slot: slotIndex, reason: "length \(length) must be in 1...\(chunkBytes)")
        }
        // A shorter read must keep O_DIRECT's alignment (a range of a large
        // file ends on a 4096 boundary) or end where the file does.
        if length < chunkBytes, length % 4096 != 0 {
            let size = try Pump.fileSize(fd: fd, path: path)
            if let planned = fileSize, fileOffset + UInt64(length) == planned, size != planned {
                throw .fileChanged(
                    path: path,
                    detail: "size went from \(planned) to \(size) bytes, seen before the read at offset \(fileOffset)")
            }
            guard fileOffset + UInt64(length) == size else {
                throw .invalidRequest(
                    chunk: chunkIndex, slot: slotIndex,
                    reason: "length \(length) is shorter than the chunk size, not a multiple of 4096, and does not end at the end of the file (\(size) bytes)")
            }
        }
        let geometry = ring.geometry
        let payload = SlotPayload(
            opcode: opcode, tenant: tenant, priority: priority, bufferOffset: UInt64(chunkIndex) * UInt64(chunkBytes),
            length: UInt32(length), fileOffset: fileOffset, chunkIndex: UInt32(chunkIndex), arguments: args,
            resultOffset: UInt32(geometry.resultOffset(ofSlot: slotIndex)),
            resultCapacity: UInt32(geometry.resultWordsPerSlot), region: stream.landing)
        var published = payload
        adjust?(&published)
        try stream.submit(ReadRequest(fd: fd, path: path, fileOffset: fileOffset, length: length, chunkIndex: chunkIndex))
        staged[chunkIndex] = Staged(slot: slotIndex, payload: payload, path: path, published: published)
        stagedSlots.insert(slotIndex)
    }

    /// Reaps finished reads (waiting up to `timeout` for the first when none
    /// is ready and `timeout` is not nil) and publishes the slot of every
    /// chunk whose bytes all landed.
    public mutating func drainIntoRing(_ ring: RingView, waitingUpTo timeout: Duration? = nil) throws(PipelineError) -> [Event] {
        guard !staged.isEmpty else { return [] }
        var events: [Event] = []
        for completion in try stream.reap(waitingUpTo: timeout) {
            let chunk = completion.chunkIndex
            guard let entry = staged.removeValue(forKey: chunk) else {
                throw .invalidRequest(chunk: chunk, slot: nil, reason: "the stream completed a chunk the pump never submitted")
            }
            stagedSlots.remove(entry.slot)
            switch completion.result {
            case .failure(let error):
                events.append(.failed(chunk: chunk, slot: entry.slot, error: error))
            case .success(let bytes) where bytes < Int(entry.payload.length):
                events.append(.failed(chunk: chunk, slot: entry.slot, error: .fileChanged(
                    path: entry.path,
                    detail: "chunk \(chunk) at offset \(entry.payload.fileOffset): read \(bytes) of \(entry.payload.length) bytes before the end of the file")))
            case .success(let bytes):
                do {
                    try ring.publish(slot: entry.slot, entry.published)
                    events.append(.published(chunk: chunk, slot: entry.slot, bytes: bytes))
                } catch {
                    events.append(.failed(chunk: chunk, slot: entry.slot, error: error))
                }
            }
        }
        return events
    }

    /// The ring's epoch: slots finished so far.
    public func observeEpoch(_ ring: RingView) -> UInt64 { ring.epoch }

    /// Ends the pump and hands its stream back, reads in flight included.
    ///
    /// Nothing is drained or waited for: the caller reaps the reads still in
    /// flight from the stream itself (`inflight`, `reap(waitingUpTo:)`), or
    /// drops the stream, whose deinit cancels them. The slots they were
    /// staged for are never published (the pump that would have published
    /// them is gone) and stay EMPTY. Check `inflight` first when the stream
    /// should come back idle.
    public consuming func takeStream() -> any ChunkReadStream {
        stream
    }

    static func fileSize(fd: FileDescriptor, path: String) throws(PipelineError) -> UInt64 {
        do { return UInt64(try fd.stat().size) } catch {
            throw .io(IOFailure(operation: "fstat", path: path, errno: error.rawValue))
        }
    }
}
