#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import Synchronization

/// The reference megakernel: worker threads that poll the ring exactly as
/// the GPU kernel does (claim by compare-and-swap, run, mark DONE/FAULTED,
/// bump the epoch, leave on the shutdown flag). It is the default where no
/// GPU is found and the oracle the GPU self-test compares against.
public final class CPUBackend: MegakernelBackend {
    public let name = "cpu"
    public let ring: RingView
    public let supportedOpcodes = SlotExecutor.supported
    /// Exactly the configured bytes (the mapping itself is rounded up to pages).
    public let dataRegion: UnsafeMutableRawBufferPointer
    public var summary: String { "cpu: \(workerCount) worker threads" + (reason.isEmpty ? "" : " (\(reason))") }

    public let workerCount: Int
    private let reason: String
    private let ringMemory: HostMemory
    private let dataMemory: HostMemory
    private var threads: [WorkerThread] = []
    private let scanTables = ScanTableRegistry()
    private let tenants = TenantTableHolder()
    private var stopped = false

    /// Allocates the ring and data regions; `reason` is shown in `summary`
    /// (for example why the CUDA backend was not chosen).
    public init(configuration: BackendConfiguration, reason: String = "") throws(PipelineError) {
        ringMemory = try HostMemory(byteCount: configuration.geometry.byteCount, purpose: "ring")
        dataMemory = try HostMemory(byteCount: max(configuration.dataBytes, 1), purpose: "chunk buffers")
        dataRegion = UnsafeMutableRawBufferPointer(rebasing: dataMemory.bytes[0..<configuration.dataBytes])
        ring = try RingView(bytes: ringMemory.bytes, geometry: configuration.geometry)
        ring.initialize()
        workerCount = configuration.workers > 0 ? configuration.workers : ProcessorCount.online
        self.reason = reason
    }

    public func start() throws(PipelineError) {
        guard threads.isEmpty, !stopped else { return }
        let ring = self.ring
        let executor = SlotExecutor(
            data: UnsafeRawBufferPointer(dataRegion), results: ring.results, ring: ring, scanTables: scanTables, tenants: tenants)
        let workers = workerCount
        for w in 0..<workers {
            do throws(POSIXThreadError) {
                threads.append(try WorkerThread {
                    CPUBackend.workerLoop(ring: ring, executor: executor, worker: w, workers: workers)
                })
            } catch {
                ring.requestShutdown()
                threads.forEach { $0.join() }
                throw .backendUnavailable(backend: "cpu", reason: "pthread_create failed with \(error.code)")
            }
        }
    }

    /// Polls every slot, starting at a per-worker offset so that workers
    /// rarely contend for the same slot; backs off to sleeping when idle.
    static func workerLoop(ring: RingView, executor: SlotExecutor, worker: Int, workers: Int) {
        ring.workerEntered()
        defer { ring.workerLeft() }
        let slots = ring.geometry.slotCount
        let start = slots * worker / max(workers, 1)
        var idleRounds = 0
        while !ring.isShutdownRequested {
            var found = false
            for i in 0..<slots {
                let slot = (start + i) % slots
                switch ring.tryClaim(slot: slot) {
                case .unavailable:
                    continue
                case .cancelled:
                    found = true
                case .claimed(let payload):
                    found = true
                    switch executor.execute(payload) {
                    case .done(let words):
                        ring.complete(slot: slot, resultWords: words, bytes: UInt64(payload.length))
                    case .fault(let code):
                        ring.fault(slot: slot, code: code, opcode: payload.opcode)
                    }
                }
            }
            if found {
                idleRounds = 0
            } else {
                idleRounds += 1
                // Spin briefly for latency, then sleep 1 us doubling to 256 us.
                if idleRounds > 64 { sleepNanoseconds(1000 << min(idleRounds - 65, 8)) }
            }
        }
    }

    public func installScanTable(_ words: [UInt32]) throws(PipelineError) {
        let address = try scanTables.install(words)
        ring.setScanTable(address: address, words: UInt64(words.count))
    }

    public func enableTenants(_ table: [UInt32]) throws(PipelineError) -> UnsafeMutableBufferPointer<UInt32> {
        let (address, view) = try tenants.install(table)
        ring.setTenantTable(address: address, words: UInt64(table.count))
        return view
    }

    public func waitForProgress(after epoch: UInt64, timeout: Duration) throws(PipelineError) -> UInt64 {
        try EpochWaiter.wait(ring: ring, after: epoch, timeout: timeout)
    }

    public func shutdown() throws(PipelineError) {
        guard !stopped else { return }
        stopped = true
        ring.requestShutdown()
        for t in threads { t.join() }
        threads.removeAll()
    }

    deinit {
        try? shutdown()
    }
}
