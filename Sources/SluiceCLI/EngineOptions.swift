import ArgumentParser
import Sluice

extension BackendChoice: ExpressibleByArgument {}
extension IngestChoice: ExpressibleByArgument {}
extension IngestCopyChoice: ExpressibleByArgument {}
extension ScanEngineChoice: ExpressibleByArgument {}

/// Options every command that runs the pipeline shares.
struct EngineOptions: ParsableArguments {
    @Option(help: "Where the work runs: auto (CUDA where a usable GPU is found, else CPU; CPU for a tree of 1,000 or more files of 256 KiB or less on average), cpu or cuda.")
    var backend: BackendChoice = .auto

    @Option(help: "How files are read: auto (io_uring, else a pread thread pool; cuFile when GPUDirect Storage is truly direct), uring, pread or gds (cuFile into GPU memory, even in its compatibility mode; needs the CUDA backend).")
    var ingest: IngestChoice = .auto

    @Option(
        name: .customLong("ingest-copy"),
        help: "How host reads reach the CUDA workers: auto (what sluice bench calibrate measured faster here, else mapped), engine (a copy engine moves each chunk into GPU memory) or mapped (the workers read pinned host memory over PCIe).")
    var ingestCopy: IngestCopyChoice = .auto

    @Option(name: .customLong("chunk-size"), help: "Bytes per chunk, a multiple of 4 KiB (suffixes K, M, G); a size above 4M is lowered (not below 4M) where the input would give each slot of the ring fewer than 16 chunks (--verbose says so).")
    var chunkSize: ByteCount = ByteCount(4 << 20)

    @Option(help: "Ring slots (chunks in flight); 0 picks a default for the backend.")
    var slots: Int = 0

    @Option(help: "CPU backend worker threads; 0 uses every core.")
    var workers: Int = 0

    @Flag(help: "Read with O_DIRECT, bypassing the page cache.")
    var direct = false

    @Option(help: "Seconds without progress, while chunks are being processed, before giving up.")
    var watchdog: Int = 30

    @Option(help: "Devices to use: all, or a list of CUDA ordinals such as 0,1 (with --backend cpu, N simulated devices).")
    var devices: String = "all"

    @Option(
        name: .customLong("range-size"),
        help: """
            With several devices, files larger than this are split into ranges of this size that any device may \
            take: auto (a quarter of a device's share, at least 256M), 0 (files run whole) or a size (K, M, G).
            """)
    var rangeSize: String = "auto"

    @Option(help: "Process only share I of N (I/N, 0-based), for N processes on N hosts; see docs/cluster.md.")
    var shard: String?

    @Flag(name: .shortAndLong, help: "Say on stderr which backend and ingest path run, and why.")
    var verbose = false

    @Flag(name: .shortAndLong, help: "No progress line on stderr.")
    var quiet = false

    @Flag(help: "At the end, print per-device and per-tenant counters (slots, bytes, faults, busy time) on stderr.")
    var stats = false

    func validate() throws {
        guard chunkSize.value >= 4096, chunkSize.value % 4096 == 0 else {
            throw ValidationError("--chunk-size must be a multiple of 4096 bytes (4K), got \(chunkSize.value)")
        }
        guard slots >= 0, slots <= 65_536 else { throw ValidationError("--slots must be between 0 and 65536") }
        guard workers >= 0, workers <= 4096 else { throw ValidationError("--workers must be between 0 and 4096") }
        guard watchdog > 0 else { throw ValidationError("--watchdog must be at least 1 second") }
        if let shard {
            do { _ = try Shard(parsing: shard) } catch { throw ValidationError(flag: "--shard", error) }
        }
        do { _ = try DeviceSelection(parsing: devices) } catch { throw ValidationError(flag: "--devices", error) }
        do { _ = try RangeSize(parsing: rangeSize) } catch { throw ValidationError(flag: "--range-size", error) }
    }

    /// The plan (`ExecutionPlan`) for `work` over what `walk` found (nil:
    /// files not known in advance, as for `hash --check`). `overlapBytes`:
    /// a scan's overlap, which may raise the chunk size; `literals`: a scan's
    /// literal count and `matchesPerByte` its sampled match density, which
    /// its cost depends on; `shareOfWalk`: the part of the walk this run
    /// reads (files left after a server fell back; nil: all of it, or its
    /// `--shard` share); `deferIngestSetup`:
    /// the host read stream is set up at the first chunk read (for a scan
    /// with packing on, which may need none).
    /// The GPU and cuFile are probed as the engine starts, after the
    /// warm-up started the driver (`MachineFacts.Scope.beforeWarmUp`);
    /// `machine`: those facts probed already (a command that plans twice).
    func plan(
        _ work: ExecutionPlan.Input.Work, walk: FileWalker.Result?, overlapBytes: Int = 0, literals: Int = 0,
        matchesPerByte: Double = 0, cpuScanEngine: ScanEngineChoice = .auto, hyperscanCached: Bool = true,
        shareOfWalk: Double? = nil, deferIngestSetup: Bool = false, machine: MachineFacts? = nil
    ) throws -> ExecutionPlan {
        var c = configuration
        c.deferIngestSetup = deferIngestSetup
        c.cpuScanEngine = cpuScanEngine
        var input = walk.map { ExecutionPlan.Input(work: work, walk: $0, overlapBytes: overlapBytes, literals: literals) }
            ?? .unknown(work, overlapBytes: overlapBytes, literals: literals)
        input.matchesPerByte = matchesPerByte
        input.hyperscanCached = hyperscanCached
        // With --shard I/N this process reads about an N-th of what the walk found.
        var share = min(1, max(0, shareOfWalk ?? 1))
        if shareOfWalk == nil, let shard, let count = try? Shard(parsing: shard).count, count > 1 { share /= Double(count) }
        if share < 1, let files = input.files {
            input.files = Int((Double(files) * share).rounded(.up))
            input.sizedFiles = Int((Double(input.sizedFiles) * share).rounded(.up))
            input.bytes = Int(Double(input.bytes) * share)
        }
        return try ExecutionPlan.make(
            configuration: c, devices: try DeviceSelection(parsing: devices), input: input,
            machine: machine ?? .probe(.beforeWarmUp))
    }

    /// The files this process handles: all of them, or its shard's share.
    func selectShare(_ files: [RawPath]) throws -> [RawPath] {
        guard let shard else { return files }
        return try Shard(parsing: shard).select(files)
    }

    var configuration: EngineConfiguration {
        var c = EngineConfiguration(
            backend: backend, ingest: ingest, chunkBytes: chunkSize.value, slots: slots, workers: workers,
            direct: direct, watchdog: .seconds(watchdog))
        c.ingestCopy = ingestCopy
        c.onNote = { printError("sluice: \($0)") }
        c.settingName = ConfiguredSetting.byFlag
        return c
    }

    /// Builds one engine on the first selected device, saying what runs when --verbose.
    func makeEngine(resultWordsPerSlot: Int) throws -> Engine {
        let device = try DeviceSelection(parsing: devices).ordinals(for: backend).first ?? 0
        let engine = try Engine(configuration, resultWordsPerSlot: resultWordsPerSlot, device: device)
        for note in engine.notes { printError("sluice: \(note)") }
        if verbose {
            printError("sluice: backend \(engine.backend.summary)")
            printError("sluice: ingest \(engine.ingestReason)")
        }
        return engine
    }

    /// With --verbose, says at the end of a run how each deferred read
    /// stream ended up (set up, and how, or never needed).
    func printDeferredIngest(_ pool: DevicePool) {
        guard verbose else { return }
        for engine in pool.engines where engine.stream is DeferredReadStream {
            printError("sluice: device \(engine.device): ingest at the end: \(engine.ingestReason)")
        }
    }

    /// Prints the counters `--stats` asks for.
    func printStats(_ pool: DevicePool) {
        guard stats else { return }
        for engine in pool.engines {
            if let c = try? engine.backend.ring.observe() {
                printError("sluice: device \(engine.device) (\(engine.backend.name)): \(c.slotsDone) slots done, "
                    + "\(c.slotsFaulted) faulted, \(c.slotsCancelled) cancelled, \(c.bytesProcessed) bytes"
                    + (c.lastFault.map { "; last fault: \($0)" } ?? ""))
            }
            guard let scanner = try? engine.scanner() else { continue }
            for (tenant, s) in scanner.tenantStats.sorted(by: { $0.key < $1.key }) {
                let busy = s.busy.inSeconds
                printError("sluice: device \(engine.device) tenant \(tenant): \(s.slots) slots, \(s.bytes) bytes, "
                    + "\(s.faults) faults, \((busy * 1000).rounded() / 1000) s busy")
            }
        }
    }

    /// Builds one engine per device as `plan` says, saying what runs and
    /// why when --verbose; `cpuScanEngine` is `scan`'s `--cpu-engine`.
    /// While a GPU backend starts, the first of `files` (in the order they
    /// will be read) are read ahead into the page cache where the plan says
    /// so (`StartupPrefetch`).
    func makePool(
        _ plan: ExecutionPlan, resultWordsPerSlot: Int, cpuScanEngine: ScanEngineChoice = .auto, files: [RawPath] = []
    ) throws -> DevicePool {
        var c = plan.configure(configuration)
        c.cpuScanEngine = cpuScanEngine
        let prefetch = plan.startPrefetch(files)
        defer { prefetch?.finish() }
        let pool = try DevicePool(c, devices: try DeviceSelection(parsing: devices), resultWordsPerSlot: resultWordsPerSlot)
        pool.rangeSize = try RangeSize(parsing: rangeSize)
        for engine in pool.engines {
            for note in engine.notes { printError("sluice: device \(engine.device): \(note)") }
        }
        if verbose {
            // The backend and ingest lines below start from the plan's reasons and say what started.
            for line in plan.lines where line.name != "backend" && line.name != "ingest" {
                printError("sluice: \(line.name): \(line.text)")
            }
            for engine in pool.engines {
                printError("sluice: device \(engine.device): backend \(engine.backend.summary)")
                printError("sluice: device \(engine.device): ingest \(engine.ingestReason)")
            }
            for (engine, placement) in zip(pool.engines, pool.threadPlacement) {
                printError("sluice: device \(engine.device): threads \(placement)")
            }
        }
        return pool
    }
}

/// A byte count with an optional K, M or G suffix (powers of 1024).
struct ByteCount: ExpressibleByArgument {
    var value: Int

    init(_ value: Int) { self.value = value }

    init?(argument: String) {
        var digits = argument.uppercased()
        var scale = 1
        if let last = digits.last, let s = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30][String(last)] {
            scale = s
            digits.removeLast()
        }
        if digits.hasSuffix("I") { return nil }
        guard let n = Int(digits), n >= 0, n <= Int.max / scale else { return nil }
        value = n * scale
    }

    var defaultValueDescription: String { "\(value)" }
}
