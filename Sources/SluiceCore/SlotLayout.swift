/// The one place that knows where each field of a slot lives.
///
/// A slot is 16 little-endian 32-bit words (64 bytes, one cache line). The
/// GPU kernel source mirrors these indices in `SLUICE_W_*` constants; the
/// self-test checks both sides agree by running real slots through each.
public enum SlotWord: Int, CaseIterable, Sendable {
    /// `SlotStatus` raw value; owned by whoever the lifecycle gives the current edge.
    case status = 0
    /// `Opcode` raw value.
    case opcode = 1
    /// Tenant that submitted the slot, checked against the tenant table when one is installed.
    case tenant = 2
    /// Larger runs first where a backend orders work.
    case priority = 3
    /// Low 32 bits of the chunk's byte offset in its region.
    case bufferOffsetLow = 4
    /// High 32 bits of that offset.
    case bufferOffsetHigh = 5
    /// Bytes of the chunk to process.
    case length = 6
    /// Low 32 bits of the chunk's offset in its file (reported back, never dereferenced).
    case fileOffsetLow = 7
    /// High 32 bits of that offset.
    case fileOffsetHigh = 8
    /// The ingest buffer the chunk was read into.
    case chunkIndex = 9
    /// First opcode-specific argument.
    case argument0 = 10
    /// Second opcode-specific argument.
    case argument1 = 11
    /// First word of the slot's result area in the result region.
    case resultOffset = 12
    /// Words available in that result area.
    case resultCapacity = 13
    /// Host-owned flags (bit 0: cancel requested; bit 1: the chunk is in the
    /// device ingest region, see `SlotHostFlag`).
    case hostFlags = 14
    /// Worker-written outcome: result words written (DONE) or a `FaultCode` (FAULTED).
    case completion = 15

    /// Words per slot.
    public static let count = 16
    /// Bytes per slot: 64, one cache line.
    public static let bytesPerSlot = count * 4
}

/// Host bits in `SlotWord.hostFlags`.
public enum SlotHostFlag {
    /// Set on a PUBLISHED slot to ask the workers not to run it.
    public static let cancelRequested: UInt32 = 1
    /// Written with the payload: `bufferOffset` addresses the device ingest
    /// region (GPU memory that cuFile reads into), not the data region.
    public static let deviceRegion: UInt32 = 2
}

/// Which memory a slot's chunk bytes are in.
///
/// Both regions are carved into chunk buffers the same way, so a chunk's
/// `bufferOffset` means the same in either; only the base differs. A worker
/// without the region a slot names faults it with `regionUnavailable`.
public enum ChunkRegion: UInt32, Hashable, Sendable, CustomStringConvertible {
    /// The data region: memory the host and the workers both address
    /// (pinned mapped host memory for CUDA); io_uring and pread read into it.
    case host = 0
    /// The device ingest region: GPU memory that only the GPU workers read,
    /// filled by cuFile (GPUDirect Storage, or its compatibility mode).
    case device = 1

    /// "host data region" or "device ingest region", as messages show it.
    public var description: String { self == .host ? "host data region" : "device ingest region" }
}

/// Everything the host writes into a slot before it publishes it.
public struct SlotPayload: Hashable, Sendable {
    /// The operation to run on the chunk.
    public var opcode: Opcode
    /// Tenant that submits the slot; 0 when tenants are not checked.
    public var tenant: UInt32
    /// Larger runs first where a backend orders work; 0 by default.
    public var priority: UInt32
    /// Byte offset of the chunk in the data region.
    public var bufferOffset: UInt64
    /// Bytes of the chunk to process.
    public var length: UInt32
    /// Where the chunk starts in its file (reported back, never dereferenced).
    public var fileOffset: UInt64
    /// The ingest chunk (buffer) the bytes were read into.
    public var chunkIndex: UInt32
    /// Two opcode-specific words.
    public var arguments: (UInt32, UInt32)
    /// First word of the slot's result area in the result region.
    public var resultOffset: UInt32
    /// Words available at `resultOffset`.
    public var resultCapacity: UInt32
    /// Which region `bufferOffset` addresses (`SlotHostFlag.deviceRegion`).
    public var region: ChunkRegion

    /// A payload with each field given; `arguments` and the result area default to zero, the region to the host data region.
    public init(
        opcode: Opcode, tenant: UInt32 = 0, priority: UInt32 = 0,
        bufferOffset: UInt64, length: UInt32, fileOffset: UInt64 = 0, chunkIndex: UInt32 = 0,
        arguments: (UInt32, UInt32) = (0, 0), resultOffset: UInt32 = 0, resultCapacity: UInt32 = 0,
        region: ChunkRegion = .host
    ) {
        self.opcode = opcode
        self.tenant = tenant
        self.priority = priority
        self.bufferOffset = bufferOffset
        self.length = length
        self.fileOffset = fileOffset
        self.chunkIndex = chunkIndex
        self.arguments = arguments
        self.resultOffset = resultOffset
        self.resultCapacity = resultCapacity
        self.region = region
    }

    /// Payloads are equal when their slot words are.
    public static func == (a: SlotPayload, b: SlotPayload) -> Bool {
        a.words == b.words
    }

    /// Hashes the slot words, as `==` compares them.
    public func hash(into hasher: inout Hasher) { hasher.combine(words) }

    /// The payload as the 16 slot words, with status and completion zero and
    /// host flags holding only the region bit (never a cancel request).
    public var words: [UInt32] {
        var w = [UInt32](repeating: 0, count: SlotWord.count)
        w[SlotWord.opcode.rawValue] = opcode.rawValue
        w[SlotWord.tenant.rawValue] = tenant
        w[SlotWord.priority.rawValue] = priority
        w[SlotWord.bufferOffsetLow.rawValue] = UInt32(truncatingIfNeeded: bufferOffset)
        w[SlotWord.bufferOffsetHigh.rawValue] = UInt32(truncatingIfNeeded: bufferOffset >> 32)
        w[SlotWord.length.rawValue] = length
        w[SlotWord.fileOffsetLow.rawValue] = UInt32(truncatingIfNeeded: fileOffset)
        w[SlotWord.fileOffsetHigh.rawValue] = UInt32(truncatingIfNeeded: fileOffset >> 32)
        w[SlotWord.chunkIndex.rawValue] = chunkIndex
        w[SlotWord.argument0.rawValue] = arguments.0
        w[SlotWord.argument1.rawValue] = arguments.1
        w[SlotWord.resultOffset.rawValue] = resultOffset
        w[SlotWord.resultCapacity.rawValue] = resultCapacity
        w[SlotWord.hostFlags.rawValue] = region == .device ? SlotHostFlag.deviceRegion : 0
        return w
    }

    /// Reads the payload fields out of 16 slot words (status and outcome words
    /// are ignored; of the host flags only the region bit is read).
    public init(words w: some RandomAccessCollection<UInt32>) {
        precondition(w.count == SlotWord.count, "a slot is \(SlotWord.count) words")
        func at(_ s: SlotWord) -> UInt32 { w[w.index(w.startIndex, offsetBy: s.rawValue)] }
        self.init(
            opcode: Opcode(rawValue: at(.opcode)), tenant: at(.tenant), priority: at(.priority),
            bufferOffset: UInt64(at(.bufferOffsetLow)) | UInt64(at(.bufferOffsetHigh)) << 32,
            length: at(.length),
            fileOffset: UInt64(at(.fileOffsetLow)) | UInt64(at(.fileOffsetHigh)) << 32,
            chunkIndex: at(.chunkIndex), arguments: (at(.argument0), at(.argument1)),
            resultOffset: at(.resultOffset), resultCapacity: at(.resultCapacity),
            region: at(.hostFlags) & SlotHostFlag.deviceRegion != 0 ? .device : .host)
    }
}

/// One slot decoded in full: its state, payload and outcome.
public struct SlotRecord: Hashable, Sendable {
    /// The slot's lifecycle state.
    public var status: SlotStatus
    /// The host-written fields.
    public var payload: SlotPayload
    /// The host flags word (`SlotHostFlag` bits), the region bit included when the payload set it.
    public var hostFlags: UInt32
    /// Result words written (DONE) or the raw fault code (FAULTED).
    public var completion: UInt32

    /// A record with each field given.
    public init(status: SlotStatus, payload: SlotPayload, hostFlags: UInt32 = 0, completion: UInt32 = 0) {
        self.status = status
        self.payload = payload
        self.hostFlags = hostFlags
        self.completion = completion
    }

    /// The fault, when the slot is FAULTED with a known code.
    public var fault: FaultCode? { status == .faulted ? FaultCode(rawValue: completion) : nil }

    /// The record as the 16 slot words.
    public var words: [UInt32] {
        var w = payload.words
        w[SlotWord.status.rawValue] = status.rawValue
        // The region bit belongs to the payload as well as to the flags word.
        w[SlotWord.hostFlags.rawValue] = hostFlags | w[SlotWord.hostFlags.rawValue]
        w[SlotWord.completion.rawValue] = completion
        return w
    }
}
