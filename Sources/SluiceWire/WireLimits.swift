/// The bounds a peer's messages must stay within. The decoder checks each
/// one before it allocates for what a length or count claims, and the encoder
/// refuses a message the decoder would refuse, so a peer using the same
/// limits never sends what the other side rejects.
///
/// The defaults fit together: the largest scan request the literal limits
/// allow (1,000,000 literals with a 4-byte length each, plus 8 MiB of literal
/// bytes) fits the 16 MiB frame.
public struct WireLimits: Hashable, Sendable {
    /// The largest frame, header included, in bytes.
    public var maxFrameBytes: Int
    /// The most literals one scan request may carry.
    public var maxLiterals: Int
    /// The most literal bytes (all literals' lengths added) one scan request may carry.
    public var maxLiteralBytes: Int
    /// The most files one request may name (over all its `files` batches).
    public var maxFilesPerRequest: Int
    /// The most descriptors one message may carry, and so the most files one
    /// `files` batch may name. The kernel passes at most `SCM_MAX_FD` (253)
    /// descriptors in one `sendmsg`, so a request with more files sends them
    /// in several batches.
    public var maxDescriptorsPerMessage: Int
    /// The longest path (display bytes) in a `files` entry or a file error.
    public var maxPathBytes: Int
    /// The longest text field (a version string, a message, a hint), in UTF-8 bytes.
    public var maxTextBytes: Int

    /// The kernel's `SCM_MAX_FD`: the most descriptors one `sendmsg` passes.
    public static let kernelMaxDescriptors = 253

    /// Limits with each value given; the defaults are what `sluice serve` and its clients use.
    public init(
        maxFrameBytes: Int = 16 << 20, maxLiterals: Int = 1_000_000, maxLiteralBytes: Int = 8 << 20,
        maxFilesPerRequest: Int = 1 << 20, maxDescriptorsPerMessage: Int = WireLimits.kernelMaxDescriptors,
        maxPathBytes: Int = 1 << 16, maxTextBytes: Int = 1 << 16
    ) {
        self.maxFrameBytes = maxFrameBytes
        self.maxLiterals = maxLiterals
        self.maxLiteralBytes = maxLiteralBytes
        self.maxFilesPerRequest = maxFilesPerRequest
        self.maxDescriptorsPerMessage = maxDescriptorsPerMessage
        self.maxPathBytes = maxPathBytes
        self.maxTextBytes = maxTextBytes
    }

    /// The largest payload a frame may carry (at most what the u32 length field can say).
    public var maxPayloadBytes: Int { min(Int(UInt32.max), max(0, maxFrameBytes - WireFrame.headerBytes)) }

    /// The most matches one `matches` reply can carry within the frame limit
    /// (a server splits a file's matches into pieces of at most this many).
    public var maxMatchesPerPiece: Int { max(0, (maxPayloadBytes - MatchPiece.fixedBytes) / MatchPiece.bytesPerMatch) }

    /// Splits files whose display paths have `pathLengths` bytes into
    /// consecutive `files` batches that each stay within the descriptor and
    /// frame limits (one descriptor per file). A path too long for the limits
    /// still gets a batch of its own, which the encoder then refuses by name.
    public func fileBatches(pathLengths: [Int]) -> [Range<Int>] {
        var batches: [Range<Int>] = []
        var start = 0
        var bytes = FileBatch.fixedBytes
        for (i, length) in pathLengths.enumerated() {
            let entry = FileBatch.bytesPerEntry + length
            let full = i - start >= maxDescriptorsPerMessage || bytes + entry > maxPayloadBytes
            if full && i > start {
                batches.append(start..<i)
                start = i
                bytes = FileBatch.fixedBytes
            }
            bytes += entry
        }
        if start < pathLengths.count { batches.append(start..<pathLengths.count) }
        return batches
    }
}

/// Which of `WireLimits`' bounds a message exceeded.
public enum WireLimit: String, Hashable, Sendable, CaseIterable {
    /// `WireLimits.maxFrameBytes`.
    case frameBytes
    /// `WireLimits.maxLiterals`.
    case literals
    /// `WireLimits.maxLiteralBytes`.
    case literalBytes
    /// `WireLimits.maxFilesPerRequest`.
    case filesPerRequest
    /// `WireLimits.maxDescriptorsPerMessage`.
    case descriptorsPerMessage
    /// `WireLimits.maxPathBytes`.
    case pathBytes
    /// `WireLimits.maxTextBytes`.
    case textBytes
}
