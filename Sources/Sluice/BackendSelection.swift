import SluiceCore
import SluiceCPU

/// Picks and builds the backend for a `BackendChoice`, and says why.
enum BackendSelection {
    struct Made {
        var backend: any MegakernelBackend
        var reason: String
    }

    static func make(
        _ choice: BackendChoice, slots: Int, chunkBytes: Int, workers: Int, resultWordsPerSlot: Int
    ) throws(PipelineError) -> Made {
        switch choice {
        case .cpu:
            return try cpu(slots: slots, chunkBytes: chunkBytes, workers: workers, resultWordsPerSlot: resultWordsPerSlot,
                           reason: "cpu: chosen with --backend cpu")
        case .cuda:
            throw .backendUnavailable(backend: "cuda", reason: "not wired yet")
        case .auto:
            return try cpu(slots: slots, chunkBytes: chunkBytes, workers: workers, resultWordsPerSlot: resultWordsPerSlot,
                           reason: "cpu: no CUDA backend in this build")
        }
    }

    static func cpu(
        slots: Int, chunkBytes: Int, workers: Int, resultWordsPerSlot: Int, reason: String
    ) throws(PipelineError) -> Made {
        let threads = workers > 0 ? workers : ProcessorCount.online
        // Two chunks per worker in flight keeps every worker busy while reads land.
        let slotCount = slots > 0 ? slots : max(8, 2 * threads + 2)
        let geometry = try RingGeometry(slotCount: slotCount, resultWordsPerSlot: resultWordsPerSlot)
        let backend = try CPUBackend(
            configuration: BackendConfiguration(geometry: geometry, dataBytes: slotCount * chunkBytes, workers: threads),
            reason: reason)
        return Made(backend: backend, reason: reason)
    }
}
