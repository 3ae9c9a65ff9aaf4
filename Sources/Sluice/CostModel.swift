#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCache
import SluiceCPU
import SluiceSystem

/// What a whole command costs on each backend, as seconds before the first
/// byte plus bytes over a rate, so that `auto` runs the backend that should
/// finish first (`ExecutionPlan.chooseBackend`).
///
/// The constants come from `sluice bench calibrate` on the machine that runs
/// (`CostModel.load`), else from `defaults`, measured on the H100 machine of
/// `benchmarks/RESULTS.md`. A scan's cost depends on its literal count: the
/// model holds a few measured counts and interpolates between them.
public struct CostModel: Sendable, Equatable {
    /// One backend's cost of one kind of work.
    public struct Cost: Sendable, Equatable {
        /// Seconds a whole command takes before its first byte is worked on
        /// (process, backend and pattern set-up).
        public var startSeconds: Double
        /// Bytes per second after that.
        public var bytesPerSecond: Double

        /// A cost of `startSeconds` and `bytesPerSecond`.
        public init(startSeconds: Double, bytesPerSecond: Double) {
            self.startSeconds = startSeconds
            self.bytesPerSecond = bytesPerSecond
        }

        /// The estimated seconds of a command over `bytes`.
        public func seconds(bytes: Int) -> Double { startSeconds + Double(bytes) / bytesPerSecond }
    }

    /// A scan's cost at one literal count.
    public struct ScanPoint: Sendable, Equatable {
        /// Literals in the pattern set measured.
        public var literals: Int
        /// The cost measured with them.
        public var cost: Cost

        /// The cost of a scan for `literals` literals.
        public init(literals: Int, cost: Cost) {
            self.literals = literals
            self.cost = cost
        }
    }

    /// One backend's costs.
    public struct BackendCosts: Sendable, Equatable {
        /// `count`'s cost.
        public var count: Cost
        /// A scan's cost at the literal counts measured, in increasing order
        /// (on text where matches are rare).
        public var scan: [ScanPoint]
        /// Seconds a scan spends per match found, beyond its cost per byte.
        public var matchSeconds: Double

        /// Costs of `count`, of scans at the counts of `scan` (sorted here), and per match.
        public init(count: Cost, scan: [ScanPoint], matchSeconds: Double = 0) {
            self.count = count
            self.scan = scan.sorted { $0.literals < $1.literals }
            self.matchSeconds = matchSeconds
        }
    }

    /// The CPU backend's costs; its scans with Hyperscan (which `auto`
    /// runs below `AutoScanEngine.builtinFromLiterals` literals where libhs.so.5 loads).
    public var cpu: BackendCosts
    /// The CPU backend's scan costs with the built-in matcher at every
    /// literal count: what a scan costs where Hyperscan does not run it
    /// (libhs.so.5 missing, `--cpu-engine builtin`). Hyperscan is several
    /// times faster on small sets, so one curve for both would send `auto`
    /// to the wrong backend on one kind of machine or the other.
    public var cpuBuiltinScan: [ScanPoint]
    /// Seconds a CPU scan with the built-in matcher spends per match
    /// (`cpu.matchSeconds` is Hyperscan's).
    public var cpuBuiltinMatchSeconds: Double
    /// The CUDA backend's costs.
    public var cuda: BackendCosts
    /// CPU cores of the machine measured, for reports. Rates are not scaled
    /// to another machine's cores: a scan on the CPU backend is not bound by
    /// its cores alone (2 cores scanned 1,000 literals at 0.33 ns a byte,
    /// 16 at 0.29), so the figures hold until `sluice bench calibrate` runs there.
    public var cores: Int
    /// Where the constants come from, for `doctor` and `--verbose`.
    public var source: String
    /// Which way host reads reach the CUDA workers faster here, as measured:
    /// the copy engine (true) or mapped host memory (false); nil where it was
    /// not measured. `--ingest-copy auto` follows it.
    public var cudaCopyEngineFaster: Bool?

    /// A model of the costs given.
    /// `cpuBuiltinScan` and `cpuBuiltinMatchSeconds` nil: `cpu`'s (a machine
    /// where Hyperscan does not load).
    public init(
        cpu: BackendCosts, cpuBuiltinScan: [ScanPoint]? = nil, cpuBuiltinMatchSeconds: Double? = nil, cuda: BackendCosts,
        cores: Int, source: String, cudaCopyEngineFaster: Bool? = nil
    ) {
        self.cpu = cpu
        self.cpuBuiltinScan = (cpuBuiltinScan ?? cpu.scan).sorted { $0.literals < $1.literals }
        self.cpuBuiltinMatchSeconds = cpuBuiltinMatchSeconds ?? cpu.matchSeconds
        self.cuda = cuda
        self.cores = max(1, cores)
        self.source = source
        self.cudaCopyEngineFaster = cudaCopyEngineFaster
    }

    /// The cost of `work` (count or scan; nil for hash, which the model
    /// leaves to `ChecksumBackends`, and for a scan whose literal count is
    /// not given) with `literals` literals on a backend; a CPU scan's from
    /// the curve of `cpuEngine`.
    public func cost(
        cpu onCPU: Bool, work: ExecutionPlan.Input.Work, literals: Int, cpuEngine: CPUScanCurve = .builtin
    ) -> Cost? {
        let costs = onCPU ? cpu : cuda
        switch work {
        case .hash: return nil
        case .count: return costs.count
        case .scan:
            guard literals > 0 else { return nil }
            return Self.interpolate(onCPU && cpuEngine == .builtin ? cpuBuiltinScan : costs.scan, literals: literals)
        }
    }

    /// Seconds Hyperscan takes to compile `literals` literals, which a set's
    /// first scan pays on top of `cpu.scan`'s start (whose figures are those
    /// of a cached set): about 32 us a literal on one core of the H100
    /// machine (hsbench: 0.032 s at 1,000, 0.323 s at 10,000, 3.48 s at 100,000; run 56).
    public static func hyperscanCompileSeconds(literals: Int) -> Double { Double(max(0, literals)) * 32e-6 }

    /// Which of the CPU backend's scan curves applies: the engine that will run the set.
    public enum CPUScanCurve: String, Sendable, Equatable {
        /// `cpu.scan`: Hyperscan.
        case hyperscan
        /// `cpuBuiltinScan`: the built-in matcher.
        case builtin

        /// The curve for a scan of `literals` literals with the engine
        /// setting `engine` on a machine where Hyperscan loads or not
        /// (`auto` runs the built-in matcher from `AutoScanEngine.builtinFromLiterals`).
        public static func of(engine: ScanEngineChoice, hyperscanLoads: Bool, literals: Int) -> CPUScanCurve {
            switch engine {
            case .builtin: return .builtin
            case .hyperscan: return .hyperscan
            case .auto:
                return hyperscanLoads && AutoScanEngine.choose(literalCount: literals).engine == .hyperscan ? .hyperscan : .builtin
            }
        }
    }

    /// The cost at `literals` from the points measured: linear in the
    /// logarithm of the count between two points, for the start and for the
    /// seconds per byte; beyond the last point the last segment's slope goes
    /// on (never cheaper than the last point), below the first the first point holds.
    public static func interpolate(_ points: [ScanPoint], literals: Int) -> Cost? {
        guard let first = points.first else { return nil }
        let x = log2(Double(max(1, literals)))
        guard points.count > 1, literals > first.literals else { return first.cost }
        var lower = points[points.count - 2]
        var upper = points[points.count - 1]
        for i in 1..<points.count where literals <= points[i].literals {
            lower = points[i - 1]
            upper = points[i]
            break
        }
        let x0 = log2(Double(lower.literals))
        let x1 = log2(Double(upper.literals))
        let t = x1 > x0 ? (x - x0) / (x1 - x0) : 1
        func along(_ a: Double, _ b: Double) -> Double { a + (b - a) * t }
        let start = along(lower.cost.startSeconds, upper.cost.startSeconds)
        let perByte = along(1 / lower.cost.bytesPerSecond, 1 / upper.cost.bytesPerSecond)
        let last = points[points.count - 1].cost
        if literals > points[points.count - 1].literals {
            return Cost(
                startSeconds: max(start, last.startSeconds),
                bytesPerSecond: 1 / max(perByte, 1 / last.bytesPerSecond))
        }
        return Cost(startSeconds: start, bytesPerSecond: 1 / perByte)
    }
}

extension CostModel {
    /// Whole commands on the H100 machine (16 cores), warm page cache: the
    /// line through the 1 GiB and 4 GiB rows of each backend and pattern set
    /// (`benchmarks/RESULTS.md`, "Cost model defaults", which also says where
    /// the Hyperscan points, estimated rather than fitted, come from). The
    /// CPU backend's scans with Hyperscan (`cpu.scan`) and with the built-in
    /// matcher (`cpuBuiltinScan`). The cost per match comes from the dense
    /// set against the sparse one of the same size.
    public static let defaults = CostModel(
        cpu: BackendCosts(
            count: Cost(startSeconds: 0.050, bytesPerSecond: 24.78e9),
            scan: [
                // Starts with the database in the cache (`HyperscanCaching`): a set's
                // first scan adds Hyperscan's compile (0.03 s at 1,000 literals, 0.3 s at 10,000).
                ScanPoint(literals: 1_000, cost: Cost(startSeconds: 0.050, bytesPerSecond: 20.7e9)),
                ScanPoint(literals: 10_000, cost: Cost(startSeconds: 0.090, bytesPerSecond: 7.9e9)),
                ScanPoint(literals: 100_000, cost: Cost(startSeconds: 0.250, bytesPerSecond: 4.2e9)),
            ],
            matchSeconds: 3.6e-9),
        cpuBuiltinScan: [
            ScanPoint(literals: 1_000, cost: Cost(startSeconds: 0.124, bytesPerSecond: 4.69e9)),
            ScanPoint(literals: 10_000, cost: Cost(startSeconds: 0.143, bytesPerSecond: 4.15e9)),
            ScanPoint(literals: 100_000, cost: Cost(startSeconds: 0.315, bytesPerSecond: 2.06e9)),
        ],
        cpuBuiltinMatchSeconds: 5.07e-9,
        cuda: BackendCosts(
            count: Cost(startSeconds: 0.325, bytesPerSecond: 22.85e9),
            scan: [
                ScanPoint(literals: 1_000, cost: Cost(startSeconds: 0.368, bytesPerSecond: 30.97e9)),
                ScanPoint(literals: 10_000, cost: Cost(startSeconds: 0.378, bytesPerSecond: 30.40e9)),
                ScanPoint(literals: 100_000, cost: Cost(startSeconds: 0.483, bytesPerSecond: 27.30e9)),
            ],
            matchSeconds: 0.164e-9),
        // Whole commands with the copy engine ran 0.96-1.00x as fast as with mapped memory.
        cores: 16, source: "the defaults measured on an H100 machine", cudaCopyEngineFaster: false)
}

// MARK: - Rows, for reports

extension CostModel {
    /// One cost of the model, as `doctor` lists it.
    public struct Row: Sendable, Equatable {
        /// "cpu" or "cuda".
        public var backend: String
        /// "count", "scan" or "builtin-scan" (the CPU backend with its built-in matcher).
        public var work: String
        /// A scan's literal count; nil for count.
        public var literals: Int?
        /// The cost.
        public var cost: Cost
    }

    /// Every cost of the model, the CPU backend's first; its scans with
    /// the built-in matcher as work "builtin-scan".
    public var rows: [Row] {
        [("cpu", cpu), ("cuda", cuda)].flatMap { name, costs in
            [Row(backend: name, work: "count", literals: nil, cost: costs.count)]
                + costs.scan.map { Row(backend: name, work: "scan", literals: $0.literals, cost: $0.cost) }
                + (name == "cpu" ? cpuBuiltinScan.map { Row(backend: name, work: "builtin-scan", literals: $0.literals, cost: $0.cost) } : [])
        }
    }

    /// Each backend's seconds per match, the CPU backend's first (Hyperscan's, then the built-in matcher's as "cpu builtin").
    public var matchRows: [(backend: String, seconds: Double)] {
        [("cpu", cpu.matchSeconds), ("cpu builtin", cpuBuiltinMatchSeconds), ("cuda", cuda.matchSeconds)]
    }
}

// MARK: - The calibration file

extension CostModel {
    /// The first line of a calibration file.
    static let formatLine = "sluice-cost-model 2"
    /// The first line of a calibration file written before the built-in
    /// curve (no `cpu builtin-scan` lines; still read).
    static let firstFormatLine = "sluice-cost-model 1"
    /// The longest start a file may give: an hour.
    static let largestStartSeconds = 3600.0
    /// The rates a file may give, in bytes per second.
    static let plausibleRates = 1e3...1e13
    /// The largest cost per match a file may give: a millisecond.
    static let largestMatchSeconds = 1e-3

    /// The model as the lines of a calibration file: the format line, then
    /// `cores N`, `source TEXT`, and one line per cost: `BACKEND count START
    /// RATE`, `BACKEND scan LITERALS START RATE` (seconds, bytes per second),
    /// `cpu builtin-scan LITERALS START RATE` (the built-in matcher),
    /// `cpu builtin-match SECONDS` (its cost per match; where missing, `cpu match`)
    /// or `BACKEND match SECONDS` (per match; where missing, the defaults'),
    /// and `cuda ingest-copy engine|mapped` where the copy path was measured.
    public var fileText: String {
        var lines = [Self.formatLine, "cores \(cores)", "source \(source)"]
        for (name, costs) in [("cpu", cpu), ("cuda", cuda)] {
            lines.append("\(name) count \(costs.count.startSeconds) \(costs.count.bytesPerSecond)")
            for point in costs.scan {
                lines.append("\(name) scan \(point.literals) \(point.cost.startSeconds) \(point.cost.bytesPerSecond)")
            }
            for point in name == "cpu" ? cpuBuiltinScan : [] {
                lines.append("cpu builtin-scan \(point.literals) \(point.cost.startSeconds) \(point.cost.bytesPerSecond)")
            }
            lines.append("\(name) match \(costs.matchSeconds)")
            if name == "cpu" { lines.append("cpu builtin-match \(cpuBuiltinMatchSeconds)") }
        }
        if let faster = cudaCopyEngineFaster {
            lines.append("cuda ingest-copy \(faster ? IngestCopyChoice.engine : .mapped)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Why a calibration file was not taken.
    public struct FileError: Error, Equatable, CustomStringConvertible {
        /// What kind of fault, for callers that switch on it.
        public enum Kind: Sendable, Equatable {
            /// The first line is not the format line.
            case notACostModel
            /// A line that is not one of the forms the format allows.
            case malformedLine
            /// A figure outside what a machine can measure (a start over an
            /// hour, a rate outside 1e3-1e13 bytes per second, a cost per
            /// match over a millisecond, cores outside 1-65536).
            case implausibleFigure
            /// A line the model needs is missing (cores; a backend's count or scan).
            case missingLine
        }

        /// The kind of fault.
        public var kind: Kind
        /// The 1-based line at fault; 0 for the file as a whole.
        public var line: Int
        /// What is wrong there.
        public var reason: String

        /// "line 3: ..." or the reason alone.
        public var description: String { line > 0 ? "line \(line): \(reason)" : reason }
    }

    /// Reads a calibration file's text (`fileText`). Every cost must have
    /// a start of 0 or more and a positive rate; each backend needs its
    /// count line and at least one scan line, and a version 2 file its
    /// `cpu builtin-scan` lines. A version 1 file has none: its CPU scan
    /// lines serve both curves (`isFirstFormat` tells such a file).
    public init(fileText text: String) throws(FileError) {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        guard lines.first == Self.formatLine || lines.first == Self.firstFormatLine else {
            throw FileError(kind: .notACostModel, line: 1, reason: "not a cost model (the first line must be \(Self.formatLine))")
        }
        var file = CalibrationFileLines()
        for (index, line) in lines.enumerated().dropFirst() {
            try file.read(line, number: index + 1)
        }
        try self.init(file, firstFormat: Self.isFirstFormat(text))
    }

    /// The model a calibration file's lines give, once each was read.
    private init(_ file: CalibrationFileLines, firstFormat: Bool) throws(FileError) {
        guard let cores = file.cores else { throw FileError(kind: .missingLine, line: 0, reason: "no cores line") }
        func costs(_ name: String, _ fallback: BackendCosts) throws(FileError) -> BackendCosts {
            guard let count = file.counts[name], let scan = file.scans[name], !scan.isEmpty else {
                throw FileError(kind: .missingLine, line: 0, reason: "no \(name) count line or no \(name) scan line")
            }
            return BackendCosts(count: count, scan: scan, matchSeconds: file.matches[name] ?? fallback.matchSeconds)
        }
        let builtin = file.scans[CalibrationFileLines.cpuBuiltin]
        if !firstFormat, builtin == nil {
            throw FileError(kind: .missingLine, line: 0, reason: "no cpu builtin-scan line")
        }
        if firstFormat, builtin != nil {
            throw FileError(kind: .malformedLine, line: 0, reason: "cpu builtin-scan lines in a version 1 file")
        }
        self.init(
            cpu: try costs("cpu", CostModel.defaults.cpu), cpuBuiltinScan: builtin,
            cpuBuiltinMatchSeconds: file.matches[CalibrationFileLines.cpuBuiltin],
            cuda: try costs("cuda", CostModel.defaults.cuda), cores: cores,
            source: file.source, cudaCopyEngineFaster: file.copyEngineFaster)
    }
}

/// What a calibration file's lines after the first say, gathered one line
/// at a time (`read`), each checked as it is read.
private struct CalibrationFileLines {
    /// The key of the built-in matcher's CPU lines (`cpu builtin-scan`, `cpu builtin-match`).
    static let cpuBuiltin = "cpu builtin"
    typealias FileError = CostModel.FileError

    var cores: Int?
    var source = ""
    var counts: [String: CostModel.Cost] = [:]
    var scans: [String: [CostModel.ScanPoint]] = [:]
    var matches: [String: Double] = [:]
    var copyEngineFaster: Bool?

    /// Takes line `number` (1-based), or throws saying what is wrong with it.
    mutating func read(_ line: String, number: Int) throws(FileError) {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        if fields.first == "source" {
            source = String(line.dropFirst("source".count)).trimmingLeadingSpaces
            return
        }
        if fields.count == 2, fields[0] == "cores", let n = Int(fields[1]), (1...65536).contains(n) {
            cores = n
            return
        }
        guard fields.count >= 3, fields[0] == "cpu" || fields[0] == "cuda" else {
            throw FileError(kind: .malformedLine, line: number, reason: "expected cores, source, or BACKEND count|scan ..., got \"\(line)\"")
        }
        if fields.count == 3, fields[0] == "cuda", fields[1] == "ingest-copy" {
            guard let path = IngestCopyChoice(rawValue: fields[2]), path != .auto else {
                throw FileError(kind: .malformedLine, line: number, reason: "expected cuda ingest-copy engine|mapped, got \"\(line)\"")
            }
            copyEngineFaster = path == .engine
            return
        }
        if fields.count == 3, fields[1] == "match" || (fields[1] == "builtin-match" && fields[0] == "cpu") {
            guard let seconds = Double(fields[2]), (0...CostModel.largestMatchSeconds).contains(seconds) else {
                throw FileError(kind: .implausibleFigure, line: number, reason: "seconds per match from 0 to 0.001, got \"\(fields[2])\"")
            }
            matches[fields[1] == "match" ? fields[0] : Self.cpuBuiltin] = seconds
            return
        }
        switch (fields[1], fields.count) {
        case ("count", 4):
            counts[fields[0]] = try Self.cost(fields[2], fields[3], line: line, number: number)
        case ("scan", 5):
            scans[fields[0], default: []].append(try Self.scanPoint(fields, line: line, number: number))
        case ("builtin-scan", 5) where fields[0] == "cpu":
            scans[Self.cpuBuiltin, default: []].append(try Self.scanPoint(fields, line: line, number: number))
        default:
            throw FileError(
                kind: .malformedLine, line: number,
                reason: "expected BACKEND count START RATE, BACKEND scan LITERALS START RATE or cpu builtin-scan LITERALS START RATE")
        }
    }

    /// A start in seconds and a rate in bytes per second, each plausible.
    static func cost(_ start: String, _ rate: String, line: String, number: Int) throws(FileError) -> CostModel.Cost {
        guard let s = Double(start), (0...CostModel.largestStartSeconds).contains(s),
            let r = Double(rate), CostModel.plausibleRates.contains(r)
        else {
            throw FileError(
                kind: .implausibleFigure, line: number,
                reason: "a start from 0 to 3600 seconds and a rate from 1e3 to 1e13 bytes per second, got \"\(line)\"")
        }
        return CostModel.Cost(startSeconds: s, bytesPerSecond: r)
    }

    /// `BACKEND scan LITERALS START RATE`'s point.
    static func scanPoint(_ fields: [String], line: String, number: Int) throws(FileError) -> CostModel.ScanPoint {
        guard let literals = Int(fields[2]), literals > 0 else {
            throw FileError(kind: .implausibleFigure, line: number, reason: "a positive literal count, got \"\(fields[2])\"")
        }
        return CostModel.ScanPoint(literals: literals, cost: try cost(fields[3], fields[4], line: line, number: number))
    }
}

extension String {
    fileprivate var trimmingLeadingSpaces: String { String(drop { $0 == " " }) }
}

// MARK: - Where the model comes from

extension CostModel {
    /// Where `sluice bench calibrate` writes this machine's model and every
    /// command reads it: `SLUICE_COST_MODEL` when it names a file, nil when
    /// it says `defaults` (or no cache directory exists), else
    /// `cost-model.txt` in Sluice's cache directory (beside the CUBINs).
    public static var calibrationPath: String? {
        if let value = getenv("SLUICE_COST_MODEL"), value.pointee != 0 {
            let text = String(cString: value)
            return text == "defaults" ? nil : text
        }
        return CacheFiles.directory().map { $0 + "/cost-model.txt" }
    }

    /// This machine's model: the calibration at `path` (`calibrated` true),
    /// else `defaults` with a note saying why the file was not taken (none
    /// when it does not exist).
    public static func load(path: String? = calibrationPath) -> (model: CostModel, calibrated: Bool, note: String?) {
        guard let path else {
            return (.defaults, false, "no calibration file (SLUICE_COST_MODEL=defaults, or no cache directory in $XDG_CACHE_HOME or $HOME)")
        }
        let bytes: [UInt8]
        do {
            bytes = try readWholeFile(path, what: "cost model")
        } catch {
            if case .io(let failure) = error, failure.errno == ENOENT { return (.defaults, false, nil) }
            return (.defaults, false, "the calibration could not be read: \(error.message)")
        }
        do {
            let text = String(decoding: bytes, as: UTF8.self)
            let note = isFirstFormat(text)
                ? "a calibration from before the built-in matcher's own curve: its CPU scan figures serve both engines; run sluice's calibration again"
                : nil
            return (try CostModel(fileText: text), true, note)
        } catch {
            return (.defaults, false, "the calibration \(path) was not taken (\(error)); run sluice's calibration again")
        }
    }

    /// Whether `text` is a version 1 calibration file.
    static func isFirstFormat(_ text: String) -> Bool {
        text.hasPrefix(firstFormatLine + "\n") || text == firstFormatLine
    }

    /// Writes the model to `path` (atomically: a reader sees the old file or the new one).
    public func save(to path: String) throws(PipelineError) {
        let e = CacheFiles.writeAtomically(path: path, bytes: Array(fileText.utf8))
        guard e == 0 else {
            throw .io(IOFailure(operation: "write cost model", path: path, errno: e))
        }
    }
}

// MARK: - Estimates

/// Both backends' estimated seconds for one input, and where the model's
/// constants come from: what `auto` decides by, as `--verbose` and `doctor` show it.
public struct CostEstimate: Sendable, Equatable, CustomStringConvertible {
    /// The CPU backend's cost for the input.
    public var cpu: CostModel.Cost
    /// The CUDA backend's cost for the input.
    public var cuda: CostModel.Cost
    /// The input's bytes.
    public var bytes: Int
    /// Matches expected in them (a scan's sampled density times its bytes; 0 for other work).
    public var matches: Double
    /// Seconds per match on the CPU backend.
    public var cpuMatchSeconds: Double
    /// Seconds per match on CUDA.
    public var cudaMatchSeconds: Double
    /// `CostModel.source`.
    public var source: String
    /// The CPU scan curve the estimate used; nil for other work.
    public var cpuScan: CostModel.CPUScanCurve?
    /// Hyperscan's compile, part of `cpu.startSeconds` where the set is not cached; else 0.
    public var cpuCompileSeconds = 0.0

    /// Estimated seconds on the CPU backend.
    public var cpuSeconds: Double { cpu.seconds(bytes: bytes) + matches * cpuMatchSeconds }
    /// Estimated seconds on the CUDA backend.
    public var cudaSeconds: Double { cuda.seconds(bytes: bytes) + matches * cudaMatchSeconds }
    /// Whether the CPU backend should finish first (a tie goes to the CPU,
    /// which pins no memory and starts nothing on the GPU).
    public var cpuIsCheaper: Bool { cpuSeconds <= cudaSeconds }

    /// The estimate of `work` over `input` from `model`, a CPU scan's from
    /// the curve `cpuScan` (with Hyperscan's compile added where the set's
    /// database is not cached); nil where the model has no figure for the
    /// work (hash) or the input's size is not known.
    public init?(model: CostModel, input: ExecutionPlan.Input, cpuScan: CostModel.CPUScanCurve = .builtin) {
        guard input.hint != nil,
            var cpu = model.cost(cpu: true, work: input.work, literals: input.literals, cpuEngine: cpuScan),
            let cuda = model.cost(cpu: false, work: input.work, literals: input.literals)
        else { return nil }
        if input.work == .scan, cpuScan == .hyperscan, !input.hyperscanCached {
            cpuCompileSeconds = CostModel.hyperscanCompileSeconds(literals: input.literals)
            cpu.startSeconds += cpuCompileSeconds
        }
        self.cpu = cpu
        self.cuda = cuda
        self.bytes = input.bytes
        self.matches = input.work == .scan ? input.matchesPerByte * Double(input.bytes) : 0
        self.cpuMatchSeconds = input.work == .scan && cpuScan == .builtin ? model.cpuBuiltinMatchSeconds : model.cpu.matchSeconds
        self.cudaMatchSeconds = model.cuda.matchSeconds
        self.source = model.source
        self.cpuScan = input.work == .scan ? cpuScan : nil
    }

    /// "cpu 0.205 s, cuda 0.513 s": the two totals alone.
    public var summary: String { "cpu \(Self.seconds(cpuSeconds)), cuda \(Self.seconds(cudaSeconds))" }

    /// "cpu 0.27 s (start 0.12 s + 4.29 GB at 27.9 GB/s), cuda 0.66 s (...); costs from ...".
    public var description: String {
        func text(_ name: String, _ cost: CostModel.Cost, _ perMatch: Double, _ total: Double) -> String {
            let matchText = matches > 0
                ? " + \(Self.rounded(matches, places: 0)) matches at \(Self.rounded(perMatch * 1e9, places: 2)) ns" : ""
            return "\(name) \(Self.seconds(total)) (start \(Self.seconds(cost.startSeconds)) + "
                + "\(Self.gigabytes(Double(bytes))) GB at \(Self.gigabytes(cost.bytesPerSecond)) GB/s\(matchText))"
        }
        let compile = cpuCompileSeconds > 0 ? ", not cached: its compile \(Self.seconds(cpuCompileSeconds)) in the start" : ""
        let cpuName = cpuScan.map { "cpu (\($0 == .hyperscan ? "Hyperscan\(compile)" : "built-in matcher"))" } ?? "cpu"
        return "\(text(cpuName, cpu, cpuMatchSeconds, cpuSeconds)), \(text("cuda", cuda, cudaMatchSeconds, cudaSeconds)); "
            + "costs from \(source)"
    }

    static func seconds(_ value: Double) -> String { "\(rounded(value, places: 3)) s" }
    static func gigabytes(_ value: Double) -> String { rounded(value / 1e9, places: 2) }

    /// `value` to `places` decimals, or as Swift prints it where rounding
    /// through an integer could trap (too large, not finite).
    static func rounded(_ value: Double, places: Int) -> String {
        let scale = (0..<places).reduce(1.0) { r, _ in r * 10 }
        let scaled = (value * scale).rounded()
        guard scaled.isFinite, abs(scaled) < 1e15 else { return "\(value)" }
        return places == 0 ? "\(Int(scaled))" : "\(Double(Int(scaled)) / scale)"
    }
}
