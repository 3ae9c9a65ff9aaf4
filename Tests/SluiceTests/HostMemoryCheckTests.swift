import Sluice
import SluiceCore
import Testing

/// The up-front memory check, over synthetic machines.
@Suite struct HostMemoryCheckTests {
    static let gib = 1 << 30
    /// The GPU machine of the report: 125 GiB, root (memlock unlimited).
    static let gpuHost = HostMemoryFacts(
        availableBytes: 120 * gib, totalBytes: 125 * gib, lockLimitBytes: nil, lockLimitExempt: true)

    @Test func aRingThatFitsPasses() {
        let r = RingMemoryRequest(slots: 128, chunkBytes: 4 << 20, ringBytes: 1 << 20, pinned: true)
        #expect(HostMemoryCheck.shortfall(r, on: Self.gpuHost) == nil)
        // Unknown memory (no /proc/meminfo): no check.
        let unknown = HostMemoryFacts(availableBytes: nil, totalBytes: nil, lockLimitBytes: nil, lockLimitExempt: false)
        let huge = RingMemoryRequest(slots: 1 << 16, chunkBytes: Self.gib, ringBytes: 0, pinned: true)
        #expect(HostMemoryCheck.shortfall(huge, on: unknown) == nil)
    }

    /// `--slots 65536 --backend cuda` with 4 MiB chunks: 256 GiB pinned on a 125 GiB host.
    @Test func theReportedCaseIsRefusedWithWhatFits() throws {
        let ringBytes = 256 + 65536 * 64
        let r = RingMemoryRequest(slots: 65536, chunkBytes: 4 << 20, ringBytes: ringBytes, pinned: true)
        let s = try #require(HostMemoryCheck.shortfall(r, on: Self.gpuHost))
        #expect(s.limit == .available)
        #expect(s.neededBytes == 65536 * ((4 << 20) + 65)) // the ring region rounded up per slot
        #expect(s.limitBytes == 120 * Self.gib)
        // Independent arithmetic: what fits in 120 GiB.
        #expect(s.fittingSlots == 120 * Self.gib / ((4 << 20) + 65))
        #expect(s.fittingSlots * ((4 << 20) + 65) <= 120 * Self.gib)
        #expect(s.fittingChunkBytes == 1 << 20)  // 1.875 MiB per slot, rounded down to whole MiB
        #expect(s.pinned && s.rings == 1)
        let m = PipelineError.insufficientMemory(s).message
        #expect(m.contains("65536 slots of 4 MiB") && m.contains("\(s.neededBytes) bytes") && m.contains("pinned"))
        #expect(m.contains("\(s.fittingSlots) slots of 4 MiB") && m.contains("chunks of 1 MiB with 65536 slots"))
    }

    @Test func ringsOfAPoolAddUp() throws {
        let one = RingMemoryRequest(slots: 16, chunkBytes: Self.gib, ringBytes: 0, rings: 1, pinned: true)
        #expect(HostMemoryCheck.shortfall(one, on: Self.gpuHost) == nil)  // 16 GiB
        var eight = one
        eight.rings = 8  // 128 GiB
        let s = try #require(HostMemoryCheck.shortfall(eight, on: Self.gpuHost))
        #expect(s.neededBytes == 128 * Self.gib)
        #expect(s.fittingSlots == 15)  // 120 GiB / 8 rings / 1 GiB
        #expect(s.fittingChunkBytes == 960 << 20)  // 120 GiB / 8 / 16 = 0.9375 GiB
        #expect(PipelineError.insufficientMemory(s).message.contains("8 rings"))
    }

    @Test func nothingFitsAndNumbersDoNotOverflow() throws {
        let tiny = HostMemoryFacts(availableBytes: 8192, totalBytes: 8192, lockLimitBytes: nil, lockLimitExempt: true)
        let r = RingMemoryRequest(slots: 1 << 20, chunkBytes: Self.gib, ringBytes: 1 << 30, rings: 1 << 20, pinned: false)
        let s = try #require(HostMemoryCheck.shortfall(r, on: tiny))
        #expect(s.neededBytes == .max)
        #expect(s.fittingSlots == 0 && s.fittingChunkBytes == 0)
        #expect(PipelineError.insufficientMemory(s).message.contains("not even one slot"))
    }

    /// RLIMIT_MEMLOCK binds only a forced io_uring (auto falls back to
    /// pread), and not a process with CAP_IPC_LOCK.
    @Test func theLockLimitBindsOnlyForcedUringWithoutTheCapability() throws {
        let user = HostMemoryFacts(
            availableBytes: 16 * Self.gib, totalBytes: 16 * Self.gib, lockLimitBytes: 8 << 20, lockLimitExempt: false)
        var r = RingMemoryRequest(slots: 8, chunkBytes: 4 << 20, ringBytes: 4096, pinned: false, registeredForIO: false)
        #expect(HostMemoryCheck.shortfall(r, on: user) == nil)
        r.registeredForIO = true
        let s = try #require(HostMemoryCheck.shortfall(r, on: user))
        #expect(s.limit == .lockLimit && s.neededBytes == 32 << 20 && s.limitBytes == 8 << 20)
        #expect(s.fittingSlots == 2 && s.fittingChunkBytes == 1 << 20)
        #expect(PipelineError.insufficientMemory(s).message.contains("RLIMIT_MEMLOCK"))
        var root = user
        root.lockLimitExempt = true
        #expect(HostMemoryCheck.shortfall(r, on: root) == nil)
        root.lockLimitExempt = false
        root.lockLimitBytes = nil  // unlimited
        #expect(HostMemoryCheck.shortfall(r, on: root) == nil)
    }

    @Test func factsOfThisMachineAreRead() {
        let facts = HostMemoryFacts.current()
        #expect((facts.totalBytes ?? 0) > 0)
        #expect((facts.availableBytes ?? 0) > 0 && (facts.availableBytes ?? 0) <= (facts.totalBytes ?? 0))
    }
}
