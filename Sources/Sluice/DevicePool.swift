#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceCPU
import SluiceCUDA
import Synchronization

/// Which devices a run uses (`--devices all|0,1,...`).
public enum DeviceSelection: Sendable, Equatable {
    case all
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
                throw .invalidConfiguration("--devices \(text): expected all or a list such as 0,1")
            }
            guard !list.contains(n) else { throw .invalidConfiguration("--devices \(text): device \(n) is named twice") }
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
    public let engines: [Engine]

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
            c.workers = max(1, ProcessorCount.online / ordinals.count)
        }
        var engines: [Engine] = []
        for ordinal in ordinals {
            engines.append(try Engine(c, resultWordsPerSlot: resultWordsPerSlot, device: ordinal))
        }
        self.engines = engines
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

    /// Runs `job` over `paths`. `job(engine, batch, report, progress)` must
    /// call `report` once per path of `batch`, in batch order; `progress` is
    /// non-nil only with one device, where everything runs on this thread.
    /// `onOutcome` is called on this thread, in the order of `paths`.
    public func run<Outcome: Sendable>(
        paths: [String], batchFiles: Int = 64,
        job: @escaping @Sendable (
            Engine, [String], (Outcome) -> Void, ((Scanner.Progress) -> Void)?
        ) throws(PipelineError) -> Void,
        onOutcome: (Outcome) -> Void, onProgress: ((Scanner.Progress) -> Void)? = nil
    ) throws(PipelineError) {
        if engines.count == 1 {
            // One device: no threads, no batches.
            try job(engines[0], paths, onOutcome, onProgress)
            return
        }
        let state = Mutex(PoolState<Outcome>())
        let total = paths.count
        let batch = max(1, batchFiles)
        var threads: [WorkerThread] = []
        for engine in engines {
            let box = UncheckedEngine(engine)
            do throws(POSIXThreadError) {
                threads.append(try WorkerThread {
                    while true {
                        let start: Int? = state.withLock { s in
                            guard s.failure == nil, s.next < total else { return nil }
                            defer { s.next = min(total, s.next + batch) }
                            return s.next
                        }
                        guard let start else { return }
                        let end = min(total, start + batch)
                        var produced = 0
                        do throws(PipelineError) {
                            try job(box.engine, Array(paths[start..<end]), { outcome in
                                state.withLock { $0.ready[start + produced] = outcome }
                                produced += 1
                            }, nil)
                        } catch {
                            state.withLock { s in if s.failure == nil { s.failure = error } }
                            return
                        }
                    }
                })
            } catch {
                state.withLock { $0.failure = .backendUnavailable(backend: "pool", reason: "pthread_create failed with \(error.code)") }
                break
            }
        }
        // This thread hands outcomes out in input order as they become ready.
        var nextOut = 0
        var idle = 0
        while nextOut < total {
            let (ready, failure): ([Outcome], PipelineError?) = state.withLock { s in
                var out: [Outcome] = []
                while let o = s.ready.removeValue(forKey: nextOut + out.count) { out.append(o) }
                return (out, s.failure)
            }
            for o in ready { onOutcome(o) }
            nextOut += ready.count
            if let failure {
                threads.forEach { $0.join() }
                throw failure
            }
            if ready.isEmpty {
                idle += 1
                sleepNanoseconds(min(1_000_000, 1000 << min(idle, 10)))
            } else {
                idle = 0
            }
        }
        threads.forEach { $0.join() }
    }

    public func close() throws(PipelineError) {
        for e in engines { try e.close() }
    }
}

private struct PoolState<Outcome> {
    var next = 0
    var ready: [Int: Outcome] = [:]
    var failure: PipelineError?
}

/// An engine handed to exactly one worker thread, which alone uses it.
private struct UncheckedEngine: @unchecked Sendable {
    let engine: Engine
    init(_ engine: Engine) { self.engine = engine }
}
