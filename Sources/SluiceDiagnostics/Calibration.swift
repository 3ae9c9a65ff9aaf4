#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Sluice
import SluiceCore
import SluiceThreads

/// `sluice bench calibrate`: measures this machine's `CostModel` from whole
/// commands, as `auto` will run them.
///
/// Each cost is the line through two runs of the same command (this
/// executable, as a child process) over a word text read warm from the page
/// cache: of `megabytes` MiB and of a sixteenth of that. The extra bytes over
/// the extra time give the rate; the line's value at 0 bytes gives the start
/// (process, backend, ring and pattern set-up). A tiny file would start
/// faster than any real input (a GPU ring fitted to it pins almost nothing),
/// so the start comes from sizes a run of its kind reads. The smaller size is
/// kept as small as that allows because `auto` decides where the two lines
/// cross, which is at small inputs, and a run's time is not quite a line.
/// Scans count matches (`--count`) of 1,000, 10,000 and 100,000 literals
/// where matches are rare; where Hyperscan loads, the sets it runs are scanned
/// again with the built-in matcher (`CostModel.cpuBuiltinScan`); a scan of the
/// text's 1,000 most common words, where they are dense, gives each backend's
/// cost per match.
public enum Calibration {
    /// What to measure.
    public struct Options: Sendable {
        /// Size of the large file, in MiB.
        public var megabytes: Int
        /// Runs of each command; the fastest counts.
        public var repeats: Int
        /// Where the scratch files go (removed at the end).
        public var directory: String
        /// Data like the machine's own: a text whose first `megabytes` MiB
        /// (all of it, when shorter) replace the generated word text.
        public var text: String?
        /// Pattern files for the sparse scans (each file's literal count is
        /// its point of the model), replacing the generated sets.
        public var sparse: [String] = []
        /// The pattern file of the dense scan (many matches), replacing the
        /// text's most common words.
        public var dense: String?

        /// Options with the defaults: 1 GiB, best of 2, under /var/tmp.
        public init(megabytes: Int = 1024, repeats: Int = 2, directory: String = "/var/tmp") {
            self.megabytes = megabytes
            self.repeats = repeats
            self.directory = directory
        }
    }

    /// The files a calibration runs its commands over.
    struct Inputs {
        var large: String
        var small: String
        var bytes: (small: Int, large: Int)
        /// (literal count, pattern file), in increasing count.
        var sparse: [(literals: Int, path: String)]
        var dense: (literals: Int, path: String)
    }

    /// One fitted cost and the two runs it came from.
    ///
    /// The smaller file is the first `smallShare`-th of the larger.
    public struct Measurement: Sendable {
        /// "cpu" or "cuda".
        public var backend: String
        /// "count", "scan", "dense", or "builtin-scan" / "builtin-dense" (the CPU with `--cpu-engine builtin`).
        public var work: String
        /// A scan's literal count; nil for count.
        public var literals: Int?
        /// Fastest run over the smaller file.
        public var smallSeconds: Double
        /// Fastest run over the larger file.
        public var largeSeconds: Double
        /// The cost fitted from them.
        public var cost: CostModel.Cost
        /// Matches the scan of the larger file counted (0 for count).
        public var matches: Int
    }

    /// The calibrated model, its measurements, and notes (a backend not measured, and why).
    public struct Outcome: Sendable {
        /// The model: measured costs, and the defaults' for a backend that could not run.
        public var model: CostModel
        /// Every cost measured.
        public var measurements: [Measurement]
        /// What was not measured and why.
        public var notes: [String]
    }

    /// The smaller file is this fraction (1/n) of the larger.
    static let smallShare = 16
    /// Literal counts of the scans measured.
    static let literalCounts = [1_000, 10_000, 100_000]
    /// Literals of the dense scan: the text's most common words.
    static let denseLiterals = 1_000

    /// Measures both backends (CUDA where a GPU is usable) and returns the model.
    public static func run(_ options: Options, log: (String) -> Void) throws(PipelineError) -> Outcome {
        let scratch = try ScratchFiles(under: options.directory)
        var written: [String] = []
        defer {
            for path in written { unlink(path) }
            scratch.remove()
        }
        let inputs = try prepareInputs(options, scratch: scratch, written: &written)
        log("\(inputs.bytes.large >> 20) MiB of text and \(inputs.sparse.count + 1) literal sets ready under \(scratch.path)")
        var notes: [String] = []
        var backends = ["cpu"]
        if let why = try cudaUnusable(small: inputs.small, scratch: scratch) {
            notes.append("CUDA not measured (\(why)): its costs are the defaults")
        } else {
            backends.append("cuda")
        }
        let commands = commandList(inputs, hyperscanLoads: MachineFacts.probe(.beforeWarmUp).probingHyperscan().hyperscanLoads)
        var measurements: [Measurement] = []
        var copyEngineFaster: Bool?
        if backends.contains("cuda"), let first = inputs.sparse.first {
            copyEngineFaster = measureCopyPath(
                literals: first, inputs: inputs, scratch: scratch, repeats: options.repeats, log: log, notes: &notes)
        }
        for backend in backends {
            // CUDA's costs are those of the copy path `auto` will take.
            let copyPath = backend == "cuda" ? ["--ingest-copy", copyEngineFaster == true ? "engine" : "mapped"] : []
            for command in commands where backend == "cpu" || !command.work.hasPrefix("builtin-") {
                let m = try measure(
                    backend: backend, work: command.work, literals: command.literals,
                    arguments: command.arguments + ["--server", "never", "--backend", backend, "--quiet"] + copyPath,
                    small: inputs.small, large: inputs.large, bytes: inputs.bytes, scratch: scratch, repeats: options.repeats)
                let matches = command.work == "count" ? "" : " (\(m.matches) matches)"
                log("\(backend) \(command.work)\(command.literals.map { " \($0)" } ?? "")\(matches): \(seconds(m.smallSeconds)) over "
                    + "\(inputs.bytes.small >> 20) MiB, \(seconds(m.largeSeconds)) over \(inputs.bytes.large >> 20) MiB")
                measurements.append(m)
            }
        }
        var model = model(
            measurements, cuda: backends.contains("cuda"), bytes: inputs.bytes.large,
            denseLiterals: inputs.dense.literals, data: options.text)
        model.cudaCopyEngineFaster = copyEngineFaster
        return Outcome(model: model, measurements: measurements, notes: notes)
    }

    /// The commands measured on each backend: count; the sparse scans; where
    /// Hyperscan loads, the sparse scans that `auto` gives it again with the
    /// built-in matcher ("builtin-scan", CPU only); the dense scan, which
    /// gives the cost per match, and where Hyperscan runs it, the same with
    /// the built-in matcher ("builtin-dense", CPU only).
    static func commandList(_ inputs: Inputs, hyperscanLoads: Bool) -> [(work: String, literals: Int?, arguments: [String])] {
        func hyperscanRuns(_ literals: Int) -> Bool {
            CostModel.CPUScanCurve.of(engine: .auto, hyperscanLoads: hyperscanLoads, literals: literals) == .hyperscan
        }
        let builtin = inputs.sparse.filter { hyperscanRuns($0.literals) }
        return [("count", nil, ["count"])]
            + inputs.sparse.map { ("scan", $0.literals, ["scan", "--count", "-f", $0.path]) }
            + builtin.map { ("builtin-scan", $0.literals, ["scan", "--count", "--cpu-engine", "builtin", "-f", $0.path]) }
            + [("dense", inputs.dense.literals, ["scan", "--count", "-f", inputs.dense.path])]
            + (hyperscanRuns(inputs.dense.literals)
                ? [("builtin-dense", inputs.dense.literals, ["scan", "--count", "--cpu-engine", "builtin", "-f", inputs.dense.path])]
                : [])
    }

    /// Which copy path `--ingest-copy auto` should take here, from CUDA
    /// scans of the large file with each; nil, with a note, where the copy
    /// engine could not run or the two paths counted different matches.
    static func measureCopyPath(
        literals: (literals: Int, path: String), inputs: Inputs, scratch: ScratchFiles, repeats: Int,
        log: (String) -> Void, notes: inout [String]
    ) -> Bool? {
        do {
            let times = try compareCopyPaths(literals: literals.path, large: inputs.large, scratch: scratch, repeats: repeats)
            log("cuda copy path, scan \(literals.literals) over \(inputs.bytes.large >> 20) MiB: engine \(seconds(times.engine)), "
                + "mapped \(seconds(times.mapped))")
            return copyEngineFaster(engine: times.engine, mapped: times.mapped)
        } catch {
            notes.append("copy path not measured (\(error.message)): auto reads mapped memory")
            return nil
        }
    }

    /// The copy engine is taken only where it is faster by more than
    /// `margin` (a share): mapped memory needs no GPU memory and no copy, so
    /// a tie, or a gain within run-to-run noise, keeps it.
    static func copyEngineFaster(engine: Double, mapped: Double, margin: Double = 0.03) -> Bool {
        engine < mapped * (1 - margin)
    }

    /// The fastest CUDA scan of the large file with each copy path
    /// (`--ingest-copy engine` and `mapped`) after one untimed run, taking
    /// turns with the order swapped each round; the two must count the same
    /// matches.
    static func compareCopyPaths(
        literals: String, large: String, scratch: ScratchFiles, repeats: Int
    ) throws(PipelineError) -> (engine: Double, mapped: Double) {
        let scan = ["scan", "--count", "-f", literals, "--server", "never", "--backend", "cuda", "--quiet", "--ingest-copy"]
        _ = try timed(scan + ["mapped", large], scratch: scratch)
        var best = ["engine": Double.infinity, "mapped": Double.infinity]
        var counts: [String: Int] = [:]
        for round in 0..<max(1, repeats) {
            for path in round % 2 == 0 ? ["engine", "mapped"] : ["mapped", "engine"] {
                let run = try timed(scan + [path, large], scratch: scratch)
                best[path] = min(best[path]!, run.seconds)
                counts[path] = matchCount(run.output)
            }
        }
        guard counts["engine"] == counts["mapped"] else {
            throw .malformed(
                what: "calibration", detail: "the copy engine counted \(counts["engine"] ?? 0) matches, mapped memory \(counts["mapped"] ?? 0)")
        }
        return (best["engine"]!, best["mapped"]!)
    }

    /// Why CUDA cannot be measured here, or nil where it can: asked of a
    /// child (`count --backend cuda`), never of this process, which must
    /// hold no CUDA context while it measures. Where the GPU is not kept
    /// initialized (persistence mode off), the first process to open it pays
    /// for its start; a parent holding it open would spare every child that
    /// cost and the model would promise CUDA starts no real command gets.
    static func cudaUnusable(small: String, scratch: ScratchFiles) throws(PipelineError) -> String? {
        let outcome = try ChildProcess.run(
            arguments: ["count", "--server", "never", "--backend", "cuda", "--quiet", small],
            outputPath: scratch.path + "/child.out", timeout: .seconds(120))
        guard outcome.status != 0 || outcome.timedOut else { return nil }
        let lines = outcome.output.split(separator: "\n")
        let said = (lines.first { $0.hasPrefix("sluice:") } ?? lines.last).map(String.init) ?? ""
        return "`sluice count --backend cuda` exited \(outcome.status)\(outcome.timedOut ? " (timed out)" : ""): \(said.suffix(300))"
    }

    /// The fastest of `repeats` runs over each file, and the cost they fit.
    static func measure(
        backend: String, work: String, literals: Int?, arguments: [String], small: String, large: String,
        bytes: (small: Int, large: Int), scratch: ScratchFiles, repeats: Int
    ) throws(PipelineError) -> Measurement {
        // Once untimed, so that the page cache holds the file and the kernel's CUBIN cache is warm.
        let matches = matchCount(try timed(arguments + [large], scratch: scratch).output)
        var smallBest = Double.infinity
        var largeBest = Double.infinity
        for _ in 0..<max(1, repeats) {
            smallBest = min(smallBest, try timed(arguments + [small], scratch: scratch).seconds)
            largeBest = min(largeBest, try timed(arguments + [large], scratch: scratch).seconds)
        }
        return Measurement(
            backend: backend, work: work, literals: literals, smallSeconds: smallBest, largeSeconds: largeBest,
            cost: fit(small: (bytes.small, smallBest), large: (bytes.large, largeBest)), matches: matches)
    }

    /// The line through two runs: rate = the extra bytes over the extra
    /// time, start = the smaller run less its bytes at that rate, never
    /// below 0. Where the larger run was not slower (noise), the larger run's
    /// own rate and no start, so that noise never yields a negative or
    /// infinite rate.
    static func fit(small: (bytes: Int, seconds: Double), large: (bytes: Int, seconds: Double)) -> CostModel.Cost {
        let extraSeconds = large.seconds - small.seconds
        guard extraSeconds > 0.001, large.bytes > small.bytes else {
            return CostModel.Cost(startSeconds: 0, bytesPerSecond: Double(large.bytes) / max(large.seconds, 0.001))
        }
        let rate = Double(large.bytes - small.bytes) / extraSeconds
        return CostModel.Cost(startSeconds: max(0, small.seconds - Double(small.bytes) / rate), bytesPerSecond: rate)
    }

    /// The count `scan --count` printed for its one file (`PATH:N`); 0 when none.
    static func matchCount(_ output: String) -> Int {
        output.split(separator: "\n").reversed().lazy.compactMap { line in
            line.lastIndex(of: ":").flatMap { Int(line[line.index(after: $0)...]) }
        }.first ?? 0
    }

    /// Seconds one child command took, and its output; an exit other than
    /// 0 or 1 (a scan with no match) is an error naming the command and its output.
    static func timed(_ arguments: [String], scratch: ScratchFiles) throws(PipelineError) -> (seconds: Double, output: String) {
        let outcome = try ChildProcess.run(
            arguments: arguments, outputPath: scratch.path + "/child.out", timeout: .seconds(600))
        guard outcome.status == 0 || outcome.status == 1, !outcome.timedOut else {
            throw .invalidConfiguration(
                "calibration: `sluice \(arguments.joined(separator: " "))` exited \(outcome.status): \(outcome.output.suffix(400))")
        }
        return (outcome.seconds, outcome.output)
    }

    /// The text and literal sets: those given, else generated; the smaller
    /// file is always the first `smallShare`-th of the larger.
    static func prepareInputs(
        _ options: Options, scratch: ScratchFiles, written: inout [String]
    ) throws(PipelineError) -> Inputs {
        let text = try options.text.map { path throws(PipelineError) in
            try readFilePrefix(path, limit: options.megabytes << 20, what: "calibration text")
        } ?? CalibrationData.text(bytes: options.megabytes << 20)
        guard text.count >= 64 << 20 else {
            throw .invalidConfiguration("the calibration text \(options.text ?? "") has \(text.count) bytes; give at least 64 MiB")
        }
        let smallBytes = text.count / smallShare
        let large = try scratch.write("large.txt", text)
        let small = try scratch.write("small.txt", Array(text[0..<smallBytes]))
        written += [large, small]
        var sparse: [(literals: Int, path: String)] = []
        if options.sparse.isEmpty {
            for count in literalCounts {
                let path = try scratch.write("literals-\(count).txt", CalibrationData.literals(count: count))
                written.append(path)
                sparse.append((count, path))
            }
        } else {
            for path in options.sparse { sparse.append((try literalCount(path), path)) }
            sparse.sort { $0.literals < $1.literals }
        }
        let dense: (literals: Int, path: String)
        if let path = options.dense {
            dense = (try literalCount(path), path)
        } else {
            let path = try scratch.write("literals-dense.txt", CalibrationData.commonWords(count: denseLiterals))
            written.append(path)
            dense = (denseLiterals, path)
        }
        return Inputs(large: large, small: small, bytes: (smallBytes, text.count), sparse: sparse, dense: dense)
    }

    /// The literals a pattern file holds (as `scan -f` reads it); none is an error naming it.
    static func literalCount(_ path: String) throws(PipelineError) -> Int {
        let count = PatternSet.parseLines(try readWholeFile(path, what: "pattern file")).count
        guard count > 0 else { throw .invalidConfiguration("the pattern file \(path) holds no literal") }
        return count
    }

    /// The model from the measurements; CUDA's costs are the defaults' when it was not measured.
    static func model(
        _ measurements: [Measurement], cuda: Bool, bytes: Int, denseLiterals: Int = denseLiterals,
        data: String? = nil
    ) -> CostModel {
        // The cost per match of the dense run `work` on `backend` against the scan curve `sparse`.
        func perMatch(_ backend: String, _ work: String, against sparse: [CostModel.ScanPoint]) -> Double? {
            guard let dense = measurements.first(where: { $0.backend == backend && $0.work == work }),
                let sparse = CostModel.interpolate(sparse, literals: denseLiterals)
            else { return nil }
            return matchSeconds(dense: dense.cost, sparse: sparse, matchesPerByte: Double(dense.matches) / Double(bytes))
        }
        func costs(_ backend: String, _ fallback: CostModel.BackendCosts) -> CostModel.BackendCosts {
            let rows = measurements.filter { $0.backend == backend }
            guard let count = rows.first(where: { $0.work == "count" }) else { return fallback }
            let scan = rows.filter { $0.work == "scan" }.compactMap { m in
                m.literals.map { CostModel.ScanPoint(literals: $0, cost: m.cost) }
            }
            var costs = CostModel.BackendCosts(count: count.cost, scan: scan, matchSeconds: fallback.matchSeconds)
            // Against the points as the model sorts them.
            costs.matchSeconds = perMatch(backend, "dense", against: costs.scan) ?? fallback.matchSeconds
            return costs
        }
        let defaults = CostModel.defaults
        let source = "sluice bench calibrate on \(utcDate()) over \(bytes >> 20) MiB"
            + (data.map { " of \($0)" } ?? "") + (cuda ? "" : " (CUDA: the defaults)")
        let cpu = costs("cpu", defaults.cpu)
        let builtin = builtinScan(measurements, cpuScan: cpu.scan)
        return CostModel(
            cpu: cpu, cpuBuiltinScan: builtin,
            cpuBuiltinMatchSeconds: perMatch("cpu", "builtin-dense", against: builtin ?? cpu.scan), cuda: costs("cuda", defaults.cuda),
            cores: ProcessorCount.online, source: source)
    }

    /// The CPU's scan points with the built-in matcher: those measured with
    /// `--cpu-engine builtin`, and where none was measured at a count, the
    /// `cpuScan` point (which `auto` ran on the built-in matcher: from
    /// `AutoScanEngine.builtinFromLiterals`, or everywhere without
    /// Hyperscan); nil where none was measured (the model then takes `cpuScan`).
    static func builtinScan(_ measurements: [Measurement], cpuScan: [CostModel.ScanPoint]) -> [CostModel.ScanPoint]? {
        let measured = measurements.filter { $0.backend == "cpu" && $0.work == "builtin-scan" }.compactMap { m in
            m.literals.map { CostModel.ScanPoint(literals: $0, cost: m.cost) }
        }
        guard !measured.isEmpty else { return nil }
        let counts = Set(measured.map(\.literals))
        return measured + cpuScan.filter { !counts.contains($0.literals) }
    }

    /// Seconds per match: what the dense scan spends per byte beyond a
    /// sparse scan of as many literals, over the matches per byte; 0 where
    /// the dense scan was no slower or found nothing.
    static func matchSeconds(dense: CostModel.Cost, sparse: CostModel.Cost, matchesPerByte: Double) -> Double {
        guard matchesPerByte > 0 else { return 0 }
        return max(0, (1 / dense.bytesPerSecond - 1 / sparse.bytesPerSecond) / matchesPerByte)
    }

    static func seconds(_ value: Double) -> String { "\(Double(Int((value * 1000).rounded())) / 1000) s" }

    /// "2026-12-07 13:05 UTC".
    static func utcDate() -> String {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday)) \(two(parts.tm_hour)):\(two(parts.tm_min)) UTC"
    }
}

/// The calibration's inputs: a word text and literal sets drawn from it.
enum CalibrationData {
    /// `bytes` bytes of lines of pseudo-words (a vocabulary of 5,000 words
    /// of 3-10 letters, drawn with a skew so some are common): an 8 MiB
    /// block made once and repeated, ending at the size asked.
    static func text(bytes: Int) -> [UInt8] {
        var random = SplitMix64(seed: 20261207)
        let words = vocabulary
        var block: [UInt8] = []
        block.reserveCapacity(min(bytes, 8 << 20) + 64)
        while block.count < min(bytes, 8 << 20) {
            for w in 0..<Int(6 + random.next() % 9) {
                if w > 0 { block.append(UInt8(ascii: " ")) }
                // The square of a uniform draw favours the low ranks.
                let u = Double(random.next() % 1_000_000) / 1_000_000
                block += words[Int(u * u * Double(words.count))]
            }
            block.append(UInt8(ascii: "\n"))
        }
        var text: [UInt8] = []
        text.reserveCapacity(bytes)
        while text.count < bytes { text += block.prefix(bytes - text.count) }
        return text
    }

    /// `count` literals, one per line: 20 words of 6 letters or more from
    /// the rarer half of the vocabulary (so that every set finds matches,
    /// and about as many), the rest random 12-letter strings that occur nowhere.
    static func literals(count: Int) -> [UInt8] {
        var random = SplitMix64(seed: UInt64(count))
        let found = vocabulary[(vocabulary.count / 2)...].filter { $0.count >= 6 }.prefix(min(20, count))
        var out: [UInt8] = []
        for word in found { out += word + [UInt8(ascii: "\n")] }
        for _ in found.count..<count {
            out += (0..<12).map { _ in UInt8(ascii: "a") + UInt8(random.next() % 26) }
            out.append(UInt8(ascii: "\n"))
        }
        return out
    }

    /// The `count` most common words of the text (the lowest ranks), one per line.
    static func commonWords(count: Int) -> [UInt8] {
        vocabulary.prefix(count).flatMap { $0 + [UInt8(ascii: "\n")] }
    }

    /// 5,000 words of 3-10 random letters, the same on every run.
    static let vocabulary: [[UInt8]] = {
        var random = SplitMix64(seed: 5000)
        return (0..<5000).map { _ in
            (0..<Int(3 + random.next() % 8)).map { _ in UInt8(ascii: "a") + UInt8(random.next() % 26) }
        }
    }()
}
