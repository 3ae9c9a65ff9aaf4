import SluiceCore

/// What a device and this process hold in memory, for leak checks (`sluice soak`).
public enum CUDAMemory {
    /// Device memory in use on `device` (total less free, `cuMemGetInfo`), as
    /// seen with the primary context retained for the query. Retaining it
    /// creates the context when no one holds it, so two readings taken while
    /// Sluice holds no backend both include one context's own footprint and
    /// compare like with like. Includes other processes' use of the device.
    public static func deviceBytesInUse(device ordinal: Int = 0) -> Result<UInt64, PipelineError> {
        Result { () throws(PipelineError) -> UInt64 in
            let driver = try CUDADriver.shared.get()
            let context = try CUDAContext(driver: driver, ordinal: ordinal)
            var free = 0
            var total = 0
            try context.withCurrent { () throws(PipelineError) in
                try driver.check(driver.cuMemGetInfo(&free, &total), "cuMemGetInfo_v2")
            }
            return UInt64(max(0, total - free))
        }
    }

    /// Pinned host memory (mapped into a GPU) that Sluice's buffers hold now.
    public static var pinnedHostBytes: Int { MemoryLedger.pinnedHostBytes }
}
