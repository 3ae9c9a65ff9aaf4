#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Sluice
import SluiceCore
import SluiceCPU
import SluiceCUDA
import SluiceOps
import SluiceThreads

extension Bench {
    /// Knobs of `sluice bench scan`.
    public struct ScanOptions: Sendable {
        /// The file or directory scanned.
        public var path: String
        /// Pattern files (one literal per line, as `sluice scan -f`), one row group each.
        public var literalFiles: [String]
        /// Bytes per chunk buffer, a multiple of 4096.
        public var chunkBytes: Int
        /// Timed runs of each method (the best and the median are reported).
        public var repeats: Int
        /// Also time the CPU backend.
        public var cpu: Bool
        /// Also time `hash` (the crc32c opcode).
        public var hash: Bool
        /// The CUDA scans' copy paths (`--ingest-copy`), each timed in turn.
        public var copyPaths: [IngestCopyChoice] = [.auto]

        /// Options for `path` and `literalFiles`; by default 4 MiB chunks, 2 runs per method, the CPU backend and `hash` included.
        public init(path: String, literalFiles: [String], chunkBytes: Int = 4 << 20, repeats: Int = 2, cpu: Bool = true, hash: Bool = true) {
            self.path = path
            self.literalFiles = literalFiles
            self.chunkBytes = chunkBytes
            self.repeats = repeats
            self.cpu = cpu
            self.hash = hash
        }
    }

    /// Scan (count-only) and hash throughput from a warm file, in the process:
    /// `sluice scan --count` and `sluice hash`'s own path (Engine, ChunkScheduler,
    /// ScanJob / HashJob) with the engine set up beforehand (and the scan
    /// table installed), beside the raw io_uring read of the same stream,
    /// for the CUDA and the CPU backend. The backends must agree on every
    /// count and checksum.
    public static func scan(_ options: ScanOptions, log: (String) -> Void) throws(PipelineError) -> BenchReport {
        var report = BenchReport(
            title: "scan --count and hash throughput from a file (warm page cache; engine set-up excluded)",
            columns: ["method", "literals", "best GB/s", "median GB/s", "best s", "runs", "result"])
        let size = try fileSize(options.path)
        report.facts.append(("file", "\(options.path), \(size) bytes (\(formatSize(Int(size))))"))
        let cuda = probeCUDA(into: &report, otherwise: "only the CPU backend was measured")
        var run = ScanBenchRun(
            options: options, size: size, backends: (cuda ? [.cuda] : []) + (options.cpu || !cuda ? [.cpu] : []), report: report)
        try run.timeRawRead(log: log)
        for file in options.literalFiles { try run.timeScans(patternFile: file, log: log) }
        if options.hash { try run.timeHashes(log: log) }
        run.report.notes.append("GB/s is file bytes / wall time of one ScanJob or HashJob over the file (engine set-up and table install excluded; open, reads, GPU work and result handling included); the CLI's wall times in scan.log and hash.log add process start, CUDA context, pinned allocations and the CUBIN cache load")
        run.report.notes.append("every backend must find the same number of matches and the same checksum, or the benchmark fails")
        return run.report
    }
}

/// One `bench scan`: its report and best rates so far, and a method per step.
private struct ScanBenchRun {
    let options: Bench.ScanOptions
    let size: UInt64
    let backends: [BackendChoice]
    var report: BenchReport
    /// Best GB/s by "raw", "BACKEND SET" or "hash BACKEND".
    var best: [String: Double] = [:]
    var repeats: Int { max(1, options.repeats) }

    init(options: Bench.ScanOptions, size: UInt64, backends: [BackendChoice], report: BenchReport) {
        self.options = options
        self.size = size
        self.backends = backends
        self.report = report
    }

    func gbps(_ seconds: Double) -> Double { Double(size) / seconds / 1e9 }

    mutating func add(_ name: String, literals: String, _ seconds: [Double], result: String) {
        let sorted = seconds.sorted()
        guard let fastest = sorted.first else { return }
        report.rows.append([
            "method": .text(name), "literals": .text(literals), "best GB/s": .number(gbps(fastest)),
            "median GB/s": .number(gbps(sorted[sorted.count / 2])), "best s": .number(fastest),
            "runs": .integer(sorted.count), "result": .text(result),
        ])
    }

    /// An engine for `backend` (with copy path `copy` on CUDA); its start line becomes a fact once.
    mutating func engine(_ backend: BackendChoice, resultWords: Int, copy: IngestCopyChoice = .auto) throws(PipelineError) -> Engine {
        var c = EngineConfiguration(backend: backend, chunkBytes: options.chunkBytes)
        c.ingestCopy = copy
        let e = try Engine(c, resultWordsPerSlot: resultWords)
        let key = "\(backend) engine" + (copy == .auto ? "" : ", --ingest-copy \(copy)")
        if report.facts.allSatisfy({ $0.0 != key }) {
            report.facts.append((key, "\(e.backend.summary); ingest \(e.ingestReason)"))
        }
        return e
    }

    /// The ceiling: the same io_uring stream reading the file, no work
    /// (with mapped memory on CUDA: the host stream alone, whatever auto would copy with).
    mutating func timeRawRead(log: (String) -> Void) throws(PipelineError) {
        let e = try engine(backends[0], resultWords: ScanJob.resultWords(records: 4096), copy: backends[0] == .cuda ? .mapped : .auto)
        log("warm-up and raw io_uring read")
        _ = try Bench.rawRead(stream: e.stream, path: options.path)
        var seconds: [Double] = []
        for _ in 0..<repeats {
            let (bytes, ns) = try Bench.rawRead(stream: e.stream, path: options.path)
            guard bytes == size else { throw .fileChanged(path: options.path, detail: "the raw read got \(bytes) of \(size) bytes") }
            seconds.append(Double(ns) / 1e9)
        }
        add("io_uring read only (same stream, no work)", literals: "-", seconds, result: "\(size) bytes")
        best["raw"] = gbps(seconds.min() ?? .infinity)
        try e.close()
    }

    /// One pattern file on every backend (and every copy path on CUDA); the counts must agree.
    mutating func timeScans(patternFile file: String, log: (String) -> Void) throws(PipelineError) {
        let patterns = try PatternSet(literals: PatternSet.parseLines(try readWholeFile(file, what: "pattern file")))
        // Two sets of one size (sparse and dense) are told apart by their file.
        let set = "\(patterns.count) literals (\(file.split(separator: "/").last.map(String.init) ?? file))"
        let table = ScanTable(patterns)
        var counts: [(String, UInt64)] = []
        let runs = backends.flatMap { b in b == .cuda ? options.copyPaths.map { (b, $0) } : [(b, IngestCopyChoice.auto)] }
        for (backend, copy) in runs {
            let copyText = copy == .auto ? "" : " --ingest-copy \(copy)"
            log("scan \(patterns.count) literals, \(backend)\(copyText)")
            let (seconds, found) = try timeScan(backend: backend, copy: copy, patterns: patterns, table: table)
            let name = "sluice scan --count --backend \(backend)\(copyText)" + (backend == .cpu ? " (\(ProcessorCount.online) threads)" : "")
            add(name, literals: "\(patterns.count)", seconds, result: "\(found) matches")
            let rate = gbps(seconds.min() ?? .infinity)
            best["\(backend) \(set)"] = max(best["\(backend) \(set)"] ?? 0, rate)
            if backend == .cuda, options.copyPaths.count > 1, let raw = best["raw"] {
                report.ratios.append(("scan \(set): cuda\(copyText) / raw io_uring read, best", rate / raw))
            }
            counts.append(("\(backend)\(copyText)", found))
        }
        if let first = counts.first, let other = counts.first(where: { $0.1 != first.1 }) {
            throw .malformed(what: "scan benchmark", detail: "\(patterns.count) literals: \(first.0) found \(first.1) matches, \(other.0) \(other.1)")
        }
        addCUDARatios("scan \(set)", cuda: "cuda \(set)", cpu: "cpu \(set)")
    }

    /// `repeats` count-only scans of the file on one engine: their seconds and the matches found.
    mutating func timeScan(
        backend: BackendChoice, copy: IngestCopyChoice, patterns: PatternSet, table: ScanTable
    ) throws(PipelineError) -> (seconds: [Double], found: UInt64) {
        let e = try engine(backend, resultWords: ScanJob.resultWords(records: 4096), copy: copy)
        let matcher = try e.installScan(table: table, patterns: patterns)
        if backend == .cpu, report.facts.allSatisfy({ $0.0 != "cpu matcher" }) {
            report.facts.append(("cpu matcher", matcher))
        }
        let (seconds, got) = try timedRuns(errors: \FileMatches.errors) { () throws(PipelineError) -> FileMatches? in
            var got: FileMatches?
            _ = try ScanJob.run(
                scanner: try e.makeScanner(), patterns: patterns, table: table, paths: [RawPath(options.path)], mode: .count,
                installTable: false, onFile: { got = $0 })
            return got
        }
        try e.close()
        return (seconds, got.count)
    }

    /// Runs `job` (one job over the file, which reports it or nil) `repeats`
    /// times: the seconds of each and the last report; a file not reported
    /// or reported with an error is the error.
    func timedRuns<Report>(
        errors: (Report) -> [PipelineError], _ job: () throws(PipelineError) -> Report?
    ) throws(PipelineError) -> (seconds: [Double], last: Report) {
        var seconds: [Double] = []
        var last: Report?
        for _ in 0..<repeats {
            let start = clockNow()
            let got = try job()
            seconds.append(Double(clockNow() - start) / 1e9)
            guard let got else { throw .unaccounted(path: options.path, chunks: []) }
            if let error = errors(got).first { throw error }
            last = got
        }
        guard let last else { throw .unaccounted(path: options.path, chunks: []) }
        return (seconds, last)
    }

    /// `hash` on every backend; the checksums must agree.
    mutating func timeHashes(log: (String) -> Void) throws(PipelineError) {
        var sums: [(String, UInt32)] = []
        for backend in backends {
            let e = try engine(backend, resultWords: HashJob.resultWords)
            log("hash, \(backend)")
            let (seconds, got) = try timedRuns(errors: \FileHash.errors) { () throws(PipelineError) -> FileHash? in
                var got: FileHash?
                _ = try HashJob.run(scanner: try e.makeScanner(), paths: [RawPath(options.path)], onFile: { got = $0 })
                return got
            }
            let crc = got.crc32c
            try e.close()
            let name = "sluice hash --backend \(backend)" + (backend == .cpu ? " (\(ProcessorCount.online) threads, \(CRC32C.implementation))" : "")
            add(name, literals: "-", seconds, result: "crc32c " + hex(UInt64(crc), digits: 8))
            best["hash \(backend)"] = gbps(seconds.min() ?? .infinity)
            sums.append(("\(backend)", crc))
        }
        if let first = sums.first, let other = sums.first(where: { $0.1 != first.1 }) {
            throw .malformed(what: "hash benchmark", detail: "\(first.0) gave \(hex(UInt64(first.1), digits: 8)), \(other.0) \(hex(UInt64(other.1), digits: 8))")
        }
        addCUDARatios("hash", cuda: "hash cuda", cpu: "hash cpu")
    }

    /// The best CUDA rate of `label` over the CPU backend's and over the raw
    /// io_uring read, for the rates measured (`best` keys `cuda` and `cpu`).
    mutating func addCUDARatios(_ label: String, cuda: String, cpu: String) {
        guard let g = best[cuda] else { return }
        if let c = best[cpu] { report.ratios.append(("\(label): cuda / cpu, best", g / c)) }
        if let r = best["raw"] { report.ratios.append(("\(label): cuda / raw io_uring read, best", g / r)) }
    }
}
