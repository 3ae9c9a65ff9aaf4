import SluiceCore
import SluiceOps
import Testing

@testable import SluiceCPU

/// A naive count written independently of CountOp: the oracle.
func naiveCount(_ bytes: [UInt8]) -> [UInt32] {
    var hist = [UInt32](repeating: 0, count: 256)
    for b in bytes { hist[Int(b)] += 1 }
    return [UInt32(bytes.count), hist[10]] + hist
}

struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func randomBytes(_ n: Int, _ rng: inout SeededRandom) -> [UInt8] {
    (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
}

func makeBackend(slots: Int = 8, dataBytes: Int = 1 << 20, workers: Int = 2) throws -> CPUBackend {
    let geometry = try RingGeometry(slotCount: slots, resultWordsPerSlot: CountOp.resultWords)
    return try CPUBackend(configuration: BackendConfiguration(geometry: geometry, dataBytes: dataBytes, workers: workers))
}

/// Waits until `slot` is terminal, failing the test after 10 s.
func awaitTerminal(_ backend: CPUBackend, slot: Int) throws -> SlotStatus {
    var epoch = backend.ring.epoch
    for _ in 0..<10_000 {
        let s = try backend.ring.status(ofSlot: slot)
        if s.isTerminal { return s }
        epoch = try backend.waitForProgress(after: epoch, timeout: .milliseconds(1))
    }
    Issue.record("slot \(slot) never finished")
    return try backend.ring.status(ofSlot: slot)
}

@Suite struct CountOpTests {
    @Test(arguments: [0, 1, 3, 4, 5, 255, 4096, 65_537])
    func matchesNaiveCount(size: Int) {
        var rng = SeededRandom(state: UInt64(size) &+ 7)
        var bytes = randomBytes(size, &rng)
        if size > 10 { bytes[size / 2] = 10 }
        var out = [UInt32](repeating: 0xDEAD_BEEF, count: CountOp.resultWords)
        bytes.withUnsafeBytes { raw in
            out.withUnsafeMutableBufferPointer { CountOp.run(raw, into: $0) }
        }
        #expect(out == naiveCount(bytes))
    }

    @Test func decodesAndRejectsInconsistentWords() throws {
        let words = naiveCount([10, 10, 65])
        let r = try CountResult(words: words)
        #expect(r.bytes == 3 && r.newlines == 2 && r.histogram[65] == 1)
        var bad = words
        bad[1] = 5
        #expect(throws: PipelineError.self) { try CountResult(words: bad) }
        #expect(throws: PipelineError.self) { try CountResult(words: Array(words.prefix(10))) }
    }
}

@Suite struct CPUBackendTests {
    @Test func runsCountSlotsAgainstOracle() throws {
        let backend = try makeBackend()
        try backend.start()
        defer { try? backend.shutdown() }
        var rng = SeededRandom(state: 42)
        let sizes = [0, 1, 4095, 4096, 65_536, 131_071, 7, 100_000]
        var expected: [[UInt32]] = []
        for (slot, size) in sizes.enumerated() {
            let bytes = randomBytes(size, &rng)
            let offset = slot * 131_072
            backend.dataRegion.baseAddress!.advanced(by: offset).copyMemory(from: bytes, byteCount: size)
            expected.append(naiveCount(bytes))
            try backend.ring.publish(slot: slot, SlotPayload(
                opcode: .count, bufferOffset: UInt64(offset), length: UInt32(size),
                resultOffset: UInt32(backend.ring.geometry.resultOffset(ofSlot: slot)),
                resultCapacity: UInt32(CountOp.resultWords)))
        }
        for slot in sizes.indices {
            #expect(try awaitTerminal(backend, slot: slot) == .done)
            let record = try backend.ring.reclaim(slot: slot)
            #expect(record.completion == UInt32(CountOp.resultWords))
            #expect(Array(backend.ring.resultArea(ofSlot: slot)) == expected[slot])
        }
        let control = try backend.ring.observe()
        #expect(control.epoch == UInt64(sizes.count))
        #expect(control.slotsDone == UInt64(sizes.count))
        #expect(control.bytesProcessed == UInt64(sizes.reduce(0, +)))
        #expect(control.slotsFaulted == 0)
    }

    /// Bad slots fault with the right code, never touch memory out of bounds,
    /// and do not stop good slots.
    @Test func badSlotsFaultWithTheirCodes() throws {
        let backend = try makeBackend(slots: 9, dataBytes: 4096)
        try backend.start()
        defer { try? backend.shutdown() }
        let g = backend.ring.geometry
        let full = UInt32(CountOp.resultWords)
        let cases: [(SlotPayload, FaultCode?)] = [
            (SlotPayload(opcode: Opcode(rawValue: 99), bufferOffset: 0, length: 1, resultOffset: 0, resultCapacity: full), .unknownOpcode),
            // A defined opcode this backend lacks faults as unsupported; scan without a table as bad arguments.
            (SlotPayload(opcode: Opcode.defined.first { !SlotExecutor.supported.contains($0) } ?? .scan,
                         bufferOffset: 0, length: 1, resultOffset: 0, resultCapacity: full),
             Opcode.defined.allSatisfy(SlotExecutor.supported.contains) ? .badArguments : .unsupportedOpcode),
            (SlotPayload(opcode: .scan, bufferOffset: 0, length: 1, arguments: (1, 0), resultOffset: 0, resultCapacity: full), .badArguments),
            (SlotPayload(opcode: .count, bufferOffset: 4000, length: 97, resultOffset: 0, resultCapacity: full), .bufferOutOfBounds),
            (SlotPayload(opcode: .count, bufferOffset: UInt64.max - 1, length: 4, resultOffset: 0, resultCapacity: full), .bufferOutOfBounds),
            (SlotPayload(opcode: .count, bufferOffset: 0, length: 8, resultOffset: UInt32(g.resultWordsTotal - 10), resultCapacity: full), .resultOutOfBounds),
            (SlotPayload(opcode: .count, bufferOffset: 0, length: 8, resultOffset: UInt32.max, resultCapacity: UInt32.max), .resultOutOfBounds),
            (SlotPayload(opcode: .count, bufferOffset: 0, length: 8, resultOffset: 0, resultCapacity: full - 1), .resultOverflow),
            (SlotPayload(opcode: .count, bufferOffset: 4000, length: 96, resultOffset: UInt32(g.resultOffset(ofSlot: 8)), resultCapacity: full), nil),
        ]
        for (slot, c) in cases.enumerated() { try backend.ring.publish(slot: slot, c.0) }
        for (slot, c) in cases.enumerated() {
            let status = try awaitTerminal(backend, slot: slot)
            let record = try backend.ring.reclaim(slot: slot)
            if let code = c.1 {
                #expect(status == .faulted, "slot \(slot)")
                #expect(record.fault == code, "slot \(slot)")
            } else {
                #expect(status == .done)
            }
        }
        let control = try backend.ring.observe()
        #expect(control.slotsFaulted == 8)
        #expect(control.slotsDone == 1)
        #expect(control.lastFault != nil)
    }

    @Test func cancelledSlotIsNotRun() throws {
        let backend = try makeBackend(slots: 4, workers: 1)
        // Publish and cancel before the workers start, so the cancel is certain to win.
        try backend.ring.publish(slot: 2, SlotPayload(opcode: .count, bufferOffset: 0, length: 16, resultOffset: 0, resultCapacity: 258))
        try backend.ring.requestCancel(slot: 2)
        try backend.start()
        defer { try? backend.shutdown() }
        #expect(try awaitTerminal(backend, slot: 2) == .cancelled)
        let control = try backend.ring.observe()
        #expect(control.slotsCancelled == 1 && control.slotsDone == 0 && control.epoch == 1)
    }

    /// A nop ends DONE with completion 0 whatever its other words say (the
    /// GPU dispatcher reads only status and opcode), ignores a cancel request,
    /// writes no result word and adds no bytes; a count slot beside it runs.
    @Test func nopIgnoresEveryOtherWordAndTouchesNothing() throws {
        let backend = try makeBackend(slots: 6, dataBytes: 4096, workers: 1)
        let g = backend.ring.geometry
        let sentinel: UInt32 = 0xA5A5_5A5A
        for w in 0..<g.resultWordsTotal { backend.ring.results[w] = sentinel }
        let nops: [SlotPayload] = [
            SlotPayload(opcode: .nop, bufferOffset: 0, length: 0),
            // Each of these would fault as a count: buffer, result bounds, overflow, tenant, region.
            SlotPayload(opcode: .nop, bufferOffset: UInt64.max - 1, length: 4, resultOffset: 0, resultCapacity: 258),
            SlotPayload(opcode: .nop, tenant: 99, bufferOffset: 0, length: 4096, resultOffset: UInt32.max, resultCapacity: UInt32.max),
            SlotPayload(opcode: .nop, bufferOffset: 0, length: 64, resultOffset: 0, resultCapacity: 1, region: .device),
        ]
        for (slot, p) in nops.enumerated() { try backend.ring.publish(slot: slot, p) }
        // Cancelled before the worker starts, so the request is certain to be seen.
        try backend.ring.requestCancel(slot: 1)
        let count = SlotPayload(opcode: .count, bufferOffset: 0, length: 100, resultOffset: UInt32(g.resultOffset(ofSlot: 5)), resultCapacity: 258)
        for i in 0..<100 { backend.dataRegion[i] = UInt8(i) }
        try backend.ring.publish(slot: 5, count)
        try backend.start()
        defer { try? backend.shutdown() }
        for slot in nops.indices {
            #expect(try awaitTerminal(backend, slot: slot) == .done, "slot \(slot)")
            #expect(try backend.ring.reclaim(slot: slot).completion == 0, "slot \(slot)")
        }
        #expect(try awaitTerminal(backend, slot: 5) == .done)
        #expect(Array(backend.ring.resultArea(ofSlot: 5)[0..<258]) == naiveCount((0..<100).map { UInt8($0) }))
        let untouched = (0..<g.resultWordsTotal).filter { w in
            !(g.resultOffset(ofSlot: 5)..<(g.resultOffset(ofSlot: 5) + 258)).contains(w)
        }
        #expect(untouched.allSatisfy { backend.ring.results[$0] == sentinel })
        let control = try backend.ring.observe()
        #expect(control.slotsDone == 5 && control.slotsCancelled == 0 && control.slotsFaulted == 0 && control.epoch == 5)
        #expect(control.bytesProcessed == 100)
    }

    @Test func shutdownStopsEveryWorker() throws {
        let backend = try makeBackend(workers: 3)
        try backend.start()
        for _ in 0..<1000 where try backend.ring.observe().workersRunning < 3 {
            _ = try backend.waitForProgress(after: 0, timeout: .milliseconds(1))
        }
        #expect(try backend.ring.observe().workersRunning == 3)
        try backend.shutdown()
        #expect(try backend.ring.observe().workersRunning == 0)
        #expect(try backend.ring.observe().shutdown)
        try backend.shutdown()  // idempotent
    }

    /// Many rounds over a full ring: every slot recycled many times, results exact.
    @Test func fullRingRecycledManyTimes() throws {
        let slots = 16
        let chunk = 8192
        let backend = try makeBackend(slots: slots, dataBytes: slots * chunk, workers: 2)
        try backend.start()
        defer { try? backend.shutdown() }
        var rng = SeededRandom(state: 9)
        var total = 0
        for _ in 0..<20 {
            var expected: [[UInt32]] = []
            for slot in 0..<slots {
                let size = Int.random(in: 0...chunk, using: &rng)
                let bytes = randomBytes(size, &rng)
                backend.dataRegion.baseAddress!.advanced(by: slot * chunk).copyMemory(from: bytes, byteCount: size)
                expected.append(naiveCount(bytes))
                try backend.ring.publish(slot: slot, SlotPayload(
                    opcode: .count, bufferOffset: UInt64(slot * chunk), length: UInt32(size),
                    resultOffset: UInt32(backend.ring.geometry.resultOffset(ofSlot: slot)), resultCapacity: 258))
                total += 1
            }
            for slot in 0..<slots {
                #expect(try awaitTerminal(backend, slot: slot) == .done)
                _ = try backend.ring.reclaim(slot: slot)
                #expect(Array(backend.ring.resultArea(ofSlot: slot)) == expected[slot])
            }
        }
        #expect(try backend.ring.observe().epoch == UInt64(total))
    }
}
