import SluiceCUDA
import SluiceHyperscan
import SluiceIngest
import SluiceOps
import SluiceThreads

/// What a machine offers a run: the facts `ExecutionPlan.make` decides
/// from. A value, so that tests can describe machines they do not have;
/// `probe` reads this one.
public struct MachineFacts: Sendable {
    /// One CUDA device the megakernel can run on.
    public struct GPU: Sendable, Equatable {
        /// The CUDA ordinal.
        public var ordinal: Int
        /// The device's name, as the driver gives it ("NVIDIA H100 80GB HBM3").
        public var name: String
        /// The device's memory.
        public var memoryBytes: Int

        /// A device as the probe would describe it.
        public init(ordinal: Int, name: String, memoryBytes: Int) {
            self.ordinal = ordinal
            self.name = name
            self.memoryBytes = memoryBytes
        }
    }

    /// Whether the CUDA backend can run here.
    public enum CUDA: Sendable, Equatable {
        /// Not looked at: the engine probes as it starts (see `probe(_:)`).
        case notProbed
        /// No usable device: no driver, no device, an unsuitable device, or
        /// no NVRTC where the kernel is not cached; the probe's message says which.
        case unusable(String)
        /// These devices are usable (the driver loads and finds them suitable).
        case usable([GPU])
    }

    /// What `probe` looks at.
    public enum Scope: Sendable {
        /// Everything, the GPU and cuFile included (`sluice doctor`, a `Session`).
        case everything
        /// What a command can read before its CUDA warm-up starts: the CPU,
        /// memory and io_uring. The GPU and cuFile are left to the engine's
        /// start, because probing the GPU loads and initializes the driver
        /// (`cuInit`, about 100 ms on the H100 machine), which the warm-up
        /// does in the background instead.
        case beforeWarmUp
    }

    /// The CUDA backend's devices, or why there are none.
    public var cuda: CUDA
    /// cuFile (GPUDirect Storage) and whether it would read directly; nil
    /// when not probed.
    public var cuFile: CuFileCapability?
    /// The CPU's CRC-32C instructions ("sse4.2", "armv8-crc"); nil where it has none.
    public var crc32cInstructions: String?
    /// `kernel.io_uring_disabled`; nil where the kernel has no such switch.
    public var ioUringDisabled: Int?
    /// Host memory and the locked-memory limit.
    public var memory: HostMemoryFacts
    /// Online CPU cores.
    public var cores: Int
    /// What whole commands cost on each backend here (`auto` runs the
    /// cheaper): this machine's calibration, else the defaults.
    public var costModel: CostModel = .defaults
    /// Whether Hyperscan (libhs.so.5) loads here, which decides the CPU
    /// backend's scan costs (`CostModel.CPUScanCurve`); probed with
    /// `Scope.everything` or `probingHyperscan()`, false where not. The CPU
    /// backend loads the same handle for its scans.
    public var hyperscanLoads = false

    /// These facts with `hyperscanLoads` probed: what a scan plans with
    /// (loading libhs costs a few milliseconds that `count` and `hash` skip).
    public func probingHyperscan() -> MachineFacts {
        var facts = self
        facts.hyperscanLoads = HyperscanLibrary.isAvailable
        return facts
    }

    /// A machine described by hand (tests, what-if plans); what is not
    /// given is unknown or absent.
    public init(
        cuda: CUDA = .notProbed, cuFile: CuFileCapability? = nil, crc32cInstructions: String? = nil,
        ioUringDisabled: Int? = nil,
        memory: HostMemoryFacts = HostMemoryFacts(
            availableBytes: nil, totalBytes: nil, lockLimitBytes: nil, lockLimitExempt: false),
        cores: Int = 1
    ) {
        self.cuda = cuda
        self.cuFile = cuFile
        self.crc32cInstructions = crc32cInstructions
        self.ioUringDisabled = ioUringDisabled
        self.memory = memory
        self.cores = max(1, cores)
    }

    /// This machine and process now: the only part of planning that looks
    /// at the machine. `dataPath` is where the data lives (for cuFile's
    /// filesystem check).
    public static func probe(_ scope: Scope = .everything, dataPath: String? = nil) -> MachineFacts {
        var facts = MachineFacts(
            crc32cInstructions: CRC32C.hardwareAvailable ? CRC32C.implementation : nil,
            ioUringDisabled: IngestSelection.ioUringDisabledSetting(),
            memory: .current(), cores: ProcessorCount.online)
        facts.costModel = CostModel.load().model
        guard case .everything = scope else { return facts }
        facts.hyperscanLoads = HyperscanLibrary.isAvailable
        facts.cuda = probeCUDA()
        facts.cuFile = CuFileProbe.capability(path: dataPath)
        return facts
    }

    /// The usable devices, or the first device's problem (the message
    /// `--backend auto` gives when it runs on the CPU).
    private static func probeCUDA() -> CUDA {
        if case .failure(let error) = CUDAProbe.probe(device: 0) { return .unusable(error.message) }
        guard case .success(let entries) = CUDAInventory.devices() else { return .unusable("the CUDA devices could not be listed") }
        return .usable(entries.compactMap(\.info).map {
            GPU(ordinal: $0.ordinal, name: $0.name, memoryBytes: $0.memoryBytes)
        })
    }
}
