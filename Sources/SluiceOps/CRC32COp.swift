import SluiceCore

/// The `crc32c` opcode: the CRC-32C of a chunk.
///
/// Result words: `[0]` the finished CRC-32C of the chunk's `length` bytes
/// (initial and final XOR 0xFFFFFFFF; 0 for an empty chunk), `[1]` length.
/// The host joins the chunks of a file with `CRC32C.combine` in file order,
/// so chunks may finish in any order. This Swift function is the reference:
/// the CPU backend runs it and the GPU self-test compares the kernel with it.
public enum CRC32COp {
    /// Words the result needs: checksum, length.
    public static let resultWords = 2

    /// Writes the result words for `chunk` into `result` (at least `resultWords` long).
    public static func run(_ chunk: UnsafeRawBufferPointer, into result: UnsafeMutableBufferPointer<UInt32>) {
        precondition(result.count >= resultWords)
        result[0] = CRC32C.checksum(chunk)
        result[1] = UInt32(truncatingIfNeeded: chunk.count)
    }
}

/// The decoded result of one `crc32c` slot.
public struct CRC32CResult: Hashable, Sendable {
    /// The CRC-32C of the chunk's bytes.
    public var crc: UInt32
    /// Bytes checksummed (the slot's `length`).
    public var length: UInt32

    /// A result with each field given.
    public init(crc: UInt32, length: UInt32) {
        self.crc = crc
        self.length = length
    }

    /// Decodes the result words of one slot.
    public init(words: some RandomAccessCollection<UInt32>) throws(PipelineError) {
        guard words.count >= CRC32COp.resultWords else {
            throw .malformed(what: "crc32c result", detail: "expected \(CRC32COp.resultWords) words, got \(words.count)")
        }
        let w = Array(words.prefix(CRC32COp.resultWords))
        self.init(crc: w[0], length: w[1])
    }
}

/// Joins per-chunk checksums of one file, handed over in any order, into the
/// checksum of the whole file. Chunks are folded in as soon as every earlier
/// one has arrived, so only the out-of-order ones wait in memory.
public struct CRC32CChunkCombiner: Sendable {
    /// The checksum of the chunks folded in so far (all of them before `nextChunk`).
    public private(set) var crc: UInt32 = 0
    /// Bytes folded in so far.
    public private(set) var bytes: UInt64 = 0
    /// The chunk number that must come next.
    public private(set) var nextChunk = 0
    private var waiting: [Int: (offset: UInt64, crc: UInt32, length: UInt32)] = [:]
    // All chunks but a file's last share a length: keep its factor.
    private var cachedLength: UInt32 = 0
    private var cachedFactor: UInt32 = 0x8000_0000

    /// A combiner that has folded nothing in: checksum 0, next chunk 0.
    public init() {}

    /// Chunks handed over but not yet folded in (an earlier one is missing).
    public var waitingChunks: [Int] { waiting.keys.sorted() }

    /// Adds chunk `number` (0-based), which starts at `offset` in the file.
    /// Throws on a chunk given twice, or one that does not start where the
    /// chunks before it end.
    public mutating func add(chunk number: Int, offset: UInt64, crc: UInt32, length: UInt32) throws(PipelineError) {
        guard number >= nextChunk, waiting[number] == nil else {
            throw .malformed(what: "crc32c chunk \(number)", detail: "the chunk was reported twice")
        }
        waiting[number] = (offset, crc, length)
        while let c = waiting.removeValue(forKey: nextChunk) {
            guard c.offset == bytes else {
                throw .malformed(
                    what: "crc32c chunk \(nextChunk)",
                    detail: "it starts at byte \(c.offset) but the chunks before it end at byte \(bytes)")
            }
            if c.length != cachedLength {
                cachedLength = c.length
                cachedFactor = CRC32C.xToThe8n(UInt64(c.length))
            }
            self.crc = CRC32C.combine(self.crc, c.crc, factor: cachedFactor)
            bytes += UInt64(c.length)
            nextChunk += 1
        }
    }
}
