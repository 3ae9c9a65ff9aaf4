#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import Synchronization

/// The CUDA megakernel: one persistent kernel, launched once, whose blocks
/// poll the ring in pinned host memory mapped into the GPU and run the slots
/// they claim on chunk bytes that the GPU reads where ingest put them.
///
/// The driver API and NVRTC are loaded with dlopen; the kernel source is
/// embedded and compiled for the device's own architecture at start (or
/// loaded from the CUBIN cache). See docs/protocol.md for the ring contract.
///
/// While the kernel runs, nothing may call a driver function that waits for
/// the device to go idle (freeing device or pinned memory, unloading a
/// module, synchronizing the context): it would wait for the persistent
/// kernel, which only ends at `shutdown()`. Allocate everything before `start()`.
public final class CUDABackend: MegakernelBackend {
    public let name = "cuda"
    public let ring: RingView
    public let dataRegion: UnsafeMutableRawBufferPointer
    public let supportedOpcodes: Set<Opcode> = [.count]
    public let configuration: BackendConfiguration
    public let device: CUDADeviceInfo

    /// Blocks of the persistent kernel: multiprocessors × blocks per
    /// multiprocessor, capped at the slot count (a block beyond that would
    /// have no slot of its own and only add polling traffic over PCIe).
    public let grid: Int
    public let blockThreads = Megakernel.blockThreads
    public let blocksPerMultiprocessor: Int
    /// What the occupancy API allows per multiprocessor.
    public let occupancyBlocksPerMultiprocessor: Int
    public let registersPerThread: Int
    /// Local (stack, spill) bytes per thread; 0 when the kernel keeps everything in registers.
    public let localBytesPerThread: Int
    public let staticSharedBytes: Int
    /// The `sm_XY` the kernel was compiled for and every NVRTC option used.
    public let architecture: String
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

    /// The default cap on a polling warp's idle `__nanosleep` (see `idleSleepMaxNanoseconds`).
    public static let defaultIdleSleepMaxNanoseconds = 1024
    /// Longest sleep of an idle polling warp between two reads of its slots:
    /// the sleep doubles from 64 ns up to this while nothing is published.
    /// Lower answers a lone slot sooner and costs more PCIe reads while idle;
    /// 0 polls without sleeping. Takes effect at `start()`.
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
    /// Read the words the host writes (slot words, the shutdown flag) with
    /// volatile loads instead of `ld.global.cv` (which discards any L2 copy of
    /// a host-memory line and fetches it again). Kept to measure; takes effect at `start()`.
    public var volatilePolling = false
    /// Write the words the host reads (statuses, results, counters) with
    /// volatile write-back stores instead of `st.global.wt` (write-through to
    /// host memory). Kept to measure; takes effect at `start()`.
    public var writeBackStores = false

    private let context: CUDAContext
    private let ringMemory: CUDAMappedHostBuffer
    private let dataMemory: CUDAMappedHostBuffer
    /// The kernel's counters (device memory; see "why no atomics touch host memory" in the kernel).
    private let deviceState: CUDADeviceBuffer
    private let module: CUDAModule
    private let megakernel: CUDAFunction
    private let stream: CUDAStream
    private let state = Mutex<State>(.idle)
    /// Blocks that had reported in when `start()` returned; -1 before.
    private let blocksAtStart = Atomic<Int>(-1)

    private enum State {
        case idle
        case running
        case stopped
        /// The kernel ended or failed; the error says how.
        case failed(PipelineError)
    }

    /// Whether CUDA can run here, without creating a context (see `CUDAProbe`).
    public static func probe(device: Int = 0) -> Result<CUDADeviceInfo, PipelineError> {
        CUDAProbe.probe(device: device)
    }

    /// Loads the driver and NVRTC, retains the device's primary context,
    /// allocates the ring and the data region as mapped pinned host memory
    /// (page-aligned), initializes the ring and loads the megakernel.
    /// Nothing runs until `start()`. `reason` says why this backend runs (see `summary`).
    public init(
        configuration: BackendConfiguration, device ordinal: Int = 0, reason: String = "the CUDA backend was requested"
    ) throws(PipelineError) {
        guard configuration.dataBytes >= 0 else {
            throw .invalidConfiguration("data region of \(configuration.dataBytes) bytes")
        }
        guard configuration.workers >= 0 else {
            throw .invalidConfiguration("\(configuration.workers) blocks per multiprocessor")
        }
        let driver = try CUDADriver.shared.get()
        let nvrtc = try NVRTC.shared.get()
        let info = try CUDAProbe.deviceInfo(driver: driver, nvrtc: nvrtc, ordinal: ordinal)
        if let reason = info.unsuitability {
            throw .backendUnavailable(backend: "cuda", reason: reason)
        }
        let geometry = configuration.geometry
        let context = try CUDAContext(driver: driver, ordinal: ordinal)
        let page = max(Int(getpagesize()), 4096)
        let ringMemory = try CUDAMappedHostBuffer(context: context, byteCount: geometry.byteCount, alignment: page)
        let dataMemory = try CUDAMappedHostBuffer(context: context, byteCount: configuration.dataBytes, alignment: page)
        let ring = try RingView(bytes: ringMemory.bytes, geometry: geometry)
        ring.initialize()
        let deviceState = try CUDADeviceBuffer(context: context, byteCount: Megakernel.deviceStateBytes)

        let build = try KernelBuild(
            nvrtc: nvrtc, computeCapability: (info.computeCapability.major, info.computeCapability.minor))
        let (module, origin, log) = try build.load(into: context)
        let megakernel = try module.function(named: Megakernel.kernelName)
        let occupancy = try megakernel.maxActiveBlocksPerMultiprocessor(blockThreads: Megakernel.blockThreads)
        guard occupancy > 0 else {
            throw .backendUnavailable(
                backend: "cuda", reason: "\(Megakernel.kernelName) cannot be resident on \(info.name) with \(Megakernel.blockThreads) threads per block")
        }
        let perMultiprocessor = configuration.workers > 0 ? min(configuration.workers, occupancy) : occupancy

        self.configuration = configuration
        self.selectionReason = reason
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
        self.grid = max(1, min(info.multiprocessors * perMultiprocessor, geometry.slotCount))
        self.registersPerThread = try megakernel.attribute(.numRegisters)
        self.localBytesPerThread = try megakernel.attribute(.localSizeBytes)
        self.staticSharedBytes = try megakernel.attribute(.sharedSizeBytes)
        self.architecture = build.architecture
        self.nvrtcOptions = build.options
        self.kernelOrigin = origin.description
        self.compileLog = log
        let stream = try CUDAStream(context: context)
        try deviceState.zero(on: stream)
        self.stream = stream
    }

    deinit {
        let running = state.withLock { state -> Bool in
            if case .running = state { return true }
            return false
        }
        guard running else { return }
        do {
            try shutdown()
        } catch {
            // The kernel may still read this memory: freeing it could fault
            // the kernel or block in the driver. Keep it for the process's life.
            CUDAGraveyard.keep([context, ringMemory, dataMemory, deviceState, module, megakernel, stream])
        }
    }

    public var summary: String {
        let dataMiB = Double(dataRegion.count) / Double(1 << 20)
        var line = "cuda: \(device.name) (\(device.computeCapability), \(device.multiprocessors) SMs, driver CUDA \(device.driverVersionText), NVRTC \(device.nvrtcVersion))"
        line += "; persistent kernel \(grid) blocks × \(blockThreads) threads"
        line += " (\(blocksPerMultiprocessor) per SM of \(occupancyBlocksPerMultiprocessor) by occupancy"
        line += grid < device.multiprocessors * blocksPerMultiprocessor ? ", capped at \(ring.geometry.slotCount) slots)" : ")"
        line += ", idle poll sleep up to \(idleSleepMaxNanoseconds) ns, \(systemFence.rawValue)"
        line += volatilePolling ? ", volatile polling" : ", ld.cv polling"
        line += writeBackStores ? ", write-back stores" : ", st.wt stores"
        line += ", \(registersPerThread) registers, \(localBytesPerThread) B local, \(staticSharedBytes) B shared per block"
        let reported = blocksAtStart.load(ordering: .relaxed)
        if reported >= 0, reported < grid {
            line += ", only \(reported) blocks running at start"
        }
        line += "; \(architecture) kernel \(kernelOrigin)"
        line += "; ring of \(ring.geometry.slotCount) slots and \((dataMiB * 10).rounded() / 10) MiB data in mapped pinned host memory"
        line += device.hostNativeAtomics ? "" : " (PCIe, no host-native atomics: the kernel uses none on host memory)"
        line += "; why: \(selectionReason)"
        return line
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
                | (writeBackStores ? Megakernel.Parameters.writeBackStores : 0))
        do {
            try megakernel.launch(
                grid: grid, blockThreads: blockThreads, stream: stream, argumentWords: parameters.words)
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
            case .stopped, .failed:
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
                state.withLock { $0 = .failed(error) }
                throw error
            }
            if clock.now >= deadline {
                let claimed = (0..<ring.geometry.slotCount).filter { (try? ring.status(ofSlot: $0)) == .claimed }
                let seconds = Double(shutdownTimeout.components.seconds)
                    + Double(shutdownTimeout.components.attoseconds) / 1e18
                throw .stuck(slots: claimed, seconds: seconds)
            }
            sleepNanoseconds(nap)
            nap = min(nap * 2, 2_000_000)
        }
    }

    /// Throws when the kernel has failed, or ended without a shutdown request.
    private func checkKernel() throws(PipelineError) {
        let current = state.withLock { $0 }
        switch current {
        case .idle, .stopped:
            return
        case .failed(let error):
            throw error
        case .running:
            break
        }
        let ended: Bool
        do {
            ended = try stream.isIdle()
        } catch {
            state.withLock { $0 = .failed(error) }
            throw error
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
enum CUDAGraveyard {
    private struct Kept: @unchecked Sendable {
        var objects: [AnyObject]
    }

    private static let kept = Mutex<Kept>(Kept(objects: []))

    static func keep(_ objects: [AnyObject]) {
        let batch = Kept(objects: objects)
        kept.withLock { $0.objects += batch.objects }
    }
}

private func nanoseconds(_ duration: Duration) -> Int {
    let (seconds, attoseconds) = duration.components
    if seconds >= Int64(Int.max / 1_000_000_000) { return Int.max }
    return max(0, Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000))
}

private func sleepNanoseconds(_ nanoseconds: Int) {
    var request = timespec(tv_sec: nanoseconds / 1_000_000_000, tv_nsec: nanoseconds % 1_000_000_000)
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0, errno == EINTR {
        request = remaining
    }
}
