import CSluiceSys

/// Process-wide settings of the C allocator, for programs that stream.
public enum HostMemoryTuning {
    /// Buffers of 256 KiB or more (held chunk copies, pieces of matches) are
    /// mapped and unmapped on their own. glibc otherwise raises its mapping
    /// threshold after the first such buffer is freed and keeps the later
    /// ones in its heap, so a streaming scan's peak memory drifts above what
    /// it holds. Call it once, early; it affects the whole process.
    public static func returnLargeBuffersEagerly() {
        _ = sluice_set_mmap_threshold(256 << 10)
    }
}
