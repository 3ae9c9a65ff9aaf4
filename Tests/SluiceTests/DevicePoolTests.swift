@testable import Sluice
import SluiceCore
import Testing

/// Several simulated (CPU) devices give byte-for-byte the output of one.
@Suite(.serialized) struct DevicePoolTests {
    @Test func multiDeviceOutputIsIdenticalToOneDevice() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 41)
        for i in 0..<150 {
            var text = textLikeBytes(Int.random(in: 0...30_000, using: &rng), &rng)
            if text.count > 40, i % 3 == 0 { text.replaceSubrange(20..<28, with: Array("TOKEN-42".utf8)) }
            dir.write("t\(i % 5)/x\(i)", text)
        }
        for command in [["scan", "-e", "TOKEN-42", "-e", "\n"], ["count"]] {
            let base = [sluiceExecutable] + command + ["--backend", "cpu", "--quiet", "--chunk-size", "16K", dir.path]
            let one = run(base + ["--devices", "0"])
            #expect(one.status == 0, "\(one.stderr)")
            for devices in ["0,1", "0,1,2,3"] {
                let many = run(base + ["--devices", devices])
                #expect(many.status == one.status)
                #expect(many.stdout == one.stdout, "\(command[0]) with --devices \(devices)")
            }
        }
    }

    @Test func deviceListsAreValidated() {
        #expect(throws: PipelineError.self) { try DeviceSelection(parsing: "0,0") }
        #expect(throws: PipelineError.self) { try DeviceSelection(parsing: "x") }
        #expect(throws: PipelineError.self) { try DeviceSelection(parsing: "") }
        #expect((try? DeviceSelection(parsing: "all")) == .all)
        #expect((try? DeviceSelection(parsing: "2,0")) == .list([2, 0]))
        let r = run([sluiceExecutable, "count", "--devices", "1,1", "/dev/null"])
        #expect(r.status == 2 && r.stderr.contains("devices"))
    }

    /// A failing batch on one device stops the run with that error, not a hang.
    @Test func aJobErrorOnOneDeviceIsReported() throws {
        let pool = try DevicePool(
            EngineConfiguration(backend: .cpu, chunkBytes: 4096, slots: 2), devices: .list([0, 1]),
            resultWordsPerSlot: 258)
        defer { try? pool.close() }
        var seen: [Int] = []
        #expect(throws: PipelineError.self) {
            try pool.run(
                paths: (0..<50).map { RawPath(String($0)) }, batchFiles: 3,
                job: { _, batch, report, _ throws(PipelineError) in
                    for p in batch {
                        if p == "20" { throw .invalidConfiguration("batch with 20") }
                        report(Int(p.description)!)
                    }
                },
                onOutcome: { seen.append($0) })
        }
        #expect(seen == Array(0..<seen.count))  // whatever came out came in order
        #expect(seen.count <= 20)
    }
}

@Suite struct MemoryRefusalTests {
    /// Asking for more buffer memory than the machine has is refused before
    /// anything is allocated, with the numbers and what would fit.
    @Test func ringLargerThanTheMachineIsRefusedUpFront() throws {
        let facts = HostMemoryFacts.current()
        let available = try #require(facts.availableBytes ?? facts.totalBytes)
        do {
            let engine = try Engine(
                EngineConfiguration(backend: .cpu, ingest: .pread, chunkBytes: 1 << 30, slots: 1 << 16),
                resultWordsPerSlot: 258)
            try? engine.close()
            Issue.record("64 TiB of ring was accepted")
        } catch {
            guard case .insufficientMemory(let s) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(s.slots == 1 << 16 && s.chunkBytes == 1 << 30 && s.rings == 1 && !s.pinned)
            #expect(s.neededBytes > 1 << 46)
            // MemAvailable moves while the test runs; the slots that fit follow it.
            #expect(s.fittingSlots <= available / (1 << 30) + 1)
            #expect(s.fittingSlots * (1 << 30) <= s.limitBytes)
        }
    }

    /// A default slot count that does not fit (here: four devices' rings of
    /// eight 1 GiB buffers, more than this machine has) shrinks to what
    /// fits and says so; only a count the user gave is refused.
    @Test func aDefaultRingTooLargeShrinksToFit() throws {
        let facts = HostMemoryFacts.current()
        let available = try #require(facts.availableBytes ?? facts.totalBytes)
        let rings = Int(available >> 30) / 8 + 1  // 8 GiB a ring: more than what is available
        let made = try BackendSelection.cpu(
            slots: 0, chunkBytes: 1 << 30, workers: 2, resultWordsPerSlot: 16, reason: "test",
            memory: BackendSelection.MemoryPlan(rings: rings))
        defer { try? made.backend.shutdown() }
        let slots = made.backend.ring.geometry.slotCount
        #expect(slots >= 2 && slots < 8)
        #expect(rings * slots * (1 << 30) <= available + (1 << 30))
        #expect(made.reason.contains("instead of the default 8"), "\(made.reason)")
        #expect(throws: PipelineError.self) {
            _ = try BackendSelection.cpu(
                slots: 8, chunkBytes: 1 << 30, workers: 2, resultWordsPerSlot: 16, reason: "test",
                memory: BackendSelection.MemoryPlan(rings: rings))
        }
    }
}
