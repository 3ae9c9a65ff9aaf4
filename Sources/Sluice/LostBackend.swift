import SluiceCore
import SluiceCPU
import SluiceIngest

/// What an engine and its scanner hold in place of a backend that lost its
/// context, between releasing it and starting its replacement (and for good
/// when no replacement could be made). It runs nothing: its ring is fresh
/// host memory with the lost one's geometry, so readers of the ring (for
/// example `--stats`) see zeros instead of touching the lost backend's
/// memory, which the CUDA driver frees when the context is reset.
final class LostBackend: MegakernelBackend {
    let name: String
    let slotRunner: SlotRunner
    let ring: RingView
    let dataRegion = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    let supportedOpcodes: Set<Opcode> = []
    var summary: String { "\(name): lost (\(cause))" }
    private let cause: String
    private let memory: HostMemory

    init(replacing lost: any MegakernelBackend, cause: String) throws(PipelineError) {
        name = lost.name
        slotRunner = lost.slotRunner
        self.cause = cause
        let geometry = lost.ring.geometry
        memory = try HostMemory(byteCount: geometry.byteCount, purpose: "placeholder ring")
        ring = try RingView(bytes: memory.bytes, geometry: geometry)
        ring.initialize()
    }

    func start() throws(PipelineError) {}
    func shutdown() throws(PipelineError) {}

    func waitForProgress(after epoch: UInt64, timeout: Duration) throws(PipelineError) -> UInt64 {
        throw .contextLost(backend: name, reason: "it was released and not replaced (\(cause))")
    }
}

/// The read stream paired with a `LostBackend`: nothing in flight, and
/// every submission refused.
final class ClosedReadStream: ChunkReadStream {
    let kind = "closed"
    let chunkBytes: Int
    let chunkCount: Int
    let region: UnsafeMutableRawBufferPointer
    let inflight = 0

    init(chunkBytes: Int, chunkCount: Int, region: UnsafeMutableRawBufferPointer) {
        self.chunkBytes = chunkBytes
        self.chunkCount = chunkCount
        self.region = region
    }

    func submit(_ request: ReadRequest) throws(PipelineError) {
        throw .invalidRequest(
            chunk: request.chunkIndex, slot: nil, reason: "the backend was lost; this stream reads nothing")
    }

    func reap(waitingUpTo timeout: Duration?) throws(PipelineError) -> [ReadCompletion] { [] }
}
