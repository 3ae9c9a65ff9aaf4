import Synchronization

/// Typed, atomic access to a ring region that some other owner allocated
/// (pinned host memory, mapped into the GPU, or plain memory for the CPU
/// backend). This is the only code that touches slot and control words
/// through raw pointers.
///
/// Memory ordering (see docs/protocol.md):
/// - publish: payload words are stored first, then the status with release;
/// - claim: the status is read with acquire (inside the compare-and-swap);
/// - finish: results and the completion word are stored, then the status
///   with release, then the epoch is incremented with release;
/// - observe: the epoch is read with acquire, then statuses with acquire.
public struct RingView: @unchecked Sendable {
    /// Start of the ring region (the control block); the memory must outlive the view.
    public let base: UnsafeMutableRawPointer
    /// The sizes and offsets of the ring region at `base`.
    public let geometry: RingGeometry

    /// Wraps `bytes`, which must hold at least `geometry.byteCount` bytes, 8-byte aligned.
    public init(bytes: UnsafeMutableRawBufferPointer, geometry: RingGeometry) throws(PipelineError) {
        guard let base = bytes.baseAddress, bytes.count >= geometry.byteCount else {
            throw .invalidConfiguration("ring region of \(bytes.count) bytes is smaller than the \(geometry.byteCount) the geometry needs")
        }
        guard Int(bitPattern: base) % 8 == 0 else {
            throw .invalidConfiguration("ring region is not 8-byte aligned")
        }
        self.base = base
        self.geometry = geometry
    }

    // MARK: raw words

    @inline(__always)
    func slotWord(_ slot: Int, _ word: SlotWord) -> UnsafePointer<Atomic<UInt32>> {
        UnsafePointer(
            (base + geometry.slotOffset(slot) + word.rawValue * 4).assumingMemoryBound(to: Atomic<UInt32>.self))
    }

    @inline(__always)
    func controlWord(_ word: ControlWord) -> UnsafePointer<Atomic<UInt64>> {
        UnsafePointer((base + word.rawValue * 8).assumingMemoryBound(to: Atomic<UInt64>.self))
    }

    /// The result region as words (host view).
    public var results: UnsafeMutableBufferPointer<UInt32> {
        UnsafeMutableBufferPointer(
            start: (base + geometry.resultsOffset).assumingMemoryBound(to: UInt32.self),
            count: geometry.resultWordsTotal)
    }

    func checkSlot(_ slot: Int) throws(PipelineError) {
        guard slot >= 0, slot < geometry.slotCount else {
            throw .invalidRequest(chunk: nil, slot: slot, reason: "slot index outside 0..<\(geometry.slotCount)")
        }
    }

    // MARK: host side

    /// Zeroes the ring and writes the control block's magic and slot count.
    /// Only while no worker runs.
    public func initialize() {
        base.initializeMemory(as: UInt8.self, repeating: 0, count: geometry.byteCount)
        controlWord(.slotCount).pointee.store(UInt64(geometry.slotCount), ordering: .relaxed)
        controlWord(.magic).pointee.store(ControlBlock.magic, ordering: .releasing)
    }

    /// The slot's status (acquire). Throws for a value outside the protocol.
    public func status(ofSlot slot: Int) throws(PipelineError) -> SlotStatus {
        try checkSlot(slot)
        let raw = slotWord(slot, .status).pointee.load(ordering: .acquiring)
        guard let s = SlotStatus(rawValue: raw) else {
            throw .malformed(what: "slot \(slot)", detail: "status word is \(raw), which is no protocol state")
        }
        return s
    }

    /// Writes `payload` into an EMPTY slot and publishes it (status last, with release).
    public func publish(slot: Int, _ payload: SlotPayload) throws(PipelineError) {
        let current = try status(ofSlot: slot)
        guard current.allows(.published, by: .host) else {
            throw .illegalTransition(slot: slot, from: current, to: .published, by: .host)
        }
        let words = payload.words
        for word in SlotWord.allCases where word != .status {
            slotWord(slot, word).pointee.store(words[word.rawValue], ordering: .relaxed)
        }
        slotWord(slot, .status).pointee.store(SlotStatus.published.rawValue, ordering: .releasing)
    }

    /// Asks the workers not to run a PUBLISHED slot. The worker that claims it
    /// confirms by moving it to CANCELLED; a slot already CLAIMED finishes normally.
    public func requestCancel(slot: Int) throws(PipelineError) {
        let current = try status(ofSlot: slot)
        guard current == .published else {
            throw .illegalTransition(slot: slot, from: current, to: .cancelled, by: .host)
        }
        // The host is the only writer of the flags, so load-or-store needs no
        // read-modify-write atomic (none may target GPU-mapped memory); the
        // region bit written with the payload must survive.
        let flags = slotWord(slot, .hostFlags).pointee.load(ordering: .relaxed)
        slotWord(slot, .hostFlags).pointee.store(flags | SlotHostFlag.cancelRequested, ordering: .releasing)
    }

    /// Reads a finished slot and returns it to EMPTY.
    public func reclaim(slot: Int) throws(PipelineError) -> SlotRecord {
        let current = try status(ofSlot: slot)
        guard current.allows(.empty, by: .host) else {
            throw .illegalTransition(slot: slot, from: current, to: .empty, by: .host)
        }
        let record = try self.record(ofSlot: slot)
        slotWord(slot, .status).pointee.store(SlotStatus.empty.rawValue, ordering: .releasing)
        return record
    }

    /// A snapshot of one slot.
    public func record(ofSlot slot: Int) throws(PipelineError) -> SlotRecord {
        let s = try status(ofSlot: slot)
        var words = [UInt32](repeating: 0, count: SlotWord.count)
        for word in SlotWord.allCases where word != .status {
            words[word.rawValue] = slotWord(slot, word).pointee.load(ordering: .relaxed)
        }
        return SlotRecord(
            status: s, payload: SlotPayload(words: words),
            hostFlags: words[SlotWord.hostFlags.rawValue], completion: words[SlotWord.completion.rawValue])
    }

    /// The slot's result area (host view).
    public func resultArea(ofSlot slot: Int) -> UnsafeMutableBufferPointer<UInt32> {
        let start = geometry.resultOffset(ofSlot: slot)
        return UnsafeMutableBufferPointer(rebasing: results[start..<(start + geometry.resultWordsPerSlot)])
    }

    /// The epoch: slots finished since the ring was initialized (acquire).
    public var epoch: UInt64 { controlWord(.epoch).pointee.load(ordering: .acquiring) }

    /// Reads the whole control block (epoch first, with acquire).
    public func observe() throws(PipelineError) -> ControlBlock {
        _ = epoch
        var words = [UInt64](repeating: 0, count: ControlWord.count)
        for word in ControlWord.allCases {
            words[word.rawValue] = controlWord(word).pointee.load(ordering: .acquiring)
        }
        return try ControlBlock(words: words)
    }

    /// Points the workers at the scan-table directory (address in their
    /// address space, entry count). Once, before the workers start.
    public func setScanDirectory(address: UInt64, entries: UInt64) {
        controlWord(.scanDirectoryEntries).pointee.store(entries, ordering: .relaxed)
        controlWord(.scanDirectoryAddress).pointee.store(address, ordering: .releasing)
    }

    /// The scan-table directory as (address, entries); address 0 when none.
    public var scanDirectory: (address: UInt64, entries: UInt64) {
        let a = controlWord(.scanDirectoryAddress).pointee.load(ordering: .acquiring)
        return (a, controlWord(.scanDirectoryEntries).pointee.load(ordering: .relaxed))
    }

    /// Points the workers at a tenant table (address in their address space);
    /// address 0 turns tenant checks off. Only while no slot is in flight.
    public func setTenantTable(address: UInt64, words: UInt64) {
        controlWord(.tenantTableWords).pointee.store(words, ordering: .relaxed)
        controlWord(.tenantTableAddress).pointee.store(address, ordering: .releasing)
    }

    /// The installed tenant table as (address, words); address 0 when none.
    public var tenantTable: (address: UInt64, words: UInt64) {
        let a = controlWord(.tenantTableAddress).pointee.load(ordering: .acquiring)
        return (a, controlWord(.tenantTableWords).pointee.load(ordering: .relaxed))
    }

    /// Sets the shutdown word (release): every worker leaves its polling loop.
    public func requestShutdown() {
        controlWord(.shutdown).pointee.store(1, ordering: .releasing)
    }

    /// Whether the host asked the workers to exit (acquire load).
    public var isShutdownRequested: Bool {
        controlWord(.shutdown).pointee.load(ordering: .acquiring) != 0
    }

    // MARK: worker side (the CPU megakernel; the GPU kernel mirrors these steps)

    /// What a worker's claim attempt found.
    public enum ClaimOutcome: Sendable, Equatable {
        /// The worker owns the slot and must finish it.
        case claimed(SlotPayload)
        /// The host had asked to cancel it; it is now CANCELLED and counted.
        case cancelled
        /// Not PUBLISHED, or another worker won the race.
        case unavailable
    }

    /// PUBLISHED → CLAIMED by compare-and-swap; honours a cancel request.
    public func tryClaim(slot: Int) -> ClaimOutcome {
        let status = slotWord(slot, .status)
        guard status.pointee.load(ordering: .relaxed) == SlotStatus.published.rawValue else { return .unavailable }
        let (won, _) = status.pointee.compareExchange(
            expected: SlotStatus.published.rawValue, desired: SlotStatus.claimed.rawValue,
            ordering: .acquiringAndReleasing)
        guard won else { return .unavailable }
        // A NOP ignores the cancel flag (Opcode.nop): the GPU dispatcher
        // finishes it without reading any other word.
        if slotWord(slot, .hostFlags).pointee.load(ordering: .acquiring) & SlotHostFlag.cancelRequested != 0,
            slotWord(slot, .opcode).pointee.load(ordering: .relaxed) != Opcode.nop.rawValue
        {
            status.pointee.store(SlotStatus.cancelled.rawValue, ordering: .releasing)
            controlWord(.slotsCancelled).pointee.add(1, ordering: .relaxed)
            controlWord(.epoch).pointee.add(1, ordering: .releasing)
            return .cancelled
        }
        var words = [UInt32](repeating: 0, count: SlotWord.count)
        for word in SlotWord.allCases where word != .status {
            words[word.rawValue] = slotWord(slot, word).pointee.load(ordering: .relaxed)
        }
        return .claimed(SlotPayload(words: words))
    }

    /// CLAIMED → DONE, after the results are written.
    public func complete(slot: Int, resultWords: UInt32, bytes: UInt64) {
        slotWord(slot, .completion).pointee.store(resultWords, ordering: .relaxed)
        slotWord(slot, .status).pointee.store(SlotStatus.done.rawValue, ordering: .releasing)
        controlWord(.slotsDone).pointee.add(1, ordering: .relaxed)
        controlWord(.bytesProcessed).pointee.add(bytes, ordering: .relaxed)
        controlWord(.epoch).pointee.add(1, ordering: .releasing)
    }

    /// CLAIMED → FAULTED with `code`, recording it as the last fault.
    public func fault(slot: Int, code: FaultCode, opcode: Opcode) {
        slotWord(slot, .completion).pointee.store(code.rawValue, ordering: .relaxed)
        slotWord(slot, .status).pointee.store(SlotStatus.faulted.rawValue, ordering: .releasing)
        controlWord(.lastFault).pointee.store(
            FaultRecord(slot: slot, code: code, opcodeLow16: opcode.rawValue).packed, ordering: .relaxed)
        controlWord(.slotsFaulted).pointee.add(1, ordering: .relaxed)
        controlWord(.epoch).pointee.add(1, ordering: .releasing)
    }

    /// Counts a worker into its polling loop.
    public func workerEntered() { controlWord(.workersRunning).pointee.add(1, ordering: .releasing) }
    /// Counts a worker out of its polling loop.
    public func workerLeft() { controlWord(.workersRunning).pointee.subtract(1, ordering: .releasing) }
}
