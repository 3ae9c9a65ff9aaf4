import Sluice
import SluiceCore

// What `sluice soak` is asked to do and what it reports.

/// Knobs of `sluice soak`.
public struct SoakOptions: Sendable {
    /// The backend to soak; `auto` as the CLI would choose.
    public var backend: BackendChoice
    /// How long to keep scanning (the run stops at the first scan that ends after it).
    public var duration: Duration
    /// Every random choice derives from it; printed, so a failure can be replayed.
    public var seed: UInt64
    /// Stop after this many scans even before `duration` (tests use it).
    public var maxScans: Int?
    /// Bytes per chunk (small, so files cross many chunk edges).
    public var chunkBytes: Int
    /// Where the random files are written (a directory is made under it).
    public var scratch: String
    /// Context kills in child processes of this executable (see `ChildKills`);
    /// nil: none. On CUDA they are the only context kills of a soak.
    public var childKills: ChildKills?
    /// Use `childKills` only when the backend turns out to be CUDA.
    public var childKillsOnlyOnCUDA = false
    /// This process is such a child: one scan whose first chunk kills the
    /// backend (on CUDA too), checked like any other; resources are not
    /// compared (a lost context's memory is the driver's to free at exit,
    /// which the parent's device-memory reading then sees).
    public var killOnce = false

    /// Options with the defaults: `auto` backend, 60 seconds, 64 KiB chunks, scratch files under /var/tmp, no child kills.
    public init(
        backend: BackendChoice = .auto, duration: Duration = .seconds(60), seed: UInt64, maxScans: Int? = nil,
        chunkBytes: Int = 64 << 10, scratch: String = "/var/tmp"
    ) {
        self.backend = backend
        self.duration = duration
        self.seed = seed
        self.maxScans = maxScans
        self.chunkBytes = chunkBytes
        self.scratch = scratch
    }
}

/// How a soak runs context kills in child processes: every `interval`
/// (0.5x to 1.5x, at random) it runs this executable with `arguments(seed)`,
/// which must run one killed scan (`SoakOptions.killOnce`) with that seed
/// on the soak's backend and exit 0 only when it passed. The command line
/// is the caller's (the tool knows its own syntax).
public struct ChildKills: Sendable {
    /// Mean time between two child runs (each interval is drawn from 0.5x to 1.5x of it).
    public var interval: Duration
    /// The child's command line for a seed and a backend name ("cpu", "cuda").
    public var arguments: @Sendable (_ seed: UInt64, _ backend: String) -> [String]
    /// A child that has not ended by then is killed and counts as a failure.
    public var timeout: Duration
    /// The program to run; nil: this process's own executable.
    public var executable: String?

    /// Child kills every `interval`, each given `timeout` to end.
    public init(
        interval: Duration, timeout: Duration = .seconds(120), executable: String? = nil,
        arguments: @escaping @Sendable (_ seed: UInt64, _ backend: String) -> [String]
    ) {
        self.interval = interval
        self.timeout = timeout
        self.executable = executable
        self.arguments = arguments
    }
}

/// What a soak did and found.
public struct SoakReport: Sendable {
    /// The backend that ran ("cpu" or "cuda").
    public var backend = ""
    /// The seed every random choice came from.
    public var seed: UInt64 = 0
    /// How long the soak ran, in seconds.
    public var seconds = 0.0
    /// Multi-tenant runs over one engine.
    public var scans = 0
    /// File bytes the runs covered (a file in two jobs counts twice).
    public var bytes: UInt64 = 0
    /// Slots that ended DONE or FAULTED.
    public var slots = 0
    /// Hostile slots published (unknown opcode, length past the data region, another tenant's memory).
    public var hostileInjected = 0
    /// Test-only opcodes that killed the backend (in this process or a child).
    public var contextKillsInjected = 0
    /// Of those, the ones in child processes (`ChildKills`) that passed.
    public var childKills = 0
    /// Whether the resource deltas count (not in a `killOnce` child).
    public var resourcesChecked = true
    /// Hostile slots that faulted with exactly the expected code.
    public var faultsObserved = 0
    /// Backends recreated by the scanner after a lost context.
    public var recoveries = 0
    /// Results or outcomes that differed from the reference (must be 0).
    public var mismatches = 0
    /// Engines made (one is replaced every `enginesEvery` scans).
    public var engines = 0
    /// Pinned host memory at the end less at the start, in bytes (must be 0).
    public var pinnedDelta = 0
    /// Bytes of CPU backend memory mapped at the end less at the start (must be 0).
    public var cpuRegionDelta = 0
    /// Open file descriptors at the end less at the start (must be 0).
    public var fdDelta = 0
    /// Device memory in use, end less start (nil on the CPU backend).
    public var gpuDelta: Int64?
    /// The first problems found, for the log.
    public var problems: [String] = []

    /// Device memory may differ by this much: the driver keeps some memory
    /// of a process's first context (module cache, internal pools) that is
    /// sized lazily and not ours to free; a leaked ring, data region or scan
    /// table arena is megabytes to gigabytes, well above it.
    public static let gpuTolerance: Int64 = 16 << 20

    /// Hostile slots and context kills injected, together.
    public var faultsInjected: Int { hostileInjected + contextKillsInjected }

    /// Whether the soak passed: no mismatch, every injected fault seen and
    /// survived, every recovery accounted for, and no resource left behind.
    public var passed: Bool {
        mismatches == 0 && faultsObserved == hostileInjected && recoveries == contextKillsInjected && scans > 0
            && (!resourcesChecked || pinnedDelta == 0 && cpuRegionDelta == 0 && fdDelta == 0
                && abs(gpuDelta ?? 0) <= SoakReport.gpuTolerance)
    }

    /// The final line: verdict and every figure.
    public var summary: String { "soak \(passed ? "PASSED" : "FAILED"): " + figures }

    /// Every figure, on one line.
    public var figures: String {
        "backend \(backend), seed \(seed), \(Double(Int(seconds * 10)) / 10) s: "
            + "scans \(scans), bytes \(bytes), slots \(slots), engines \(engines), "
            + "faults injected \(faultsInjected) (hostile \(hostileInjected), context kills \(contextKillsInjected), "
            + "\(childKills) of them in child processes), "
            + "faults observed \(faultsObserved), recoveries \(recoveries), mismatches \(mismatches); "
            + (resourcesChecked
                ? "deltas: pinned \(pinnedDelta) B, cpu regions \(cpuRegionDelta) B, fds \(fdDelta), "
                    + "gpu memory " + (gpuDelta.map { "\($0) B (tolerance \(SoakReport.gpuTolerance) B)" } ?? "n/a")
                : "resources not compared (a killed child)")
    }
}

extension SoakReport {
    /// Records `problem` among the first 20 for the log.
    mutating func note(_ problem: String) {
        if problems.count < 20 { problems.append(problem) }
    }
}
