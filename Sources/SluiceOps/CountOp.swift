import SluiceCore

/// The `count` opcode: bytes, newlines and a 256-bin byte histogram of a chunk.
///
/// This Swift function is the reference: the CPU backend runs it, and the
/// GPU self-test compares the CUDA kernel's words against it.
public enum CountOp {
    /// Words the result needs: bytes, newlines, 256 histogram bins.
    public static let resultWords = 258

    /// Writes the result words for `chunk` into `result` (at least `resultWords` long).
    public static func run(_ chunk: UnsafeRawBufferPointer, into result: UnsafeMutableBufferPointer<UInt32>) {
        precondition(result.count >= resultWords)
        // Four interleaved tables break the store-to-load dependency when the
        // same byte value repeats, which a single table serialises on.
        var tables = [UInt32](repeating: 0, count: 256 * 4)
        tables.withUnsafeMutableBufferPointer { t in
            let n = chunk.count
            var i = 0
            while i + 4 <= n {
                t[Int(chunk[i])] &+= 1
                t[256 + Int(chunk[i + 1])] &+= 1
                t[512 + Int(chunk[i + 2])] &+= 1
                t[768 + Int(chunk[i + 3])] &+= 1
                i += 4
            }
            while i < n {
                t[Int(chunk[i])] &+= 1
                i += 1
            }
            for b in 0..<256 {
                result[2 + b] = t[b] &+ t[256 + b] &+ t[512 + b] &+ t[768 + b]
            }
        }
        result[0] = UInt32(truncatingIfNeeded: chunk.count)
        result[1] = result[2 + 0x0A]
    }
}

/// The decoded result of one `count` slot, and the sum over many.
public struct CountResult: Hashable, Sendable {
    /// Bytes counted.
    public var bytes: UInt64
    /// Newline (0x0A) bytes among them.
    public var newlines: UInt64
    /// 256 counts, one per byte value.
    public var histogram: [UInt64]

    /// A result with each field given; zero by default, to sum into with `add`.
    public init(bytes: UInt64 = 0, newlines: UInt64 = 0, histogram: [UInt64] = .init(repeating: 0, count: 256)) {
        self.bytes = bytes
        self.newlines = newlines
        self.histogram = histogram
    }

    /// Decodes the result words of one slot.
    public init(words: some RandomAccessCollection<UInt32>) throws(PipelineError) {
        guard words.count >= CountOp.resultWords else {
            throw .malformed(what: "count result", detail: "expected \(CountOp.resultWords) words, got \(words.count)")
        }
        let w = Array(words.prefix(CountOp.resultWords))
        let histogram = w[2..<258].map(UInt64.init)
        guard UInt64(w[1]) == histogram[0x0A], histogram.reduce(0, +) == UInt64(w[0]) else {
            throw .malformed(what: "count result", detail: "newlines or histogram disagree with the byte count")
        }
        self.init(bytes: UInt64(w[0]), newlines: UInt64(w[1]), histogram: histogram)
    }

    /// Adds `other`'s counts to these.
    public mutating func add(_ other: CountResult) {
        bytes += other.bytes
        newlines += other.newlines
        for b in 0..<256 { histogram[b] += other.histogram[b] }
    }
}
