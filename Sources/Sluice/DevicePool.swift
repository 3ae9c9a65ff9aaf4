#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceCPU
import SluiceCUDA
import SluiceNUMA
import SluiceSystem
import SluiceThreads
import Synchronization

/// Which devices a run uses (`--devices all|0,1,...`).
public enum DeviceSelection: Sendable, Equatable {
    /// Every CUDA device found (one simulated device on the CPU backend).
    case all
    /// The devices with these ordinals, in this order.
    case list([Int])

    /// Parses "all" or a comma-separated list of ordinals.
    public init(parsing text: String) throws(PipelineError) {
        if text == "all" {
            self = .all
            return
        }
        var list: [Int] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let n = Int(part), n >= 0, n < 1024 else {
                throw .invalidConfiguration("devices \(text): expected all or a list such as 0,1")
            }
            guard !list.contains(n) else { throw .invalidConfiguration("devices \(text): device \(n) is named twice") }
            list.append(n)
        }
        self = .list(list)
    }

    /// The ordinals for a backend choice; CPU "devices" are simulated and
    /// `all` means one.
    public func ordinals(for backend: BackendChoice) -> [Int] {
        switch self {
        case .list(let l): return l
        case .all:
            guard backend != .cpu, case .success(let gpus) = CUDAInventory.devices(), !gpus.isEmpty else { return [0] }
            return Array(gpus.indices)
        }
    }
}

/// One engine per device, fed from one queue of files: each engine takes the
/// next batch when it is free, so a device that finishes early takes work
/// that a slower one would have had (work stealing at batch granularity).
/// Outcomes come back in input order, so the output is byte for byte that of
/// a one-device run.
public final class DevicePool {
    /// One engine per selected device, in the order of the selection.
    public let engines: [Engine]
    /// Per engine, where its host threads run: "node N's CPUs ..." or why
    /// they were left to the scheduler (for `--verbose`).
    public let threadPlacement: [String]
    /// Per engine, the CPUs its threads are confined to (empty: not confined).
    private let engineCPUs: [[Int]]

    /// Starts one engine per device of `devices`, each with `configuration` and `resultWordsPerSlot` words of result area per slot.
    /// 
    /// Throws when no device is selected or an engine cannot start.
    public init(
        _ configuration: EngineConfiguration, devices: DeviceSelection = .list([0]), resultWordsPerSlot: Int
    ) throws(PipelineError) {
        // The engines hold their own contexts now (or failed): the warm-up's are not needed.
        defer { CUDAWarmup.end() }
        let ordinals = devices.ordinals(for: configuration.backend)
        guard !ordinals.isEmpty else { throw .invalidConfiguration("no devices selected") }
        var c = configuration
        if configuration.backend == .cpu, ordinals.count > 1, configuration.workers == 0 {
            // Simulated CPU devices share the cores.
            c.workers = ExecutionPlan.cpuWorkers(configured: 0, devices: ordinals.count, cores: ProcessorCount.online)
        }
        var engines: [Engine] = []
        var placement: [String] = []
        var cpuLists: [[Int]] = []
        for (index, ordinal) in ordinals.enumerated() {
            c.ringsStillToMake = ordinals.count - index
            let (engine, cpus, note) = try DevicePool.makeEngine(c, resultWordsPerSlot: resultWordsPerSlot, device: ordinal)
            engines.append(engine)
            cpuLists.append(cpus)
            placement.append(note)
        }
        self.engines = engines
        self.engineCPUs = cpuLists
        self.threadPlacement = placement
    }

    /// Builds the engine of one device. For a GPU on a NUMA node of a
    /// machine with several, the engine is built with this thread confined to
    /// the node's CPUs, so the threads it starts (io_uring readers, pread
    /// pool) inherit that and read into the node's memory from its own cores;
    /// the pool's thread that drives the engine is confined the same way.
    /// Should `auto` fall back to the CPU backend, the engine is built again
    /// unconfined, so the CPU workers get every core.
    private static func makeEngine(
        _ c: EngineConfiguration, resultWordsPerSlot: Int, device: Int
    ) throws(PipelineError) -> (Engine, [Int], String) {
        func plain() throws(PipelineError) -> Engine { try Engine(c, resultWordsPerSlot: resultWordsPerSlot, device: device) }
        guard c.backend != .cpu else { return (try plain(), [], "not placed: simulated CPU device") }
        let plan = NUMAPlan.decide(pciAddress: CUDAInventory.pciAddress(ordinal: device))
        func unplaced(_ why: String) throws(PipelineError) -> (Engine, [Int], String) {
            let engine = try plain()
            return (engine, [], engine.backend is CUDABackend ? "not placed: \(why)" : "not placed: the CPU backend runs")
        }
        guard let node = plan.node else { return try unplaced(plan.reason) }
        guard !plan.cpus.isEmpty else { return try unplaced("node \(node) lists no CPUs") }
        let (engine, cpus) = try ThreadAffinity.running(on: plan.cpus) { () throws(PipelineError) -> Engine in try plain() }
        guard !cpus.isEmpty else {
            return (engine, [], "not placed: this process may not run on node \(node)'s CPUs \(ThreadAffinity.format(plan.cpus))")
        }
        guard engine.backend is CUDABackend else {
            try engine.close()
            return (try plain(), [], "not placed: the CPU backend runs (it uses every core)")
        }
        return (engine, cpus, "ingest and driving threads on node \(node)'s CPUs \(ThreadAffinity.format(cpus))")
    }

    /// Starts the CUDA driver and the devices' contexts in the background
    /// (see `CUDAWarmup`) when `backend` may use CUDA, so that a command's
    /// walk and pattern compile overlap them. Call it first thing; the pool
    /// made later ends the warm-up.
    public static func warmUp(_ backend: BackendChoice, devices: DeviceSelection) {
        guard backend != .cpu else { return }
        if case .list(let ordinals) = devices {
            CUDAWarmup.begin(devices: ordinals)
        } else {
            CUDAWarmup.begin(devices: [0])
        }
    }

    /// How large the ranges of large files are when several engines share a
    /// run (`--range-size`); a one-engine run always takes files whole.
    public var rangeSize: RangeSize = .auto

    /// The work for `paths`: every file whole, except, when several engines
    /// share the run, files larger than a range, which become one item per
    /// range (see `RangeSize`). A path that cannot be examined stays whole,
    /// so its error is reported the usual way.
    public func plan(_ paths: [RawPath]) -> [WorkItem] {
        guard engines.count > 1, rangeSize != .off else { return paths.map { WorkItem(path: $0) } }
        // The smallest ring decides: the range must amortize every device's drain.
        let ringBytes = engines.map { UInt64($0.stream.chunkCount * $0.stream.chunkBytes) }.min() ?? 0
        var items: [WorkItem] = []
        items.reserveCapacity(paths.count)
        for path in paths {
            // stat, not lstat: the scanner opens (and so follows) the path.
            guard let st = try? path.stat(), st.type == .regular else {
                items.append(WorkItem(path: path))
                continue
            }
            let size = UInt64(st.size)
            let ranges = FileRange.split(
                size: size, rangeBytes: rangeSize.bytes(forFileOf: size, devices: engines.count, ringBytes: ringBytes),
                modifiedSeconds: Int(st.st_mtim.tv_sec), modifiedNanoseconds: Int(st.st_mtim.tv_nsec))
            if ranges.isEmpty {
                items.append(WorkItem(path: path))
            } else {
                items += ranges.map { WorkItem(path: path, range: $0) }
            }
        }
        return items
    }

    /// Runs `job` over `paths`, splitting large files into ranges that any
    /// engine may take (see `plan`), and joins each file's range outcomes
    /// (`RangeMergeable.rangeJoiner`). `job(engine, items, report, progress)`
    /// must call `report` for each item, in item order, one or more times
    /// (the last with `endsItem` set), and pass each item's range to the
    /// scanner. `onOutcome` is called on this thread, a path's outcomes
    /// together and the paths in the order of `paths`; with several engines,
    /// `onIdle` is called on it at least every millisecond while it waits.
    public func run<Outcome: RangeMergeable>(
        splitting paths: [RawPath], batchFiles: Int = 64,
        job: @escaping @Sendable (
            Engine, [WorkItem], (Outcome) -> Void, ((ChunkScheduler.Progress) -> Void)?
        ) throws(PipelineError) -> Void,
        onOutcome: (Outcome) -> Void, onProgress: ((ChunkScheduler.Progress) -> Void)? = nil, onIdle: (() -> Void)? = nil
    ) throws(PipelineError) {
        let items = plan(paths)
        var joiner: RangeJoiner<Outcome>?
        try run(
            items: items, batchFiles: batchFiles, job: job, endsItem: \.endsItem, heldBytes: \.heldBytes,
            onItemOutcome: { index, outcome in
                guard let range = items[index].range else {
                    onOutcome(outcome)
                    return
                }
                // Items come back in order, so a file's ranges arrive together.
                let joining = joiner ?? Outcome.rangeJoiner()
                let last = range.index == range.count - 1
                for joined in joining.add(outcome, lastRange: last) { onOutcome(joined) }
                joiner = last && outcome.endsItem ? nil : joining
            }, onProgress: onProgress, onIdle: onIdle)
    }

    /// Runs `job` over `paths`, each file whole. `job(engine, batch, report,
    /// progress)` must call `report` once per path of `batch`, in batch
    /// order; `progress` is non-nil only with one device, where everything
    /// runs on this thread. `onOutcome` is called on this thread, in the
    /// order of `paths`.
    public func run<Outcome: Sendable>(
        paths: [RawPath], batchFiles: Int = 64,
        job: @escaping @Sendable (
            Engine, [RawPath], (Outcome) -> Void, ((ChunkScheduler.Progress) -> Void)?
        ) throws(PipelineError) -> Void,
        onOutcome: (Outcome) -> Void, onProgress: ((ChunkScheduler.Progress) -> Void)? = nil
    ) throws(PipelineError) {
        try run(
            items: paths.map { WorkItem(path: $0) }, batchFiles: batchFiles,
            job: { engine, items, report, progress throws(PipelineError) in
                try job(engine, items.map(\.path), report, progress)
            },
            endsItem: { _ in true }, heldBytes: { _ in 0 },
            onItemOutcome: { _, outcome in onOutcome(outcome) }, onProgress: onProgress)
    }

    /// The batches engines take from the queue: up to `batchFiles` whole
    /// files, or one range (a range is a large piece of work on its own, and
    /// batching ranges would hand one engine most of a large file).
    static func batches(_ items: [WorkItem], batchFiles: Int) -> [Range<Int>] {
        let most = max(1, batchFiles)
        var out: [Range<Int>] = []
        var i = 0
        while i < items.count {
            var end = i + 1
            if items[i].range == nil {
                while end < items.count, end - i < most, items[end].range == nil { end += 1 }
            }
            out.append(i..<end)
            i = end
        }
        return out
    }

    /// Outcomes held for items after the one being handed out, at most,
    /// before the engines producing them wait: a later file with millions of
    /// matches cannot fill memory while an earlier one is still running.
    static let heldBytesLimit = 64 << 20

    /// The queue: engines take batches as they become free (work stealing),
    /// and this thread hands outcomes to `onItemOutcome` in item order.
    private func run<Outcome: Sendable>(
        items: [WorkItem], batchFiles: Int,
        job: @escaping @Sendable (
            Engine, [WorkItem], (Outcome) -> Void, ((ChunkScheduler.Progress) -> Void)?
        ) throws(PipelineError) -> Void,
        endsItem: @escaping @Sendable (Outcome) -> Bool, heldBytes: @escaping @Sendable (Outcome) -> Int,
        onItemOutcome: (Int, Outcome) -> Void, onProgress: ((ChunkScheduler.Progress) -> Void)?, onIdle: (() -> Void)? = nil
    ) throws(PipelineError) {
        if engines.count == 1 {
            // One device: no threads, no batches.
            var produced = 0
            try job(engines[0], items, { outcome in
                onItemOutcome(produced, outcome)
                if endsItem(outcome) { produced += 1 }
            }, onProgress)
            return
        }
        let state = Mutex(PoolState<Outcome>())
        let total = items.count
        let batches = DevicePool.batches(items, batchFiles: batchFiles)
        var threads: [PosixThread] = []
        for (index, engine) in engines.enumerated() {
            let box = UncheckedEngine(engine)
            let cpus = engineCPUs[index]
            do throws(ThreadStartFailure) {
                threads.append(try PosixThread(name: "device pool engine \(index)") {
                    if !cpus.isEmpty { ThreadAffinity.set(cpus) }
                    while true {
                        let taken: Range<Int>? = state.withLock { s in
                            guard s.failure == nil, s.next < batches.count else { return nil }
                            defer { s.next += 1 }
                            return batches[s.next]
                        }
                        guard let taken else { return }
                        var produced = 0
                        do throws(PipelineError) {
                            try job(box.engine, Array(items[taken]), { outcome in
                                let item = taken.lowerBound + produced
                                state.waitUntilRoom(for: item)
                                state.withLock { s in
                                    s.ready[item, default: []].append(outcome)
                                    s.heldBytes += heldBytes(outcome)
                                }
                                if endsItem(outcome) { produced += 1 }
                            }, nil)
                        } catch {
                            state.withLock { s in if s.failure == nil { s.failure = error } }
                            return
                        }
                    }
                })
            } catch {
                state.withLock { $0.failure = .backendUnavailable(backend: "pool", reason: error.message) }
                break
            }
        }
        // This thread hands outcomes out in input order as they become ready.
        var idle = 0
        while true {
            let (ready, failure, done) = state.withLock { s in
                let ready = s.takeReady(endsItem: endsItem, heldBytes: heldBytes)
                return (ready, s.failure, s.head >= total)
            }
            for (item, outcome) in ready { onItemOutcome(item, outcome) }
            // With several engines no progress callback runs on this thread;
            // this tick lets the caller write out what waits (see `ScanPrinter`).
            onIdle?()
            if let failure {
                threads.forEach { $0.join() }
                throw failure
            }
            if done { break }
            if ready.isEmpty {
                idle += 1
                sleepNanoseconds(min(1_000_000, 1000 << min(idle, 10)))
            } else {
                idle = 0
            }
        }
        threads.forEach { $0.join() }
    }

    /// Closes every engine: drains its reads, then stops its backend.
    public func close() throws(PipelineError) {
        for e in engines { try e.close() }
    }
}

struct PoolState<Outcome> {
    var next = 0
    /// Per item, its outcomes not yet handed out.
    var ready: [Int: [Outcome]] = [:]
    /// The item whose outcomes are handed out now; every item before it is done.
    var head = 0
    /// What `ready` holds, as the outcomes count it.
    var heldBytes = 0
    var failure: PipelineError?

    /// Takes the outcomes that are next in item order.
    mutating func takeReady(endsItem: (Outcome) -> Bool, heldBytes cost: (Outcome) -> Int) -> [(Int, Outcome)] {
        var out: [(Int, Outcome)] = []
        while let list = ready.removeValue(forKey: head) {
            var ended = false
            for outcome in list {
                out.append((head, outcome))
                heldBytes -= cost(outcome)
                ended = endsItem(outcome)
            }
            guard ended else { break }
            head += 1
        }
        return out
    }
}

extension Mutex {
    /// Waits while outcomes held for items after the head exceed the limit
    /// (the head's own outcomes never wait: they are what frees the room).
    func waitUntilRoom<Outcome>(for item: Int) where Value == PoolState<Outcome> {
        var idle = 0
        while withLock({ s in s.failure == nil && item > s.head && s.heldBytes > DevicePool.heldBytesLimit }) {
            idle += 1
            sleepNanoseconds(min(1_000_000, 1000 << min(idle, 10)))
        }
    }
}

/// An engine handed to exactly one worker thread, which alone uses it.
private struct UncheckedEngine: @unchecked Sendable {
    let engine: Engine
    init(_ engine: Engine) { self.engine = engine }
}
