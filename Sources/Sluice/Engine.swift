import SluiceCore
import SluiceCPU
import SluiceCUDA
import SluiceIngest
import SluiceOps
import SluiceThreads
import SystemPackage

/// Which megakernel runs the work.
public enum BackendChoice: String, CaseIterable, Sendable {
    /// CUDA where a usable device is found, else CPU.
    case auto
    /// The CPU megakernel (worker threads polling the ring).
    case cpu
    /// The CUDA megakernel; starting fails where no device is usable, or where
    /// its kernel is not cached and NVRTC does not load.
    case cuda
}

/// How a run is set up: backend, ingest path, chunk and ring sizes.
public struct EngineConfiguration: Sendable {
    /// Which megakernel runs the work.
    public var backend: BackendChoice
    /// How chunks are read: io_uring, pread, cuFile (GDS) or `auto`.
    public var ingest: IngestChoice
    /// How host reads reach the CUDA workers: copied into GPU memory by a
    /// copy engine, read in mapped host memory, or `auto` (`CopyEnginePlan`).
    public var ingestCopy: IngestCopyChoice = .auto
    /// Bytes per chunk buffer; a multiple of 4096.
    public var chunkBytes: Int
    /// Ring slots (and chunk buffers); 0 picks a default for the backend.
    public var slots: Int
    /// CPU worker threads; 0 uses every core.
    public var workers: Int
    /// Read with O_DIRECT, bypassing the page cache.
    public var direct: Bool
    /// How long slots may stay claimed with no progress before the run gives up with a timeout.
    public var watchdog: Duration
    /// The CPU backend's scan matcher (`--cpu-engine`); other backends ignore it.
    public var cpuScanEngine: ScanEngineChoice
    /// What the run will read, when known (the walk's totals): with `slots`
    /// 0 the ring gets no more slots than that needs, because pinning costs
    /// about 0.3 ms per MiB at start on the H100 machine, and a 1 MiB file
    /// should not pay for 512 MiB (see `ExecutionPlan.fittedSlots`).
    public var inputHint: InputHint?
    /// Why `backend` was chosen, when the caller resolved `auto` itself
    /// (see `SmallFileTrees`); it replaces the "chosen with backend cpu in
    /// the configuration" wording.
    public var backendReason: String?
    /// How reasons name a setting the caller chose (`ConfiguredSetting`):
    /// "backend cpu in the configuration" unless set; the CLI names its
    /// flag instead ("--backend cpu").
    public var settingName: @Sendable (ConfiguredSetting) -> String = ConfiguredSetting.inTheConfiguration
    /// Backends accept the test-only opcodes (`Opcode.testOnly`): only for
    /// fault-injection tests, the self-test's fault checks and `sluice soak`.
    package var faultInjection = false
    /// User operations the backend runs besides the built-in opcodes (a
    /// `Session` made with operations fills it); the ring's result areas
    /// must hold each one's declared words.
    public var operations = OperationSet()
    /// Sets the host read stream (io_uring or pread) up at its first chunk
    /// read instead of at start (`DeferredReadStream`): for runs that may
    /// read everything through pack loads (a scan with packing on), which
    /// then never register the buffers. Not for cuFile, nor for a forced
    /// `--ingest uring` (which must fail at start where io_uring cannot run).
    public var deferIngestSetup = false
    /// The work is light per byte (count, crc32c): with `slots` 0 the CUDA
    /// ring gets fewer slots (`ExecutionPlan.cudaLightWorkSlots`), which
    /// reads a warm file faster there.
    public var lightWork = false
    /// The plan's GDS decision (`ExecutionPlan.configure`); nil: the
    /// engine decides from a cuFile probe as it starts.
    var plannedGDS: GDSPlan.Decision?
    /// The plan's copy-path decision; nil: the engine decides as it starts.
    var plannedCopy: CopyEnginePlan.Decision?
    /// Times one run may recreate a backend that lost its context before it
    /// gives up naming the unfinished chunks.
    public var recoveryAttempts = 2
    /// Receives notes worth a user's attention while running (a lost backend
    /// and what is rerun); the CLI prints them on stderr.
    public var onNote: (@Sendable (String) -> Void)?
    /// Tests only: a backend lost during the run cannot be made again, as
    /// CUDA cannot after an illegal address, so the CPU fallback runs.
    var unrecoverableContextForTests = false
    /// Rings that need host memory at once when this engine's is made: its
    /// own and those of the pool's devices still to come (`DevicePool` sets
    /// it), so that the up-front memory check refuses a pool that cannot
    /// fit before its first ring is allocated.
    var ringsStillToMake = 1
    /// Polled while a run goes on: true stops it as Ctrl-C does (a
    /// `Session` sets it to stop a cancelled request).
    package var shouldStop: @Sendable () -> Bool = { false }
    /// Whether the process-wide `Interrupt` stops runs (the CLI); a
    /// `Session` stops its requests by cancellation only.
    package var stopsOnInterrupt = true
    /// Tests only: stands in for cuFile (a device-ingest stream over any
    /// backend: buffers, chunk bytes, chunk count), so that the engine's
    /// GDS path, rebuilds included, runs without a GPU.
    var deviceStreamForTests: (@Sendable (any MegakernelBackend, Int, Int) throws(PipelineError) -> any ChunkReadStream)?

    /// The chunk size when none is configured: 4 MiB.
    public static let defaultChunkBytes = 4 << 20

    /// A configuration with the defaults: `auto` backend and ingest, 4 MiB chunks, slots and workers picked for the backend, buffered reads, a 30-second watchdog.
    public init(
        backend: BackendChoice = .auto, ingest: IngestChoice = .auto, chunkBytes: Int = defaultChunkBytes, slots: Int = 0,
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
    /// Files the run will read.
    public var files: Int
    /// Bytes of those files, summed.
    public var bytes: Int

    /// The walk's totals: `files` files holding `bytes` bytes.
    public init(files: Int, bytes: Int) {
        self.files = files
        self.bytes = bytes
    }
}

/// A ready pipeline: a started backend, a read stream into its data region,
/// and why each was chosen. Closing it drains reads before stopping workers.
public final class Engine {
    /// The running backend; replaced when a run recovers from a lost context.
    public private(set) var backend: any MegakernelBackend
    /// The read stream into `backend.dataRegion`; replaced with it.
    public private(set) var stream: any ChunkReadStream
    /// Which backend runs and why (for `--verbose` and `doctor`).
    public let backendReason: String
    /// Which ingest path runs and why; for a deferred stream, whether and
    /// how it was set up so far.
    public var ingestReason: String {
        guard let deferred = stream as? DeferredReadStream else { return startReason }
        guard let made = deferred.setUpReason else {
            let planned: String
            switch configuration.ingest {
            case .pread: planned = "the pread pool (forced)"
            case .auto, .gds, .uring: planned = "io_uring, or the pread pool where it cannot run,"
            }
            return "not set up (no file has been too large to pack): \(planned) is set up at the first that is; "
                + "packed files are read by pack loads" + startReason
        }
        return made + " (set up at the first file too large to pack)" + startReason
    }
    /// The reason `makeStream` gave (for a deferred stream, only the cuFile note, if any).
    private var startReason: String
    /// Backends made since the first, after a lost context.
    public private(set) var rebuilds = 0
    /// Why the run went on on the CPU backend after the CUDA backend lost its
    /// context and CUDA could not start again in this process; nil otherwise.
    public private(set) var cpuFallback: String?
    /// The configuration the engine was made with.
    public let configuration: EngineConfiguration
    /// Fallbacks taken while starting (fewer slots than asked for, ...),
    /// which a user should hear about even without --verbose.
    public let notes: [String]
    private var closed = false

    /// The device this engine runs on (CUDA ordinal; an index among simulated CPU devices).
    public let device: Int

    /// Starts a backend and a read stream into its data region as `configuration` says, on CUDA device `device` (or simulated CPU device).
    /// `resultWordsPerSlot` is the size of each slot's result area in 32-bit words.
    /// 
    /// Throws `invalidConfiguration` for a chunk size that is not a multiple of 4096 in 4 KiB...1 GiB, and the backend's or stream's error when one cannot start.
    public init(_ configuration: EngineConfiguration, resultWordsPerSlot: Int, device: Int = 0) throws(PipelineError) {
        let chunk = configuration.chunkBytes
        guard chunk >= 4096, chunk % 4096 == 0, chunk <= 1 << 30 else {
            throw .invalidConfiguration("chunk size \(chunk) must be a multiple of 4096 between 4 KiB and 1 GiB")
        }
        // cuFile into GPU memory (--ingest gds, or auto where it is truly
        // direct) needs a device ingest region, which the backend allocates.
        var gds: GDSPlan.Decision
        if configuration.deviceStreamForTests != nil {
            gds = GDSPlan.Decision(useGDS: true, forced: true, note: nil)
        } else if let planned = configuration.plannedGDS {
            gds = planned
        } else {
            gds = try GDSPlan.decide(
                ingest: configuration.ingest, backend: configuration.backend, settingName: configuration.settingName
            ) { CuFileProbe.capability() }
        }
        var copy: CopyEnginePlan.Decision
        if let planned = configuration.plannedCopy {
            copy = planned
        } else {
            copy = try Engine.decideCopy(configuration, gds: gds)
        }
        (copy, gds) = CopyEnginePlan.reconcile(copy, gds)
        let (selection, shrunk) = try Engine.makeBackend(
            configuration, slots: configuration.slots, resultWordsPerSlot: resultWordsPerSlot, device: device,
            deviceIngest: gds.useGDS || copy.useEngine)
        PhaseTrace.mark("engine: \(selection.backend.name) backend made")
        self.device = device
        backend = selection.backend
        backendReason = selection.reason
        notes = shrunk.map { [$0] } ?? []
        let made = try Engine.makeStream(
            configuration, for: selection.backend, backendReason: selection.reason, gds: &gds, copy: &copy)
        stream = made.stream
        startReason = made.reason
        self.gds = gds
        self.copy = copy
        self.configuration = configuration
        self.resultWordsPerSlot = resultWordsPerSlot
        PhaseTrace.mark("engine: ingest stream ready (\(ingestReason))")
        try backend.start()
        PhaseTrace.mark("engine: backend started")
    }

    private let resultWordsPerSlot: Int
    /// Whether reads go through cuFile into the device ingest region, as
    /// decided at start; a rebuilt backend gets the same kind of stream.
    private var gds: GDSPlan.Decision
    /// Whether host reads are copied into the device ingest region, as
    /// decided at start; kept, like `gds`, for a rebuilt backend.
    private var copy: CopyEnginePlan.Decision

    /// A configuration and plans for going on on the CPU backend after a
    /// lost CUDA context: it reads host memory, so no cuFile, no copy
    /// engine, no device region (and a forced `ingest gds` becomes auto).
    static func onTheCPU(
        _ configuration: EngineConfiguration
    ) -> (EngineConfiguration, GDSPlan.Decision, CopyEnginePlan.Decision) {
        var c = configuration
        c.backend = .cpu
        if c.ingest == .gds { c.ingest = .auto }
        if c.ingestCopy == .engine { c.ingestCopy = .auto }
        return (c, GDSPlan.Decision(useGDS: false, forced: false, note: nil), CopyEnginePlan.Decision(useEngine: false, forced: false, note: nil))
    }

    /// The copy path for an engine made without a plan: this machine's cost
    /// model says which path `auto` takes.
    private static func decideCopy(
        _ configuration: EngineConfiguration, gds: GDSPlan.Decision
    ) throws(PipelineError) -> CopyEnginePlan.Decision {
        // Only auto on a backend that may be CUDA follows a measurement: read the calibration then alone.
        let measured = configuration.ingestCopy == .auto && configuration.backend != .cpu
        let model = measured ? CostModel.load().model : .defaults
        let facts = CopyEnginePlan.Facts(
            configuration, backend: configuration.backend, gds: gds, input: configuration.inputHint, model: model)
        return try CopyEnginePlan.decide(configuration.ingestCopy, facts: facts, settingName: configuration.settingName)
    }

    /// The backend for `configuration`. When the pinned or mapped memory for
    /// the ring and buffers is refused, tries half as many slots (down to 2)
    /// and says so, rather than fail. With `deviceIngest` the CUDA backend
    /// also gets a device ingest region.
    private static func makeBackend(
        _ configuration: EngineConfiguration, slots: Int, resultWordsPerSlot: Int, device: Int, deviceIngest: Bool
    ) throws(PipelineError) -> (BackendSelection.Made, String?) {
        let chunk = configuration.chunkBytes
        var slotsWanted = slots
        var shrunk: String?
        while true {
            do {
                let selection = try BackendSelection.make(
                    configuration.backend,
                    slots: slotsWanted, chunkBytes: chunk, workers: configuration.workers,
                    resultWordsPerSlot: resultWordsPerSlot, device: device, cpuScanEngine: configuration.cpuScanEngine,
                    inputHint: configuration.inputHint, reason: configuration.backendReason,
                    settingName: configuration.settingName, deviceIngest: deviceIngest,
                    faultInjection: configuration.faultInjection, operations: configuration.operations,
                    lightWork: configuration.lightWork,
                    memory: BackendSelection.MemoryPlan(
                        rings: configuration.ringsStillToMake, forcedUring: configuration.ingest == .uring))
                return (selection, shrunk)
            } catch {
                let (isMemory, tried) = Engine.memoryRefusal(error, slotsWanted: slotsWanted)
                guard isMemory, tried > 2 else { throw error }
                slotsWanted = tried / 2
                shrunk = "memory for \(tried) slots of \(chunk) bytes was refused (\(error.message)); using \(slotsWanted)"
            }
        }
    }

    /// The read stream into `backend`'s buffers: cuFile into its device
    /// ingest region when `gds` says so (and the backend is CUDA), else the
    /// host ingest path, copied into the device ingest region when `copy`
    /// says so. A cuFile set-up that fails under auto falls back to
    /// the host path and turns `gds` off (so a rebuild does not try again);
    /// forced, it is an error. Call before `backend.start()`.
    private static func makeStream(
        _ configuration: EngineConfiguration, for backend: any MegakernelBackend, backendReason: String,
        gds: inout GDSPlan.Decision, copy: inout CopyEnginePlan.Decision
    ) throws(PipelineError) -> (stream: any ChunkReadStream, reason: String) {
        copy = try CopyEnginePlan.resolve(copy, backendIsCUDA: backend is CUDABackend, backendReason: backendReason)
        // Copied chunks are never packed, so a deferred set-up would only defer it to the first read.
        var hostConfiguration = configuration
        if copy.useEngine { hostConfiguration.deferIngestSetup = false }
        let host = try makeHostOrGDSStream(hostConfiguration, for: backend, backendReason: backendReason, gds: &gds)
        if gds.useGDS { return host }
        guard copy.useEngine else {
            // The host path on CUDA says which copy path it is and why (resolved, the CPU backend has no note).
            return copy.note.map { (host.stream, host.reason + "; " + $0) } ?? host
        }
        guard let region = (backend as? CUDABackend)?.deviceIngest else {
            throw .backendUnavailable(backend: "cuda", reason: "the CUDA backend was started without a device ingest region")
        }
        let stream = CopyingReadStream(inner: host.stream, copier: CUDAChunkCopier(region: region))
        return (stream, host.reason + "; then " + (copy.note ?? "the copy engine"))
    }

    /// The host stream (io_uring or pread), or cuFile's into GPU memory.
    private static func makeHostOrGDSStream(
        _ configuration: EngineConfiguration, for backend: any MegakernelBackend, backendReason: String,
        gds: inout GDSPlan.Decision
    ) throws(PipelineError) -> (stream: any ChunkReadStream, reason: String) {
        let chunk = configuration.chunkBytes
        let slots = backend.ring.geometry.slotCount
        let threads = max(2, min(ProcessorCount.online, 16))
        if let make = configuration.deviceStreamForTests {
            return (try make(backend, chunk, slots), "device stream for tests")
        }
        gds = try GDSPlan.resolve(gds, backendIsCUDA: backend is CUDABackend, backendReason: backendReason)
        if gds.useGDS, let cuda = backend as? CUDABackend {
            do {
                let made = try GDSPlan.makeStream(
                    backend: cuda, chunkBytes: chunk, chunkCount: slots, threads: threads, note: gds.note ?? "")
                return (made.stream, made.reason)
            } catch where !gds.forced {
                gds.useGDS = false
                gds.note = "GPUDirect Storage not used: setting up cuFile failed: \(error.message)"
            }
        }
        let choice: IngestChoice = configuration.ingest == .gds ? .auto : configuration.ingest
        let region = backend.dataRegion
        let gdsNote = gds.note.map { "; \($0)" } ?? ""
        let build = { () throws(PipelineError) -> IngestSelection in
            try IngestSelection.makeStream(
                choice, region: region, chunkBytes: chunk, chunkCount: slots, preadThreads: threads)
        }
        // Forced io_uring is set up now: where it cannot run, the run fails
        // at once with one error instead of at every file too large to pack.
        if configuration.deferIngestSetup, choice != .uring {
            return (try DeferredReadStream(region: region, chunkBytes: chunk, chunkCount: slots, make: build), gdsNote)
        }
        let made = try build()
        return (made.stream, made.reason + gdsNote)
    }

    /// Replaces a backend that lost its context (the scanner's
    /// `rebuildBackend`): waits for the reads in flight into its buffers
    /// (bounded by the watchdog), shuts it down, lets go of it and its stream
    /// (placeholders hold their place, so that a CUDA backend's deinit resets
    /// the lost context before the next one is made), then makes, starts and
    /// returns a new backend of the same kind and size with a new stream of
    /// the same kind (cuFile into a new device ingest region when the run
    /// started so).
    func replaceLostBackend() throws(PipelineError) -> (any MegakernelBackend, any ChunkReadStream) {
        let slots = backend.ring.geometry.slotCount
        let lostCUDA = backend is CUDABackend
        try drainReadsOfLostBackend()
        try releaseLostBackend()
        let (selection, rebuilt, gdsPlan, copyPlan) = try makeReplacementBackend(slots: slots, lostCUDA: lostCUDA)
        var plan = gdsPlan
        var copied = copyPlan
        let made = try Engine.makeStream(
            rebuilt, for: selection.backend, backendReason: selection.reason, gds: &plan, copy: &copied)
        try selection.backend.start()
        gds = plan
        copy = copied
        backend = selection.backend
        stream = made.stream
        startReason = made.reason
        rebuilds += 1
        return (backend, stream)
    }

    /// Waits (bounded by the watchdog) for the reads in flight into the lost
    /// backend's buffers; reads that never end are the error.
    private func drainReadsOfLostBackend() throws(PipelineError) {
        let old = stream
        let deadline = ContinuousClock.now.advanced(by: configuration.watchdog)
        while old.inflight > 0, ContinuousClock.now < deadline {
            _ = try? old.reap(waitingUpTo: .milliseconds(100))
        }
        guard old.inflight == 0 else {
            throw PipelineError.readsStuck(path: "", chunks: [], seconds: Double(configuration.watchdog.components.seconds))
        }
    }

    /// Shuts the lost backend down and lets go of it and its stream;
    /// placeholders hold their place, so that a CUDA backend's deinit resets
    /// the lost context before the next one is made.
    private func releaseLostBackend() throws(PipelineError) {
        try? backend.shutdown()
        // A scanner of this engine other than the one recovering may still
        // hold the lost backend; it lets go too (it cannot run on it anyway).
        try? reusableScanner?.detachLostBackend(cause: "the backend lost its context")
        let placeholder = try LostBackend(replacing: backend, cause: "being replaced")
        stream = ClosedReadStream(
            chunkBytes: stream.chunkBytes, chunkCount: stream.chunkCount, region: placeholder.dataRegion)
        backend = placeholder
    }

    /// A backend of the same kind and size as the lost one (a device ingest
    /// region again where the run reads with cuFile or copies), or the CPU
    /// backend where CUDA cannot start again in this process; with the
    /// configuration and plans its stream is made from.
    private func makeReplacementBackend(
        slots: Int, lostCUDA: Bool
    ) throws(PipelineError) -> (BackendSelection.Made, EngineConfiguration, GDSPlan.Decision, CopyEnginePlan.Decision) {
        var plan = gds
        var copyPlan = copy
        var rebuilt = configuration
        rebuilt.ringsStillToMake = 1
        func onTheCPU() { (rebuilt, plan, copyPlan) = Engine.onTheCPU(rebuilt) }
        // Already on the CPU after a lost CUDA context: stay there.
        if cpuFallback != nil { onTheCPU() }
        let simulated = configuration.unrecoverableContextForTests && cpuFallback == nil
        do throws(PipelineError) {
            if simulated {
                throw PipelineError.gpu(
                    call: "cuDevicePrimaryCtxRetain", code: 700, message: "CUDA_ERROR_ILLEGAL_ADDRESS (simulated by a test)")
            }
            let (selection, _) = try Engine.makeBackend(
                rebuilt, slots: slots, resultWordsPerSlot: resultWordsPerSlot, device: device,
                deviceIngest: plan.useGDS || copyPlan.useEngine)
            return (selection, rebuilt, plan, copyPlan)
        } catch where lostCUDA || simulated {
            // After an illegal address the driver refuses every new context
            // in this process (CUDA_ERROR_ILLEGAL_ADDRESS is sticky: on the
            // H100 machine cuDevicePrimaryCtxRetain kept failing with 700,
            // reset or not). The CPU backend runs the same protocol and ops,
            // so the unfinished chunks are finished there, and the run says so.
            onTheCPU()
            let (selection, _) = try Engine.makeBackend(
                rebuilt, slots: slots, resultWordsPerSlot: resultWordsPerSlot, device: device, deviceIngest: false)
            let why = "CUDA cannot start again in this process (\(error.message)); the rest of the run goes on the CPU backend"
            cpuFallback = why
            configuration.onNote?("device \(device): \(why)")
            return (selection, rebuilt, plan, copyPlan)
        }
    }

    private var reusableScanner: ChunkScheduler?

    /// Installs `table` in the backend with the literals it was compiled
    /// from, so that the CPU backend can compile them with Hyperscan. Returns
    /// the line that names the matcher that runs (for `--verbose`).
    @discardableResult
    public func installScan(table: ScanTable, patterns: PatternSet) throws(PipelineError) -> String {
        let line = try backend.installScanTable(
            table.words, literals: patterns.literals, caseInsensitive: patterns.caseInsensitive)
        installedScan = (table.words, patterns.literals, patterns.caseInsensitive)
        reusableScanner?.remember(scanTable: table.words, literals: patterns.literals, caseInsensitive: patterns.caseInsensitive)
        return line
    }

    /// The table `installScan` installed last, for scanners made later.
    private var installedScan: (words: [UInt32], literals: [[UInt8]], caseInsensitive: Bool)?

    /// The matcher the CPU backend's scan opcode runs, nil on other backends.
    public var activeCPUScanEngine: ActiveScanEngine? { (backend as? CPUBackend)?.scanEngine }

    /// Why the CPU backend runs the built-in matcher although Hyperscan was
    /// wanted and loaded (it could not compile the set); nil otherwise.
    public var scanEngineFallback: String? { (backend as? CPUBackend)?.scanEngineFallback }

    /// The engine's scanner, made on first use and reused, so that per-tenant
    /// counters add up over every batch the engine runs.
    public func scanner() throws(PipelineError) -> ChunkScheduler {
        if let s = reusableScanner { return s }
        let s = try makeScanner()
        reusableScanner = s
        return s
    }

    /// Whether `error` is a refused allocation, and how many slots were
    /// asked for: ENOMEM or EAGAIN from a call that maps, locks or registers
    /// memory, or CUDA_ERROR_OUT_OF_MEMORY from the driver.
    static func memoryRefusal(_ error: PipelineError, slotsWanted: Int) -> (Bool, Int) {
        let tried = slotsWanted > 0 ? slotsWanted : 128
        switch error {
        case .io(let f) where f.allocatesMemory:
            let refused: Set<Errno> = [.noMemory, .resourceTemporarilyUnavailable]
            return (refused.contains(Errno(rawValue: f.errno)), tried)
        case .gpu(_, let code, _):
            return (code == CUDADriver.errorOutOfMemory, tried)
        default:
            return (false, tried)
        }
    }

    /// A new scanner over this engine's backend and stream.
    /// It recovers from a lost backend through this engine (`replaceLostBackend`).
    public func makeScanner(tenant: UInt32 = 0) throws(PipelineError) -> ChunkScheduler {
        var options = ChunkScheduler.Options(
            direct: configuration.direct, watchdog: configuration.watchdog, tenant: tenant,
            shouldStop: configuration.shouldStop)
        options.stopsOnInterrupt = configuration.stopsOnInterrupt
        let s = try ChunkScheduler(backend: backend, stream: stream, options: options)
        if let t = installedScan { s.remember(scanTable: t.words, literals: t.literals, caseInsensitive: t.caseInsensitive) }
        s.recoveryAttempts = configuration.recoveryAttempts
        s.rebuildBackend = { [weak self] () throws(PipelineError) -> (any MegakernelBackend, any ChunkReadStream) in
            guard let self else { throw .invalidRequest(chunk: nil, slot: nil, reason: "the engine was released") }
            return try self.replaceLostBackend()
        }
        let note = configuration.onNote
        let device = self.device
        s.onRecovery = { r in
            let chunks = r.unfinished.prefix(8).map(\.description).joined(separator: "; ")
                + (r.unfinished.count > 8 ? "; and \(r.unfinished.count - 8) more" : "")
            note?("device \(device): \(r.cause.message); recreating the backend (recovery \(r.attempt)) and rerunning \(r.unfinished.count) unfinished chunks: \(chunks)")
        }
        return s
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
