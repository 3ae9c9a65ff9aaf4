#if canImport(Glibc)
import Glibc
#endif
import SluiceCore
import Testing

@testable import Sluice

/// The cost model `auto` decides by: its file, its interpolation, and the
/// backend it makes the plan choose.
@Suite struct CostModelTests {
    typealias Cost = CostModel.Cost

    static let memory = HostMemoryFacts(
        availableBytes: 64 << 30, totalBytes: 128 << 30, lockLimitBytes: 8 << 20, lockLimitExempt: false)
    static let h100 = MachineFacts.GPU(ordinal: 0, name: "NVIDIA H100 80GB HBM3", memoryBytes: 80 << 30, nvrtcVersion: "13.0")
    static func gpuMachine(cores: Int = 16, model: CostModel = .defaults) -> MachineFacts {
        var m = MachineFacts(cuda: .usable([h100]), crc32cInstructions: "sse4.2", memory: memory, cores: cores)
        m.costModel = model
        return m
    }

    func plan(_ input: ExecutionPlan.Input, on machine: MachineFacts, _ configure: (inout EngineConfiguration) -> Void = { _ in })
        throws -> ExecutionPlan
    {
        var c = EngineConfiguration()
        configure(&c)
        return try ExecutionPlan.make(configuration: c, input: input, machine: machine)
    }

    // MARK: The file

    @Test func theFileReadsBackAsTheModelItWasWrittenFrom() throws {
        let text = CostModel.defaults.fileText
        #expect(text.hasPrefix("sluice-cost-model 1\ncores 16\nsource the defaults"))
        #expect(text.contains("\ncpu scan 10000 0.51 11000000000.0\n"))
        #expect(try CostModel(fileText: text) == .defaults)
    }

    @Test func aBadFileNamesTheLineAndWhatIsWrong() {
        func error(_ text: String) -> CostModel.FileError? {
            do {
                _ = try CostModel(fileText: text)
                return nil
            } catch { return error }
        }
        let good = CostModel.defaults.fileText
        #expect(error("") == .init(line: 1, reason: "not a cost model (the first line must be sluice-cost-model 1)"))
        #expect(error("sluice-cost-model 2\n")?.line == 1)
        #expect(error(good + "cpu count 0.1 0\n")?.line == 12)
        #expect(error(good + "cuda count -1 5e9\n")?.reason.contains("a start of 0 or more") == true)
        #expect(error(good + "cpu scan 0 0.1 5e9\n")?.reason.contains("positive literal count") == true)
        #expect(error(good + "cpu scan x 0.1 5e9\n")?.line == 12)
        #expect(error(good + "gpu count 0.1 5e9\n")?.line == 12)
        #expect(error(good + "cpu count 0.1 nan\n")?.line == 12)
        #expect(error(good + "cpu hash 0.1 5e9\n")?.line == 12)
        #expect(error("sluice-cost-model 1\ncpu count 0.1 5e9\ncpu scan 1000 0.1 5e9\ncuda count 0.3 9e9\ncuda scan 1000 0.4 9e9\n")
            == .init(line: 0, reason: "no cores line"))
        #expect(error("sluice-cost-model 1\ncores 4\ncpu count 0.1 5e9\ncpu scan 1000 0.1 5e9\ncuda count 0.3 9e9\n")
            == .init(line: 0, reason: "no cuda count line or no cuda scan line"))
    }

    @Test func aMissingFileGivesTheDefaultsAndABadOneSaysWhy() throws {
        let dir = "/tmp/sluice-cost-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        #expect(mkdir(dir, 0o700) == 0)
        defer {
            unlink(dir + "/model.txt")
            rmdir(dir)
        }
        let missing = CostModel.load(path: dir + "/none.txt")
        #expect(missing.model == .defaults && missing.note == nil)
        var calibrated = CostModel.defaults
        calibrated.source = "a calibration"
        calibrated.cpu.count = Cost(startSeconds: 0.05, bytesPerSecond: 3e9)
        try calibrated.save(to: dir + "/model.txt")
        let loaded = CostModel.load(path: dir + "/model.txt")
        #expect(loaded.model == calibrated && loaded.note == nil)
        let fd = open(dir + "/model.txt", O_WRONLY | O_TRUNC)
        _ = "sluice-cost-model 1\ncores x\n".withCString { write(fd, $0, strlen($0)) }
        close(fd)
        let bad = CostModel.load(path: dir + "/model.txt")
        #expect(bad.model == .defaults)
        #expect(bad.note?.contains(dir + "/model.txt") == true && bad.note?.contains("line 2") == true)
    }

    // MARK: Interpolation

    @Test func aScanBetweenTwoMeasuredCountsIsInterpolatedInTheLogOfTheCount() throws {
        let points = [
            CostModel.ScanPoint(literals: 1_000, cost: Cost(startSeconds: 0.1, bytesPerSecond: 20e9)),
            CostModel.ScanPoint(literals: 100_000, cost: Cost(startSeconds: 0.5, bytesPerSecond: 5e9)),
        ]
        let exact = try #require(CostModel.interpolate(points, literals: 100_000))
        #expect(exact == points[1].cost)
        // 10,000 is half way from 1,000 to 100,000 in the log: half the start, half the seconds per byte.
        let middle = try #require(CostModel.interpolate(points, literals: 10_000))
        #expect(abs(middle.startSeconds - 0.3) < 1e-12)
        #expect(abs(1 / middle.bytesPerSecond - (1 / 20e9 + 1 / 5e9) / 2) < 1e-22)
        // Below the first point the first holds; beyond the last the slope goes on.
        #expect(CostModel.interpolate(points, literals: 10) == points[0].cost)
        let million = try #require(CostModel.interpolate(points, literals: 10_000_000))
        #expect(abs(million.startSeconds - 0.9) < 1e-9)
        #expect(abs(1 / million.bytesPerSecond - (2 / 5e9 - 1 / 20e9)) < 1e-21)
        // A falling cost beyond the last point is held at the last point's.
        let falling = [points[1], CostModel.ScanPoint(literals: 1_000_000, cost: Cost(startSeconds: 0.2, bytesPerSecond: 9e9))]
        #expect(CostModel.interpolate(falling, literals: 100_000_000) == falling[1].cost)
        #expect(CostModel.interpolate([], literals: 5) == nil)
    }

    @Test func cpuRatesScaleWithTheCores() throws {
        let model = CostModel.defaults
        let here = try #require(model.cost(cpu: true, work: .count, literals: 0, cores: 4))
        #expect(here.bytesPerSecond == 22.9e9 / 4 && here.startSeconds == 0.10)
        #expect(model.cost(cpu: false, work: .count, literals: 0, cores: 4) == model.cuda.count)
        #expect(model.cost(cpu: true, work: .hash, literals: 0, cores: 4) == nil)
        #expect(model.cost(cpu: true, work: .scan, literals: 0, cores: 4) == nil)
    }

    // MARK: What auto picks

    @Test func autoRunsTheBackendEstimatedToFinishFirst() throws {
        let gib4 = 4 << 30
        // count over 4 GiB: cpu 0.10 + 4.29 / 22.9 = 0.29 s against cuda 0.31 + 4.29 / 27.1 = 0.47 s.
        let count = try plan(.init(work: .count, files: 1, bytes: gib4), on: Self.gpuMachine())
        #expect(count.backend.value == .cpu)
        #expect(count.backend.reason.hasPrefix("auto: the CPU backend should finish first (cpu 0.288 s (start 0.1 s + 4.29 GB at 22.9 GB/s), cuda 0.468 s"))
        #expect(count.warmUp.value.isEmpty)
        // From about 31 GB on, CUDA's rate pays for its start.
        let huge = try plan(.init(work: .count, files: 1, bytes: 64 << 30), on: Self.gpuMachine())
        #expect(huge.backend.value == .auto && huge.backend.reason.contains("CUDA should finish first"))
        // 1,000 literals: the CPU (Hyperscan) is faster at any size; 10,000: CUDA is.
        #expect(try plan(.init(work: .scan, files: 1, bytes: 16 << 30, literals: 1000), on: Self.gpuMachine()).backend.value == .cpu)
        #expect(try plan(.init(work: .scan, files: 1, bytes: 64 << 20, literals: 10_000), on: Self.gpuMachine()).backend.value == .auto)
        // On 2 cores the CPU's rates are an eighth: 4 GiB at 1,000 literals goes to CUDA, 1 GiB not yet.
        #expect(try plan(.init(work: .scan, files: 1, bytes: 4 << 30, literals: 1000), on: Self.gpuMachine(cores: 2)).backend.value == .auto)
        #expect(try plan(.init(work: .scan, files: 1, bytes: 1 << 30, literals: 1000), on: Self.gpuMachine(cores: 2)).backend.value == .cpu)
        // The estimate is a plan line either way.
        #expect(count.lines.last?.name == "estimate" && count.estimate?.cpuIsCheaper == true)
    }

    @Test func aNamedBackendAnUnknownInputAndTheOtherRulesAreNotOverruled() throws {
        let gib4 = ExecutionPlan.Input(work: .count, files: 1, bytes: 4 << 30)
        #expect(try plan(gib4, on: Self.gpuMachine()) { $0.backend = .cuda }.backend.value == .cuda)
        // cuFile reads into GPU memory: only CUDA can run it, whatever the estimate.
        #expect(try plan(gib4, on: Self.gpuMachine()) { $0.ingest = .gds }.backend.value == .auto)
        // Unknown sizes: no estimate, CUDA where it starts.
        let unknown = try plan(.unknown(.count), on: Self.gpuMachine())
        #expect(unknown.backend.value == .auto && unknown.estimate == nil)
        // No usable GPU: the CPU, saying so rather than estimating.
        var noGPU = Self.gpuMachine()
        noGPU.cuda = .unusable("cannot load libcuda.so.1")
        #expect(try plan(gib4, on: noGPU).backend == .init(.cpu, "auto: no usable GPU: cannot load libcuda.so.1"))
        // A model that favours CUDA still leaves a tree of small files to the CPU.
        var fastGPU = CostModel.defaults
        fastGPU.cuda.scan = [CostModel.ScanPoint(literals: 1, cost: Cost(startSeconds: 0, bytesPerSecond: 1e12))]
        let tree = ExecutionPlan.Input(work: .scan, files: 40_000, sizedFiles: 4096, bytes: 4096 * 16384, literals: 100)
        #expect(try plan(tree, on: Self.gpuMachine(model: fastGPU)).backend.reason.contains("per-file system calls"))
    }
}
