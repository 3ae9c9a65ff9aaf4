#if canImport(Glibc)
import Glibc
#endif
import Sluice

/// Resources a soak must give back.
struct Resources {
    var pinned: Int
    var cpuRegions: Int
    var fds: Int
    var gpu: UInt64?

    static func measure(gpu: Bool) -> Resources {
        Resources(
            pinned: MemoryLedger.pinnedHostBytes, cpuRegions: MemoryLedger.cpuRegionBytes, fds: openDescriptors(),
            gpu: gpu ? (try? CUDAMemory.deviceBytesInUse().get()) : nil)
    }

    /// Entries of /proc/self/fd, less the one the listing itself opens.
    static func openDescriptors() -> Int {
        guard let dir = opendir("/proc/self/fd") else { return -1 }
        defer { closedir(dir) }
        var n = 0
        while let entry = readdir(dir) {
            let dot = withUnsafeBytes(of: entry.pointee.d_name) { $0[0] == 0x2E }
            if !dot { n += 1 }
        }
        return n - 1
    }
}
