/// Sizes and byte offsets of the ring region: control block, slots, result areas.
///
/// ```
/// offset 0                      control block (128 bytes), padded to 256
/// slotsOffset = 256             slotCount × 64-byte slots
/// resultsOffset (256-aligned)   slotCount × resultWordsPerSlot × 4 bytes
/// ```
/// Chunk data lives in a separate data region (pinned host memory, or device
/// memory for GPUDirect); slots refer to it by byte offset.
public struct RingGeometry: Hashable, Sendable {
    /// Bytes the control block takes with its padding; slots start there.
    public static let controlBytesPadded = 256
    /// Alignment in bytes of the slot array and the result areas.
    public static let alignment = 256

    /// Slots in the ring, 1 to 1,048,576.
    public var slotCount: Int
    /// 32-bit words of result area per slot, 0 to 16,777,216.
    public var resultWordsPerSlot: Int

    /// A geometry; throws `invalidConfiguration` when a count is out of range or the result region exceeds the 2^32 words a slot can address.
    public init(slotCount: Int, resultWordsPerSlot: Int) throws(PipelineError) {
        guard slotCount > 0, slotCount <= 1 << 20 else {
            throw .invalidConfiguration("slot count \(slotCount) must be between 1 and \(1 << 20)")
        }
        guard resultWordsPerSlot >= 0, resultWordsPerSlot <= 1 << 24 else {
            throw .invalidConfiguration("result words per slot \(resultWordsPerSlot) must be between 0 and \(1 << 24)")
        }
        // Slots name their result area with a 32-bit word offset.
        guard slotCount * resultWordsPerSlot <= Int(UInt32.max) else {
            throw .invalidConfiguration(
                "\(slotCount) slots × \(resultWordsPerSlot) result words exceed the 2^32 words a slot can address")
        }
        self.slotCount = slotCount
        self.resultWordsPerSlot = resultWordsPerSlot
    }

    /// Byte offset of slot 0 in the ring region.
    public var slotsOffset: Int { RingGeometry.controlBytesPadded }
    /// Byte offset of the result region, after the slots, 256-aligned.
    public var resultsOffset: Int {
        let end = slotsOffset + slotCount * SlotWord.bytesPerSlot
        return (end + RingGeometry.alignment - 1) / RingGeometry.alignment * RingGeometry.alignment
    }
    /// 32-bit words in the result region (every slot's area).
    public var resultWordsTotal: Int { slotCount * resultWordsPerSlot }
    /// Bytes the ring region needs.
    public var byteCount: Int { resultsOffset + resultWordsTotal * 4 }

    /// Byte offset of slot `index`.
    public func slotOffset(_ index: Int) -> Int { slotsOffset + index * SlotWord.bytesPerSlot }
    /// First word, in the result region, of slot `index`'s result area.
    public func resultOffset(ofSlot index: Int) -> Int { index * resultWordsPerSlot }
}
