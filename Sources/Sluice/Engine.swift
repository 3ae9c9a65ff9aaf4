import SluiceCore
import SluiceCPU
import SluiceCUDA
import SluiceIngest
import SluiceOps

/// Which megakernel runs the work.
public enum BackendChoice: String, CaseIterable, Sendable {
    /// CUDA when a device and NVRTC load, else CPU.
    case auto
    case cpu
    case cuda
}

/// How a run is set up: backend, ingest path, chunk and ring sizes.
public struct EngineConfiguration: Sendable {
    public var backend: BackendChoice
    public var ingest: IngestChoice
    /// Bytes per chunk buffer; a multiple of 4096.
    public var chunkBytes: Int
    /// Ring slots (and chunk buffers); 0 picks a default for the backend.
    public var slots: Int
    /// CPU worker threads; 0 uses every core.
    public var workers: Int
    /// Read with O_DIRECT, bypassing the page cache.
    public var direct: Bool
    public var watchdog: Duration
    /// The CPU backend's scan matcher (`--cpu-engine`); other backends ignore it.
    public var cpuScanEngine: ScanEngineChoice
    /// What the run will read, when known (the walk's totals): with `slots`
    /// 0 the ring gets no more slots than that needs, because pinning costs
    /// about 0.3 ms per MiB at start on the H100 machine, and a 1 MiB file
    /// should not pay for 512 MiB (see `BackendSelection.fittedSlots`).
    public var inputHint: InputHint?

    public init(
        backend: BackendChoice = .auto, ingest: IngestChoice = .auto, chunkBytes: Int = 4 << 20, slots: Int = 0,
        workers: Int = 0, direct: Bool = false, watchdog: Duration = .seconds(30), cpuScanEngine: ScanEngineChoice = .auto
    ) {
        self.backend = backend
        self.ingest = ingest
        self.chunkBytes = chunkBytes
        self.slots = slots
        self.workers = workers
        self.direct = direct
        self.watchdog = watchdog
        self.cpuScanEngine = cpuScanEngine
    }
}

/// How much a run will read: files and bytes, as the walk saw them.
public struct InputHint: Sendable, Hashable {
    public var files: Int
    public var bytes: Int

    public init(files: Int, bytes: Int) {
        self.files = files
        self.bytes = bytes
    }
}

/// A ready pipeline: a started backend, a read stream into its data region,
/// and why each was chosen. Closing it drains reads before stopping workers.
public final class Engine {
    public let backend: any MegakernelBackend
    public let stream: any ChunkReadStream
    /// Which backend runs and why (for `--verbose` and `doctor`).
    public let backendReason: String
    /// Which ingest path runs and why.
    public let ingestReason: String
    public let configuration: EngineConfiguration
    /// Fallbacks taken while starting (fewer slots than asked for, ...),
    /// which a user should hear about even without --verbose.
    public let notes: [String]
    private var closed = false

    /// The device this engine runs on (CUDA ordinal; an index among simulated CPU devices).
    public let device: Int

    public init(_ configuration: EngineConfiguration, resultWordsPerSlot: Int, device: Int = 0) throws(PipelineError) {
        let chunk = configuration.chunkBytes
        guard chunk >= 4096, chunk % 4096 == 0, chunk <= 1 << 30 else {
            throw .invalidConfiguration("chunk size \(chunk) must be a multiple of 4096 between 4 KiB and 1 GiB")
        }
        // When the pinned or mapped memory for the ring and buffers is refused,
        // try half as many slots (down to 2) and say so, rather than fail.
        var slotsWanted = configuration.slots
        // cuFile into GPU memory (--ingest gds, or auto where it is truly
        // direct) needs a device ingest region, which the backend allocates.
        var gds = try GDSPlan.decide(ingest: configuration.ingest, backend: configuration.backend) {
            CuFileProbe.capability()
        }
        var selection: BackendSelection.Made
        var shrunk: String?
        while true {
            do {
                selection = try BackendSelection.make(
                    configuration.backend,
                    slots: slotsWanted, chunkBytes: chunk, workers: configuration.workers,
                    resultWordsPerSlot: resultWordsPerSlot, device: device, cpuScanEngine: configuration.cpuScanEngine,
                    inputHint: configuration.inputHint, deviceIngest: gds.useGDS)
                break
            } catch {
                let (isMemory, tried) = Engine.memoryRefusal(error, slotsWanted: slotsWanted)
                guard isMemory, tried > 2 else { throw error }
                slotsWanted = tried / 2
                shrunk = "memory for \(tried) slots of \(chunk) bytes was refused (\(error.message)); using \(slotsWanted)"
            }
        }
        PhaseTrace.mark("engine: \(selection.backend.name) backend made")
        self.device = device
        backend = selection.backend
        backendReason = selection.reason
        notes = shrunk.map { [$0] } ?? []
        let slots = backend.ring.geometry.slotCount
        let threads = max(2, min(ProcessorCount.online, 16))
        gds = try GDSPlan.resolve(gds, backendIsCUDA: backend is CUDABackend, backendReason: selection.reason)
        var gdsStream: (stream: ChunkReaderStream, reason: String)?
        if gds.useGDS, let cuda = backend as? CUDABackend {
            do {
                gdsStream = try GDSPlan.makeStream(
                    backend: cuda, chunkBytes: chunk, chunkCount: slots, threads: threads, note: gds.note ?? "")
            } catch where !gds.forced {
                gds.note = "GPUDirect Storage not used: setting up cuFile failed: \(error.message)"
            }
        }
        if let gdsStream {
            stream = gdsStream.stream
            ingestReason = gdsStream.reason
        } else {
            let made = try IngestSelection.makeStream(
                configuration.ingest == .gds ? .auto : configuration.ingest, region: backend.dataRegion,
                chunkBytes: chunk, chunkCount: slots, preadThreads: threads)
            stream = made.stream
            ingestReason = made.reason + (gds.note.map { "; \($0)" } ?? "")
        }
        PhaseTrace.mark("engine: ingest stream ready (\(ingestReason))")
        self.configuration = configuration
        try backend.start()
        PhaseTrace.mark("engine: backend started")
    }

    private var reusableScanner: Scanner?

    /// Installs `table` in the backend with the literals it was compiled
    /// from, so that the CPU backend can compile them with Hyperscan. Returns
    /// the line that names the matcher that runs (for `--verbose`).
    @discardableResult
    public func installScan(table: ScanTable, patterns: PatternSet) throws(PipelineError) -> String {
        try backend.installScanTable(table.words, literals: patterns.literals, caseInsensitive: patterns.caseInsensitive)
    }

    /// The matcher the CPU backend's scan opcode runs, nil on other backends.
    public var activeCPUScanEngine: ActiveScanEngine? { (backend as? CPUBackend)?.scanEngine }

    /// Why the CPU backend runs the built-in matcher although Hyperscan was
    /// wanted and loaded (it could not compile the set); nil otherwise.
    public var scanEngineFallback: String? { (backend as? CPUBackend)?.scanEngineFallback }

    /// The engine's scanner, made on first use and reused, so that per-tenant
    /// counters add up over every batch the engine runs.
    public func scanner() throws(PipelineError) -> Scanner {
        if let s = reusableScanner { return s }
        let s = try makeScanner()
        reusableScanner = s
        return s
    }

    /// Whether `error` is a refused allocation, and how many slots were asked for.
    static func memoryRefusal(_ error: PipelineError, slotsWanted: Int) -> (Bool, Int) {
        let tried = slotsWanted > 0 ? slotsWanted : 128
        switch error {
        case .io(let f) where f.operation.hasPrefix("mmap"): return (true, tried)
        case .gpu(let call, _, _) where call.hasPrefix("cuMemHostAlloc") || call.hasPrefix("cuMemHostRegister") || call.hasPrefix("cuMemAlloc"): return (true, tried)
        default: return (false, tried)
        }
    }

    /// A new scanner over this engine's backend and stream.
    public func makeScanner(tenant: UInt32 = 0) throws(PipelineError) -> Scanner {
        try Scanner(
            backend: backend, stream: stream,
            options: Scanner.Options(direct: configuration.direct, watchdog: configuration.watchdog, tenant: tenant))
    }

    /// Stops the workers. Reads still in flight are drained first so that no
    /// DMA lands in memory after it is released.
    public func close() throws(PipelineError) {
        guard !closed else { return }
        closed = true
        while stream.inflight > 0 {
            _ = try stream.reap(waitingUpTo: .milliseconds(100))
        }
        PhaseTrace.mark("engine: reads drained")
        try backend.shutdown()
        PhaseTrace.mark("engine: backend shut down")
    }

    deinit { try? close() }
}
