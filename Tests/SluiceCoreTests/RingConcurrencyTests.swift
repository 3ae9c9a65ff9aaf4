import Synchronization
import SluiceCore
import Testing

@Suite("RingView under concurrent workers")
struct RingConcurrencyTests {
    /// What each racing thread saw.
    final class Tally: Sendable {
        let claimed: Mutex<[Int]> = Mutex([])
        let cancelled: Mutex<[Int]> = Mutex([])
        let payloadMismatches = Atomic<Int>(0)
    }

    @Test("threads racing tryClaim on the same published slots claim each exactly once")
    func racingClaims() throws {
        let slots = 256
        let threads = 6
        let rounds = 12
        let mem = try RingMemory(slots: slots, resultWords: 1)
        let ring = mem.view
        ring.initialize()

        var expectedEpoch: UInt64 = 0
        var expectedDone: UInt64 = 0
        var expectedCancelled: UInt64 = 0
        var expectedBytes: UInt64 = 0

        for round in 0..<rounds {
            // Every third slot (shifting each round) is cancel-requested before the race.
            let cancelSet = Set((0..<slots).filter { ($0 + round) % 3 == 0 })
            @Sendable func payload(_ slot: Int) -> SlotPayload {
                SlotPayload(
                    opcode: .count, bufferOffset: UInt64(slot) << 12, length: UInt32(round * 1_000 + slot),
                    chunkIndex: UInt32(round * slots + slot), arguments: (UInt32(round), UInt32(slot)),
                    resultOffset: UInt32(slot), resultCapacity: 1)
            }
            for s in 0..<slots {
                try ring.publish(slot: s, payload(s))
                if cancelSet.contains(s) { try ring.requestCancel(slot: s) }
            }

            let tally = Tally()
            let start = StartLine(parties: threads)
            runOnThreads(threads) { t in
                var claimed: [Int] = []
                var cancelled: [Int] = []
                start.arriveAndWait()
                // Half the threads sweep forward, half backward, several times, so
                // that every slot is contended by several workers.
                for sweep in 0..<3 {
                    let order = (t + sweep) % 2 == 0 ? Array(0..<slots) : Array((0..<slots).reversed())
                    for s in order {
                        switch ring.tryClaim(slot: s) {
                        case .claimed(let p):
                            if p != payload(s) { tally.payloadMismatches.add(1, ordering: .relaxed) }
                            ring.resultArea(ofSlot: s)[0] = UInt32(t)
                            ring.complete(slot: s, resultWords: 1, bytes: UInt64(p.length))
                            claimed.append(s)
                        case .cancelled:
                            cancelled.append(s)
                        case .unavailable:
                            break
                        }
                    }
                }
                tally.claimed.withLock { $0 += claimed }
                tally.cancelled.withLock { $0 += cancelled }
            }

            let claimed = tally.claimed.withLock { $0 }
            let cancelled = tally.cancelled.withLock { $0 }
            #expect(tally.payloadMismatches.load(ordering: .relaxed) == 0, "round \(round)")
            #expect(claimed.count == slots - cancelSet.count, "round \(round): claims \(claimed.count)")
            #expect(Set(claimed).count == claimed.count, "round \(round): a slot was claimed twice")
            #expect(Set(claimed) == Set(0..<slots).subtracting(cancelSet), "round \(round)")
            #expect(cancelled.count == cancelSet.count, "round \(round): cancels \(cancelled.count)")
            #expect(Set(cancelled) == cancelSet, "round \(round)")

            expectedEpoch += UInt64(slots)
            expectedDone += UInt64(slots - cancelSet.count)
            expectedCancelled += UInt64(cancelSet.count)
            expectedBytes += (0..<slots).filter { !cancelSet.contains($0) }.reduce(0) { $0 + UInt64(round * 1_000 + $1) }
            let control = try ring.observe()
            #expect(control.epoch == expectedEpoch)
            #expect(control.slotsDone == expectedDone)
            #expect(control.slotsCancelled == expectedCancelled)
            #expect(control.slotsFaulted == 0)
            #expect(control.bytesProcessed == expectedBytes)

            for s in 0..<slots {
                let record = try ring.reclaim(slot: s)
                #expect(record.status == (cancelSet.contains(s) ? .cancelled : .done))
                #expect(record.payload == payload(s))
            }
        }
        #expect(mem.guardIntact)
    }

    @Test("tight race: workers sweeping the same slots in lockstep never both win one")
    func tightRace() throws {
        // No work between claims, every thread sweeping in the same direction, and no
        // more threads than cores: this maximises the chance that two workers look at
        // the same PUBLISHED slot at the same instant, which a load-then-store "claim"
        // (instead of a compare-and-swap) would let both of them win.
        let slots = 8_192
        let threads = 2
        let mem = try RingMemory(slots: slots, resultWords: 0)
        let ring = mem.view
        ring.initialize()
        let payload = SlotPayload(opcode: .count, bufferOffset: 0, length: 1)
        for round in 0..<6 {
            for s in 0..<slots { try ring.publish(slot: s, payload) }
            let tally = Tally()
            let start = StartLine(parties: threads)
            runOnThreads(threads) { _ in
                var mine: [Int] = []
                mine.reserveCapacity(slots)
                start.arriveAndWait()
                for s in 0..<slots {
                    if case .claimed = ring.tryClaim(slot: s) { mine.append(s) }
                }
                tally.claimed.withLock { $0 += mine }
            }
            let claimed = tally.claimed.withLock { $0 }
            #expect(claimed.count == slots, "round \(round): \(claimed.count - slots) slots were claimed twice")
            #expect(Set(claimed).count == slots, "round \(round)")
            for s in 0..<slots {
                ring.complete(slot: s, resultWords: 0, bytes: 1)
                _ = try ring.reclaim(slot: s)
            }
        }
        #expect(try ring.observe().slotsDone == UInt64(6 * slots))
    }

    @Test("concurrent workers from Task.detached: each slot claimed once, counters add up")
    func detachedTasks() async throws {
        let slots = 128
        let mem = try RingMemory(slots: slots, resultWords: 0)
        let ring = mem.view
        ring.initialize()
        for s in 0..<slots {
            try ring.publish(slot: s, SlotPayload(opcode: .count, bufferOffset: 0, length: 10, chunkIndex: UInt32(s)))
        }
        let claims = await withTaskGroup(of: [Int].self) { group in
            for t in 0..<4 {
                group.addTask {
                    await Task.detached {
                        var mine: [Int] = []
                        for s in (t % 2 == 0 ? Array(0..<slots) : Array((0..<slots).reversed())) {
                            if case .claimed(let p) = ring.tryClaim(slot: s) {
                                #expect(p.chunkIndex == UInt32(s))
                                if s % 5 == 0 {
                                    ring.fault(slot: s, code: .badArguments, opcode: p.opcode)
                                } else {
                                    ring.complete(slot: s, resultWords: 0, bytes: UInt64(p.length))
                                }
                                mine.append(s)
                            }
                            await Task.yield()
                        }
                        return mine
                    }.value
                }
            }
            var all: [Int] = []
            for await part in group { all += part }
            return all
        }
        #expect(claims.count == slots)
        #expect(Set(claims) == Set(0..<slots))
        let faulted = (0..<slots).filter { $0 % 5 == 0 }.count
        let control = try ring.observe()
        #expect(control.epoch == UInt64(slots))
        #expect(control.slotsFaulted == UInt64(faulted))
        #expect(control.slotsDone == UInt64(slots - faulted))
        #expect(control.bytesProcessed == UInt64(10 * (slots - faulted)))
        #expect(control.lastFault?.code == .badArguments)
        #expect(control.lastFault.map { $0.slot % 5 == 0 } == true)
    }
}
