#if canImport(Glibc)
import Glibc
#endif
import SluiceCore
import SluiceOps
@testable import SluiceDiagnostics
import Testing

@testable import Sluice

/// The cost model `auto` decides by: its file, its interpolation, and the
/// backend it makes the plan choose.
@Suite struct CostModelTests {
    typealias Cost = CostModel.Cost

    static let memory = HostMemoryFacts(
        availableBytes: 64 << 30, totalBytes: 128 << 30, lockLimitBytes: 8 << 20, lockLimitExempt: false)
    static let h100 = MachineFacts.GPU(ordinal: 0, name: "NVIDIA H100 80GB HBM3", memoryBytes: 80 << 30)
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
        #expect(text.hasPrefix("sluice-cost-model 2\ncores 16\nsource the defaults"))
        #expect(text.contains("\ncpu scan 100000 0.25 4200000000.0\ncpu builtin-scan 1000 0.124 4690000000.0\n"))
        #expect(text.contains("\ncpu builtin-scan 100000 0.315 2060000000.0\ncpu match 3.6e-09\ncpu builtin-match 5.07e-09\ncuda count "))
        #expect(try CostModel(fileText: text) == .defaults)
    }

    @Test func aVersionOneFileGivesBothCPUCurvesItsScanLines() throws {
        // A calibration from before the built-in curve has no builtin-scan lines: its cpu scan
        // lines serve both engines, and loading it says so. Version 2 needs them.
        var lines = CostModel.defaults.fileText.split(separator: "\n").filter { !$0.hasPrefix("cpu builtin-scan ") }
        #expect(throws: CostModel.FileError.self) { try CostModel(fileText: lines.joined(separator: "\n") + "\n") }
        lines[0] = "sluice-cost-model 1"
        let text = lines.joined(separator: "\n") + "\n"
        let model = try CostModel(fileText: text)
        #expect(model.cpuBuiltinScan == model.cpu.scan && model.cpu == CostModel.defaults.cpu)
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let loaded = CostModel.load(path: dir.write("v1.txt", Array(text.utf8)))
        #expect(loaded.calibrated && loaded.model == model && loaded.note?.contains("run sluice's calibration again") == true)
        #expect(throws: CostModel.FileError.self) {
            try CostModel(fileText: text + "cpu builtin-scan 1000 0.1 5e9\n")
        }
        // Only the CPU backend has a built-in curve.
        #expect(throws: CostModel.FileError.self) { try CostModel(fileText: CostModel.defaults.fileText + "cuda builtin-scan 1000 0.1 5e9\n") }
        #expect(throws: CostModel.FileError.self) { try CostModel(fileText: CostModel.defaults.fileText + "cpu builtin-scan 0 0.1 5e9\n") }
    }

    @Test func aBadFileNamesTheLineAndWhatIsWrong() {
        func error(_ text: String) -> CostModel.FileError? {
            do {
                _ = try CostModel(fileText: text)
                return nil
            } catch { return error }
        }
        let good = CostModel.defaults.fileText
        let next = good.split(separator: "\n").count + 1  // the line appended
        #expect(error("") == .init(kind: .notACostModel, line: 1, reason: "not a cost model (the first line must be sluice-cost-model 2)"))
        #expect(error("sluice-cost-model 3\n")?.line == 1)
        #expect(error(good + "cpu count 0.1 0\n")?.line == next)
        #expect(error(good + "cuda count -1 5e9\n")?.kind == .implausibleFigure)
        #expect(error(good + "cpu scan 0 0.1 5e9\n")?.kind == .implausibleFigure)
        #expect(error(good + "gpu count 0.1 5e9\n")?.kind == .malformedLine)
        #expect(error(good + "cpu scan x 0.1 5e9\n")?.line == next)
        #expect(error(good + "gpu count 0.1 5e9\n")?.line == next)
        #expect(error(good + "cpu count 0.1 nan\n")?.line == next)
        #expect(error(good + "cpu hash 0.1 5e9\n")?.line == next)
        #expect(error(good + "cuda match -1\n")?.kind == .implausibleFigure)
        #expect(error("sluice-cost-model 1\ncpu count 0.1 5e9\ncpu scan 1000 0.1 5e9\ncuda count 0.3 9e9\ncuda scan 1000 0.4 9e9\n")
            == .init(kind: .missingLine, line: 0, reason: "no cores line"))
        #expect(error("sluice-cost-model 1\ncores 4\ncpu count 0.1 5e9\ncpu scan 1000 0.1 5e9\ncuda count 0.3 9e9\n")
            == .init(kind: .missingLine, line: 0, reason: "no cuda count line or no cuda scan line"))
    }

    /// The copy path measured faster is written, read back, and refused
    /// when it is not one of the two; a file without it keeps the defaults'.
    @Test func theMeasuredCopyPathReadsBack() throws {
        for faster in [true, false] {
            var model = CostModel.defaults
            model.cudaCopyEngineFaster = faster
            #expect(model.fileText.hasSuffix("cuda ingest-copy \(faster ? "engine" : "mapped")\n"))
            #expect(try CostModel(fileText: model.fileText).cudaCopyEngineFaster == faster)
        }
        let base = CostModel.defaults.fileText
        let next = base.split(separator: "\n").count + 1
        #expect(try CostModel(fileText: base).cudaCopyEngineFaster == CostModel.defaults.cudaCopyEngineFaster)
        for bad in ["cuda ingest-copy auto\n", "cuda ingest-copy dma\n"] {
            do {
                _ = try CostModel(fileText: base + bad)
                Issue.record("\(bad) was taken")
            } catch {
                #expect(error.kind == .malformedLine && error.line == next)
            }
        }
    }

    @Test func aFileWithoutMatchLinesTakesTheDefaultsCostPerMatch() throws {
        let text = "sluice-cost-model 1\ncores 4\nsource old\ncpu count 0.1 5e9\ncpu scan 1000 0.1 5e9\n"
            + "cuda count 0.3 9e9\ncuda scan 1000 0.4 9e9\ncuda match 1e-9\n"
        let model = try CostModel(fileText: text)
        #expect(model.cpu.matchSeconds == CostModel.defaults.cpu.matchSeconds && model.cuda.matchSeconds == 1e-9)
        #expect(model.cores == 4 && model.source == "old")
    }

    @Test func aMissingFileGivesTheDefaultsAndABadOneSaysWhy() throws {
        let dir = "/tmp/sluice-cost-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        #expect(mkdir(dir, 0o700) == 0)
        defer {
            unlink(dir + "/model.txt")
            rmdir(dir)
        }
        let missing = CostModel.load(path: dir + "/none.txt")
        #expect(missing.model == .defaults && !missing.calibrated && missing.note == nil)
        var calibrated = CostModel.defaults
        calibrated.source = "a calibration"
        calibrated.cpu.count = Cost(startSeconds: 0.05, bytesPerSecond: 3e9)
        try calibrated.save(to: dir + "/model.txt")
        // A directory that does not exist: the error carries its errno.
        do {
            try calibrated.save(to: dir + "/none/model.txt")
            Issue.record("saved into a missing directory")
        } catch {
            guard case .io(let failure) = error else { Issue.record("\(error)"); return }
            #expect(failure.errno == ENOENT && failure.path == dir + "/none/model.txt")
        }
        let loaded = CostModel.load(path: dir + "/model.txt")
        #expect(loaded.model == calibrated && loaded.calibrated && loaded.note == nil)
        let fd = open(dir + "/model.txt", O_WRONLY | O_TRUNC)
        _ = "sluice-cost-model 1\ncores x\n".withCString { write(fd, $0, strlen($0)) }
        close(fd)
        let bad = CostModel.load(path: dir + "/model.txt")
        #expect(bad.model == .defaults && !bad.calibrated)
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

    @Test func theCostsAreTheModelsWhateverTheCores() throws {
        let model = CostModel.defaults
        #expect(model.cost(cpu: true, work: .count, literals: 0) == model.cpu.count)
        #expect(model.cost(cpu: false, work: .count, literals: 0) == model.cuda.count)
        #expect(model.cost(cpu: true, work: .hash, literals: 0) == nil)
        #expect(model.cost(cpu: true, work: .scan, literals: 0) == nil)
        let gib = ExecutionPlan.Input(work: .scan, files: 1, bytes: 1 << 30, literals: 1000)
        #expect(CostEstimate(model: model, input: gib) == CostEstimate(model: model, input: gib))
    }

    @Test func implausibleFiguresAreRefusedAndHugeOnesStillPrint() throws {
        let good = CostModel.defaults.fileText
        for bad in ["cpu count 0 1e300", "cpu count 0 1e-320", "cpu count 4000 1e9", "cuda match 0.5", "cpu count inf 1e9"] {
            #expect(throws: CostModel.FileError.self, "\(bad)") { try CostModel(fileText: good + bad + "\n") }
        }
        let manyCores = good.split(separator: "\n").map { $0 == "cores 16" ? "cores 100000" : String($0) }.joined(separator: "\n")
        #expect(throws: CostModel.FileError.self) { try CostModel(fileText: manyCores) }
        // The estimate's text never traps, whatever the sizes.
        var model = CostModel.defaults
        model.cpu.count = CostModel.Cost(startSeconds: 3600, bytesPerSecond: 1e3)
        let huge = ExecutionPlan.Input(work: .count, files: 1, bytes: Int.max / 2)
        #expect(try #require(CostEstimate(model: model, input: huge)).description.contains("cpu "))
    }

    // MARK: What auto picks

    @Test func autoRunsTheBackendEstimatedToFinishFirst() throws {
        let gib4 = 4 << 30
        // count over 4 GiB: cpu 0.050 + 4.29 / 24.78 = 0.223 s against cuda 0.325 + 4.29 / 22.85 = 0.513 s.
        let count = try plan(.init(work: .count, files: 1, bytes: gib4), on: Self.gpuMachine())
        #expect(count.backend.value == .cpu)
        #expect(count.backend.reason == "auto: the CPU backend should finish first (cpu 0.223 s, cuda 0.513 s; see the estimate)")
        #expect(count.estimate?.description.hasPrefix(
            "cpu 0.223 s (start 0.05 s + 4.29 GB at 24.78 GB/s), cuda 0.513 s (start 0.325 s") == true)
        #expect(count.warmUp.value.isEmpty)
        // 1,000 literals, the built-in matcher (Hyperscan does not load on this machine): the CPU
        // up to about 1.35 GB, CUDA beyond.
        let lits1000 = { (bytes: Int) in ExecutionPlan.Input(work: .scan, files: 1, bytes: bytes, literals: 1000) }
        #expect(try plan(lits1000(1 << 30), on: Self.gpuMachine()).backend.value == .cpu)
        let big = try plan(lits1000(2 << 30), on: Self.gpuMachine())
        #expect(big.backend.value == .auto && big.backend.reason.contains("CUDA should finish first"))
        #expect(try plan(.init(work: .scan, files: 1, bytes: 64 << 20, literals: 100_000), on: Self.gpuMachine()).backend.value == .cpu)
        // The cores do not scale the CPU's figures (a scan is not bound by them alone).
        #expect(try plan(lits1000(256 << 20), on: Self.gpuMachine(cores: 2)).backend.value == .cpu)
        // The estimate is a plan line either way.
        #expect(count.lines.last?.name == "estimate" && count.estimate?.cpuIsCheaper == true)
    }

    @Test func autoWeighsHyperscanWhereItLoads() throws {
        // 4 GiB, 1,000 literals: the CPU with Hyperscan (0.050 + 4.29 / 20.7 = 0.257 s) beats
        // CUDA (0.507 s); with the built-in matcher (0.124 + 4.29 / 4.69 = 1.04 s) it does not.
        let input = ExecutionPlan.Input(work: .scan, files: 1, bytes: 4 << 30, literals: 1000)
        var withHyperscan = Self.gpuMachine()
        withHyperscan.hyperscanLoads = true
        let fast = try plan(input, on: withHyperscan)
        #expect(fast.backend.value == .cpu)
        #expect(fast.estimate?.description.hasPrefix("cpu (Hyperscan) 0.257 s") == true)
        #expect(try plan(input, on: Self.gpuMachine()).backend.value == .auto)
        #expect(try plan(input, on: Self.gpuMachine()).estimate?.description.hasPrefix("cpu (built-in matcher) 1.04 s") == true)
        // --cpu-engine builtin weighs the built-in curve even where Hyperscan loads.
        #expect(try plan(input, on: withHyperscan) { $0.cpuScanEngine = .builtin }.backend.value == .auto)
        // count has one curve.
        let count = ExecutionPlan.Input(work: .count, files: 1, bytes: 4 << 30)
        #expect(try plan(count, on: withHyperscan).estimate == plan(count, on: Self.gpuMachine()).estimate)
    }

    @Test func aSetNotYetCachedPaysHyperscansCompile() throws {
        // 1 GiB, 10,000 literals: cached, the CPU (0.090 + 1.07 / 7.9 = 0.226 s) beats CUDA
        // (0.378 + 1.07 / 30.4 = 0.413 s); a first scan adds 10,000 x 32 us = 0.32 s and runs on CUDA.
        var input = ExecutionPlan.Input(work: .scan, files: 1, bytes: 1 << 30, literals: 10_000)
        var machine = Self.gpuMachine()
        machine.hyperscanLoads = true
        let cached = try #require(try plan(input, on: machine).estimate)
        #expect(try plan(input, on: machine).backend.value == .cpu && cached.cpuCompileSeconds == 0)
        input.hyperscanCached = false
        let first = try plan(input, on: machine)
        let estimate = try #require(first.estimate)
        #expect(first.backend.value == .auto)
        #expect(abs(estimate.cpuSeconds - cached.cpuSeconds - 0.32) < 1e-9 && estimate.cudaSeconds == cached.cudaSeconds)
        #expect(estimate.description.hasPrefix("cpu (Hyperscan, not cached: its compile 0.32 s in the start) 0.546 s"))
        // The built-in matcher compiles no Hyperscan database, cached or not.
        let builtin = try #require(try plan(input, on: machine) { $0.cpuScanEngine = .builtin }.estimate)
        #expect(builtin.cpuCompileSeconds == 0)
        #expect(CostModel.hyperscanCompileSeconds(literals: 1_000) == 0.032)
        // Each engine's cost per match.
        input.matchesPerByte = 0.25
        #expect(try plan(input, on: machine).estimate?.cpuMatchSeconds == 3.6e-9)
        #expect(try plan(input, on: machine) { $0.cpuScanEngine = .builtin }.estimate?.cpuMatchSeconds == 5.07e-9)
    }

    @Test func theCPUScanCurveFollowsTheEngineSettingAndHyperscan() {
        #expect(CostModel.CPUScanCurve.of(engine: .auto, hyperscanLoads: true, literals: 1_000) == .hyperscan)
        #expect(CostModel.CPUScanCurve.of(engine: .auto, hyperscanLoads: true, literals: 49_999) == .hyperscan)
        // From 50,000 literals auto runs the built-in matcher, Hyperscan or not.
        #expect(CostModel.CPUScanCurve.of(engine: .auto, hyperscanLoads: true, literals: 50_000) == .builtin)
        #expect(CostModel.CPUScanCurve.of(engine: .auto, hyperscanLoads: false, literals: 1_000) == .builtin)
        #expect(CostModel.CPUScanCurve.of(engine: .builtin, hyperscanLoads: true, literals: 1_000) == .builtin)
        #expect(CostModel.CPUScanCurve.of(engine: .hyperscan, hyperscanLoads: false, literals: 100_000) == .hyperscan)
        let model = CostModel.defaults
        #expect(model.cost(cpu: true, work: .scan, literals: 1000, cpuEngine: .hyperscan) == model.cpu.scan[0].cost)
        #expect(model.cost(cpu: true, work: .scan, literals: 1000, cpuEngine: .builtin) == model.cpuBuiltinScan[0].cost)
        #expect(model.cost(cpu: false, work: .scan, literals: 1000, cpuEngine: .builtin) == model.cuda.scan[0].cost)
        #expect(model.cost(cpu: false, work: .scan, literals: 1000, cpuEngine: .hyperscan) == model.cuda.scan[0].cost)
        #expect(model.cost(cpu: true, work: .count, literals: 0, cpuEngine: .hyperscan) == model.cpu.count)
    }

    @Test func denseMatchesCostTheCPUMoreThanTheGPU() throws {
        var input = ExecutionPlan.Input(work: .scan, files: 1, bytes: 1 << 30, literals: 1000)
        #expect(try plan(input, on: Self.gpuMachine()).backend.value == .cpu)
        // A quarter of a match per byte: 268 million matches at 5.07 ns (CPU) against 0.164 ns (CUDA).
        input.matchesPerByte = 0.25
        let dense = try plan(input, on: Self.gpuMachine())
        #expect(dense.backend.value == .auto)
        let estimate = try #require(dense.estimate)
        #expect(abs(estimate.cpuSeconds - (0.124 + Double(1 << 30) / 4.69e9 + Double(1 << 28) * 5.07e-9)) < 1e-9)
        #expect(abs(estimate.cudaSeconds - (0.368 + Double(1 << 30) / 30.97e9 + Double(1 << 28) * 0.164e-9)) < 1e-9)
        #expect(estimate.description.contains("+ 268435456 matches at 5.07 ns"))
        // count has no matches, whatever the density says.
        var count = ExecutionPlan.Input(work: .count, files: 1, bytes: 1 << 30)
        count.matchesPerByte = 0.25
        #expect(try #require(try plan(count, on: Self.gpuMachine()).estimate).matches == 0)
    }

    @Test func aNamedBackendAnUnknownInputAndTheOtherRulesAreNotOverruled() throws {
        let gib4 = ExecutionPlan.Input(work: .count, files: 1, bytes: 4 << 30)
        #expect(try plan(gib4, on: Self.gpuMachine()) { $0.backend = .cuda }.backend.value == .cuda)
        // Several GPUs: the model's CUDA figures are one GPU's, so no estimate.
        let two = try ExecutionPlan.make(configuration: EngineConfiguration(), devices: .list([0, 1]), input: gib4, machine: Self.gpuMachine())
        #expect(two.estimate == nil && two.backend.value == .auto)
        // `all` is one GPU here (and taken as one where not probed), several where the probe found several.
        #expect(try ExecutionPlan.make(configuration: EngineConfiguration(), devices: .all, input: gib4, machine: Self.gpuMachine()).estimate != nil)
        var twoGPUs = Self.gpuMachine()
        twoGPUs.cuda = .usable([Self.h100, MachineFacts.GPU(ordinal: 1, name: "NVIDIA H100 80GB HBM3", memoryBytes: 80 << 30)])
        #expect(try ExecutionPlan.make(configuration: EngineConfiguration(), devices: .all, input: gib4, machine: twoGPUs).estimate == nil)
        #expect(try ExecutionPlan.make(configuration: EngineConfiguration(), devices: .all, input: gib4, machine: MachineFacts(cores: 2)).estimate != nil)
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

/// The sample of a scan's matches that the cost model weighs.
@Suite struct MatchDensityTests {
    @Test func theDensityIsMatchesPerByteOfPiecesFromTheMiddleOfTheFirstFiles() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        // "ab" repeated: one match of "ab" every 2 bytes, wherever the piece starts (an even offset).
        let abab = dir.write("abab", Array(repeating: Array("ab".utf8), count: 1 << 17).flatMap { $0 })
        // A file of 10 bytes: read whole; "ab" once.
        let short = dir.write("short", Array("xxabxxxxxx".utf8))
        let table = ScanTable(try PatternSet(literals: [Array("ab".utf8)]))
        #expect(MatchDensity.sample([RawPath(abab)], table: table) == 0.5)
        // (32,768 + 1) matches over 65,546 bytes.
        let both = try #require(MatchDensity.sample([RawPath(short), RawPath(abab)], table: table))
        #expect(abs(both - 32769.0 / 65546.0) < 1e-12)
        // Unreadable paths are passed over; none readable: no density.
        #expect(MatchDensity.sample([RawPath(dir.path + "/none"), RawPath(short)], table: table) == 0.1)
        #expect(MatchDensity.sample([RawPath(dir.path + "/none")], table: table) == nil)
        // Only the first pieces count: four files of "ab" and then a file without matches.
        let zeros = dir.write("zeros", [UInt8](repeating: 0, count: 1 << 17))
        #expect(MatchDensity.sample(Array(repeating: RawPath(abab), count: 4) + [RawPath(zeros)], table: table) == 0.5)
    }
}

/// `sluice bench calibrate`'s arithmetic, on figures worked out by hand.
@Suite struct CalibrationFitTests {
    @Test func theLineThroughTwoRunsGivesTheRateAndTheStart() {
        // 100 MB in 0.3 s and 900 MB in 0.7 s: 800 MB in 0.4 s is 2 GB/s; the start is 0.3 - 0.05 = 0.25 s.
        let cost = Calibration.fit(small: (100_000_000, 0.3), large: (900_000_000, 0.7))
        #expect(abs(cost.bytesPerSecond - 2e9) < 1 && abs(cost.startSeconds - 0.25) < 1e-12)
        // A line that would start below 0 starts at 0.
        #expect(Calibration.fit(small: (100_000_000, 0.01), large: (900_000_000, 0.1)).startSeconds == 0)
        // A larger run no slower (noise): its own rate, no start.
        let flat = Calibration.fit(small: (100_000_000, 0.5), large: (900_000_000, 0.5))
        #expect(flat == CostModel.Cost(startSeconds: 0, bytesPerSecond: 1.8e9))
    }

    @Test func whereHyperscanLoadsTheSetsItRunsAreMeasuredAgainOnTheBuiltinMatcher() {
        let inputs = Calibration.Inputs(
            large: "L", small: "S", bytes: (1, 16), sparse: [(1_000, "a"), (10_000, "b"), (100_000, "c")], dense: (1_000, "d"))
        let with = Calibration.commandList(inputs, hyperscanLoads: true)
        // 100,000 literals already run on the built-in matcher under auto: not measured twice.
        #expect(with.filter { $0.work == "builtin-scan" }.map(\.literals) == [1_000, 10_000])
        #expect(with.first { $0.work == "builtin-scan" }?.arguments == ["scan", "--count", "--cpu-engine", "builtin", "-f", "a"])
        #expect(with.map(\.work) == ["count", "scan", "scan", "scan", "builtin-scan", "builtin-scan", "dense", "builtin-dense"])
        #expect(with.last?.arguments == ["scan", "--count", "--cpu-engine", "builtin", "-f", "d"])
        #expect(!Calibration.commandList(inputs, hyperscanLoads: false).contains { $0.work.hasPrefix("builtin-") })
    }

    @Test func theBuiltinMatchersCostPerMatchComesFromItsOwnDenseScan() throws {
        func m(_ work: String, _ literals: Int?, _ rate: Double, matches: Int = 0) -> Calibration.Measurement {
            Calibration.Measurement(
                backend: "cpu", work: work, literals: literals, smallSeconds: 0, largeSeconds: 0,
                cost: CostModel.Cost(startSeconds: 0.1, bytesPerSecond: rate), matches: matches)
        }
        // 1 GB: Hyperscan's dense scan 1 ns a byte against 0.1 sparse; the built-in's 1 against 0.25;
        // 0.25 matches a byte: 3.6 and 3 ns a match.
        let measured = [
            m("count", nil, 20e9), m("scan", 1_000, 10e9), m("builtin-scan", 1_000, 4e9),
            m("dense", 1_000, 1e9, matches: 250_000_000), m("builtin-dense", 1_000, 1e9, matches: 250_000_000),
        ]
        let model = Calibration.model(measured, cuda: false, bytes: 1_000_000_000)
        #expect(abs(model.cpu.matchSeconds - 3.6e-9) < 1e-18)
        #expect(abs(model.cpuBuiltinMatchSeconds - 3e-9) < 1e-18)
        // Without a builtin-dense run (no Hyperscan), the built-in matcher's is the dense scan's.
        let alone = Calibration.model(Array(measured.prefix(2)) + [measured[3]], cuda: false, bytes: 1_000_000_000)
        #expect(alone.cpuBuiltinMatchSeconds == alone.cpu.matchSeconds)
        #expect(throws: CostModel.FileError.self) { try CostModel(fileText: CostModel.defaults.fileText + "cuda builtin-match 1e-9\n") }
    }

    @Test func theBuiltinCurveTakesTheScanPointsItDidNotMeasure() throws {
        func m(_ work: String, _ literals: Int, _ rate: Double, backend: String = "cpu") -> Calibration.Measurement {
            Calibration.Measurement(
                backend: backend, work: work, literals: literals, smallSeconds: 0, largeSeconds: 0,
                cost: CostModel.Cost(startSeconds: 0.1, bytesPerSecond: rate), matches: 0)
        }
        let scan = [1_000, 10_000, 100_000].map { CostModel.ScanPoint(literals: $0, cost: CostModel.Cost(startSeconds: 0.1, bytesPerSecond: 9e9)) }
        #expect(Calibration.builtinScan([m("scan", 1_000, 9e9)], cpuScan: scan) == nil)
        let builtin = try #require(Calibration.builtinScan(
            [m("builtin-scan", 10_000, 3e9), m("builtin-scan", 1_000, 4e9), m("builtin-scan", 10_000, 1e9, backend: "cuda")],
            cpuScan: scan))
        // The model sorts the points it is given by literal count.
        let model = CostModel(cpu: CostModel.defaults.cpu, cpuBuiltinScan: builtin, cuda: CostModel.defaults.cuda, cores: 2, source: "t")
        #expect(model.cpuBuiltinScan.map(\.literals) == [1_000, 10_000, 100_000])
        #expect(model.cpuBuiltinScan.map(\.cost.bytesPerSecond) == [4e9, 3e9, 9e9])
    }

    @Test func theCostPerMatchIsTheDenseScansExtraTimePerByteOverItsMatchesPerByte() {
        let sparse = CostModel.Cost(startSeconds: 0.1, bytesPerSecond: 4e9)
        let dense = CostModel.Cost(startSeconds: 0.1, bytesPerSecond: 1e9)
        // 1 ns - 0.25 ns per byte over 0.25 matches per byte: 3 ns a match.
        #expect(abs(Calibration.matchSeconds(dense: dense, sparse: sparse, matchesPerByte: 0.25) - 3e-9) < 1e-18)
        #expect(Calibration.matchSeconds(dense: sparse, sparse: dense, matchesPerByte: 0.25) == 0)
        #expect(Calibration.matchSeconds(dense: dense, sparse: sparse, matchesPerByte: 0) == 0)
    }

    /// The copy engine must beat mapped memory by more than 3 % to be taken.
    @Test func theCopyEngineIsTakenOnlyWhenClearlyFaster() {
        #expect(Calibration.copyEngineFaster(engine: 0.90, mapped: 1.00))
        #expect(!Calibration.copyEngineFaster(engine: 0.98, mapped: 1.00))
        #expect(!Calibration.copyEngineFaster(engine: 1.00, mapped: 1.00))
        #expect(!Calibration.copyEngineFaster(engine: 0.291, mapped: 0.275))
    }

    @Test func theMatchCountIsReadFromScanCountsLastLine() {
        #expect(Calibration.matchCount("/var/tmp/x/large.txt:12345\n") == 12345)
        #expect(Calibration.matchCount("sluice: a note\n/a:b/large.txt:7\n") == 7)
        #expect(Calibration.matchCount("") == 0)
    }
}

/// The defaults replayed against the whole commands they were fitted to
/// (`benchmarks/RESULTS.md`, "Cost model defaults": runs 54 and 55, seconds,
/// the best of the four runs of each row, on the H100 machine, whose CPU
/// backend ran the built-in matcher): on every row `auto` must run a backend
/// within 10 % of the faster one, as issue 19 asks. This guards the model's
/// arithmetic (interpolation, matches, the built-in curve), not its figures,
/// which only a GPU run checks. The Hyperscan curve has no such rows yet.
@Suite struct CostModelReplayTests {
    /// (work, literals, bytes, matches per byte, measured cpu s, measured cuda s).
    static let rows: [(ExecutionPlan.Input.Work, Int, Int, Double, Double, Double)] = [
        (.count, 0, 64 << 20, 0, 0.035, 0.314), (.scan, 1000, 64 << 20, 0, 0.063, 0.361),
        (.scan, 10_000, 64 << 20, 0, 0.084, 0.330), (.scan, 100_000, 64 << 20, 0, 0.314, 0.429),
        (.scan, 10_000, 64 << 20, 0.2676, 0.234, 0.375),
        (.count, 0, 1 << 30, 0, 0.093, 0.376), (.scan, 1000, 1 << 30, 0, 0.353, 0.403),
        (.scan, 10_000, 1 << 30, 0, 0.402, 0.413), (.scan, 100_000, 1 << 30, 0, 0.836, 0.522),
        (.scan, 10_000, 1 << 30, 0.2676, 1.920, 0.484),
        (.count, 0, 4 << 30, 0, 0.223, 0.427), (.scan, 1000, 4 << 30, 0, 1.040, 0.507),
        (.scan, 10_000, 4 << 30, 0, 1.179, 0.519), (.scan, 100_000, 4 << 30, 0, 2.400, 0.640),
        (.scan, 10_000, 4 << 30, 0.2676, 7.063, 0.731),
    ]

    @Test func theDefaultsRunTheFasterBackendOnEveryMeasuredRow() throws {
        for (work, literals, bytes, density, cpu, cuda) in Self.rows {
            var input = ExecutionPlan.Input(work: work, files: 1, bytes: bytes, literals: literals)
            input.matchesPerByte = density
            let estimate = try #require(CostEstimate(model: .defaults, input: input, cpuScan: .builtin))
            let ran = estimate.cpuIsCheaper ? cpu : cuda
            #expect(ran <= 1.10 * min(cpu, cuda), "\(work) \(literals) literals, \(bytes) bytes, density \(density): \(estimate)")
        }
    }
}

/// `SLUICE_COST_MODEL`: a command reads the calibration it names, or none.
@Suite struct CostModelEnvironmentTests {
    @Test func theVariableNamesTheFileOrTheDefaults() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var model = CostModel.defaults
        model.source = "a file named by the variable"
        let path = dir.path + "/model.txt"
        try model.save(to: path)
        // The tests' children run with SLUICE_COST_MODEL=defaults; a shell sets it for one command.
        let named = runShell("SLUICE_COST_MODEL=\"$1\" \"$0\" doctor", [path])
        #expect(named.stdout.contains("a file named by the variable") && named.stdout.contains(path), "\(named.stdout)")
        let defaults = run([sluiceExecutable, "doctor"])
        #expect(defaults.stdout.contains("the defaults measured on an H100 machine"))
        #expect(defaults.stdout.contains("none (SLUICE_COST_MODEL=defaults"), "\(defaults.stdout)")
    }
}

/// A command plans for what it reads: with `--shard I/N`, its share of the walk.
@Suite struct PlanInputShareTests {
    @Test func aShardPlansForItsShareOfTheInput() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let a = dir.write("a", [UInt8](repeating: 7, count: 1 << 20))
        let b = dir.write("b", [UInt8](repeating: 7, count: 1 << 20))
        let whole = run([sluiceExecutable, "count", "--server", "never", "--verbose", a, b])
        #expect(whole.stderr.contains("enough for the input (2 files, 2 MiB in all"), "\(whole.stderr)")
        let half = run([sluiceExecutable, "count", "--server", "never", "--verbose", "--shard", "1/2", a, b])
        #expect(half.stderr.contains("enough for the input (1 file, 1 MiB in all"), "\(half.stderr)")
        #expect(half.stderr.contains("estimate: cpu "), "\(half.stderr)")
    }
}

/// `bench calibrate --text/--sparse/--dense`: data like the user's replaces
/// the generated text and sets.
@Suite struct CalibrationInputsTests {
    @Test func givenDataReplacesTheGeneratedTextAndSets() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        // 80 MiB of text; calibrating over 64 MiB takes its first 64 MiB.
        let text = (0..<(80 << 20)).map { UInt8(ascii: "a") + UInt8($0 % 23) }
        let textPath = dir.write("text.txt", text)
        let big = dir.write("big.txt", Array((0..<300).flatMap { "literal\($0)\n".utf8 }))
        let small = dir.write("small.txt", Array("one\ntwo\n\nthree\n".utf8))
        let dense = dir.write("dense.txt", Array("a\nb\n".utf8))
        var options = Calibration.Options(megabytes: 64, repeats: 1, directory: dir.path)
        options.text = textPath
        options.sparse = [big, small]
        options.dense = dense
        let scratch = try ScratchFiles(under: dir.path)
        defer { scratch.remove() }
        var written: [String] = []
        let inputs = try Calibration.prepareInputs(options, scratch: scratch, written: &written)
        // Sorted by literal count; blank lines are not literals (as scan -f reads them).
        #expect(inputs.sparse.map(\.literals) == [3, 300])
        #expect(inputs.sparse.map(\.path) == [small, big])
        #expect(inputs.dense.literals == 2 && inputs.dense.path == dense)
        #expect(inputs.bytes.large == 64 << 20 && inputs.bytes.small == 4 << 20)
        let large = try readWholeFile(inputs.large, what: "large")
        #expect(large == Array(text[0..<(64 << 20)]))
        #expect(try readWholeFile(inputs.small, what: "small") == Array(text[0..<(4 << 20)]))
        for path in written { unlink(path) }
    }

    @Test func tooLittleTextOrAnEmptyPatternFileIsAnErrorNamingIt() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let scratch = try ScratchFiles(under: dir.path)
        defer { scratch.remove() }
        var written: [String] = []
        var options = Calibration.Options(megabytes: 64, repeats: 1, directory: dir.path)
        options.text = dir.write("short.txt", Array(repeating: 0x61, count: 1 << 20))
        do {
            _ = try Calibration.prepareInputs(options, scratch: scratch, written: &written)
            Issue.record("a 1 MiB text was taken")
        } catch {
            guard case .invalidConfiguration(let why) = error else { Issue.record("\(error)"); return }
            #expect(why.contains("short.txt") && why.contains("64 MiB"))
        }
        let empty = dir.write("empty.txt", Array("\n\n".utf8))
        #expect(throws: PipelineError.self) { _ = try Calibration.literalCount(empty) }
        #expect(throws: PipelineError.self) { _ = try Calibration.literalCount(dir.path + "/missing.txt") }
    }
}
