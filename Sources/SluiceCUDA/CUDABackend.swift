#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceNUMA
import SluiceOps
import SluiceSystem
import SluiceThreads
import Synchronization

/// The CUDA megakernel: one persistent kernel, launched once. Its block 0
/// dispatches: one warp polls the ring in pinned host memory mapped into the
/// GPU, claims published slots and hands them to the worker blocks through
/// mailboxes in device memory; the workers run them on chunk bytes that the
/// GPU reads where ingest put them. Opcodes: count, scan (the table installed
/// with `installScanTable`, in device memory) and crc32c; tenant checks with
/// `enableTenants` (the table in mapped host memory).
///
/// The driver API is loaded with dlopen; the kernel source is embedded and
/// compiled for the device's own architecture at start by NVRTC (loaded with
/// dlopen then), or loaded from the CUBIN cache without NVRTC. See docs/protocol.md for the ring contract.
///
/// While the kernel runs, nothing may call a driver function that waits for
/// the device to go idle (freeing device or pinned memory, unloading a
/// module, synchronizing the context): it would wait for the persistent
/// kernel, which only ends at `shutdown()`. Allocate everything before `start()`:
/// scan and tenant tables installed later go into arenas allocated at init
/// (device memory for scan tables, mapped host memory for tenant tables) and
/// are never freed before the kernel has ended.
public final class CUDABackend: MegakernelBackend {
    /// "cuda".
    public let name = "cuda"
    /// `.gpu`: watchdog messages name the GPU kernel.
    public let slotRunner = SlotRunner.gpu
    /// The ring, in pinned host memory mapped into the GPU.
    public let ring: RingView
    /// The chunk buffers as the host sees them: pinned host memory mapped into the GPU, which the workers read in place.
    public let dataRegion: UnsafeMutableRawBufferPointer
    /// Every defined opcode (count, scan, crc32c and nop) and the installed user operations'.
    public var supportedOpcodes: Set<Opcode> { CUDABackend.builtinOpcodes.union(configuration.operations.opcodes) }
    private static let builtinOpcodes: Set<Opcode> = [.count, .scan, .crc32c, .nop]
    /// The ring and data sizes the backend was made with.
    public let configuration: BackendConfiguration
    /// The device the kernel runs on, as the probe found it.
    public let device: CUDADeviceInfo

    /// Blocks of the persistent kernel: the dispatcher block and `workers`.
    public let grid: Int
    /// Worker blocks: multiprocessors × blocks per multiprocessor, less the
    /// dispatcher's, capped at the slot count (a worker owns the slots s with
    /// s % workers == its index).
    public let workers: Int
    /// Threads per block of the persistent kernel.
    public let blockThreads = Megakernel.blockThreads
    /// Worker blocks resident per multiprocessor, as launched (at most what occupancy allows).
    public let blocksPerMultiprocessor: Int
    /// What the occupancy API allows per multiprocessor.
    public let occupancyBlocksPerMultiprocessor: Int
    /// Registers per thread of the compiled kernel.
    public let registersPerThread: Int
    /// Local (stack, spill) bytes per thread; 0 when the kernel keeps everything in registers.
    public let localBytesPerThread: Int
    /// Static shared memory per block of the compiled kernel, in bytes.
    public let staticSharedBytes: Int
    /// Dynamic shared memory per block (scan filter cache, crc tables, histograms or scan tile).
    public let dynamicSharedBytes = Megakernel.dynamicSharedBytes
    /// The device's `sm_XY`, which the kernel is built and cached for.
    public let architecture: String
    /// The kernel's NVRTC options, the device's architecture first (an NVRTC
    /// that cannot target it compiles for the nearest it can).
    public let nvrtcOptions: [String]
    /// "compiled by NVRTC in N ms, cached at PATH" or "loaded from PATH".
    public let kernelOrigin: String
    /// NVRTC's warnings when it compiled now (empty when clean or cached).
    public let compileLog: String

    /// Why this backend runs (shown in `summary`); the selector says, for
    /// example, that `--backend auto` found a device.
    public var selectionReason: String
    /// How long `shutdown()` waits for the kernel before reporting it stuck.
    public var shutdownTimeout: Duration = .seconds(10)
    /// How long `start()` waits for every block to report in.
    public var startTimeout: Duration = .seconds(5)

    /// The default cap on the dispatcher's idle `__nanosleep` (see `idleSleepMaxNanoseconds`).
    public static let defaultIdleSleepMaxNanoseconds = 1024
    /// Longest sleep of the idle dispatcher warp between two polling rounds:
    /// after 64 rounds that found nothing, the sleep doubles from 64 ns up to
    /// this while nothing is published (a round that finds a slot goes back
    /// to spinning). Lower answers a lone slot sooner after a long idle time
    /// and costs more PCIe reads while idle; 0 polls without sleeping. Takes
    /// effect at `start()`.
    public var idleSleepMaxNanoseconds: Int = CUDABackend.defaultIdleSleepMaxNanoseconds

    /// The fence the kernel uses for each release/acquire pattern with the host.
    public enum SystemFence: String, Sendable, CaseIterable {
        /// `fence.acq_rel.sys`: all the protocol needs (the default).
        case acquireRelease = "fence.acq_rel.sys"
        /// `fence.sc.sys` (`__threadfence_system`): stronger than needed, kept to measure.
        case sequentiallyConsistent = "fence.sc.sys"
    }
    /// Takes effect at `start()`.
    public var systemFence: SystemFence = .acquireRelease
    /// Read the words the host writes (slot statuses and words, control
    /// words, the tenant table) with volatile loads (`ld.volatile`, relaxed at
    /// system scope) rather than `ld.global.cv` (which discards any L2 copy of
    /// a host-memory line and fetches it again). Volatile is the default: on
    /// the H100 machine it answered a lone slot about 1 us sooner (run 6 of
    /// benchmarks/RESULTS.md: 11.96 vs 12.90 us p50) and was as correct.
    /// Chunk bytes are always read with `ld.global.cv`. Takes effect at `start()`.
    public var volatilePolling = true
    /// Write the words the host reads (statuses, results, counters) with
    /// volatile write-back stores instead of `st.global.wt` (write-through to
    /// host memory). Kept to measure; takes effect at `start()`.
    public var writeBackStores = false
    /// Have the kernel time each slot's stages (`stageTraceSums()`); it reads
    /// `%globaltimer` a few times per slot. For `sluice bench dispatch`;
    /// takes effect at `start()`.
    package var traceStages = false
    /// Claim a lone PUBLISHED slot with the dispatcher lane that found it
    /// rather than with the whole warp in one round trip. Kept to measure;
    /// takes effect at `start()`.
    public var laneClaims = false

    /// Where the ring and data region's pages are: the GPU's NUMA node and
    /// how many sampled pages landed there, or why nothing was placed.
    public let numaPlacement: String
    private let context: CUDAContext
    private let ringMemory: CUDAMappedHostBuffer
    private let dataMemory: CUDAMappedHostBuffer
    /// Device memory that cuFile reads chunks into, when asked for at init:
    /// slots with `region == .device` address it (docs/protocol.md, "Memory").
    public let deviceIngest: CUDADeviceIngestRegion?
    /// The kernel's counters (device memory; see "why no atomics touch host memory" in Kernels/sluice_counters.h).
    private let deviceState: CUDADeviceBuffer
    private let module: CUDAModule
    private let megakernel: CUDAFunction
    private let stream: CUDAStream
    /// A second non-blocking stream for table uploads while the kernel runs.
    private let copyStream: CUDAStream
    /// Scan tables (device memory) and tenant tables (mapped host memory):
    /// bump-allocated, never reused, freed with the backend.
    private let tables: Mutex<TableMemory>
    private let state = Mutex<State>(.idle)
    /// Blocks that had reported in when `start()` returned; -1 before.
    private let blocksAtStart = Atomic<Int>(-1)

    private enum State {
        case idle
        case running
        case stopped
        /// The kernel ended or failed; the error says how.
        case failed(PipelineError)
        /// A shutdown timed out (a block that never leaves): the kernel may
        /// still read this backend's memory, which is kept for the process's life.
        case abandoned(PipelineError)
    }

    /// Whether CUDA can run here, without creating a context (see `CUDAProbe`).
    public static func probe(device: Int = 0) -> Result<CUDADeviceInfo, PipelineError> {
        CUDAProbe.probe(device: device)
    }

    /// Loads the driver, retains the device's primary context, allocates
    /// the ring and the data region as mapped pinned host memory
    /// (page-aligned), initializes the ring and loads the megakernel (from
    /// the CUBIN cache, else compiled by NVRTC, loaded for it).
    /// Nothing runs until `start()`. `reason` says why this backend runs (see `summary`).
    /// With `deviceIngestBytes` > 0 it also allocates a device ingest region
    /// of that size in device memory (`deviceIngest`), for slots whose chunks
    /// cuFile read into GPU memory.
    public init(
        configuration: BackendConfiguration, device ordinal: Int = 0, reason: String = "the CUDA backend was requested",
        deviceIngestBytes: Int = 0
    ) throws(PipelineError) {
        guard configuration.dataBytes >= 0 else {
            throw .invalidConfiguration("data region of \(configuration.dataBytes) bytes")
        }
        guard configuration.workers >= 0 else {
            throw .invalidConfiguration("\(configuration.workers) blocks per multiprocessor")
        }
        let driver = try CUDADriver.shared.get()
        PhaseTrace.mark("cuda: driver loaded and initialized")
        let info = try CUDAProbe.deviceInfo(driver: driver, ordinal: ordinal)
        PhaseTrace.mark("cuda: device \(ordinal) queried")
        if let reason = info.unsuitability {
            throw .backendUnavailable(backend: "cuda", reason: reason)
        }
        let geometry = configuration.geometry
        let context = try CUDAContext(driver: driver, ordinal: ordinal)
        PhaseTrace.mark("cuda: primary context retained")
        // The kernel before the ring and the data region: a compile that
        // cannot run (no NVRTC, a user operation's error) fails before
        // anything large is pinned.
        let build = KernelBuild(
            computeCapability: (info.computeCapability.major, info.computeCapability.minor), driverVersion: info.driverVersion,
            program: UserOperationSource.program(configuration.operations))
        let (module, origin, log) = try build.load(into: context)
        PhaseTrace.mark("cuda: megakernel module \(origin)")
        let page = AnonymousMapping.pageSize
        // The ring and data region on the GPU's NUMA node (NUMA.swift says when).
        let numa = NUMAPlan.decide(pciAddress: CUDAInventory.pciAddress(driver: driver, device: context.device))
        let ringMemory = try CUDAMappedHostBuffer(
            context: context, byteCount: geometry.byteCount, alignment: page, numaNode: numa.node)
        PhaseTrace.mark("cuda: ring mapped (\(geometry.byteCount) B)")
        let dataMemory = try CUDAMappedHostBuffer(
            context: context, byteCount: configuration.dataBytes, alignment: page, numaNode: numa.node)
        PhaseTrace.mark("cuda: data region pinned and mapped (\(configuration.dataBytes >> 20) MiB)")
        let ring = try RingView(bytes: ringMemory.bytes, geometry: geometry)
        ring.initialize()
        let deviceState = try CUDADeviceBuffer(
            context: context, byteCount: Megakernel.deviceStateBytes + geometry.slotCount * Megakernel.mailboxBytes)

        let megakernel = try module.function(named: Megakernel.kernelName)
        let sharedLimit = try context.attribute(.maxSharedMemoryPerBlockOptin)
        guard sharedLimit >= Megakernel.dynamicSharedBytes else {
            throw .backendUnavailable(
                backend: "cuda", reason: "\(info.name) allows \(sharedLimit) bytes of shared memory per block; the megakernel needs \(Megakernel.dynamicSharedBytes)")
        }
        try megakernel.setAttribute(Megakernel.maxDynamicSharedAttribute, to: Megakernel.dynamicSharedBytes)
        let occupancy = try megakernel.maxActiveBlocksPerMultiprocessor(
            blockThreads: Megakernel.blockThreads, dynamicSharedBytes: Megakernel.dynamicSharedBytes)
        guard occupancy > 0 else {
            throw .backendUnavailable(
                backend: "cuda", reason: "\(Megakernel.kernelName) cannot be resident on \(info.name) with \(Megakernel.blockThreads) threads per block")
        }
        let perMultiprocessor = configuration.workers > 0 ? min(configuration.workers, occupancy) : occupancy
        let workers = min(info.multiprocessors * perMultiprocessor - 1, geometry.slotCount)
        guard workers >= 1 else {
            throw .backendUnavailable(
                backend: "cuda", reason: "\(info.name) holds \(info.multiprocessors * perMultiprocessor) megakernel blocks at once; it needs a dispatcher and at least one worker")
        }
        let tableMemory = try TableMemory(context: context, slotCount: geometry.slotCount)
        let deviceIngest = deviceIngestBytes > 0
            ? try CUDADeviceIngestRegion(context: context, byteCount: deviceIngestBytes) : nil

        self.configuration = configuration
        self.selectionReason = reason
        self.numaPlacement = dataMemory.numaPlacement.map { "\(numa.reason): data region \($0)" }
            ?? "not placed: \(numa.reason)"
        self.device = info
        self.context = context
        self.ringMemory = ringMemory
        self.dataMemory = dataMemory
        self.deviceState = deviceState
        self.ring = ring
        self.dataRegion = dataMemory.bytes
        self.module = module
        self.megakernel = megakernel
        self.occupancyBlocksPerMultiprocessor = occupancy
        self.blocksPerMultiprocessor = perMultiprocessor
        self.workers = workers
        self.grid = workers + 1
        self.tables = Mutex(tableMemory)
        self.deviceIngest = deviceIngest
        self.registersPerThread = try megakernel.attribute(.numRegisters)
        self.localBytesPerThread = try megakernel.attribute(.localSizeBytes)
        self.staticSharedBytes = try megakernel.attribute(.sharedSizeBytes)
        self.architecture = build.architecture
        self.nvrtcOptions = build.options
        self.kernelOrigin = origin.description
        self.compileLog = log
        let stream = try CUDAStream(context: context)
        try deviceState.zero(on: stream)
        try tableMemory.directory.zero(on: stream)
        ring.setScanDirectory(address: tableMemory.directory.deviceAddress, entries: UInt64(TableMemory.directoryEntries))
        self.stream = stream
        self.copyStream = try CUDAStream(context: context)
        PhaseTrace.mark("cuda: backend ready")
    }

    deinit {
        let (running, lost, abandoned) = state.withLock { state -> (Bool, Bool, Bool) in
            switch state {
            case .running: return (true, false, false)
            case .failed(.contextLost): return (false, true, false)
            case .abandoned: return (false, false, true)
            default: return (false, false, false)
            }
        }
        if lost {
            // Nothing can read this backend's ring or buffers any more (this
            // is its deinit): destroy the lost context so that the next
            // backend on the device gets a fresh one. The owners released
            // after this see the reset and free nothing twice.
            context.resetAfterLoss()
            return
        }
        guard running || abandoned else { return }
        // A shutdown that timed out is not waited for again.
        if running, (try? shutdown()) != nil { return }
        keepForever()
    }

    /// Keeps everything the kernel may still read for the process's life:
    /// freeing it could fault the kernel or block in the driver.
    private func keepForever() {
        let kept = tables.withLock { $0.owners }
        CUDAGraveyard.keep(
            [context, ringMemory, dataMemory, deviceState, module, megakernel, stream, copyStream] + kept
                + (deviceIngest.map { [$0] } ?? []))
    }

    /// One line on what runs: device, driver, grid shape, occupancy, data region size and where the kernel came from.
    public var summary: String {
        let dataMiB = Double(dataRegion.count) / Double(1 << 20)
        var line = "cuda: \(device.name) (\(device.computeCapability), \(device.multiprocessors) SMs, driver CUDA \(device.driverVersionText))"
        line += "; persistent kernel 1 dispatcher + \(workers) worker blocks × \(blockThreads) threads"
        line += " (\(blocksPerMultiprocessor) per SM of \(occupancyBlocksPerMultiprocessor) by occupancy"
        line += grid < device.multiprocessors * blocksPerMultiprocessor ? ", capped at \(ring.geometry.slotCount) slots)" : ")"
        line += ", one dispatcher warp polls host memory (idle sleep up to \(idleSleepMaxNanoseconds) ns), \(systemFence.rawValue)"
        line += volatilePolling ? ", volatile polling" : ", ld.cv polling"
        line += writeBackStores ? ", write-back stores" : ", st.wt stores"
        line += laneClaims ? ", lane claims" : ""
        line += ", \(registersPerThread) registers, \(localBytesPerThread) B local, \(staticSharedBytes) + \(dynamicSharedBytes) B shared per block"
        let reported = blocksAtStart.load(ordering: .relaxed)
        if reported >= 0, reported < grid {
            line += ", only \(reported) blocks running at start"
        }
        line += "; \(architecture) kernel \(kernelOrigin)"
        line += "; ring of \(ring.geometry.slotCount) slots and \((dataMiB * 10).rounded() / 10) MiB data in mapped pinned host memory"
        if let deviceIngest {
            line += ", \((Double(deviceIngest.byteCount) / Double(1 << 20) * 10).rounded() / 10) MiB device ingest region"
        }
        line += device.hostNativeAtomics ? "" : " (PCIe, no host-native atomics: the kernel uses none on host memory)"
        line += "; NUMA: \(numaPlacement)"
        line += "; why: \(selectionReason)"
        return line
    }

    /// The stage sums the kernel kept since its launch (with `traceStages`
    /// on; all zero otherwise): slots, then five stages in ns (what
    /// `MegakernelStageTrace` in SluiceDiagnostics reads). Read on the copy
    /// stream, so also while the kernel runs.
    package func stageTraceSums() throws(PipelineError) -> [UInt64] {
        let words = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: Megakernel.traceWords)
        defer { words.deallocate() }
        words.initialize(repeating: 0)
        try deviceState.download(into: UnsafeMutableRawBufferPointer(words), from: Megakernel.traceOffset, on: copyStream)
        return Array(words)
    }

    // MARK: tables

    /// Entries in the scan-table directory.
    public var scanDirectoryEntries: Int { TableMemory.directoryEntries }

    /// Bytes of the scan tables placed in device memory since the kernel
    /// started: each distinct table keeps its memory until the backend goes.
    public var retainedTableBytes: Int { tables.withLock { $0.scanTableBytes } }

    /// Validates `words` as a `ScanTable` image on the host, copies it into
    /// device memory (the scan-table arena, or its own allocation when the
    /// arena is full) on a non-blocking stream, then writes directory entry
    /// `index` (device memory, which the dispatcher reads when it claims a
    /// scan slot). Only while no slot naming `index` is in flight. Earlier
    /// tables stay allocated until the backend is released, so a worker
    /// never reads freed memory and no address ever holds two tables (the
    /// workers cache a table's header and filter by its address).
    /// `literals` are not needed: the kernel runs the table itself.
    public func installScanTable(
        _ words: [UInt32], literals: [[UInt8]]?, caseInsensitive: Bool, at index: Int, owner: UInt32
    ) throws(PipelineError) -> String {
        guard index >= 0, index < TableMemory.directoryEntries else {
            throw .invalidRequest(
                chunk: nil, slot: nil, reason: "scan-table index \(index) outside the directory's 0..<\(TableMemory.directoryEntries)")
        }
        try words.withUnsafeBufferPointer { (w) throws(PipelineError) in _ = try ScanTableView(w) }
        guard words.count <= Int(UInt32.max) else {
            throw .invalidConfiguration("a scan table of \(words.count) words; the megakernel takes up to \(UInt32.max)")
        }
        let copyStream = self.copyStream
        try tables.withLock { (t) throws(PipelineError) in
            let address = try t.placeScanTable(words, stream: copyStream)
            let entry = ScanDirectory.Entry(address: address, words: UInt32(words.count), owner: owner)
            try t.writeDirectoryEntry(index, entry.encoded, stream: copyStream)
        }
        return "the cuda megakernel's scan table matcher"
    }

    /// Empties directory entry `index`: slots naming it fault from then on.
    public func removeScanTable(at index: Int) throws(PipelineError) {
        let copyStream = self.copyStream
        try tables.withLock { (t) throws(PipelineError) in
            try t.writeDirectoryEntry(index, [UInt32](repeating: 0, count: ScanDirectory.entryWords), stream: copyStream)
        }
    }

    /// Copies a tenant table (`TenantTable.make`) into mapped pinned host
    /// memory, points control words 12-13 at it (its device address), and
    /// returns the host view whose owner words the host updates. Only while
    /// no slot is in flight.
    public func enableTenants(_ table: [UInt32]) throws(PipelineError) -> UnsafeMutableBufferPointer<UInt32> {
        try table.withUnsafeBufferPointer { (w) throws(PipelineError) in try TenantTable.validate(w) }
        let (address, view) = try tables.withLock { (t) throws(PipelineError) in try t.placeTenantTable(table) }
        ring.setTenantTable(address: address, words: UInt64(table.count))
        return view
    }

    // MARK: lifecycle

    /// Launches the persistent kernel once on its own non-blocking stream and
    /// waits (up to `startTimeout`) for its blocks to report in.
    public func start() throws(PipelineError) {
        try state.withLock { state throws(PipelineError) in
            guard case .idle = state else {
                throw .invalidRequest(chunk: nil, slot: nil, reason: "the CUDA megakernel was already started")
            }
            state = .running
        }
        let geometry = ring.geometry
        let parameters = Megakernel.Parameters(
            ring: ringMemory.deviceAddress, data: dataMemory.deviceAddress, dataBytes: UInt64(dataRegion.count),
            slotCount: UInt64(geometry.slotCount), resultsOffset: UInt64(geometry.resultsOffset),
            resultWordsTotal: UInt64(geometry.resultWordsTotal),
            idleSleepMaxNanoseconds: UInt64(max(0, min(idleSleepMaxNanoseconds, 1 << 24))),
            state: deviceState.deviceAddress,
            flags: (systemFence == .sequentiallyConsistent ? Megakernel.Parameters.scFences : 0)
                | (volatilePolling ? Megakernel.Parameters.volatilePoll : 0)
                | (writeBackStores ? Megakernel.Parameters.writeBackStores : 0)
                | (configuration.faultInjection ? Megakernel.Parameters.testOpcodes : 0)
                | (traceStages ? Megakernel.Parameters.stageTrace : 0)
                | (laneClaims ? Megakernel.Parameters.laneClaims : 0),
            workers: UInt64(workers),
            deviceData: deviceIngest?.deviceAddress ?? 0, deviceDataBytes: UInt64(deviceIngest?.byteCount ?? 0))
        do {
            try megakernel.launch(
                grid: grid, blockThreads: blockThreads, sharedBytes: Megakernel.dynamicSharedBytes, stream: stream,
                argumentWords: parameters.words)
        } catch {
            state.withLock { $0 = .failed(error) }
            throw error
        }
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: startTimeout)
        var nap = 20_000
        var reported = 0
        while true {
            reported = Int((try? ring.observe().workersRunning) ?? 0)
            if reported >= grid || clock.now >= deadline { break }
            try checkKernel()
            sleepNanoseconds(nap)
            nap = min(nap * 2, 1_000_000)
        }
        blocksAtStart.store(reported, ordering: .relaxed)
        try checkKernel()
    }

    /// Waits for the epoch to pass `epoch`: a 20 µs spin, then sleeps that
    /// grow from 2 to 200 µs, so an idle wait costs no busy core. Every
    /// millisecond it asks the driver whether the kernel still runs, so a
    /// kernel that died becomes an error here instead of a hang.
    public func waitForProgress(after epoch: UInt64, timeout: Duration) throws(PipelineError) -> UInt64 {
        var seen = ring.epoch
        if seen > epoch { return seen }
        let clock = ContinuousClock()
        let started = clock.now
        let deadline = started.advanced(by: max(.zero, min(timeout, .seconds(86_400 * 365))))
        let spinUntil = started.advanced(by: .microseconds(20))
        while clock.now < spinUntil {
            seen = ring.epoch
            if seen > epoch { return seen }
        }
        var nap = 2_000
        var lastCheck = started
        while true {
            seen = ring.epoch
            if seen > epoch { return seen }
            if clock.now - lastCheck >= .milliseconds(1) {
                try checkKernel()
                lastCheck = clock.now
                seen = ring.epoch
                if seen > epoch { return seen }
            }
            let now = clock.now
            if now >= deadline { return seen }
            sleepNanoseconds(min(nap, nanoseconds(deadline - now)))
            nap = min(nap * 2, 200_000)
        }
    }

    /// Sets the shutdown flag and waits up to `shutdownTimeout` for the kernel
    /// to end. Throws `.stuck` naming the slots still CLAIMED when it does not.
    /// Idempotent; after a kernel failure there is nothing to wait for.
    public func shutdown() throws(PipelineError) {
        let running = state.withLock { state -> Bool in
            switch state {
            case .idle:
                state = .stopped
                return false
            case .running:
                return true
            case .stopped, .failed, .abandoned:
                return false
            }
        }
        guard running else { return }
        ring.requestShutdown()
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: shutdownTimeout)
        var nap = 10_000
        while true {
            do {
                if try stream.isIdle() {
                    state.withLock { $0 = .stopped }
                    return
                }
            } catch {
                let failure = CUDABackend.classify(error, device: device.ordinal)
                state.withLock { $0 = .failed(failure) }
                throw failure
            }
            if clock.now >= deadline {
                let claimed = (0..<ring.geometry.slotCount).filter { (try? ring.status(ofSlot: $0)) == .claimed }
                let stuck = PipelineError.stuck(slots: claimed, seconds: shutdownTimeout.inSeconds, runner: .gpu)
                state.withLock { $0 = .abandoned(stuck) }
                throw stuck
            }
            sleepNanoseconds(nap)
            nap = min(nap * 2, 2_000_000)
        }
    }

    /// Whether the context is lost (a sticky error): true once the kernel
    /// died of one. The backend must then be released and a new one made.
    public var isContextLost: Bool {
        state.withLock { state in
            if case .failed(.contextLost) = state { return true }
            return false
        }
    }

    /// A sticky driver error means the context is gone: `.contextLost`,
    /// which the scanner answers by recreating the backend. Others unchanged.
    static func classify(_ error: PipelineError, device ordinal: Int) -> PipelineError {
        guard case .gpu(let call, let code, let message) = error, CUDADriver.stickyErrors.contains(code) else {
            return error
        }
        return .contextLost(
            backend: "cuda",
            reason: "\(call) on device \(ordinal) failed with \(code) \(message); the kernel died and its context with everything in it is unusable")
    }

    /// Throws when the kernel has failed, or ended without a shutdown request.
    private func checkKernel() throws(PipelineError) {
        let current = state.withLock { $0 }
        switch current {
        case .idle, .stopped:
            return
        case .failed(let error), .abandoned(let error):
            throw error
        case .running:
            break
        }
        let ended: Bool
        do {
            ended = try stream.isIdle()
        } catch {
            let failure = CUDABackend.classify(error, device: device.ordinal)
            state.withLock { $0 = .failed(failure) }
            throw failure
        }
        guard ended else { return }
        if ring.isShutdownRequested {
            state.withLock { $0 = .stopped }
            return
        }
        let error = PipelineError.gpu(
            call: Megakernel.kernelName, code: -1,
            message: "the persistent kernel ended before shutdown was requested: its start-up check rejected the ring (magic, slot count, result offset) or the launch shape")
        state.withLock { $0 = .failed(error) }
        throw error
    }
}

/// Keeps CUDA resources alive for the rest of the process when a kernel that
/// may still use them could not be stopped.
package enum CUDAGraveyard {
    private struct Kept: @unchecked Sendable {
        var objects: [AnyObject]
    }

    private static let kept = Mutex<Kept>(Kept(objects: []))

    package static func keep(_ objects: [AnyObject]) {
        let batch = Kept(objects: objects)
        kept.withLock { $0.objects += batch.objects }
    }
}

private func nanoseconds(_ duration: Duration) -> Int {
    let (seconds, attoseconds) = duration.components
    if seconds >= Int64(Int.max / 1_000_000_000) { return Int.max }
    return max(0, Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000))
}

