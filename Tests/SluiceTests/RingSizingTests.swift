@testable import Sluice
import SluiceCore
import Testing

/// The ring is sized from what the walk found when --slots is not given, so
/// a small input does not pin memory for 128 chunks.
@Suite struct RingSizingTests {
    private func slots(_ hint: InputHint?, slots: Int = 0, workers: Int = 4) throws -> Int {
        var c = EngineConfiguration(backend: .cpu, ingest: .pread, chunkBytes: 1 << 20, slots: slots, workers: workers)
        c.inputHint = hint
        let engine = try Engine(c, resultWordsPerSlot: 4)
        defer { try? engine.close() }
        return engine.backend.ring.geometry.slotCount
    }

    @Test func smallInputsGetFewSlotsAndLargeOnesTheDefault() throws {
        // CPU default with 4 workers: max(8, 2 * 4 + 2) = 10 slots.
        #expect(try slots(nil) == 10)
        #expect(try slots(InputHint(files: 1, bytes: 0)) == 4)
        #expect(try slots(InputHint(files: 1, bytes: 1)) == 4)
        // 3 MiB + 1 byte is 4 chunks of 1 MiB, plus 2.
        #expect(try slots(InputHint(files: 1, bytes: 3 << 20 + 1)) == 6)
        #expect(try slots(InputHint(files: 1, bytes: 1 << 40)) == 10)
        // Many small files: one slot per file up to 16, within the default.
        #expect(try slots(InputHint(files: 7, bytes: 700)) == 7)
        #expect(try slots(InputHint(files: 100_000, bytes: 100_000)) == 10)
        #expect(try slots(InputHint(files: 100_000, bytes: 100_000), workers: 16) == 16)
    }

    /// The CUDA ring (decided without a GPU): 128 slots for a scan, 32 for
    /// light work, either capped by what the input needs; --slots wins.
    @Test func theCUDARingIsSmallerForLightWork() {
        #expect(ExecutionPlan.cudaSlotCount(slots: 0, fitted: nil, lightWork: false) == 128)
        #expect(ExecutionPlan.cudaSlotCount(slots: 0, fitted: nil, lightWork: true) == 32)
        #expect(ExecutionPlan.cudaSlotCount(slots: 0, fitted: 6, lightWork: true) == 6)
        #expect(ExecutionPlan.cudaSlotCount(slots: 0, fitted: 100, lightWork: true) == 32)
        #expect(ExecutionPlan.cudaSlotCount(slots: 0, fitted: 100, lightWork: false) == 100)
        #expect(ExecutionPlan.cudaSlotCount(slots: 200, fitted: 6, lightWork: true) == 200)
    }

    @Test func explicitSlotsWin() throws {
        #expect(try slots(InputHint(files: 1, bytes: 10), slots: 20) == 20)
        #expect(try slots(InputHint(files: 1, bytes: 1 << 40), slots: 2) == 2)
    }

    @Test func walkAddsUpTheSizesOfTheFilesItReturns() {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 7)
        var expected = 0
        for i in 0..<40 {
            let n = Int(rng.next() % 70_000)
            expected += n
            dir.write("d\(i % 3)/sub\(i % 2)/f\(i)", [UInt8](repeating: 0x61, count: n))
        }
        _ = run(["/bin/ln", "-s", dir.file("d0"), dir.file("link")])
        let walk = FileWalker().expand([dir.path.raw])
        #expect(walk.files.count == 40)
        #expect(walk.bytes == expected)
        #expect(walk.notes.contains { $0.contains("symbolic link") })
    }
}
