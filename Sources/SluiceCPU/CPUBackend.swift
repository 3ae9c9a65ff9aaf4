#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceHyperscan
import SluiceOps
import SluiceThreads
import Synchronization

/// Which matcher the CPU backend's scan opcode uses (`--cpu-engine`).
public enum ScanEngineChoice: String, CaseIterable, Sendable {
    /// Hyperscan when libhs.so.5 loads and compiles the set, else the built-in matcher.
    case auto
    /// Hyperscan; the backend refuses to start when libhs.so.5 cannot be loaded
    /// (a set it cannot compile still falls back to the built-in matcher).
    case hyperscan
    /// Sluice's own matcher (`ScanOp`), the one the GPU kernel also runs.
    case builtin
}

/// How `--cpu-engine auto` picks the matcher where Hyperscan loads: by the
/// size of the literal set. Hyperscan scans small and mid-sized sets much
/// faster; its compile, one thread whatever the core count, grows faster
/// than the set (about 1.7 s at 50,000 literals, 4 s at 100,000), and from
/// 50,000 literals the built-in matcher finished first on 256 MiB of word
/// text, as on 2 GiB at 100,000 on 16 cores (measured, see
/// benchmarks/RESULTS.md, "CPU engine crossover").
public enum AutoScanEngine {
    /// From this many literals on, `auto` runs the built-in matcher.
    public static let builtinFromLiterals = 50_000

    /// The engine `auto` runs for a set of `literalCount` literals (`.builtin`
    /// or `.hyperscan`) and why, as `-v` prints it.
    public static func choose(literalCount: Int) -> (engine: ScanEngineChoice, reason: String) {
        if literalCount >= builtinFromLiterals {
            return (.builtin, "auto: \(literalCount) literals, at least \(builtinFromLiterals), where the built-in matcher is faster")
        }
        return (.hyperscan, "auto: \(literalCount) literals, fewer than \(builtinFromLiterals), where Hyperscan is faster")
    }
}

/// The matcher a CPU backend's scan opcode runs with the table installed last.
public enum ActiveScanEngine: Equatable, Sendable {
    /// The built-in matcher over the installed `ScanTable`.
    case builtin
    /// Hyperscan or Vectorscan, with `hs_version()`.
    case hyperscan(version: String)
}

/// The reference megakernel: worker threads that poll the ring exactly as
/// the GPU kernel does (claim by compare-and-swap, run, mark DONE/FAULTED,
/// bump the epoch, leave on the shutdown flag). It is the default where no
/// GPU is found and the oracle the GPU self-test compares against.
public final class CPUBackend: MegakernelBackend {
    /// "cpu".
    public let name = "cpu"
    /// `.cpu`: watchdog messages name the CPU backend.
    public let slotRunner = SlotRunner.cpu
    /// The ring, in memory this backend mapped and its workers poll.
    public let ring: RingView
    /// The opcodes `SlotExecutor` runs: count, scan, crc32c and nop, and the installed user operations'.
    public let supportedOpcodes: Set<Opcode>
    /// The user operations the workers run (their Swift references).
    private let operations: OperationSet
    /// Exactly the configured bytes (the mapping itself is rounded up to pages).
    public let dataRegion: UnsafeMutableRawBufferPointer
    /// "cpu: N worker threads", with the reason for the backend when one was given.
    public var summary: String { "cpu: \(workerCount) worker threads" + (reason.isEmpty ? "" : " (\(reason))") }

    /// Worker threads polling the ring: the configured number, or one per core online.
    public let workerCount: Int
    private let reason: String
    private let ringMemory: HostMemory
    private let dataMemory: HostMemory
    private var threads: [PosixThread] = []
    private let scanTables: ScanTableRegistry
    private let tenants = TenantTableHolder()
    private var stopped = false
    /// Whether the test-only opcodes run (`BackendConfiguration.faultInjection`).
    package let faultInjection: Bool
    /// Set when a worker ran `testIllegalAddress`: the twin of a lost CUDA context.
    private let loss = LossFlag()

    /// The `--cpu-engine` choice this backend was made with.
    public let scanEngineChoice: ScanEngineChoice
    /// What runs the scan opcode, as of the last table installed.
    public private(set) var scanEngine: ActiveScanEngine = .builtin
    /// Why Hyperscan, wanted and loadable, is not used for the last table
    /// installed (it could not compile the set); nil otherwise.
    public private(set) var scanEngineFallback: String?

    /// Allocates the ring and data regions; `reason` is shown in `summary`
    /// (for example why the CUDA backend was not chosen). With `scanEngine`
    /// `.hyperscan`, throws unless libhs.so.5 loads.
    public init(
        configuration: BackendConfiguration, reason: String = "", scanEngine: ScanEngineChoice = .auto
    ) throws(PipelineError) {
        if scanEngine == .hyperscan, let why = HyperscanLibrary.unavailableReason {
            throw .backendUnavailable(
                backend: "hyperscan", reason: "the Hyperscan scan engine was asked for, but \(why)")
        }
        scanEngineChoice = scanEngine
        ringMemory = try HostMemory(byteCount: configuration.geometry.byteCount, purpose: "ring")
        dataMemory = try HostMemory(byteCount: max(configuration.dataBytes, 1), purpose: "chunk buffers")
        dataRegion = UnsafeMutableRawBufferPointer(rebasing: dataMemory.bytes[0..<configuration.dataBytes])
        ring = try RingView(bytes: ringMemory.bytes, geometry: configuration.geometry)
        ring.initialize()
        scanTables = try ScanTableRegistry()
        ring.setScanDirectory(address: scanTables.directoryAddress, entries: UInt64(scanTables.entries))
        workerCount = configuration.workers > 0 ? configuration.workers : ProcessorCount.online
        faultInjection = configuration.faultInjection
        operations = configuration.operations
        supportedOpcodes = SlotExecutor.supported.union(configuration.operations.opcodes)
        self.reason = reason
    }

    /// Starts the worker threads; they poll until `shutdown()`. Calling it again does nothing.
    public func start() throws(PipelineError) {
        guard threads.isEmpty, !stopped else { return }
        let ring = self.ring
        let executor = SlotExecutor(
            data: UnsafeRawBufferPointer(dataRegion), results: ring.results, ring: ring, scanTables: scanTables, tenants: tenants,
            operations: operations)
        let workers = workerCount
        let loss = faultInjection ? self.loss : nil
        for w in 0..<workers {
            do throws(ThreadStartFailure) {
                threads.append(try PosixThread(name: "cpu worker \(w)") {
                    CPUBackend.workerLoop(ring: ring, executor: executor, worker: w, workers: workers, loss: loss)
                })
            } catch {
                ring.requestShutdown()
                threads.forEach { $0.join() }
                throw .backendUnavailable(backend: "cpu", reason: error.message)
            }
        }
    }

    /// Polls every slot, starting at a per-worker offset so that workers
    /// rarely contend for the same slot; backs off to sleeping when idle.
    /// `loss` is non-nil only with fault injection: the test-only opcodes run,
    /// and once one has "lost the context" every worker stops, as every block
    /// of a faulted CUDA kernel does.
    static func workerLoop(ring: RingView, executor: SlotExecutor, worker: Int, workers: Int, loss: LossFlag?) {
        ring.workerEntered()
        defer { ring.workerLeft() }
        let slots = ring.geometry.slotCount
        let start = slots * worker / max(workers, 1)
        var idleRounds = 0
        while !ring.isShutdownRequested, loss?.slot == nil {
            var found = false
            for i in 0..<slots {
                let slot = (start + i) % slots
                if let loss, loss.slot != nil { return }
                switch ring.tryClaim(slot: slot) {
                case .unavailable:
                    continue
                case .cancelled:
                    found = true
                case .claimed(let payload) where loss != nil && payload.opcode.isTestOnly:
                    found = true
                    if let code = executor.checkRegions(payload) {
                        ring.fault(slot: slot, code: code, opcode: payload.opcode)
                    } else if payload.opcode == .testIllegalAddress {
                        // The slot stays CLAIMED and nothing else finishes: the
                        // host sees the backend dead, not a faulted slot.
                        loss?.lose(slot: slot)
                        return
                    } else {
                        // testHang: never finishes; the slot stays CLAIMED until shutdown.
                        while !ring.isShutdownRequested { sleepNanoseconds(200_000) }
                    }
                case .claimed(let payload):
                    found = true
                    switch executor.execute(payload, worker: worker) {
                    case .done(let words):
                        ring.complete(slot: slot, resultWords: words, bytes: payload.opcode == .nop ? 0 : UInt64(payload.length))
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

    /// Entries in the scan-table directory.
    public var scanDirectoryEntries: Int { scanTables.entries }

    /// Installs the table as entry `index` for `owner`'s slots and, unless
    /// `--cpu-engine builtin` or `literals` is nil, compiles the literals
    /// with Hyperscan for the workers (one scratch region each). A set
    /// Hyperscan cannot compile falls back to the built-in matcher:
    /// `scanEngineFallback` and the returned line say why.
    public func installScanTable(
        _ words: [UInt32], literals: [[UInt8]]?, caseInsensitive: Bool, at index: Int, owner: UInt32
    ) throws(PipelineError) -> String {
        guard let literals else {
            try scanTables.install(words, at: index, owner: owner)
            (scanEngine, scanEngineFallback) = (.builtin, nil)
            return "built-in (the table's own matcher)"
        }
        try checkSameSet(words, literals: literals, caseInsensitive: caseInsensitive)
        let (matcher, active, fallback, line) = matcher(literals, caseInsensitive: caseInsensitive)
        try scanTables.install(words, hyperscan: matcher, at: index, owner: owner)
        scanEngine = active
        scanEngineFallback = fallback
        return line
    }

    /// Empties entry `index` of the scan-table directory.
    public func removeScanTable(at index: Int) throws(PipelineError) {
        try scanTables.remove(at: index)
    }

    /// Throws unless `literals` are the ones the table was compiled from.
    private func checkSameSet(_ words: [UInt32], literals: [[UInt8]], caseInsensitive: Bool) throws(PipelineError) {
        typealias H = ScanTable.Header
        guard words.count > H.flags.rawValue, Int(words[H.patternCount.rawValue]) == literals.count,
            (words[H.flags.rawValue] & ScanTable.caseInsensitiveFlag != 0) == caseInsensitive
        else {
            throw .invalidConfiguration(
                "the scan table and the \(literals.count) literals given with it are not the same pattern set")
        }
    }

    /// `compileMatcher`'s outcome for the last few literal sets: a session
    /// asked for the same set again installs it in another directory entry
    /// without compiling it again (a matcher is only read while it runs;
    /// each worker has its own scratch region).
    private let recentMatchers = Mutex<[(key: PatternSet, made: CompiledMatcher)]>([])
    private typealias CompiledMatcher = (HyperscanMatcher?, ActiveScanEngine, String?, String)

    /// `compileMatcher`, or its outcome for the same set when one is recent.
    private func matcher(_ literals: [[UInt8]], caseInsensitive: Bool) -> CompiledMatcher {
        guard let key = try? PatternSet(literals: literals, caseInsensitive: caseInsensitive) else {
            return compileMatcher(literals, caseInsensitive: caseInsensitive)
        }
        if let hit = recentMatchers.withLock({ r in r.first { $0.key == key }?.made }) { return hit }
        let made = compileMatcher(literals, caseInsensitive: caseInsensitive)
        recentMatchers.withLock { r in
            r.append((key, made))
            if r.count > 8 { r.removeFirst() }
        }
        return made
    }

    /// The Hyperscan matcher for `literals` when the engine choice and the
    /// library allow one: the matcher, what runs, why Hyperscan fell back, and one line.
    private func compileMatcher(
        _ literals: [[UInt8]], caseInsensitive: Bool
    ) -> (HyperscanMatcher?, ActiveScanEngine, String?, String) {
        let auto = scanEngineChoice == .auto ? AutoScanEngine.choose(literalCount: literals.count) : nil
        switch (scanEngineChoice, HyperscanLibrary.shared) {
        case (.builtin, _):
            return (nil, .builtin, nil, "built-in (as configured)")
        case (_, .failure):
            return (nil, .builtin, nil, "built-in (\(HyperscanLibrary.unavailableReason ?? "Hyperscan unavailable"))")
        case (.auto, .success) where auto?.engine == .builtin:
            return (nil, .builtin, nil, "built-in (\(auto?.reason ?? "auto"))")
        case (_, .success(let library)):
            do throws(PipelineError) {
                let set = try PatternSet(literals: literals, caseInsensitive: caseInsensitive)
                let made = try HyperscanMatcher(set, workers: workerCount, library: library, caching: .configured)
                let line = "\(library.description): \(made.database.distinctLiterals) literals "
                    + Self.originText(made.database.origin) + ", one scratch region per worker"
                    + (auto.map { " (\($0.reason))" } ?? "")
                return (made, .hyperscan(version: library.version), nil, line)
            } catch {
                var why = error.message
                if case .backendUnavailable(_, let reason) = error { why = reason }
                let fallback = "Hyperscan could not compile the literals (\(why)); the built-in matcher runs the scan"
                return (nil, .builtin, fallback, "built-in: " + fallback)
            }
        }
    }

    /// "compiled in 0.032 s, cached at PATH" or "loaded from PATH", for `--verbose`.
    static func originText(_ origin: HyperscanOrigin) -> String {
        switch origin {
        case .compiled(let seconds, let path):
            return "compiled in \((seconds * 1000).rounded() / 1000) s" + (path.map { ", cached at \($0)" } ?? "")
        case .cache(let path):
            return "loaded from \(path)"
        }
    }

    /// Copies the tenant table into memory the workers read and points the control block at it; returns the host's view of the owner words.
    public func enableTenants(_ table: [UInt32]) throws(PipelineError) -> UnsafeMutableBufferPointer<UInt32> {
        let (address, view) = try tenants.install(table)
        ring.setTenantTable(address: address, words: UInt64(table.count))
        return view
    }

    /// Throws `.contextLost` once a worker ran `testIllegalAddress` (only
    /// with fault injection): like a CUDA context after an illegal address,
    /// this backend then runs nothing more and must be replaced.
    public func waitForProgress(after epoch: UInt64, timeout: Duration) throws(PipelineError) -> UInt64 {
        try checkAlive()
        let seen = try EpochWaiter.wait(ring: ring, after: epoch, timeout: timeout)
        try checkAlive()
        return seen
    }

    private func checkAlive() throws(PipelineError) {
        guard let slot = loss.slot else { return }
        throw .contextLost(
            backend: "cpu",
            reason: "slot \(slot) ran the test-only illegal-address opcode, the CPU backend's twin of a lost CUDA context; its workers stopped")
    }

    /// Sets the shutdown flag and joins every worker thread. Calling it twice is harmless.
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

/// Which slot "lost the context" of a CPU backend with fault injection, once
/// one has; read by every worker and by `waitForProgress`.
final class LossFlag: Sendable {
    private let lostSlot = Atomic<Int>(-1)

    var slot: Int? {
        let s = lostSlot.load(ordering: .acquiring)
        return s < 0 ? nil : s
    }

    func lose(slot: Int) {
        _ = lostSlot.compareExchange(expected: -1, desired: slot, ordering: .releasing)
    }
}
