import Sluice
import SluiceCore
import SluiceOps

// The self-test's stress check: publish, cancel and reclaim as fast as the
// host can, every slot's outcome and every counter checked.

extension SelfTestRun {
    /// Publish/cancel/reclaim as fast as the host can, with some bad slots;
    /// every slot's outcome and every counter must equal what was published.
    func stressCheck() throws(CheckFailure) -> String {
        let cycles = options.stressCycles ?? (options.quick ? 20_000 : 100_000)
        var stress = StressRun(
            ring: subject.ring, geometry: geometry, patterns: StressPatterns(staging: subject.dataRegion, rng: &rng))
        do {
            let before = try subject.ring.observe()
            let started = clockNow()
            var lastMove = clockNow()
            var epoch = subject.ring.epoch
            while stress.published < cycles || stress.inFlightCount > 0 {
                var moved = false
                for slot in 0..<geometry.slotCount {
                    if try stress.reclaimIfFinished(slot: slot) { moved = true }
                    guard stress.published < cycles, stress.isFree(slot) else { continue }
                    try stress.publishNext(slot: slot, rng: &rng)
                    moved = true
                }
                let now = clockNow()
                if moved {
                    lastMove = now
                } else {
                    if now - lastMove > 30_000_000_000 {
                        throw CheckFailure(message: "no slot finished for 30 s; \(stress.stuckText)")
                    }
                    epoch = try subject.waitForProgress(after: epoch, timeout: .milliseconds(1))
                }
            }
            let elapsed = clockNow() - started
            try stress.checkCounters(since: before, backend: subject)
            let rate = Double(stress.published) / (Double(elapsed) / 1e9)
            return "\(stress.published) publish/reclaim cycles over \(geometry.slotCount) slots (\(stress.done) DONE incl. \(stress.lateCancels) cancels that came too late, \(stress.cancelled) CANCELLED, \(stress.faulted) FAULTED), \(Int(rate)) slots/s: epoch and every counter equal what was published; no stale or doubled result"
        } catch {
            throw CheckFailure(error)
        }
    }
}

/// The stress check's chunks: small, of distinct lengths, staged once in
/// the data region, each with the count words CountOp gives for it.
struct StressPatterns {
    static let count = 61
    private(set) var offsets: [Int] = []
    private(set) var lengths: [Int] = []
    private(set) var expected: [[UInt32]] = []

    /// Writes the chunks into `staging` (text or random bytes, at odd offsets).
    init(staging: UnsafeMutableRawBufferPointer, rng: inout SelfTestRandom) {
        var cursor = 0
        for k in 0..<Self.count {
            let length = 1 + (k * 37) % 300
            let offset = cursor + k % 7
            let bytes = (k % 3 == 0 ? TestPattern.text : TestPattern.random).bytes(count: length, rng: &rng)
            bytes.withUnsafeBytes { raw in
                UnsafeMutableRawBufferPointer(rebasing: staging[offset..<(offset + length)]).copyMemory(from: raw)
            }
            var words = [UInt32](repeating: 0, count: CountOp.resultWords)
            bytes.withUnsafeBytes { raw in words.withUnsafeMutableBufferPointer { CountOp.run(raw, into: $0) } }
            offsets.append(offset)
            lengths.append(length)
            expected.append(words)
            cursor = offset + length
        }
    }
}

/// The stress check's ring: what each slot was published as, and the
/// outcomes the host saw, which the ring's counters must equal at the end.
struct StressRun {
    enum Kind { case count, bad, cancel }

    let ring: RingView
    let geometry: RingGeometry
    let patterns: StressPatterns
    private var inFlight: [(pattern: Int, kind: Kind)?]
    private var lastPattern: [Int]
    private(set) var published = 0, done = 0, faulted = 0, cancelled = 0, lateCancels = 0
    private(set) var bytes: UInt64 = 0

    init(ring: RingView, geometry: RingGeometry, patterns: StressPatterns) {
        self.ring = ring
        self.geometry = geometry
        self.patterns = patterns
        inFlight = Array(repeating: nil, count: geometry.slotCount)
        lastPattern = Array(repeating: -1, count: geometry.slotCount)
    }

    var inFlightCount: Int { inFlight.lazy.filter { $0 != nil }.count }
    func isFree(_ slot: Int) -> Bool { inFlight[slot] == nil }

    /// The slots still in flight, for the message of a stall.
    var stuckText: String {
        let stuck = inFlight.indices.filter { inFlight[$0] != nil }
        return "\(stuck.count) in flight (first: slot \(stuck.first ?? -1)), \(published) published"
    }

    /// Reclaims `slot` if it finished, checking its outcome against what it
    /// was published as; whether it did.
    mutating func reclaimIfFinished(slot: Int) throws(CheckFailure) -> Bool {
        guard let entry = inFlight[slot] else { return false }
        let record: SlotRecord
        do {
            guard try ring.status(ofSlot: slot).isTerminal else { return false }
            record = try ring.reclaim(slot: slot)
        } catch {
            throw CheckFailure(error)
        }
        inFlight[slot] = nil
        try check(record, of: entry, slot: slot)
        return true
    }

    private mutating func check(_ record: SlotRecord, of entry: (pattern: Int, kind: Kind), slot: Int) throws(CheckFailure) {
        let place = "slot \(slot), cycle \(published), pattern \(entry.pattern) (\(patterns.lengths[entry.pattern]) bytes)"
        switch (record.status, entry.kind) {
        case (.done, .count), (.done, .cancel):
            if entry.kind == .cancel { lateCancels += 1 }
            let start = geometry.resultOffset(ofSlot: slot)
            let want = patterns.expected[entry.pattern]
            guard record.completion == UInt32(CountOp.resultWords) else {
                throw CheckFailure(message: "\(place): DONE with completion \(record.completion)")
            }
            let results = ring.results
            if let w = (0..<CountOp.resultWords).first(where: { results[start + $0] != want[$0] }) {
                throw CheckFailure(message: "\(place): word \(w) (\(wordName(w))) is \(results[start + w]), CountOp says \(want[w]) (a stale or doubly processed slot?)")
            }
            done += 1
            bytes += UInt64(patterns.lengths[entry.pattern])
        case (.faulted, .bad):
            guard record.completion == FaultCode.unknownOpcode.rawValue else {
                throw CheckFailure(message: "\(place): faulted with code \(record.completion), expected \(FaultCode.unknownOpcode.rawValue)")
            }
            faulted += 1
        case (.cancelled, .cancel):
            cancelled += 1
        default:
            throw CheckFailure(message: "\(place): ended \(record.status) with completion \(record.completion) though it was published as \(entry.kind)")
        }
    }

    /// Publishes a random pattern (not the slot's last) to the free `slot`:
    /// one in 16 with an unknown opcode, one in 4 cancelled at once (racing
    /// the workers: the request may come after the claim), the rest counts.
    mutating func publishNext(slot: Int, rng: inout SelfTestRandom) throws(PipelineError) {
        var pattern = rng.below(StressPatterns.count)
        if pattern == lastPattern[slot] { pattern = (pattern + 1) % StressPatterns.count }
        lastPattern[slot] = pattern
        let roll = rng.below(16)
        let kind: Kind = roll == 0 ? .bad : roll < 5 ? .cancel : .count
        let start = geometry.resultOffset(ofSlot: slot)
        let results = ring.results
        for w in 0..<geometry.resultWordsPerSlot { results[start + w] = SelfTest.poison }
        try ring.publish(slot: slot, SlotPayload(
            opcode: kind == .bad ? Opcode(rawValue: 77) : .count, bufferOffset: UInt64(patterns.offsets[pattern]),
            length: UInt32(patterns.lengths[pattern]), chunkIndex: UInt32(published),
            resultOffset: UInt32(start), resultCapacity: UInt32(geometry.resultWordsPerSlot)))
        if kind == .cancel {
            do { try ring.requestCancel(slot: slot) } catch {}
        }
        inFlight[slot] = (pattern, kind)
        published += 1
    }

    /// Waits (up to 2 s) for the epoch to count every publish, then checks
    /// that the ring's counters moved by exactly what the host saw.
    func checkCounters(since before: ControlBlock, backend: any MegakernelBackend) throws(CheckFailure) {
        let after: ControlBlock
        do { after = try ControlDelta.observe(backend, atEpoch: before.epoch &+ UInt64(published)) } catch {
            throw CheckFailure(error)
        }
        let delta = ControlDelta(from: before, to: after)
        guard delta.epoch == UInt64(published), delta.done == UInt64(done), delta.faulted == UInt64(faulted),
              delta.cancelled == UInt64(cancelled), delta.bytes == bytes
        else {
            throw CheckFailure(message: "after \(published) publishes the counters moved by epoch \(delta.epoch), done \(delta.done), faulted \(delta.faulted), cancelled \(delta.cancelled), bytes \(delta.bytes); the host saw \(done) DONE, \(faulted) FAULTED, \(cancelled) CANCELLED, \(bytes) bytes (a lost or double claim?)")
        }
    }
}
