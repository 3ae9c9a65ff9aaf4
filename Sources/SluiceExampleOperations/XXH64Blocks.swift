import Sluice

/// A user operation: a 64-bit hash of each file, this example's own
/// function built on XXH64 so that chunks can be hashed independently and
/// in parallel:
///
///     value(file) = XXH64(LE64(S) ‖ LE64(size), seed 0),
///     S = Σ XXH64(block_i, seed i) mod 2^64,
///
/// over the file's 4096-byte blocks `block_i` (the last may be shorter;
/// an empty file has none). It does not depend on the chunk size, since
/// every chunk holds whole blocks (chunk sizes are multiples of 4096). It is
/// not XXH64 of the file, and the sum makes it no defence against crafted
/// collisions: a checksum, not a cryptographic digest.
public struct XXH64Blocks: SluiceOperation {
    /// The file's running sum and size.
    public struct Value: Sendable, Equatable {
        /// S so far.
        public var sum: UInt64 = 0
        /// Bytes so far.
        public var bytes: UInt64 = 0

        /// The file's hash.
        public var digest: UInt64 {
            var tail = [UInt8]()
            for word in [sum, bytes] { tail += (0..<8).map { UInt8(truncatingIfNeeded: word >> (8 * UInt64($0))) } }
            return XXH64.hash(tail)
        }
    }

    /// Bytes per hashed block.
    public static let blockBytes = 4096

    /// "xxh64-blocks".
    public let name = "xxh64-blocks"
    /// "xxh64_blocks".
    public let cudaFunction = "xxh64_blocks"
    /// Kernels/xxh64_blocks.cu.
    public var cudaSource: String { String(decoding: PackageResources.xxh64_blocks_cu, as: UTF8.self) }
    /// S of the chunk's blocks: low word, high word.
    public let resultWords = 2
    /// Nothing hashed.
    public var initialResult: Value { Value() }

    /// The hash operation.
    public init() {}

    /// S of the chunk's own blocks; a chunk that does not start on a block faults with `badArguments`.
    public func reference(_ chunk: OperationChunk, results: OperationResults) throws(OperationFault) {
        guard chunk.fileOffset % UInt64(Self.blockBytes) == 0 else { throw .badArguments }
        let own = chunk.ownBytes
        let first = chunk.fileOffset / UInt64(Self.blockBytes)
        var sum: UInt64 = 0
        for (k, start) in stride(from: 0, to: own.count, by: Self.blockBytes).enumerated() {
            let block = UnsafeRawBufferPointer(rebasing: own[start..<min(start + Self.blockBytes, own.count)])
            sum &+= XXH64.hash(block, seed: first + UInt64(k))
        }
        try results.write64(sum, at: 0)
    }

    /// Adds the chunk's S and its bytes.
    public func combine(_ result: inout Value, with chunk: OperationChunkResult) {
        result.sum &+= UInt64(chunk.words[0]) | UInt64(chunk.words[1]) << 32
        result.bytes += UInt64(chunk.ownBytes)
    }
}
