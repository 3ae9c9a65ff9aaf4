import ArgumentParser
import Sluice

extension BackendChoice: ExpressibleByArgument {}
extension IngestChoice: ExpressibleByArgument {}
extension ScanEngineChoice: ExpressibleByArgument {}

/// Options every command that runs the pipeline shares.
struct EngineOptions: ParsableArguments {
    @Option(help: "Where the work runs: auto (CUDA if a GPU and NVRTC load, else CPU; CPU for a tree of 1,000 or more files of 256 KiB or less on average), cpu or cuda.")
    var backend: BackendChoice = .auto

    @Option(help: "How files are read: auto (io_uring, else a pread thread pool; cuFile when GPUDirect Storage is truly direct), uring, pread or gds (cuFile into GPU memory, even in its compatibility mode; needs the CUDA backend).")
    var ingest: IngestChoice = .auto

    @Option(name: .customLong("chunk-size"), help: "Bytes per chunk, a multiple of 4 KiB (suffixes K, M, G).")
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
            do { _ = try Shard(parsing: shard) } catch { throw ValidationError(error.message) }
        }
        do { _ = try DeviceSelection(parsing: devices) } catch { throw ValidationError(error.message) }
        do { _ = try RangeSize(parsing: rangeSize) } catch { throw ValidationError(error.message) }
    }

    /// Starts the CUDA driver in the background while the command walks
    /// and compiles (see `DevicePool.warmUp`); the pool made later ends it.
    func warmUp() {
        DevicePool.warmUp(backend, devices: (try? DeviceSelection(parsing: devices)) ?? .list([0]))
    }

    /// The warm-up for a run over `walk`'s files: none when `auto` will run
    /// them on the CPU backend.
    func warmUp(for walk: FileWalker.Result?, checksum: Bool = false) {
        guard cpuReason(for: walk, checksum: checksum) == nil else { return }
        warmUp()
    }

    /// Why `auto` runs on the CPU backend: a checksum run where the CPU has
    /// CRC-32C instructions (`ChecksumBackends`), or a tree of small files
    /// (`SmallFileTrees`); nil when it may use a GPU or the backend was named.
    func cpuReason(for walk: FileWalker.Result?, checksum: Bool = false) -> String? {
        guard backend == .auto else { return nil }
        if checksum, let why = ChecksumBackends.cpuReason(ingest: ingest) { return "auto: " + why }
        guard let walk, let why = SmallFileTrees.cpuReason(walk, ingest: ingest) else { return nil }
        return "auto: " + why
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
        c.onNote = { printError("sluice: \($0)") }
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

    /// Builds one engine per device, saying what runs when --verbose;
    /// `cpuScanEngine` is `scan`'s `--cpu-engine`.
    /// `walk` (what the run will read) sizes the ring when --slots is not
    /// given, and turns `auto` into the CPU backend for a tree of small files.
    /// While a GPU backend starts, the first of `files` (in the order they
    /// will be read) are prefetched into the page cache (`StartupPrefetch`).
    /// `deferIngestSetup`: the host read stream is set up at the first
    /// chunk read (for a scan with packing on, which may need none).
    /// `lightWork`: count and hash (see `EngineConfiguration.lightWork`).
    /// `checksum`: hash, which `auto` runs on the CPU where it has CRC-32C
    /// instructions (`ChecksumBackends`).
    func makePool(
        resultWordsPerSlot: Int, cpuScanEngine: ScanEngineChoice = .auto, walk: FileWalker.Result? = nil,
        files: [RawPath] = [], deferIngestSetup: Bool = false, lightWork: Bool = false, checksum: Bool = false
    ) throws -> DevicePool {
        var c = configuration
        c.cpuScanEngine = cpuScanEngine
        c.deferIngestSetup = deferIngestSetup
        c.lightWork = lightWork
        c.inputHint = walk?.inputHint
        if let why = cpuReason(for: walk, checksum: checksum) {
            c.backend = .cpu
            c.backendReason = why
        }
        // Only buffered reads by io_uring or pread can find prefetched pages;
        // the CPU backend starts too fast to need a head start.
        let prefetch = c.backend == .cpu || direct || ingest == .gds
            ? nil : StartupPrefetch(paths: files, budgetBytes: StartupPrefetch.budget())
        defer { prefetch?.finish() }
        let pool = try DevicePool(c, devices: try DeviceSelection(parsing: devices), resultWordsPerSlot: resultWordsPerSlot)
        pool.rangeSize = try RangeSize(parsing: rangeSize)
        for engine in pool.engines {
            for note in engine.notes { printError("sluice: device \(engine.device): \(note)") }
        }
        if verbose {
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
