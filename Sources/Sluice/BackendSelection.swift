import SluiceCore
import SluiceCPU
import SluiceCUDA
import SluiceThreads

/// Picks and builds the backend for a `BackendChoice`, and says why.
package enum BackendSelection {
    struct Made {
        var backend: any MegakernelBackend
        var reason: String
    }

    static func make(
        _ choice: BackendChoice, slots: Int, chunkBytes: Int, workers: Int, resultWordsPerSlot: Int, device: Int = 0,
        cpuScanEngine: ScanEngineChoice = .auto, inputHint: InputHint? = nil, reason: String? = nil, deviceIngest: Bool = false,
        faultInjection: Bool = false, lightWork: Bool = false, memory: MemoryPlan = MemoryPlan()
    ) throws(PipelineError) -> Made {
        let fitted = inputHint.map { fittedSlots($0, chunkBytes: chunkBytes) }
        switch choice {
        case .cpu:
            return try cpu(slots: slots, fitted: fitted, chunkBytes: chunkBytes, workers: workers, resultWordsPerSlot: resultWordsPerSlot,
                           reason: reason ?? "cpu: chosen with --backend cpu", scanEngine: cpuScanEngine, faultInjection: faultInjection,
                           memory: memory)
        case .cuda:
            let info = try CUDAProbe.probe(device: device).get()
            return try cuda(slots: slots, fitted: fitted, chunkBytes: chunkBytes, resultWordsPerSlot: resultWordsPerSlot, device: device,
                            reason: reason ?? "chosen with --backend cuda (\(info.name))", deviceIngest: deviceIngest,
                            faultInjection: faultInjection, lightWork: lightWork, memory: memory)
        case .auto:
            switch CUDAProbe.probe(device: device) {
            case .success(let info):
                do {
                    return try cuda(slots: slots, fitted: fitted, chunkBytes: chunkBytes, resultWordsPerSlot: resultWordsPerSlot,
                                    device: device, reason: "auto: \(info.name) and NVRTC \(info.nvrtcVersion) loaded",
                                    deviceIngest: deviceIngest, faultInjection: faultInjection, lightWork: lightWork, memory: memory)
                } catch {
                    return try cpu(slots: slots, fitted: fitted, chunkBytes: chunkBytes, workers: workers,
                                   resultWordsPerSlot: resultWordsPerSlot,
                                   reason: "auto: the CUDA backend failed to start: \(error.message)",
                                   scanEngine: cpuScanEngine, faultInjection: faultInjection, memory: memory)
                }
            case .failure(let error):
                return try cpu(slots: slots, fitted: fitted, chunkBytes: chunkBytes, workers: workers, resultWordsPerSlot: resultWordsPerSlot,
                               reason: "auto: no usable GPU: \(error.message)", scanEngine: cpuScanEngine,
                               faultInjection: faultInjection, memory: memory)
            }
        }
    }

    /// What the up-front memory check (`HostMemoryCheck`) needs beyond the
    /// ring's own size.
    struct MemoryPlan {
        /// Rings needing memory at once: this one and the pool's still to come.
        var rings = 1
        /// `--ingest uring`: the data region is registered (locked memory).
        var forcedUring = false

        /// The slot count to build: `request.slots` when it fits; when it
        /// does not and the count was a default (`chosen` false), the most
        /// that fit (two at least), with a note saying so; else the shortfall.
        func fit(_ request: RingMemoryRequest, chosen: Bool, perSlotRing: Int) throws(PipelineError) -> (Int, String?) {
            guard let shortfall = HostMemoryCheck.shortfall(request, on: .current()) else { return (request.slots, nil) }
            guard !chosen, shortfall.fittingSlots >= 2 else { throw .insufficientMemory(shortfall) }
            var smaller = request
            smaller.slots = shortfall.fittingSlots
            smaller.ringBytes = perSlotRing * smaller.slots
            if let still = HostMemoryCheck.shortfall(smaller, on: .current()) { throw .insufficientMemory(still) }
            return (smaller.slots, "\(smaller.slots) slots instead of the default \(request.slots): \(shortfall.message)")
        }
    }

    /// Default CUDA ring: enough slots in flight to keep PCIe busy; the
    /// kernel runs one block per slot (capped by the device's occupancy).
    package static let cudaDefaultSlots = 128

    /// Default CUDA ring for light work per byte (count, crc32c), where the
    /// host's copies into the ring, not the kernel, set the pace: 32 slots
    /// of 4 MiB read a warm 16 GiB file in 725-775 ms against 860-910 ms
    /// with 128 (and 16: 935-1,160 ms; 64: 845-910 ms) on the H100 machine
    /// (run 23 in `benchmarks/RESULTS.md`), and pin a quarter of the memory
    /// at start. A scan keeps 128: its kernel work per byte needs every block.
    static let cudaLightWorkSlots = 32

    /// The CUDA ring's slot count: `slots` when given, else the default for
    /// the work, capped by what the input needs (`fitted`).
    static func cudaSlotCount(slots: Int, fitted: Int?, lightWork: Bool) -> Int {
        slots > 0 ? slots : min(lightWork ? cudaLightWorkSlots : cudaDefaultSlots, fitted ?? .max)
    }

    /// Slots enough for the input's bytes in chunks of `chunkBytes`, plus
    /// two for chunk overlap and files that end mid-chunk; at least 4, and at
    /// least one per file up to 16 so that small files still overlap their
    /// reads. The backends' defaults cap it (see `cuda` and `cpu`).
    static func fittedSlots(_ input: InputHint, chunkBytes: Int) -> Int {
        let chunks = input.bytes / chunkBytes + (input.bytes % chunkBytes == 0 ? 0 : 1)
        return max(4, chunks + 2, min(input.files, 16))
    }

    /// The bulk of a ring region: its result areas (the control block and
    /// slots add a few KiB), in bytes that cannot overflow.
    static func resultAreaBytes(_ slots: Int, _ resultWordsPerSlot: Int) -> Int {
        let (words, overflow) = slots.multipliedReportingOverflow(by: resultWordsPerSlot)
        return overflow || words > Int.max / 4 ? Int.max / 2 : words * 4
    }

    /// With `deviceIngest`, the backend also gets a device ingest region of
    /// one chunk buffer per slot, for cuFile to read into.
    static func cuda(
        slots: Int, fitted: Int? = nil, chunkBytes: Int, resultWordsPerSlot: Int, device: Int = 0, reason: String,
        deviceIngest: Bool = false, faultInjection: Bool = false, lightWork: Bool = false, memory: MemoryPlan = MemoryPlan()
    ) throws(PipelineError) -> Made {
        let wanted = cudaSlotCount(slots: slots, fitted: fitted, lightWork: lightWork)
        // Memory first: a ring too large for the machine is refused with its
        // numbers, before the geometry's own limits speak of words.
        // cuFile reads into GPU memory: nothing is registered with io_uring then.
        let (slotCount, shrunk) = try memory.fit(
            RingMemoryRequest(
                slots: wanted, chunkBytes: chunkBytes, ringBytes: resultAreaBytes(wanted, resultWordsPerSlot),
                rings: memory.rings, pinned: true, registeredForIO: memory.forcedUring && !deviceIngest),
            chosen: slots > 0, perSlotRing: resultAreaBytes(1, resultWordsPerSlot))
        let why = shrunk.map { "\(reason); \($0)" } ?? reason
        let geometry = try RingGeometry(slotCount: slotCount, resultWordsPerSlot: resultWordsPerSlot)
        let backend = try CUDABackend(
            configuration: BackendConfiguration(
                geometry: geometry, dataBytes: slotCount * chunkBytes, faultInjection: faultInjection),
            device: device, reason: why, deviceIngestBytes: deviceIngest ? slotCount * chunkBytes : 0)
        return Made(backend: backend, reason: why)
    }

    static func cpu(
        slots: Int, fitted: Int? = nil, chunkBytes: Int, workers: Int, resultWordsPerSlot: Int, reason: String,
        scanEngine: ScanEngineChoice = .auto, faultInjection: Bool = false, memory: MemoryPlan = MemoryPlan()
    ) throws(PipelineError) -> Made {
        let threads = workers > 0 ? workers : ProcessorCount.online
        // Two chunks per worker in flight keeps every worker busy while reads land.
        let wanted = slots > 0 ? slots : min(max(8, 2 * threads + 2), fitted ?? .max)
        let (slotCount, shrunk) = try memory.fit(
            RingMemoryRequest(
                slots: wanted, chunkBytes: chunkBytes, ringBytes: resultAreaBytes(wanted, resultWordsPerSlot),
                rings: memory.rings, pinned: false, registeredForIO: memory.forcedUring),
            chosen: slots > 0, perSlotRing: resultAreaBytes(1, resultWordsPerSlot))
        let why = shrunk.map { "\(reason); \($0)" } ?? reason
        let geometry = try RingGeometry(slotCount: slotCount, resultWordsPerSlot: resultWordsPerSlot)
        let backend = try CPUBackend(
            configuration: BackendConfiguration(
                geometry: geometry, dataBytes: slotCount * chunkBytes, workers: threads, faultInjection: faultInjection),
            reason: why, scanEngine: scanEngine)
        return Made(backend: backend, reason: why)
    }
}
