import SluiceCore
import SluiceCPU
import SluiceCUDA
import SluiceThreads

/// Builds the backend for a `BackendChoice` (as `ExecutionPlan` resolved
/// it), and says why; `auto` probes the device here and falls back to the
/// CPU backend where CUDA cannot start.
package enum BackendSelection {
    struct Made {
        var backend: any MegakernelBackend
        var reason: String
    }

    static func make(
        _ choice: BackendChoice, slots: Int, chunkBytes: Int, workers: Int, resultWordsPerSlot: Int, device: Int = 0,
        cpuScanEngine: ScanEngineChoice = .auto, inputHint: InputHint? = nil, reason: String? = nil,
        settingName: (ConfiguredSetting) -> String = ConfiguredSetting.inTheConfiguration, deviceIngest: Bool = false,
        faultInjection: Bool = false, operations: OperationSet = OperationSet(), lightWork: Bool = false,
        memory: MemoryPlan = MemoryPlan()
    ) throws(PipelineError) -> Made {
        let fitted = inputHint.map { ExecutionPlan.fittedSlots($0, chunkBytes: chunkBytes) }
        switch choice {
        case .cpu:
            return try cpu(slots: slots, fitted: fitted, chunkBytes: chunkBytes, workers: workers, resultWordsPerSlot: resultWordsPerSlot,
                           reason: reason ?? "cpu: chosen with \(settingName(.backend(.cpu)))", scanEngine: cpuScanEngine, faultInjection: faultInjection,
                           operations: operations, memory: memory)
        case .cuda:
            let info = try CUDAProbe.probe(device: device).get()
            return try cuda(slots: slots, fitted: fitted, chunkBytes: chunkBytes, resultWordsPerSlot: resultWordsPerSlot, device: device,
                            reason: reason ?? "chosen with \(settingName(.backend(.cuda))) (\(info.name))", deviceIngest: deviceIngest,
                            faultInjection: faultInjection, operations: operations, lightWork: lightWork, memory: memory)
        case .auto:
            switch CUDAProbe.probe(device: device) {
            case .success(let info):
                // The plan's words (`ExecutionPlan.chooseBackend`), for the device probed now.
                let planned = "auto: \(info.name) found"
                do {
                    return try cuda(slots: slots, fitted: fitted, chunkBytes: chunkBytes, resultWordsPerSlot: resultWordsPerSlot,
                                    device: device, reason: planned,
                                    deviceIngest: deviceIngest, faultInjection: faultInjection, operations: operations,
                                    lightWork: lightWork, memory: memory)
                } catch let error where UserOperationSource.isCompileFailure(error) {
                    // A user operation that does not compile is the caller's
                    // error to see, not a reason to run on the CPU instead.
                    throw error
                } catch {
                    return try cpu(slots: slots, fitted: fitted, chunkBytes: chunkBytes, workers: workers,
                                   resultWordsPerSlot: resultWordsPerSlot,
                                   reason: "\(planned); but the CUDA backend failed to start (\(error.message)), so the CPU backend runs",
                                   scanEngine: cpuScanEngine, faultInjection: faultInjection, operations: operations,
                                   memory: memory)
                }
            case .failure(let error):
                return try cpu(slots: slots, fitted: fitted, chunkBytes: chunkBytes, workers: workers, resultWordsPerSlot: resultWordsPerSlot,
                               reason: "auto: no usable GPU: \(error.message)", scanEngine: cpuScanEngine,
                               faultInjection: faultInjection, operations: operations, memory: memory)
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

    /// `ExecutionPlan.cudaDefaultSlots`, for the bench and the self-test.
    package static let cudaDefaultSlots = ExecutionPlan.cudaDefaultSlots

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
        deviceIngest: Bool = false, faultInjection: Bool = false, operations: OperationSet = OperationSet(),
        lightWork: Bool = false, memory: MemoryPlan = MemoryPlan()
    ) throws(PipelineError) -> Made {
        let wanted = ExecutionPlan.cudaSlotCount(slots: slots, fitted: fitted, lightWork: lightWork)
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
                geometry: geometry, dataBytes: slotCount * chunkBytes, faultInjection: faultInjection,
                operations: operations),
            device: device, reason: why, deviceIngestBytes: deviceIngest ? slotCount * chunkBytes : 0)
        return Made(backend: backend, reason: why)
    }

    static func cpu(
        slots: Int, fitted: Int? = nil, chunkBytes: Int, workers: Int, resultWordsPerSlot: Int, reason: String,
        scanEngine: ScanEngineChoice = .auto, faultInjection: Bool = false, operations: OperationSet = OperationSet(),
        memory: MemoryPlan = MemoryPlan()
    ) throws(PipelineError) -> Made {
        let threads = ExecutionPlan.cpuWorkers(configured: workers, devices: 1, cores: ProcessorCount.online)
        let wanted = ExecutionPlan.cpuSlotCount(slots: slots, fitted: fitted, threads: threads)
        let (slotCount, shrunk) = try memory.fit(
            RingMemoryRequest(
                slots: wanted, chunkBytes: chunkBytes, ringBytes: resultAreaBytes(wanted, resultWordsPerSlot),
                rings: memory.rings, pinned: false, registeredForIO: memory.forcedUring),
            chosen: slots > 0, perSlotRing: resultAreaBytes(1, resultWordsPerSlot))
        let why = shrunk.map { "\(reason); \($0)" } ?? reason
        let geometry = try RingGeometry(slotCount: slotCount, resultWordsPerSlot: resultWordsPerSlot)
        let backend = try CPUBackend(
            configuration: BackendConfiguration(
                geometry: geometry, dataBytes: slotCount * chunkBytes, workers: threads, faultInjection: faultInjection,
                operations: operations),
            reason: why, scanEngine: scanEngine)
        return Made(backend: backend, reason: why)
    }
}
