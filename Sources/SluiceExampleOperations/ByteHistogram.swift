import Sluice

/// A user operation: how often each byte value occurs in a file (256
/// counters). Each chunk's worker block counts into per-warp counters in
/// shared memory and writes 256 result words; the file's counters are their sums.
public struct ByteHistogram: SluiceOperation {
    /// "byte-histogram".
    public let name = "byte-histogram"
    /// "byte_histogram".
    public let cudaFunction = "byte_histogram"
    /// Kernels/byte_histogram.cu.
    public var cudaSource: String { String(decoding: PackageResources.byte_histogram_cu, as: UTF8.self) }
    /// One word per byte value.
    public let resultWords = 256
    /// 256 zeros.
    public var initialResult: [UInt64] { [UInt64](repeating: 0, count: 256) }

    /// The histogram operation.
    public init() {}

    /// Counts the chunk's own bytes into words 0...255.
    public func reference(_ chunk: OperationChunk, results: OperationResults) throws(OperationFault) {
        var counts = [UInt32](repeating: 0, count: 256)
        for byte in chunk.ownBytes { counts[Int(byte)] &+= 1 }
        for (value, count) in counts.enumerated() { try results.write(count, at: value) }
    }

    /// Adds the chunk's counters to the file's.
    public func combine(_ result: inout [UInt64], with chunk: OperationChunkResult) {
        for value in 0..<256 { result[value] += UInt64(chunk.words[value]) }
    }
}
