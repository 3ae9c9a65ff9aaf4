import SluiceCUDA
import SluiceCore

/// Where a slot's time goes inside the megakernel: the means of the stages
/// the kernel timed with `%globaltimer` (one clock for every multiprocessor)
/// over the slots its workers finished DONE while `CUDABackend.traceStages`
/// was on (`CUDABackend.stageTraceSums()`). What the host measures beyond their sum is the poll that saw the
/// slot published and the DONE store's trip back to host memory.
public struct MegakernelStageTrace: Sendable, Equatable {
    /// Slots timed.
    public var slots: UInt64
    /// Mean ns of the claim's acquire fence (`fence.acq_rel.sys`), from the
    /// dispatcher's poll seeing PUBLISHED.
    public var claimFence: Double
    /// Mean ns from there to the slot's words read and checked (one read of
    /// host memory).
    public var claimRead: Double
    /// Mean ns from there to the worker block holding the job (CLAIMED
    /// store, mailbox in device memory, the worker's polling warp, a barrier).
    public var handOff: Double
    /// Mean ns from there to the results stored (chunk read from host
    /// memory, the opcode, result stores, a barrier).
    public var work: Double
    /// Mean ns from there to just before DONE (completion store and the
    /// system fence that orders the results before DONE).
    public var release: Double

    /// From the kernel's six sums: slots, then the five stages in ns.
    init(sums: [UInt64]) {
        slots = sums[0]
        let n = Double(max(sums[0], 1))
        claimFence = Double(sums[1]) / n
        claimRead = Double(sums[2]) / n
        handOff = Double(sums[3]) / n
        work = Double(sums[4]) / n
        release = Double(sums[5]) / n
    }

    /// The stages' mean sum, ns.
    public var total: Double { claimFence + claimRead + handOff + work + release }
}

extension CUDABackend {
    /// The means of the stages the kernel timed since its launch (with
    /// `traceStages` on); see `MegakernelStageTrace`.
    func stageTrace() throws(PipelineError) -> MegakernelStageTrace {
        MegakernelStageTrace(sums: try stageTraceSums())
    }
}
