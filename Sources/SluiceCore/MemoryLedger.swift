import Synchronization

/// Bytes of host memory Sluice holds for workers to read, by kind, counted by
/// the owning types as they allocate and release (`CUDAMappedHostBuffer`,
/// `HostMemory`). `sluice soak` checks that both return to their starting
/// values, so a leak of a ring or a data region across recoveries shows up.
public enum MemoryLedger {
    private static let pinned = Atomic<Int>(0)
    private static let mapped = Atomic<Int>(0)

    /// Pinned host memory (CUDA `cuMemHostAlloc`, mapped into the GPU) alive now.
    public static var pinnedHostBytes: Int { pinned.load(ordering: .relaxed) }
    /// Anonymous mappings of the CPU backend (ring and data regions) alive now.
    public static var cpuRegionBytes: Int { mapped.load(ordering: .relaxed) }

    /// Called by the owner of a pinned allocation: +bytes when made, -bytes when released.
    public static func pinnedChanged(by bytes: Int) {
        pinned.wrappingAdd(bytes, ordering: .relaxed)
    }

    /// Called by the owner of a CPU region: +bytes when mapped, -bytes when unmapped.
    public static func cpuRegionChanged(by bytes: Int) {
        mapped.wrappingAdd(bytes, ordering: .relaxed)
    }
}
