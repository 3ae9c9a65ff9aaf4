import SluiceCore
import SluiceCUDA
import SluiceIngest

/// How a run will execute, and why: the backend, the ingest path, the chunk
/// size, the ring's slot count, the start-up prefetch and the CUDA warm-up.
///
/// `make` is the one place where Sluice's policy lives: a pure function of
/// the configuration, what the walk found and what the machine offers
/// (`MachineFacts`), so that every rule is tested without the hardware it
/// is about. The engine follows the plan (`configure(_:)`); what only the
/// start can show (a CUDA backend that fails to start under `auto`, memory
/// refused for the ring) is handled there, and adds its reason to the
/// plan's.
///
/// ```swift
/// let plan = try ExecutionPlan.make(
///     configuration: EngineConfiguration(), input: .unknown(.scan), machine: .probe())
/// for line in plan.lines { print(line.name, line.text) }
/// let pool = try DevicePool(plan.configure(EngineConfiguration()), resultWordsPerSlot: 4096)
/// ```
public struct ExecutionPlan: Sendable, Equatable {
    /// One decision: what was chosen and why.
    public struct Choice<Value: Sendable & Equatable>: Sendable, Equatable {
        /// What was chosen.
        public var value: Value
        /// Why, in one line for people.
        public var reason: String

        /// A choice and its reason.
        public init(_ value: Value, _ reason: String) {
            self.value = value
            self.reason = reason
        }
    }

    /// What a run will read and do with it, as far as the plan cares.
    public struct Input: Sendable, Equatable, CustomStringConvertible {
        /// The kind of work per byte.
        public enum Work: String, Sendable, Equatable {
            /// Literal matching (`scan`): heavy kernel work per byte.
            case scan
            /// Counting lines and bytes: light work per byte.
            case count
            /// CRC-32C checksums: light work per byte, which CPUs with
            /// CRC-32C instructions do at the speed bytes arrive.
            case hash
        }

        /// The kind of work.
        public var work: Work
        /// Files the run will read; nil when not known in advance.
        public var files: Int?
        /// Files whose sizes `bytes` adds up (all of them, or a sample of a
        /// large tree).
        public var sizedFiles: Int
        /// The sizes of the `sizedFiles`, added up.
        public var bytes: Int
        /// Bytes each chunk repeats of the one before (a scan's longest
        /// literal, `ScanJob.overlap`); 0 for other work.
        public var overlapBytes: Int
        /// A scan's literal count (its cost depends on it); 0 for other work.
        public var literals: Int
        /// A scan's matches per byte in a sample of the input (`MatchDensity`); 0 where not sampled.
        public var matchesPerByte: Double = 0
        /// Whether the set's Hyperscan database is in the cache
        /// (`PatternSet.hyperscanDatabaseCached`); where not, a CPU scan
        /// with Hyperscan starts later by its compile (`CostModel.hyperscanCompileSeconds`).
        public var hyperscanCached = true

        /// An input described by its totals.
        public init(
            work: Work, files: Int?, sizedFiles: Int? = nil, bytes: Int = 0, overlapBytes: Int = 0, literals: Int = 0
        ) {
            self.work = work
            self.files = files
            self.sizedFiles = sizedFiles ?? files ?? 0
            self.bytes = bytes
            self.overlapBytes = overlapBytes
            self.literals = literals
        }

        /// What `walk` found.
        public init(work: Work, walk: FileWalker.Result, overlapBytes: Int = 0, literals: Int = 0) {
            self.init(
                work: work, files: walk.files.count, sizedFiles: walk.sizedFiles, bytes: walk.bytes,
                overlapBytes: overlapBytes, literals: literals)
        }

        /// Work whose files are not known when the plan is made (a
        /// `Session`, which serves many requests, or a list still to read).
        public static func unknown(_ work: Work, overlapBytes: Int = 0, literals: Int = 0) -> Input {
            Input(work: work, files: nil, overlapBytes: overlapBytes, literals: literals)
        }

        /// The input `sluice doctor` plans for: a scan of 16 files of 64 MiB for 1,000 literals.
        public static let typicalScan = Input(work: .scan, files: 16, bytes: 16 << 26, literals: 1000)

        /// The totals the ring is sized from, when every file's size is known.
        var hint: InputHint? {
            guard let files, sizedFiles == files else { return nil }
            return InputHint(files: files, bytes: bytes)
        }

        /// Count and hash (see `EngineConfiguration.lightWork`).
        var lightWork: Bool { work != .scan }

        /// "a scan of 16 files, 1 GiB in all", "a hash of files not known in advance".
        public var description: String {
            guard let files else { return "a \(work) of files not known in advance" }
            let sizes = sizedFiles == files
                ? "\(byteCountText(bytes)) in all" : "\(byteCountText(bytes)) in the \(sizedFiles) whose sizes were read"
            let patterns = literals > 0 ? ", for \(literals) literal\(literals == 1 ? "" : "s")" : ""
            return "a \(work) of \(files) file\(files == 1 ? "" : "s"), \(sizes)\(patterns)"
        }
    }

    /// How the chunks are read.
    public struct Ingest: Sendable, Equatable {
        /// The read path asked for (the host stream's, unless cuFile reads).
        public var choice: IngestChoice
        /// Whether cuFile reads into GPU memory; nil when it is decided as
        /// the engine starts (cuFile was not probed).
        public var gds: GDSPlan.Decision?
        /// The host stream is set up at the first file too large to pack
        /// (`EngineConfiguration.deferIngestSetup`).
        public var deferredSetup: Bool
        /// Whether host reads are copied into GPU memory by a copy engine.
        public var copy: CopyEnginePlan.Decision

        /// An ingest plan.
        public init(
            choice: IngestChoice, gds: GDSPlan.Decision?, deferredSetup: Bool,
            copy: CopyEnginePlan.Decision = CopyEnginePlan.Decision(useEngine: false, forced: false, note: nil)
        ) {
            self.choice = choice
            self.gds = gds
            self.deferredSetup = deferredSetup
            self.copy = copy
        }
    }

    /// What the plan was made for.
    public var input: Input
    /// Which backend runs: `.cpu`; `.cuda` (an error where it cannot
    /// start); or `.auto`, CUDA where it starts, else the CPU backend.
    public var backend: Choice<BackendChoice>
    /// How chunks are read.
    public var ingest: Choice<Ingest>
    /// Bytes per chunk.
    public var chunkBytes: Choice<Int>
    /// Ring slots per device: for `.auto`, the CUDA backend's count (the
    /// reason gives the CPU's). Memory refused at start may lower a default.
    public var slots: Choice<Int>
    /// Bytes of the input read ahead into the page cache while a GPU
    /// backend starts (`StartupPrefetch`); 0: none.
    public var prefetch: Choice<Int>
    /// CUDA ordinals whose driver and context start in the background
    /// while the command walks and compiles (`CUDAWarmup`); empty: none.
    public var warmUp: Choice<[Int]>
    /// Both backends' estimated seconds for the input (`CostModel`); nil
    /// where the input's size is not known or the work is not modelled.
    public var estimate: CostEstimate?

    /// The plan for running `input` with `configuration` on `devices` of
    /// `machine`. Throws only for configurations that cannot run at all
    /// (ingest gds with the CPU backend; cuFile missing for it).
    public static func make(
        configuration: EngineConfiguration, devices: DeviceSelection = .list([0]), input: Input, machine: MachineFacts
    ) throws(PipelineError) -> ExecutionPlan {
        // The model's CUDA figures are one GPU's: with several in use, no estimate (CUDA where it starts).
        let estimate = usesSeveralGPUs(devices, machine: machine)
            ? nil : CostEstimate(
                model: machine.costModel, input: input,
                cpuScan: .of(engine: configuration.cpuScanEngine, hyperscanLoads: machine.hyperscanLoads, literals: input.literals))
        let backend = chooseBackend(configuration, devices: devices, input: input, machine: machine, estimate: estimate)
        let ingest = try chooseIngest(configuration, backend: backend.value, input: input, machine: machine)
        let chunk = chooseChunk(
            configuration.chunkBytes, overlap: input.overlapBytes, input: input,
            slots: chunkSlots(configuration, devices: devices, backend: backend.value, input: input, cores: machine.cores))
        let slots = chooseSlots(
            configuration, devices: devices, backend: backend.value, chunkBytes: chunk.value, input: input,
            cores: machine.cores)
        return ExecutionPlan(
            input: input, backend: backend, ingest: ingest, chunkBytes: chunk, slots: slots,
            prefetch: choosePrefetch(configuration, backend: backend.value, ingest: ingest.value, machine: machine),
            warmUp: chooseWarmUp(backend: backend.value, devices: devices), estimate: estimate)
    }

    /// `configuration` set to follow this plan: the engine (and a
    /// `DevicePool`) made from it runs what the plan says.
    public func configure(_ configuration: EngineConfiguration) -> EngineConfiguration {
        var c = configuration
        c.backend = backend.value
        // The CUDA backend's start names the device it probed, in the plan's
        // words; the CPU backend says the plan's reason.
        if backend.value == .cpu { c.backendReason = backend.reason }
        c.chunkBytes = chunkBytes.value
        c.inputHint = input.hint
        c.lightWork = input.lightWork
        c.plannedGDS = ingest.value.gds
        c.plannedCopy = ingest.value.copy
        c.deferIngestSetup = ingest.value.deferredSetup
        return c
    }

    /// Each choice with its reason, in the order they are made: for
    /// `sluice doctor` and `--verbose`.
    public var lines: [(name: String, text: String)] {
        let runs = backend.value == .auto ? "cuda where it starts, else cpu" : backend.value.rawValue
        return [
            ("backend", "\(runs) (\(backend.reason))"), ("ingest", ingest.reason), ("chunk size", chunkBytes.reason),
            ("slots", slots.reason), ("prefetch", prefetch.reason), ("warm-up", warmUp.reason),
        ] + (estimate.map { [("estimate", $0.description)] } ?? [])
    }

    /// Starts the CUDA warm-up the plan asks for, if any; the `DevicePool`
    /// made later ends it.
    public func startWarmUp() {
        guard !warmUp.value.isEmpty else { return }
        CUDAWarmup.begin(devices: warmUp.value)
    }

    /// Starts reading ahead the first of `paths` (in the order the run
    /// reads them) as the plan says; nil when it says not to. Call
    /// `finish()` on it once the backend started.
    public func startPrefetch(_ paths: [RawPath]) -> StartupPrefetch? {
        prefetch.value > 0 && !paths.isEmpty ? StartupPrefetch(paths: paths, budgetBytes: prefetch.value) : nil
    }
}

// MARK: - The decisions

extension ExecutionPlan {
    /// `auto` runs on the CPU backend for checksums where the CPU has
    /// CRC-32C instructions (`ChecksumBackends`), for trees of small files
    /// (`SmallFileTrees`), and where the cost model (`estimate`) says it
    /// finishes first; else on CUDA where a usable GPU is found. A
    /// named backend is never overruled.
    static func chooseBackend(
        _ c: EngineConfiguration, devices: DeviceSelection, input: Input, machine: MachineFacts,
        estimate: CostEstimate? = nil
    ) -> Choice<BackendChoice> {
        let first: Int
        switch devices {
        case .list(let ordinals): first = ordinals.first ?? 0
        case .all: first = 0
        }
        switch c.backend {
        case .cpu:
            return Choice(.cpu, c.backendReason ?? "cpu: chosen with \(c.settingName(.backend(.cpu)))")
        case .cuda:
            if let why = c.backendReason { return Choice(.cuda, why) }
            let chosen = "chosen with \(c.settingName(.backend(.cuda)))"
            switch machine.cuda {
            case .notProbed: return Choice(.cuda, chosen)
            case .unusable(let why): return Choice(.cuda, "\(chosen), but no GPU is usable here: \(why)")
            case .usable(let gpus):
                guard let gpu = gpus.first(where: { $0.ordinal == first }) else {
                    return Choice(.cuda, "\(chosen), but CUDA device \(first) is not usable here")
                }
                return Choice(.cuda, "\(chosen) (\(gpu.name))")
            }
        case .auto:
            // `--ingest gds` and `--ingest-copy engine` put chunks in GPU memory, which only CUDA can use.
            let intoGPUMemory = c.ingest == .gds || c.ingestCopy == .engine
            if !intoGPUMemory, input.work == .hash,
               let why = ChecksumBackends.cpuReason(ingest: c.ingest, instructions: machine.crc32cInstructions) {
                return Choice(.cpu, "auto: " + why)
            }
            if !intoGPUMemory, let files = input.files,
               let why = SmallFileTrees.cpuReason(
                   files: files, sizedFiles: input.sizedFiles, bytes: input.bytes, ingest: c.ingest) {
                return Choice(.cpu, "auto: " + why)
            }
            let cudaReason: String
            switch machine.cuda {
            case .notProbed:
                cudaReason = "auto: CUDA where a usable GPU is found (probed as the engine starts), else the CPU backend"
            case .unusable(let why):
                return Choice(.cpu, "auto: no usable GPU: \(why)")
            case .usable(let gpus):
                guard let gpu = gpus.first(where: { $0.ordinal == first }) else {
                    return Choice(.cpu, "auto: no usable GPU: CUDA device \(first) is not usable here")
                }
                cudaReason = "auto: \(gpu.name) found"
            }
            guard let estimate else { return Choice(.auto, cudaReason) }
            if estimate.cpuIsCheaper, !intoGPUMemory {
                return Choice(.cpu, "auto: the CPU backend should finish first (\(estimate.summary); see the estimate)")
            }
            return Choice(.auto, cudaReason + "; CUDA should finish first (\(estimate.summary); see the estimate)")
        }
    }

    /// Whether the run may use more than one GPU: several ordinals named, or
    /// `all` where the probe found several (not probed: taken as one).
    static func usesSeveralGPUs(_ devices: DeviceSelection, machine: MachineFacts) -> Bool {
        switch devices {
        case .list(let ordinals): return ordinals.count > 1
        case .all:
            if case .usable(let gpus) = machine.cuda { return gpus.count > 1 }
            return false
        }
    }

    /// The GDS decision (`GDSPlan.decide`) where it can be made now, and
    /// the host read path that runs otherwise.
    static func chooseIngest(
        _ c: EngineConfiguration, backend: BackendChoice, input: Input, machine: MachineFacts
    ) throws(PipelineError) -> Choice<Ingest> {
        var gds: GDSPlan.Decision?
        if backend == .cpu || c.ingest == .uring || c.ingest == .pread {
            // Decided without cuFile's capability, which is never asked for here.
            gds = try GDSPlan.decide(ingest: c.ingest, backend: backend, settingName: c.settingName) {
                CuFileCapability(libraryLoads: false, loadError: "not probed", nvidiaFSLoaded: false)
            }
        } else if let capability = machine.cuFile {
            gds = try GDSPlan.decide(ingest: c.ingest, backend: backend, settingName: c.settingName) { capability }
        } else {
            gds = nil
        }
        var copy = try CopyEnginePlan.decide(
            c.ingestCopy,
            facts: CopyEnginePlan.Facts(c, backend: backend, gds: gds, input: input.hint, model: machine.costModel),
            settingName: c.settingName)
        if let decided = gds { (copy, gds) = CopyEnginePlan.reconcile(copy, decided) }
        // Copied chunks are never packed, so the host stream is set up at start.
        let deferred = c.deferIngestSetup && c.ingest != .uring && gds?.useGDS != true && !copy.useEngine
        let plan = Ingest(choice: c.ingest, gds: gds, deferredSetup: deferred, copy: copy)
        if let gds, gds.useGDS {
            return Choice(plan, "cuFile into GPU memory: " + (gds.note ?? "GPUDirect Storage"))
        }
        var reason: String
        switch c.ingest {
        case .pread:
            reason = "the pread thread pool (forced)"
        case .uring:
            reason = "io_uring (forced: where it cannot run, the run fails)"
        case .auto, .gds:
            if let value = machine.ioUringDisabled, value != 0 {
                reason = "the pread thread pool: io_uring is disabled by the kernel (kernel.io_uring_disabled = \(value))"
            } else {
                reason = "io_uring, or the pread thread pool where it cannot run"
            }
        }
        if deferred {
            reason += ", set up at the first file too large to pack (packed files are read by pack loads)"
        }
        if let note = gds?.note { reason += "; " + note }
        if gds == nil { reason += "; whether cuFile reads into GPU memory instead is decided as the engine starts" }
        if let note = copy.note { reason += "; on CUDA, " + note }
        return Choice(plan, reason)
    }

    /// Chunks each slot of the ring should carry at least, where the input is
    /// known: enough that filling the pipeline (the first chunk's read) and
    /// draining it (the last chunk's work) cost a small share of each
    /// worker's time, and that the data region (slots × chunk) is at most a
    /// 16th of the input. Every page of that region is faulted in, zeroed and
    /// registered once per run, on one thread: on a 2-core machine, 32 MiB
    /// chunks in the CPU backend's 8 slots (a 256 MiB region) read a 1 GiB
    /// file about 1.15 times as slowly as 8 MiB chunks (`benchmarks/RESULTS.md`,
    /// "the data region's share of the input").
    static let chunksPerSlot = 16

    /// The configured chunk size, lowered (never below the default, nor
    /// below 8 times the overlap) where the input is too small to give each of
    /// the ring's `slots` `chunksPerSlot` chunks of it, then raised where a scan's overlap (its longest literal) would take
    /// half of each chunk or more, so that at least half of every chunk is new bytes.
    static func chooseChunk(_ configured: Int, overlap: Int, input: Input, slots: Int) -> Choice<Int> {
        var bytes = configured
        var reason = "\(configured) bytes, as configured"
        if configured > EngineConfiguration.defaultChunkBytes, let hint = input.hint, slots > 0 {
            let wanted = slots * chunksPerSlot
            // Rounded down to 4 KiB (O_DIRECT offsets), so the input gives at least `wanted` chunks.
            let share = hint.bytes / wanted / 4096 * 4096
            // A chunk at least 8 times the overlap, so that re-read bytes stay a small share.
            let floor = max(EngineConfiguration.defaultChunkBytes, (8 * overlap + 4095) / 4096 * 4096)
            let lowered = max(floor, share)
            if lowered < configured {
                bytes = lowered
                reason = "\(lowered) bytes, lowered from the configured \(configured) so that the input "
                    + "(\(byteCountText(hint.bytes))) fills the \(slots) ring slots \(chunksPerSlot) times or more, "
                    + "and the data region stays at most 1/\(chunksPerSlot) of it "
                    + "(never below the default of \(EngineConfiguration.defaultChunkBytes), nor 8 times the overlap)"
            }
        }
        guard overlap >= bytes / 2 else { return Choice(bytes, reason) }
        let raised = (2 * overlap + 4095) / 4096 * 4096 + 4096
        return Choice(raised, "raised to \(raised) bytes for the longest literal")
    }

    /// The ring slots the chunks cycle through, over every device named
    /// (`--slots` where given): the CPU backend's ring (two per worker
    /// thread and two more, at least 8), or the CUDA ring (one worker block
    /// per slot), which `auto` expects to start (where it falls back to the
    /// CPU, the larger CPU ring of a many-core host holds a larger share of
    /// the input). Before the ring is fitted to the input, which only lowers it.
    static func chunkSlots(
        _ c: EngineConfiguration, devices: DeviceSelection, backend: BackendChoice, input: Input, cores: Int
    ) -> Int {
        var deviceCount = 1
        if case .list(let ordinals) = devices { deviceCount = max(1, ordinals.count) }
        let cuda = cudaSlotCount(slots: c.slots, fitted: nil, lightWork: input.lightWork)
        switch backend {
        case .cpu:
            // Simulated CPU devices share the cores (as `DevicePool` gives them), each with its own ring.
            let threads = cpuWorkers(configured: c.workers, devices: deviceCount, cores: cores)
            return cpuSlotCount(slots: c.slots, fitted: nil, threads: threads) * deviceCount
        case .cuda: return cuda * deviceCount
        case .auto: return cuda * deviceCount
        }
    }

    /// The configured count, else the backend's default capped by what the
    /// input needs (`fittedSlots`).
    static func chooseSlots(
        _ c: EngineConfiguration, devices: DeviceSelection, backend: BackendChoice, chunkBytes: Int, input: Input,
        cores: Int
    ) -> Choice<Int> {
        if c.slots > 0 { return Choice(c.slots, "\(c.slots), as configured") }
        let fitted = input.hint.map { fittedSlots($0, chunkBytes: chunkBytes) }
        let fits = input.hint.map { hint in
            "enough for the input (\(hint.files) file\(hint.files == 1 ? "" : "s"), \(byteCountText(hint.bytes)) in all, "
                + "in chunks of \(byteCountText(chunkBytes)), and 2 more; at least 4, and one per file up to 16)"
        } ?? ""
        let cudaDefault = input.lightWork ? cudaLightWorkSlots : cudaDefaultSlots
        let cuda = cudaSlotCount(slots: 0, fitted: fitted, lightWork: input.lightWork)
        let cudaWhy = cuda < cudaDefault
            ? "\(cuda), \(fits), below the CUDA default of \(cudaDefault)"
            : input.lightWork
                ? "\(cuda), the CUDA default for light work per byte, where the host's copies set the pace"
                : "\(cuda), the CUDA default, enough in flight to keep PCIe busy"
        // Simulated CPU devices share the cores (as `DevicePool` gives them).
        var shared = 1
        if backend == .cpu, case .list(let ordinals) = devices { shared = max(1, ordinals.count) }
        let threads = cpuWorkers(configured: c.workers, devices: shared, cores: cores)
        let cpuDefault = cpuSlotCount(slots: 0, fitted: nil, threads: threads)
        let cpu = cpuSlotCount(slots: 0, fitted: fitted, threads: threads)
        let cpuWhy = cpu < cpuDefault
            ? "\(cpu), \(fits), below the CPU default of \(cpuDefault)"
            : "\(cpu), the CPU default: two chunks per worker thread (\(threads)) and 2 more, at least 8"
        switch backend {
        case .cpu: return Choice(cpu, cpuWhy)
        case .cuda: return Choice(cuda, cudaWhy)
        case .auto:
            if cuda == cpu, cuda < cudaDefault, cpu < cpuDefault {
                return Choice(cuda, "\(cuda), \(fits), below the defaults of CUDA (\(cudaDefault)) and the CPU backend (\(cpuDefault))")
            }
            return Choice(cuda, cudaWhy + "; on the CPU backend " + cpuWhy)
        }
    }

    /// Read ahead only where it can help: buffered host reads (io_uring or
    /// pread find the pages cached) while a GPU backend starts (the CPU
    /// backend starts too fast to need a head start).
    static func choosePrefetch(
        _ c: EngineConfiguration, backend: BackendChoice, ingest: Ingest, machine: MachineFacts
    ) -> Choice<Int> {
        if backend == .cpu { return Choice(0, "off: the CPU backend starts too fast to need a head start") }
        if c.direct { return Choice(0, "off: O_DIRECT reads do not look in the page cache") }
        if c.ingest == .gds || ingest.gds?.useGDS == true {
            return Choice(0, "off: cuFile reads into GPU memory do not look in the page cache")
        }
        let budget = StartupPrefetch.budget(availableBytes: machine.memory.availableBytes)
        guard budget > 0 else { return Choice(0, "off: the memory available is not known") }
        return Choice(
            budget,
            "up to \(byteCountText(budget)) of the input is read ahead into the page cache while the GPU backend "
                + "starts (a quarter of the memory available, at most 1 GiB)")
    }

    /// The warm-up wherever CUDA may run: the devices named, or device 0.
    static func chooseWarmUp(backend: BackendChoice, devices: DeviceSelection) -> Choice<[Int]> {
        guard backend != .cpu else { return Choice([], "none: the CPU backend runs") }
        var ordinals = [0]
        if case .list(let named) = devices, !named.isEmpty { ordinals = named }
        let list = ordinals.map(String.init).joined(separator: ",")
        return Choice(
            ordinals,
            "device\(ordinals.count == 1 ? "" : "s") \(list): the CUDA driver and context start in the background "
                + "while the command walks and compiles")
    }
}

// MARK: - Ring sizes

extension ExecutionPlan {
    /// Default CUDA ring: enough slots in flight to keep PCIe busy; the
    /// kernel runs one block per slot (capped by the device's occupancy).
    public static let cudaDefaultSlots = 128

    /// Default CUDA ring for light work per byte (count, crc32c), where the
    /// host's copies into the ring, not the kernel, set the pace: 32 slots
    /// of 4 MiB read a warm 16 GiB file in 725-775 ms against 860-910 ms
    /// with 128 (and 16: 935-1,160 ms; 64: 845-910 ms) on the H100 machine
    /// (run 23 in `benchmarks/RESULTS.md`), and pin a quarter of the memory
    /// at start. A scan keeps 128: its kernel work per byte needs every block.
    public static let cudaLightWorkSlots = 32

    /// The CUDA ring's slot count: `slots` when given, else the default for
    /// the work, capped by what the input needs (`fitted`).
    static func cudaSlotCount(slots: Int, fitted: Int?, lightWork: Bool) -> Int {
        slots > 0 ? slots : min(lightWork ? cudaLightWorkSlots : cudaDefaultSlots, fitted ?? .max)
    }

    /// The CPU ring's slot count: `slots` when given, else two chunks per
    /// worker thread in flight (which keeps every worker busy while reads
    /// land) and two more, at least 8, capped by what the input needs.
    static func cpuSlotCount(slots: Int, fitted: Int?, threads: Int) -> Int {
        slots > 0 ? slots : min(max(8, 2 * threads + 2), fitted ?? .max)
    }

    /// CPU worker threads per device: `configured` when given, else the
    /// cores shared among the (simulated) devices, at least one.
    static func cpuWorkers(configured: Int, devices: Int, cores: Int) -> Int {
        configured > 0 ? configured : max(1, cores / max(1, devices))
    }

    /// Slots enough for the input's bytes in chunks of `chunkBytes`, plus
    /// two for chunk overlap and files that end mid-chunk; at least 4, and at
    /// least one per file up to 16 so that small files still overlap their
    /// reads. The backends' defaults cap it.
    static func fittedSlots(_ input: InputHint, chunkBytes: Int) -> Int {
        let chunks = input.bytes / chunkBytes + (input.bytes % chunkBytes == 0 ? 0 : 1)
        return max(4, chunks + 2, min(input.files, 16))
    }
}
