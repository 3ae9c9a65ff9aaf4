import SluiceCore
import SluiceCPU
import SluiceCUDA

/// Picks and builds the backend for a `BackendChoice`, and says why.
enum BackendSelection {
    struct Made {
        var backend: any MegakernelBackend
        var reason: String
    }

    static func make(
        _ choice: BackendChoice, slots: Int, chunkBytes: Int, workers: Int, resultWordsPerSlot: Int, device: Int = 0,
        cpuScanEngine: ScanEngineChoice = .auto, faultInjection: Bool = false
    ) throws(PipelineError) -> Made {
        switch choice {
        case .cpu:
            return try cpu(slots: slots, chunkBytes: chunkBytes, workers: workers, resultWordsPerSlot: resultWordsPerSlot,
                           reason: "cpu: chosen with --backend cpu", scanEngine: cpuScanEngine, faultInjection: faultInjection)
        case .cuda:
            let info = try CUDAProbe.probe(device: device).get()
            return try cuda(slots: slots, chunkBytes: chunkBytes, resultWordsPerSlot: resultWordsPerSlot, device: device,
                            reason: "chosen with --backend cuda (\(info.name))", faultInjection: faultInjection)
        case .auto:
            switch CUDAProbe.probe(device: device) {
            case .success(let info):
                do {
                    return try cuda(slots: slots, chunkBytes: chunkBytes, resultWordsPerSlot: resultWordsPerSlot,
                                    device: device, reason: "auto: \(info.name) and NVRTC \(info.nvrtcVersion) loaded",
                                    faultInjection: faultInjection)
                } catch {
                    return try cpu(slots: slots, chunkBytes: chunkBytes, workers: workers,
                                   resultWordsPerSlot: resultWordsPerSlot,
                                   reason: "auto: the CUDA backend failed to start: \(error.message)",
                                   scanEngine: cpuScanEngine, faultInjection: faultInjection)
                }
            case .failure(let error):
                return try cpu(slots: slots, chunkBytes: chunkBytes, workers: workers, resultWordsPerSlot: resultWordsPerSlot,
                               reason: "auto: no usable GPU: \(error.message)", scanEngine: cpuScanEngine,
                               faultInjection: faultInjection)
            }
        }
    }

    /// Default CUDA ring: enough slots in flight to keep PCIe busy; the
    /// kernel runs one block per slot (capped by the device's occupancy).
    static let cudaDefaultSlots = 128

    static func cuda(
        slots: Int, chunkBytes: Int, resultWordsPerSlot: Int, device: Int = 0, reason: String, faultInjection: Bool = false
    ) throws(PipelineError) -> Made {
        let slotCount = slots > 0 ? slots : cudaDefaultSlots
        let geometry = try RingGeometry(slotCount: slotCount, resultWordsPerSlot: resultWordsPerSlot)
        let backend = try CUDABackend(
            configuration: BackendConfiguration(
                geometry: geometry, dataBytes: slotCount * chunkBytes, faultInjection: faultInjection),
            device: device, reason: reason)
        return Made(backend: backend, reason: reason)
    }

    static func cpu(
        slots: Int, chunkBytes: Int, workers: Int, resultWordsPerSlot: Int, reason: String,
        scanEngine: ScanEngineChoice = .auto, faultInjection: Bool = false
    ) throws(PipelineError) -> Made {
        let threads = workers > 0 ? workers : ProcessorCount.online
        // Two chunks per worker in flight keeps every worker busy while reads land.
        let slotCount = slots > 0 ? slots : max(8, 2 * threads + 2)
        let geometry = try RingGeometry(slotCount: slotCount, resultWordsPerSlot: resultWordsPerSlot)
        let backend = try CPUBackend(
            configuration: BackendConfiguration(
                geometry: geometry, dataBytes: slotCount * chunkBytes, workers: threads, faultInjection: faultInjection),
            reason: reason, scanEngine: scanEngine)
        return Made(backend: backend, reason: reason)
    }
}
