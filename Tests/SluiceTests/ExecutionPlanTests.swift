import SluiceCore
import SluiceCUDA
import SluiceIngest
import Testing

@testable import Sluice

/// `ExecutionPlan.make` over a grid of described machines and inputs: every
/// rule of the policy, without the hardware it is about.
@Suite struct ExecutionPlanTests {
    // MARK: Machines

    static let memory = HostMemoryFacts(
        availableBytes: 64 << 30, totalBytes: 128 << 30, lockLimitBytes: 8 << 20, lockLimitExempt: false)
    static let h100 = MachineFacts.GPU(ordinal: 0, name: "NVIDIA H100 80GB HBM3", memoryBytes: 80 << 30)
    static let compat = CuFileCapability(libraryLoads: true, loadError: nil, nvidiaFSLoaded: false, nvmeDevices: 0)
    static let direct = CuFileCapability(libraryLoads: true, loadError: nil, nvidiaFSLoaded: true, nvmeDevices: 1)

    /// No driver, no CRC-32C instructions.
    static let noGPU = MachineFacts(
        cuda: .unusable("cannot load libcuda.so.1"), crc32cInstructions: nil, memory: memory, cores: 16)
    /// A cost model under which CUDA always finishes first, so that these
    /// tests see the other rules (`CostModelTests` checks the model's own).
    static let cudaFirst = CostModel(
        cpu: .init(count: .init(startSeconds: 100, bytesPerSecond: 1e9),
                   scan: [.init(literals: 1, cost: .init(startSeconds: 100, bytesPerSecond: 1e9))]),
        cuda: CostModel.defaults.cuda, cores: 16, source: "a test model")
    /// One H100, cuFile only in compatibility mode, SSE 4.2.
    static let gpu = {
        var m = MachineFacts(cuda: .usable([h100]), cuFile: compat, crc32cInstructions: "sse4.2", memory: memory, cores: 16)
        m.costModel = cudaFirst
        return m
    }()
    /// The same with direct GPUDirect Storage.
    static let gpuDirect = {
        var m = MachineFacts(cuda: .usable([h100]), cuFile: direct, crc32cInstructions: "sse4.2", memory: memory, cores: 16)
        m.costModel = cudaFirst
        return m
    }()
    /// What a command knows before its warm-up: no GPU or cuFile facts.
    static let unprobed = MachineFacts(crc32cInstructions: "sse4.2", memory: memory, cores: 16)

    // MARK: Inputs

    static let bigFile = ExecutionPlan.Input(work: .scan, files: 1, bytes: 16 << 30)
    /// 40,000 files, 4,096 of them sized, 16 KiB each on average.
    static let smallTree = ExecutionPlan.Input(work: .scan, files: 40_000, sizedFiles: 4096, bytes: 4096 * 16384)
    static let tiny = ExecutionPlan.Input(work: .scan, files: 1, bytes: 3)

    func plan(
        _ input: ExecutionPlan.Input, on machine: MachineFacts, _ configure: (inout EngineConfiguration) -> Void = { _ in },
        devices: DeviceSelection = .list([0])
    ) throws -> ExecutionPlan {
        var c = EngineConfiguration()
        configure(&c)
        return try ExecutionPlan.make(configuration: c, devices: devices, input: input, machine: machine)
    }

    // MARK: Backend

    @Test func noGPURunsOnTheCPUAndSaysWhy() throws {
        let p = try plan(Self.bigFile, on: Self.noGPU)
        #expect(p.backend == .init(.cpu, "auto: no usable GPU: cannot load libcuda.so.1"))
        #expect(p.warmUp.value.isEmpty && p.prefetch.value == 0)
        // The CPU backend's default ring: two per core and two more.
        #expect(p.slots.value == 34)
    }

    @Test func aGPURunsLargeInputsAndATreeOfSmallFilesRunsOnTheCPU() throws {
        let big = try plan(Self.bigFile, on: Self.gpu)
        #expect(big.backend == .init(.auto, "auto: NVIDIA H100 80GB HBM3 found"))
        #expect(big.warmUp.value == [0])
        let tree = try plan(Self.smallTree, on: Self.gpu)
        #expect(tree.backend.value == .cpu)
        #expect(tree.backend.reason.hasPrefix("auto: 40000 files of 16384 bytes on average (sampled)"), "\(tree.backend.reason)")
        #expect(tree.warmUp.value.isEmpty && tree.prefetch.value == 0)
        // cuFile reads only into GPU memory: the rule never takes the GPU from --ingest gds.
        #expect(try plan(Self.smallTree, on: Self.gpu) { $0.ingest = .gds }.backend.value == .auto)
        // 999 small files are not a tree of small files.
        #expect(try plan(.init(work: .count, files: 999, bytes: 999 * 100), on: Self.gpu).backend.value == .auto)
        // Sizes unknown: no rule.
        #expect(try plan(.init(work: .scan, files: 5000, sizedFiles: 0), on: Self.gpu).backend.value == .auto)
        // Files not known in advance (a Session): a GPU where there is one.
        #expect(try plan(.unknown(.scan), on: Self.gpu).backend.value == .auto)
    }

    @Test func hashRunsOnTheCPUWhereItHasCRCInstructions() throws {
        let hash = ExecutionPlan.Input(work: .hash, files: 1, bytes: 16 << 30)
        let p = try plan(hash, on: Self.gpu)
        #expect(p.backend.value == .cpu)
        #expect(p.backend.reason.hasPrefix("auto: CRC-32C runs on the CPU's sse4.2 instructions"), "\(p.backend.reason)")
        #expect(try plan(.unknown(.hash), on: Self.gpu).backend.value == .cpu)
        // No CRC-32C instructions: the GPU checksums.
        var noCRC = Self.gpu
        noCRC.crc32cInstructions = nil
        #expect(try plan(hash, on: noCRC).backend.value == .auto)
        // --ingest gds keeps the GPU; a scan or count is not a checksum.
        #expect(try plan(hash, on: Self.gpu) { $0.ingest = .gds }.backend.value == .auto)
        #expect(try plan(.init(work: .count, files: 1, bytes: 16 << 30), on: Self.gpu).backend.value == .auto)
    }

    @Test func aNamedBackendIsHonoured() throws {
        let cuda = try plan(Self.smallTree, on: Self.gpu) { $0.backend = .cuda }
        #expect(cuda.backend == .init(.cuda, "chosen with backend cuda in the configuration (NVIDIA H100 80GB HBM3)"))
        #expect(cuda.warmUp.value == [0])
        let hash = try plan(.init(work: .hash, files: 1, bytes: 1 << 30), on: Self.gpu) { $0.backend = .cuda }
        #expect(hash.backend.value == .cuda)
        // Where no GPU is usable the start will fail; the plan says so already.
        let none = try plan(Self.bigFile, on: Self.noGPU) { $0.backend = .cuda }
        #expect(none.backend.value == .cuda && none.backend.reason.contains("cannot load libcuda.so.1"))
        // Not probed: the engine's start names the device.
        #expect(try plan(Self.bigFile, on: Self.unprobed) { $0.backend = .cuda }.backend
            == .init(.cuda, "chosen with backend cuda in the configuration"))
        let cpu = try plan(Self.bigFile, on: Self.gpu) { $0.backend = .cpu }
        #expect(cpu.backend == .init(.cpu, "cpu: chosen with backend cpu in the configuration"))
        #expect(cpu.warmUp.value.isEmpty && cpu.prefetch.value == 0)
        // A reason given with the configuration (a fallback's) is kept.
        let given = try plan(Self.bigFile, on: Self.gpu) { $0.backend = .cpu; $0.backendReason = "because" }
        #expect(given.backend.reason == "because")
        // A caller that took the setting from elsewhere names it its own way.
        let named = try plan(Self.bigFile, on: Self.gpu) { $0.backend = .cuda; $0.settingName = { "the \($0) switch" } }
        #expect(named.backend.reason == "chosen with the backend cuda switch (NVIDIA H100 80GB HBM3)")
        let unusable = try plan(Self.bigFile, on: Self.noGPU) { $0.backend = .cuda; $0.settingName = { "[\($0)]" } }
        #expect(unusable.backend.reason == "chosen with [backend cuda], but no GPU is usable here: cannot load libcuda.so.1")
    }

    /// The library names no command-line flag: a library user set a
    /// configuration and never typed one.
    @Test func noReasonNamesAFlag() throws {
        let machines = [Self.noGPU, Self.gpu, Self.gpuDirect, Self.unprobed]
        let inputs = [Self.bigFile, Self.smallTree, Self.tiny, .unknown(.hash), .init(work: .count, files: 2, bytes: 1 << 30)]
        var checked = 0
        for machine in machines {
            for input in inputs {
                for backend in BackendChoice.allCases {
                    for ingest in IngestChoice.allCases {
                        let made = Result { try plan(input, on: machine) { $0.backend = backend; $0.ingest = ingest } }
                        let texts: [String]
                        switch made {
                        case .success(let p): texts = p.lines.map(\.text)
                        case .failure(let error): texts = ["\(error)"]
                        }
                        for text in texts {
                            #expect(!text.contains("--"), "\(backend) \(ingest) \(input): \(text)")
                        }
                        checked += 1
                    }
                }
            }
        }
        #expect(checked == 4 * 5 * 3 * 4)
        // A forced GDS names its setting the caller's way.
        let forced = try plan(Self.bigFile, on: Self.gpuDirect) { $0.ingest = .gds }
        #expect(forced.ingest.reason.hasSuffix("; chosen with ingest gds in the configuration"))
        let flagged = try plan(Self.bigFile, on: Self.gpu) { $0.ingest = .gds; $0.settingName = { "<\($0)>" } }
        #expect(flagged.ingest.reason.hasSuffix("NOT direct (POSIX reads into a host bounce buffer, then a copy to the GPU): the nvidia-fs module is not loaded and the kernel has no PCI P2PDMA; forced with <ingest gds>"), "\(flagged.ingest.reason)")
    }

    @Test func withoutGPUFactsTheEngineDecidesAsItStarts() throws {
        let p = try plan(Self.bigFile, on: Self.unprobed)
        #expect(p.backend.value == .auto && p.backend.reason.contains("probed as the engine starts"))
        #expect(p.warmUp.value == [0])
        #expect(p.ingest.value.gds == nil && p.ingest.reason.contains("decided as the engine starts"))
        // The CPU rules need no GPU facts.
        #expect(try plan(Self.smallTree, on: Self.unprobed).backend.value == .cpu)
        // A device named is the one probed for.
        let other = MachineFacts(cuda: .usable([Self.h100]), memory: Self.memory, cores: 16)
        let p1 = try plan(Self.bigFile, on: other, devices: .list([1]))
        #expect(p1.backend == .init(.cpu, "auto: no usable GPU: CUDA device 1 is not usable here"))
    }

    // MARK: Ingest

    @Test func gdsOnlyWhenDirect() throws {
        let compat = try plan(Self.bigFile, on: Self.gpu)
        #expect(compat.ingest.value.gds?.useGDS == false)
        #expect(compat.ingest.reason.hasPrefix("io_uring, or the pread thread pool where it cannot run"))
        #expect(compat.ingest.reason.contains("compatibility mode") && compat.ingest.reason.contains("; ingest gds forces it"))
        let direct = try plan(Self.bigFile, on: Self.gpuDirect)
        #expect(direct.ingest.value.gds == GDSPlan.Decision(useGDS: true, forced: false, note: direct.ingest.value.gds?.note))
        #expect(direct.ingest.reason.hasPrefix("cuFile into GPU memory: auto: GPUDirect Storage is direct here"))
        #expect(direct.prefetch.value == 0)
        // Forced, compatibility mode runs, and says it is not direct.
        let forced = try plan(Self.bigFile, on: Self.gpu) { $0.ingest = .gds }
        #expect(forced.ingest.value.gds?.useGDS == true && forced.ingest.reason.contains("NOT direct"))
        // The CPU backend: no GPUDirect Storage, and nothing said of it.
        let cpu = try plan(Self.bigFile, on: Self.gpuDirect) { $0.backend = .cpu }
        #expect(cpu.ingest.value.gds == GDSPlan.Decision(useGDS: false, forced: false, note: nil))
        #expect(!cpu.ingest.reason.contains("GPUDirect") && !cpu.ingest.reason.contains("cuFile"))
        // A tree of small files runs on the CPU even where cuFile is direct.
        #expect(try plan(Self.smallTree, on: Self.gpuDirect).ingest.value.gds?.useGDS == false)
    }

    @Test func configurationsThatCannotRunAreRefused() throws {
        let cpu = Result { () throws(PipelineError) in
            try ExecutionPlan.make(
                configuration: EngineConfiguration(backend: .cpu, ingest: .gds), input: Self.bigFile, machine: Self.gpu)
        }
        guard case .failure(.invalidConfiguration(let text)) = cpu else { Issue.record("\(cpu)"); return }
        #expect(text.contains("ingest gds") && text.contains("CPU backend") && !text.contains("--"))
        var noCuFile = Self.gpu
        noCuFile.cuFile = CuFileCapability(libraryLoads: false, loadError: "no libcufile", nvidiaFSLoaded: false)
        let missing = Result { () throws(PipelineError) in
            try ExecutionPlan.make(configuration: EngineConfiguration(ingest: .gds), input: Self.bigFile, machine: noCuFile)
        }
        guard case .failure(.backendUnavailable("gds", let why)) = missing else { Issue.record("\(missing)"); return }
        #expect(why.contains("no libcufile"))
    }

    @Test func hostReadPaths() throws {
        #expect(try plan(Self.bigFile, on: Self.noGPU) { $0.ingest = .pread }.ingest.reason == "the pread thread pool (forced)")
        var disabled = Self.noGPU
        disabled.ioUringDisabled = 2
        #expect(try plan(Self.bigFile, on: disabled).ingest.reason
            == "the pread thread pool: io_uring is disabled by the kernel (kernel.io_uring_disabled = 2)")
        // Packing defers the host stream, except a forced io_uring (which must fail at start where it cannot run).
        let packed = try plan(Self.smallTree, on: Self.noGPU) { $0.deferIngestSetup = true }
        #expect(packed.ingest.value.deferredSetup && packed.ingest.reason.contains("set up at the first file too large to pack"))
        #expect(try !plan(Self.smallTree, on: Self.noGPU) { $0.deferIngestSetup = true; $0.ingest = .uring }.ingest.value.deferredSetup)
        #expect(try !plan(Self.bigFile, on: Self.gpuDirect) { $0.deferIngestSetup = true }.ingest.value.deferredSetup)
    }

    // MARK: Sizes

    @Test func slotsAreFittedToASmallInput() throws {
        // CUDA: 128 by default for a scan; a 3-byte file needs 4.
        #expect(try plan(Self.bigFile, on: Self.gpu).slots.value == 128)
        let tiny = try plan(Self.tiny, on: Self.gpu)
        #expect(tiny.slots.value == 4 && tiny.slots.reason.hasPrefix("4, enough for the input (1 file, 3 bytes in all"), "\(tiny.slots.reason)")
        // 3 MiB + 1 byte is 4 chunks of 1 MiB, plus 2.
        let mib = try plan(.init(work: .scan, files: 1, bytes: 3 << 20 + 1), on: Self.gpu) { $0.chunkBytes = 1 << 20 }
        #expect(mib.slots.value == 6)
        // One per file up to 16, within the default.
        #expect(try plan(.init(work: .scan, files: 7, bytes: 700), on: Self.gpu).slots.value == 7)
        // CPU: max(8, 2 * workers + 2), fitted the same way.
        #expect(try plan(Self.bigFile, on: Self.noGPU) { $0.workers = 4 }.slots.value == 10)
        #expect(try plan(.init(work: .scan, files: 7, bytes: 700), on: Self.noGPU) { $0.workers = 4 }.slots.value == 7)
        #expect(try plan(.init(work: .scan, files: 100_000, bytes: 100_000), on: Self.noGPU) { $0.workers = 4 }.slots.value == 10)
        // Simulated CPU devices share the cores: 16 / 2 = 8 each, so 18 slots.
        #expect(try plan(Self.bigFile, on: Self.noGPU, { $0.backend = .cpu }, devices: .list([0, 1])).slots.value == 18)
        // Unsized files: the defaults.
        #expect(try plan(.init(work: .scan, files: 3, sizedFiles: 2, bytes: 10), on: Self.gpu).slots.value == 128)
        // --slots wins.
        let given = try plan(Self.tiny, on: Self.gpu) { $0.slots = 20 }
        #expect(given.slots == .init(20, "20, as configured"))
        // auto with a GPU: the CUDA count, and the CPU's in the reason.
        #expect(try plan(Self.bigFile, on: Self.unprobed).slots.reason.contains("on the CPU backend 34, the CPU default"))
    }

    @Test func lightWorkGetsFewerCUDASlots() throws {
        let count = try plan(.init(work: .count, files: 1, bytes: 16 << 30), on: Self.gpu)
        #expect(count.slots.value == 32 && count.slots.reason.contains("light work"))
        #expect(try plan(.init(work: .hash, files: 1, bytes: 16 << 30), on: Self.gpu) { $0.backend = .cuda }.slots.value == 32)
        #expect(try plan(.init(work: .count, files: 1, bytes: 6 << 20), on: Self.gpu).slots.value == 4)
        #expect(try plan(Self.bigFile, on: Self.gpu).slots.value == 128)
    }

    @Test func theChunkGrowsForALongLiteral() throws {
        #expect(try plan(Self.bigFile, on: Self.gpu).chunkBytes == .init(4 << 20, "4194304 bytes, as configured"))
        // A 5,000-byte literal overlaps 8 KiB: a 4 KiB chunk becomes 2 * 8 KiB + 4 KiB.
        let literal = ExecutionPlan.Input(work: .scan, files: 1, bytes: 1 << 20, overlapBytes: 8192)
        let raised = try plan(literal, on: Self.gpu) { $0.chunkBytes = 4096 }
        #expect(raised.chunkBytes == .init(20480, "raised to 20480 bytes for the longest literal"))
        // Below half the chunk: unchanged; at half: raised.
        #expect(try plan(literal, on: Self.gpu) { $0.chunkBytes = 16384 + 4096 }.chunkBytes.value == 20480)
        #expect(try plan(literal, on: Self.gpu) { $0.chunkBytes = 16384 }.chunkBytes.value == 20480)
        // The ring is fitted in the raised chunks: 1 MiB / 20 KiB = 52 chunks (rounded up), plus 2.
        #expect(raised.slots.value == 54)
    }

    @Test func aLargeChunkIsLoweredUntilEverySlotCarriesSixteenChunks() throws {
        let file256 = ExecutionPlan.Input(work: .scan, files: 1, bytes: 256 << 20)
        // CUDA: 128 slots want 2,048 chunks; 256 MiB / 2,048 = 128 KiB, so the 4 MiB floor.
        let cuda = try plan(file256, on: Self.gpu) { $0.backend = .cuda; $0.chunkBytes = 64 << 20 }
        #expect(cuda.chunkBytes.value == 4 << 20)
        #expect(cuda.chunkBytes.reason.contains("lowered from the configured 67108864")
            && cuda.chunkBytes.reason.contains("128 ring slots"))
        // The CPU backend's 16 threads have 34 slots, which want 544 chunks:
        // 4 GiB / 544 = 7,895,160 bytes, rounded down to 4 KiB.
        let file4G = ExecutionPlan.Input(work: .scan, files: 1, bytes: 4 << 30)
        let cpu = try plan(file4G, on: Self.gpu) { $0.backend = .cpu; $0.chunkBytes = 64 << 20 }
        #expect(cpu.chunkBytes.value == 1927 * 4096 && cpu.chunkBytes.reason.contains("34 ring slots"))
        #expect(cpu.chunkBytes.value * cpu.slots.value <= file4G.hint!.bytes / 16)
        // Two cores: 8 slots (the least) want 128 chunks, so 1 GiB runs 8 MiB chunks, a 64 MiB region.
        var twoCores = Self.gpu
        twoCores.cores = 2
        let file1G = ExecutionPlan.Input(work: .scan, files: 1, bytes: 1 << 30)
        let small = try plan(file1G, on: twoCores) { $0.backend = .cpu; $0.chunkBytes = 64 << 20 }
        #expect(small.chunkBytes.value == 8 << 20 && small.slots.value == 8)
        // Rounded down to 4 KiB: 6 GiB + 1,200 KiB over 544 chunks is 11,844,999 bytes each.
        let odd = ExecutionPlan.Input(work: .scan, files: 1, bytes: (6 << 30) + 1200 * 1024)
        #expect(try plan(odd, on: Self.gpu) { $0.backend = .cpu; $0.chunkBytes = 1 << 30 }.chunkBytes.value == 2891 * 4096)
        // Large enough inputs keep the configured size, as do the default and smaller sizes.
        let huge = ExecutionPlan.Input(work: .scan, files: 1, bytes: 64 << 30)
        #expect(try plan(huge, on: Self.gpu) { $0.backend = .cpu; $0.chunkBytes = 64 << 20 }.chunkBytes
            == .init(64 << 20, "67108864 bytes, as configured"))
        #expect(try plan(file256, on: Self.gpu) { $0.chunkBytes = 1 << 20 }.chunkBytes.value == 1 << 20)
        #expect(try plan(file256, on: Self.gpu).chunkBytes.value == 4 << 20)
        // A long literal: no lower than 8 times its overlap (1 MiB of overlap: 8 MiB).
        let literal = ExecutionPlan.Input(work: .scan, files: 1, bytes: 256 << 20, overlapBytes: 1 << 20)
        #expect(try plan(literal, on: Self.gpu) { $0.backend = .cuda; $0.chunkBytes = 64 << 20 }.chunkBytes.value == 8 << 20)
        // Unknown sizes (a session, a list still to read) keep it too.
        #expect(try plan(.unknown(.scan), on: Self.gpu) { $0.chunkBytes = 64 << 20 }.chunkBytes.value == 64 << 20)
        // The ring is then fitted in the lowered chunks: 256 MiB / 4 MiB = 64, plus 2.
        #expect(cuda.slots.value == 66)
    }

    @Test func theSlotsThatShareTheChunksFollowTheBackend() {
        let c = EngineConfiguration()
        let scan = ExecutionPlan.Input(work: .scan, files: 1, bytes: 1 << 30)
        let count = ExecutionPlan.Input(work: .count, files: 1, bytes: 1 << 30)
        // The CPU ring: two slots per thread and two more, at least 8.
        #expect(ExecutionPlan.chunkSlots(c, devices: .list([0]), backend: .cpu, input: scan, cores: 16) == 34)
        #expect(ExecutionPlan.chunkSlots(c, devices: .list([0]), backend: .cpu, input: scan, cores: 2) == 8)
        #expect(ExecutionPlan.chunkSlots(c, devices: .list([0]), backend: .cuda, input: scan, cores: 16) == 128)
        #expect(ExecutionPlan.chunkSlots(c, devices: .list([0]), backend: .cuda, input: count, cores: 16) == 32)
        #expect(ExecutionPlan.chunkSlots(c, devices: .list([0, 1]), backend: .cuda, input: scan, cores: 16) == 256)
        // Simulated CPU devices share the cores, each with its own ring: 4 threads, 10 slots, 4 rings.
        #expect(ExecutionPlan.chunkSlots(c, devices: .list([0, 1, 2, 3]), backend: .cpu, input: scan, cores: 16) == 40)
        // auto expects CUDA to start: its ring, even where a many-core host's CPU ring is larger.
        #expect(ExecutionPlan.chunkSlots(c, devices: .list([0]), backend: .auto, input: scan, cores: 256) == 128)
        #expect(ExecutionPlan.chunkSlots(c, devices: .list([0]), backend: .auto, input: count, cores: 16) == 32)
        // --slots given: that ring, on every device named.
        var given = c
        given.slots = 12
        #expect(ExecutionPlan.chunkSlots(given, devices: .list([0, 1, 2]), backend: .cpu, input: scan, cores: 16) == 36)
        #expect(ExecutionPlan.chunkSlots(given, devices: .list([0, 1]), backend: .cuda, input: scan, cores: 16) == 24)
        #expect(ExecutionPlan.chunkSlots(given, devices: .list([0]), backend: .auto, input: scan, cores: 256) == 12)
        var few = c
        few.slots = 8
        #expect(ExecutionPlan.chunkSlots(few, devices: .list([0]), backend: .cuda, input: scan, cores: 16) == 8)
        #expect(ExecutionPlan.chunkSlots(few, devices: .list([0]), backend: .cpu, input: scan, cores: 16) == 8)
    }

    // MARK: Prefetch and warm-up

    @Test func prefetchOnlyForBufferedReadsWhileAGPUStarts() throws {
        #expect(try plan(Self.bigFile, on: Self.gpu).prefetch.value == 1 << 30)
        #expect(try plan(Self.bigFile, on: Self.unprobed).prefetch.value == 1 << 30)
        var small = Self.gpu
        small.memory.availableBytes = 1 << 30
        #expect(try plan(Self.bigFile, on: small).prefetch.value == 256 << 20)
        small.memory.availableBytes = nil
        #expect(try plan(Self.bigFile, on: small).prefetch.value == 0)
        let cpu = try plan(Self.bigFile, on: Self.gpu) { $0.backend = .cpu }
        #expect(cpu.prefetch.value == 0 && cpu.prefetch.reason.contains("CPU backend"))
        let direct = try plan(Self.bigFile, on: Self.gpu) { $0.direct = true }
        #expect(direct.prefetch.value == 0 && direct.prefetch.reason.contains("O_DIRECT"))
        let gds = try plan(Self.bigFile, on: Self.gpu) { $0.ingest = .gds }
        #expect(gds.prefetch.value == 0 && gds.prefetch.reason.contains("cuFile"))
        #expect(try plan(Self.bigFile, on: Self.unprobed) { $0.ingest = .gds }.prefetch.value == 0)
        #expect(try plan(Self.bigFile, on: Self.gpuDirect).prefetch.value == 0)
    }

    @Test func warmUpOnlyWhenCUDAMayRun() throws {
        #expect(try plan(Self.bigFile, on: Self.unprobed).warmUp.value == [0])
        #expect(try plan(Self.bigFile, on: Self.unprobed, devices: .list([1, 2])).warmUp.value == [1, 2])
        #expect(try plan(Self.bigFile, on: Self.unprobed, devices: .all).warmUp.value == [0])
        #expect(try plan(Self.bigFile, on: Self.noGPU).warmUp.value.isEmpty)
        #expect(try plan(Self.smallTree, on: Self.unprobed).warmUp.value.isEmpty)
        #expect(try plan(.unknown(.hash), on: Self.unprobed).warmUp.value.isEmpty)
        #expect(try plan(Self.bigFile, on: Self.unprobed) { $0.backend = .cpu }.warmUp.value.isEmpty)
        #expect(try plan(Self.smallTree, on: Self.noGPU) { $0.backend = .cuda }.warmUp.value == [0])
    }

    // MARK: Following the plan

    @Test func theEngineFollowsThePlan() throws {
        let input = ExecutionPlan.Input(work: .count, files: 3, bytes: 5 << 20)
        var c = EngineConfiguration(ingest: .pread, chunkBytes: 1 << 20, workers: 3)
        let plan = try ExecutionPlan.make(configuration: c, input: input, machine: Self.noGPU)
        c = plan.configure(c)
        #expect(c.backend == .cpu && c.backendReason == plan.backend.reason && c.lightWork)
        #expect(c.inputHint == InputHint(files: 3, bytes: 5 << 20) && c.plannedGDS == plan.ingest.value.gds)
        let engine = try Engine(c, resultWordsPerSlot: 4)
        defer { try? engine.close() }
        // 5 chunks of 1 MiB, plus 2: below the CPU default of 8 for 3 workers.
        #expect(plan.slots.value == 7)
        #expect(engine.backend.ring.geometry.slotCount == plan.slots.value)
        #expect(engine.backend.summary.contains(plan.backend.reason))
        #expect(engine.ingestReason.hasPrefix("pread thread pool"))
        // The chunk size the plan raised is the one the engine reads in.
        let raised = try ExecutionPlan.make(
            configuration: EngineConfiguration(backend: .cpu, ingest: .pread, chunkBytes: 4096),
            input: .init(work: .scan, files: 1, bytes: 10, overlapBytes: 4096), machine: Self.noGPU)
        let wide = try Engine(raised.configure(EngineConfiguration(backend: .cpu, ingest: .pread, chunkBytes: 4096)), resultWordsPerSlot: 4)
        defer { try? wide.close() }
        #expect(wide.stream.chunkBytes == raised.chunkBytes.value && raised.chunkBytes.value == 12288)
    }

    @Test func inputsFromAWalk() {
        var walk = FileWalker.Result()
        walk.files = ["a".raw, "b".raw, "c".raw]
        walk.sizedFiles = 3
        walk.bytes = 3 << 30
        let known = ExecutionPlan.Input(work: .scan, walk: walk)
        #expect(known.hint == walk.inputHint && known.description == "a scan of 3 files, 3 GiB in all")
        walk.sizedFiles = 2
        let sampled = ExecutionPlan.Input(work: .count, walk: walk)
        #expect(sampled.hint == nil && walk.inputHint == nil)
        #expect(ExecutionPlan.Input.unknown(.hash).description == "a hash of files not known in advance")
        #expect(ExecutionPlan.Input.typicalScan.description == "a scan of 16 files, 1 GiB in all, for 1000 literals")
    }

    /// The same facts give the same plan, and the lines name every choice.
    @Test func aPlanIsAValue() throws {
        let a = try plan(Self.bigFile, on: Self.gpu)
        #expect(try plan(Self.bigFile, on: Self.gpu) == a)
        #expect(a.lines.map(\.name) == ["backend", "ingest", "chunk size", "slots", "prefetch", "warm-up"])
        #expect(a.lines[0].text == "cuda where it starts, else cpu (auto: NVIDIA H100 80GB HBM3 found)")
        #expect(try plan(Self.bigFile, on: Self.noGPU).lines[0].text.hasPrefix("cpu (auto: no usable GPU"))
    }
}

/// `--verbose` prints the plan's reasons; `doctor` prints the plan for a typical scan.
@Suite struct ExecutionPlanCommandTests {
    /// The library's reasons say "in the configuration"; the command's name
    /// the flag its user typed, and so do its errors about a flag's value.
    @Test func theCommandNamesItsFlags() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let path = dir.write("f", Array("needle\n".utf8))
        let r = run([sluiceExecutable, "scan", "--verbose", "--quiet", "--backend", "cpu", "-e", "needle", path])
        #expect(r.status == 0 && r.stdout == "\(path):0:needle\n", "\(r.stdout) \(r.stderr)")
        let backend = r.stderr.split(separator: "\n").first { $0.hasPrefix("sluice: device 0: backend cpu: ") } ?? ""
        #expect(backend.hasSuffix("(cpu: chosen with --backend cpu)"), "\(r.stderr)")
        #expect(!r.stderr.contains("in the configuration"), "\(r.stderr)")
        // The library, for the same choice, names the configuration.
        let engine = try Engine(EngineConfiguration(backend: .cpu, chunkBytes: 4096, slots: 2), resultWordsPerSlot: 16)
        defer { try? engine.close() }
        #expect(engine.backendReason == "cpu: chosen with backend cpu in the configuration")
        for (flag, value) in [("--devices", "1,1"), ("--shard", "2/1"), ("--range-size", "lots")] {
            let bad = run([sluiceExecutable, "count", flag, value, path])
            #expect(bad.status == 2 && bad.stderr.contains("\(flag): invalid configuration: "), "\(flag): \(bad.stderr)")
        }
    }

    @Test func verboseSaysWhyForEachChoice() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let path = dir.write("f", Array("hello\nworld\n".utf8))
        let r = run([sluiceExecutable, "count", "--verbose", "--quiet", "--backend", "cpu", path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.split(separator: " ", omittingEmptySubsequences: true) == ["2", "12", "\(path)\n"], "\(r.stdout)")
        for line in [
            "sluice: chunk size: 4194304 bytes, as configured",
            "sluice: slots: 4, enough for the input (1 file, 12 bytes in all",
            "sluice: prefetch: off: the CPU backend starts too fast",
            "sluice: warm-up: none: the CPU backend runs",
            "sluice: device 0: backend cpu:",
        ] {
            #expect(r.stderr.contains(line), "\(line) not in \(r.stderr)")
        }
    }

    /// A literal longer than half a chunk raises the chunk size, says so,
    /// and still finds the literal where Python does.
    @Test func aLongLiteralRaisesTheChunkSize() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 17)
        let literal = (0..<5000).map { _ in UInt8(0x61 + rng.next() % 26) }
        let bytes = textLikeBytes(30_000, &rng) + literal + textLikeBytes(20_000, &rng)
        let path = dir.write("f", bytes)
        let pattern = dir.write("p", literal + [0x0A])
        let r = run([sluiceExecutable, "scan", "--verbose", "--quiet", "--chunk-size", "4K", "-f", pattern, "--count", path])
        #expect(r.status == 0, "\(r.stderr)")
        // 5,000 bytes overlap 8 KiB: 2 * 8 KiB + 4 KiB.
        #expect(r.stderr.contains("sluice: chunk size: raised to 20480 bytes for the longest literal"), "\(r.stderr)")
        #expect(r.stdout == "\(path):1\n", "\(r.stdout)")
    }

    @Test func doctorPrintsThePlanForATypicalScan() throws {
        let r = run([sluiceExecutable, "doctor", "/var/tmp"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("Plan for a scan of 16 files, 1 GiB in all"), "\(r.stdout)")
        let lines = r.stdout.split(separator: "\n")
        for name in ["backend", "ingest", "chunk size", "slots", "prefetch", "warm-up"] {
            #expect(lines.contains { $0.hasPrefix("   \(name) ") }, "no \(name) line")
        }
        if case .failure = CUDAProbe.probe() {
            #expect(lines.contains { $0.hasPrefix("   backend ") && $0.contains("cpu (auto: no usable GPU") })
            #expect(lines.contains { $0.hasPrefix("   warm-up ") && $0.hasSuffix("none: the CPU backend runs") })
        }
        let j = run([sluiceExecutable, "doctor", "--json"])
        #expect(j.status == 0)
        #expect(j.stdout.contains("\"plan\":{\"input\":\"a scan of 16 files, 1 GiB in all, for 1000 literals\",\"backend\":{\"value\":"), "\(j.stdout)")
        // The cost model: where it comes from, and each cost (the CPU's count first).
        #expect(lines.contains { $0.hasPrefix("   source ") } && lines.contains { $0.hasPrefix("   cuda scan 100000 ") })
        #expect(j.stdout.contains("\"cost_model\":{\"source\":"), "\(j.stdout)")
        #expect(j.stdout.contains("\"costs\":[{\"backend\":\"cpu\",\"work\":\"count\",\"literals\":null,\"start_seconds\":"))
    }
}
