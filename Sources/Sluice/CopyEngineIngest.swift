import SluiceCore
import SluiceCUDA
import SluiceIngest

/// How chunks read into host memory reach the CUDA workers (`--ingest-copy`).
public enum IngestCopyChoice: String, CaseIterable, Sendable, CustomStringConvertible {
    /// The path this machine's cost model measured faster (`sluice bench
    /// calibrate`), mapped where it was not measured or files are packed.
    case auto
    /// A copy engine moves each chunk into GPU memory (the device ingest
    /// region) and the workers read it there.
    case engine
    /// The workers read the chunks in mapped pinned host memory, over PCIe
    /// (zero-copy).
    case mapped

    /// The choice as `--ingest-copy` spells it.
    public var description: String { rawValue }
}

/// Whether host reads are copied into GPU memory by a copy engine, and why:
/// the logic behind `--ingest-copy`, on facts that tests can inject.
public enum CopyEnginePlan {
    /// The decision.
    public struct Decision: Equatable, Sendable {
        /// Copy each chunk into the device ingest region before publishing it.
        public var useEngine: Bool
        /// `ingest-copy engine` asked for it (so no CUDA backend is an error, not a fallback).
        public var forced: Bool
        /// Why; nil where the question does not arise (the CPU backend).
        public var note: String?

        /// A decision with each field as given.
        public init(useEngine: Bool, forced: Bool, note: String?) {
            self.useEngine = useEngine
            self.forced = forced
            self.note = note
        }
    }

    /// The facts the decision rests on.
    public struct Facts: Sendable, Equatable {
        /// The backend the run starts (`.auto`: CUDA where it starts).
        public var backend: BackendChoice
        /// cuFile reads into GPU memory (`GDSPlan`), so no host read is copied.
        public var gds: Bool
        /// cuFile was asked for (`ingest gds`), not chosen by auto.
        public var gdsForced = false
        /// Small files may be packed into the host buffers (a scan with packing on).
        public var packing: Bool
        /// The input's mean file size in bytes, where known.
        public var meanFileBytes: Int?
        /// The chunk size.
        public var chunkBytes: Int
        /// What the cost model measured faster: the copy engine (true) or
        /// mapped memory (false); nil where not measured.
        public var engineMeasuredFaster: Bool?
        /// Whose measurement that is (the cost model's source).
        public var measuredBy: String

        /// Facts as given.
        public init(
            backend: BackendChoice, gds: Bool, packing: Bool, meanFileBytes: Int?, chunkBytes: Int, engineMeasuredFaster: Bool?,
            measuredBy: String = "the cost model"
        ) {
            self.backend = backend
            self.gds = gds
            self.packing = packing
            self.meanFileBytes = meanFileBytes
            self.chunkBytes = chunkBytes
            self.engineMeasuredFaster = engineMeasuredFaster
            self.measuredBy = measuredBy
        }

        /// The facts of a configuration: its backend and packing, the mean
        /// size of the files of `input`, and what `model` measured.
        public init(_ c: EngineConfiguration, backend: BackendChoice, gds: GDSPlan.Decision?, input: InputHint?, model: CostModel) {
            self.init(
                backend: backend, gds: gds?.useGDS == true, packing: c.deferIngestSetup,
                meanFileBytes: input.map { $0.bytes / max(1, $0.files) }, chunkBytes: c.chunkBytes,
                engineMeasuredFaster: model.cudaCopyEngineFaster, measuredBy: model.source)
            gdsForced = gds?.useGDS == true && gds?.forced == true
        }
    }

    /// `.engine` and `.mapped` are taken as asked wherever CUDA runs; the
    /// engine with the CPU backend or with cuFile is an error (both read
    /// elsewhere than a host buffer the copy engine could move). `.auto`
    /// takes the engine only where it was measured faster here and the
    /// input's files are not packed into the host buffers.
    public static func decide(
        _ choice: IngestCopyChoice, facts: Facts,
        settingName: (ConfiguredSetting) -> String = ConfiguredSetting.inTheConfiguration
    ) throws(PipelineError) -> Decision {
        if facts.backend == .cpu {
            guard choice != .engine else {
                throw .invalidConfiguration(
                    "ingest-copy engine copies chunks into GPU memory, which the CPU backend cannot read; run the CUDA backend, or leave the copy path to auto")
            }
            return Decision(useEngine: false, forced: false, note: nil)
        }
        if facts.gds, choice != .engine {
            return Decision(useEngine: false, forced: false, note: nil)
        }
        if facts.gdsForced {
            throw .invalidConfiguration(
                "ingest-copy engine copies host reads into GPU memory, but cuFile (ingest gds) reads into GPU memory itself; read with io_uring or pread to use the copy engine")
        }
        switch choice {
        case .engine:
            return Decision(
                useEngine: true, forced: true, note: "the copy engine moves each chunk into GPU memory; chosen with \(settingName(.ingestCopy(.engine)))")
        case .mapped:
            return Decision(
                useEngine: false, forced: false, note: "the workers read mapped host memory over PCIe; chosen with \(settingName(.ingestCopy(.mapped)))")
        case .auto:
            return decideAuto(facts)
        }
    }

    /// The decision once the backend exists: the copy engine needs the CUDA
    /// backend. Asked for, its absence is an error; under auto, host reads
    /// go to the CPU backend's buffers and nothing is copied.
    public static func resolve(
        _ decision: Decision, backendIsCUDA: Bool, backendReason: String
    ) throws(PipelineError) -> Decision {
        guard !backendIsCUDA else { return decision }
        guard decision.useEngine, decision.forced else { return Decision(useEngine: false, forced: false, note: nil) }
        throw .backendUnavailable(
            backend: "cuda", reason: "ingest-copy engine copies chunks into GPU memory and needs the CUDA backend, which is not running (\(backendReason))")
    }

    /// cuFile and the copy engine both fill the device ingest region, so
    /// only one runs: a copy engine asked for turns off a cuFile that auto
    /// chose; a cuFile that runs turns off a copy engine that auto chose.
    public static func reconcile(_ copy: Decision, _ gds: GDSPlan.Decision) -> (copy: Decision, gds: GDSPlan.Decision) {
        guard copy.useEngine, gds.useGDS else { return (copy, gds) }
        if copy.forced, !gds.forced {
            return (copy, GDSPlan.Decision(useGDS: false, forced: false, note: "GPUDirect Storage not used: the copy engine was asked for"))
        }
        return (Decision(useEngine: false, forced: false, note: nil), gds)
    }

    private static func decideAuto(_ facts: Facts) -> Decision {
        if facts.packing, let mean = facts.meanFileBytes, mean < facts.chunkBytes {
            return Decision(
                useEngine: false, forced: false,
                note: "mapped host memory: small files are packed into the host buffers the workers read")
        }
        switch facts.engineMeasuredFaster {
        case true?:
            return Decision(
                useEngine: true, forced: false,
                note: "the copy engine moves each chunk into GPU memory: measured faster than mapped memory (\(facts.measuredBy))")
        case false?:
            return Decision(
                useEngine: false, forced: false,
                note: "mapped host memory: measured at least as fast as the copy engine (\(facts.measuredBy))")
        case nil:
            return Decision(
                useEngine: false, forced: false, note: "mapped host memory: the copy engine was not measured here (sluice bench calibrate measures both)")
        }
    }
}

/// The copy engine as a `ChunkCopier`: each batch of chunks goes to the same
/// offsets of the CUDA backend's device ingest region on its ingest stream,
/// behind one event.
final class CUDAChunkCopier: ChunkCopier {
    let kind = "copy engine"
    let landing = ChunkRegion.device
    private let region: CUDADeviceIngestRegion

    init(region: CUDADeviceIngestRegion) {
        self.region = region
    }

    func copy(_ chunks: [ChunkCopy]) throws(PipelineError) -> any ChunkCopyFence {
        Fence(try region.copyIn(chunks.map { ($0.offset, $0.bytes) }))
    }

    private final class Fence: ChunkCopyFence {
        let fence: CUDACopyFence
        init(_ fence: CUDACopyFence) { self.fence = fence }
        func isComplete() throws(PipelineError) -> Bool { try fence.isComplete() }
        func wait() throws(PipelineError) { try fence.wait() }
    }
}
