/// Encodes and decodes a whole ring region as bytes: for snapshots, tests and
/// fuzzing. Decoding never traps; every malformed input is a `PipelineError`.
public struct RingImage: Hashable, Sendable {
    /// The ring's sizes.
    public var geometry: RingGeometry
    /// The decoded control block.
    public var control: ControlBlock
    /// Every slot, decoded, in index order.
    public var slots: [SlotRecord]
    /// The whole result region, as 32-bit words.
    public var results: [UInt32]

    /// An image with each part given; encoding checks that the parts agree with `geometry`.
    public init(geometry: RingGeometry, control: ControlBlock, slots: [SlotRecord], results: [UInt32]) {
        self.geometry = geometry
        self.control = control
        self.slots = slots
        self.results = results
    }

    /// Little-endian bytes laid out exactly as in shared memory.
    public func encode() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: geometry.byteCount)
        func put32(_ v: UInt32, at o: Int) { for i in 0..<4 { out[o + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
        func put64(_ v: UInt64, at o: Int) { for i in 0..<8 { out[o + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
        for (i, w) in control.words.enumerated() { put64(w, at: i * 8) }
        for (s, slot) in slots.enumerated() {
            for (i, w) in slot.words.enumerated() { put32(w, at: geometry.slotOffset(s) + i * 4) }
        }
        for (i, w) in results.enumerated() { put32(w, at: geometry.resultsOffset + i * 4) }
        return out
    }

    /// Decodes `bytes` for `geometry`, rejecting a wrong length, an unknown
    /// status, an opcode in a live slot that is neither defined nor in the user range, or a bad control block.
    public static func decode(_ bytes: [UInt8], geometry: RingGeometry) throws(PipelineError) -> RingImage {
        guard bytes.count == geometry.byteCount else {
            throw .malformed(what: "ring image", detail: "expected \(geometry.byteCount) bytes, got \(bytes.count)")
        }
        func get32(_ o: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[o + $1]) << (8 * $1) } }
        func get64(_ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(bytes[o + $1]) << (8 * $1) } }
        let padding = Array(ControlWord.byteCount..<geometry.slotsOffset)
            + Array(geometry.slotOffset(geometry.slotCount)..<geometry.resultsOffset)
        if let bad = padding.first(where: { bytes[$0] != 0 }) {
            throw .malformed(what: "ring image", detail: "padding byte at offset \(bad) is \(bytes[bad]), expected 0")
        }
        let control = try ControlBlock(words: (0..<ControlWord.count).map { get64($0 * 8) })
        guard control.slotCount == UInt64(geometry.slotCount) else {
            throw .malformed(what: "ring image", detail: "control block says \(control.slotCount) slots, geometry has \(geometry.slotCount)")
        }
        if let fault = control.lastFault, fault.slot >= geometry.slotCount {
            throw .malformed(what: "ring image", detail: "last fault names slot \(fault.slot) of \(geometry.slotCount)")
        }
        var slots: [SlotRecord] = []
        slots.reserveCapacity(geometry.slotCount)
        for s in 0..<geometry.slotCount {
            let words = (0..<SlotWord.count).map { get32(geometry.slotOffset(s) + $0 * 4) }
            let raw = words[SlotWord.status.rawValue]
            guard let status = SlotStatus(rawValue: raw) else {
                throw .malformed(what: "slot \(s)", detail: "status word is \(raw), which is no protocol state")
            }
            let payload = SlotPayload(words: words)
            if status != .empty, !payload.opcode.isInProtocol {
                throw .malformed(what: "slot \(s)", detail: "opcode \(payload.opcode.rawValue) is neither defined nor in the user range")
            }
            let completion = words[SlotWord.completion.rawValue]
            if status == .faulted, FaultCode(rawValue: completion) == nil {
                throw .malformed(what: "slot \(s)", detail: "FAULTED with unknown fault code \(completion)")
            }
            slots.append(SlotRecord(
                status: status, payload: payload, hostFlags: words[SlotWord.hostFlags.rawValue], completion: completion))
        }
        let results = (0..<geometry.resultWordsTotal).map { get32(geometry.resultsOffset + $0 * 4) }
        return RingImage(geometry: geometry, control: control, slots: slots, results: results)
    }
}
