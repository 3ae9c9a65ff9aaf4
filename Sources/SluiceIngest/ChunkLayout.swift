import SluiceCore

/// The chunk buffers a stream reads into: `chunkCount` buffers of `chunkBytes`
/// each, carved in order out of one region the caller owns (the backend's data
/// region), and the rules a `ReadRequest` must meet to land in one of them.
///
/// Every stream checks requests here, so a request one implementation rejects
/// is rejected by all of them, before anything reaches the kernel.
struct ChunkLayout {
    /// Buffers, file offsets and lengths are kept multiples of this: O_DIRECT
    /// needs them aligned to the device's logical block (512 or 4096 bytes),
    /// and a page satisfies both.
    static let alignment = 4096

    let region: UnsafeMutableRawBufferPointer
    let chunkBytes: Int
    let chunkCount: Int

    /// - Parameter chunkCount: buffers to carve; nil carves as many as fit.
    init(region: UnsafeMutableRawBufferPointer, chunkBytes: Int, chunkCount: Int?) throws(PipelineError) {
        guard chunkBytes > 0, chunkBytes % ChunkLayout.alignment == 0 else {
            throw .invalidConfiguration(
                "chunk size \(chunkBytes) must be a positive multiple of \(ChunkLayout.alignment) bytes")
        }
        guard let base = region.baseAddress, Int(bitPattern: base) % ChunkLayout.alignment == 0 else {
            throw .invalidConfiguration("the ingest region must start on a \(ChunkLayout.alignment)-byte boundary")
        }
        let fitting = region.count / chunkBytes
        let count = chunkCount ?? fitting
        guard count > 0, count <= fitting else {
            throw .invalidConfiguration(
                "\(count) chunks of \(chunkBytes) bytes do not fit a region of \(region.count) bytes (room for \(fitting))")
        }
        self.region = region
        self.chunkBytes = chunkBytes
        self.chunkCount = count
    }

    /// Chunk `index`'s buffer: `region[index * chunkBytes ..< (index + 1) * chunkBytes]`.
    func buffer(ofChunk index: Int) -> UnsafeMutableRawBufferPointer {
        precondition(index >= 0 && index < chunkCount, "chunk \(index) outside 0..<\(chunkCount)")
        let start = index * chunkBytes
        return UnsafeMutableRawBufferPointer(rebasing: region[start..<(start + chunkBytes)])
    }

    /// Throws `.invalidRequest` when `request` cannot be submitted as it is.
    ///
    /// - Parameter isInFlight: whether the request's chunk (if in range) is
    ///   already being read; the stream knows, the layout does not.
    func check(_ request: ReadRequest, isInFlight: (Int) -> Bool) throws(PipelineError) {
        let chunk = request.chunkIndex
        func reject(_ reason: String) -> PipelineError {
            .invalidRequest(chunk: chunk, slot: nil, reason: reason)
        }
        guard chunk >= 0, chunk < chunkCount else {
            throw reject("chunk index \(chunk) is outside 0..<\(chunkCount)")
        }
        guard !isInFlight(chunk) else {
            throw reject("chunk \(chunk) is already being read; reap its completion before reusing the buffer")
        }
        guard request.length > 0, request.length <= chunkBytes else {
            throw reject("length \(request.length) must be between 1 and the chunk size \(chunkBytes)")
        }
        guard request.fd.rawValue >= 0 else {
            throw reject("file descriptor \(request.fd.rawValue) of \(request.path) is not open")
        }
        // off_t is signed: an offset (or end) past Int64.max would reach the
        // kernel as a negative offset.
        let (end, overflow) = request.fileOffset.addingReportingOverflow(UInt64(request.length))
        guard !overflow, end <= UInt64(Int64.max) else {
            throw reject("file offset \(request.fileOffset) + length \(request.length) exceeds the largest file offset")
        }
    }
}

extension Int {
    /// `self` rounded up to a multiple of `alignment` (a power of two).
    func roundedUp(toMultipleOf alignment: Int) -> Int {
        (self + alignment - 1) & ~(alignment - 1)
    }

    /// `self` rounded down to a multiple of `alignment` (a power of two).
    func roundedDown(toMultipleOf alignment: Int) -> Int {
        self & ~(alignment - 1)
    }
}
