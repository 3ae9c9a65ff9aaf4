#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Sluice
import SluiceCore
import SluiceCPU
import SluiceCUDA
import SluiceIngest
import SluiceOps
import SluiceSystem
import SluiceThreads
import SystemPackage

extension Bench {
    /// Knobs of `sluice bench count`.
    public struct CountOptions: Sendable {
        /// The file counted.
        public var path: String
        /// Bytes per chunk buffer, a multiple of 4096.
        public var chunkBytes: Int
        /// Timed runs of each method (the best and the median are reported).
        public var repeats: Int
        /// Also time the CPU backend through the same engine path.
        public var cpu: Bool
        /// After the warm runs, one run of each method with the page cache
        /// dropped first (`/proc/sys/vm/drop_caches`, root only).
        public var cold: Bool

        /// Options for `path`; by default 4 MiB chunks, 3 runs per method, the CPU backend included, no cold run.
        public init(path: String, chunkBytes: Int = 4 << 20, repeats: Int = 3, cpu: Bool = true, cold: Bool = false) {
            self.path = path
            self.chunkBytes = chunkBytes
            self.repeats = repeats
            self.cpu = cpu
            self.cold = cold
        }
    }

    /// One method's timed runs.
    struct MethodRuns {
        var name: String
        var seconds: [Double] = []
        var coldSeconds: Double?
        var result: CountResult?
    }

    /// End-to-end count throughput from a file: `sluice count`'s own path
    /// (Engine, ChunkScheduler, CountJob: io_uring READ_FIXED into mapped buffers,
    /// the megakernel reading them in place), side by side with the loop a
    /// user would write (pread, cuMemcpyHtoD, a count kernel launch per
    /// chunk, cuMemcpyDtoH, synchronous), a read-only pass through the same
    /// io_uring stream (no GPU work), and the CPU backend.
    public static func count(_ options: CountOptions, log: (String) -> Void) throws(PipelineError) -> BenchReport {
        var report = BenchReport(
            title: "count throughput from a file (warm page cache unless marked cold)",
            columns: ["method", "best GB/s", "median GB/s", "best s", "runs", "cold GB/s"])
        let size = try fileSize(options.path)
        report.facts.append(("file", "\(options.path), \(size) bytes (\(formatSize(Int(size))))"))
        report.facts.append(("chunk", formatSize(options.chunkBytes)))
        let cuda = probeCUDA(into: &report, otherwise: "only the CPU backend and the raw read were measured")
        var bench = CountBench(options: options, size: size, cuda: cuda, report: report)
        if cuda { bench.measurements = try CUDAMeasurements() }
        // One untimed pass warms the page cache (and the CUBIN cache).
        log("warm-up pass")
        do {
            let e = try bench.engine(cuda ? .cuda : .cpu)
            _ = try rawRead(stream: e.stream, path: options.path)
            try e.close()
        }
        for run in 0..<max(1, options.repeats) {
            log("run \(run + 1) of \(max(1, options.repeats))")
            try bench.runOnce(cold: false, log: log)
        }
        if options.cold {
            log("cold run")
            try bench.runOnce(cold: true, log: log)
        }
        try bench.checkAgreement()
        bench.addRowsAndRatios()
        bench.report.notes.append("GB/s is file bytes / wall time of the whole method (engine setup excluded; open, reads, GPU work and result handling included)")
        bench.report.notes.append("methods run one after another, never at once; the user loop runs with no megakernel on the device")
        return bench.report
    }

    /// `bench count`'s methods and their runs, and the report they fill.
    struct CountBench {
        let options: CountOptions
        let size: UInt64
        let cuda: Bool
        var report: BenchReport
        var measurements: CUDAMeasurements?
        var raw = MethodRuns(name: "io_uring read only (same stream, no GPU work)")
        var sluice = MethodRuns(name: "sluice count --backend cuda (io_uring -> mapped buffers -> megakernel)")
        var sluicePread = MethodRuns(name: "sluice count --backend cuda --ingest pread (\(CountBench.preadThreads) threads)")
        var loop = MethodRuns(name: "user loop: pread -> pinned -> cuMemcpyHtoD -> count kernel -> cuMemcpyDtoH, per chunk")
        var cpu = MethodRuns(name: "sluice count --backend cpu (\(ProcessorCount.online) threads)")

        static let preadThreads = max(2, min(ProcessorCount.online, 16))

        init(options: CountOptions, size: UInt64, cuda: Bool, report: BenchReport) {
            self.options = options
            self.size = size
            self.cuda = cuda
            self.report = report
        }

        /// An engine on `backend`, named once in the report's facts.
        mutating func engine(_ backend: BackendChoice, ingest: IngestChoice = .auto) throws(PipelineError) -> Engine {
            let e = try Engine(
                EngineConfiguration(backend: backend, ingest: ingest, chunkBytes: options.chunkBytes),
                resultWordsPerSlot: CountOp.resultWords)
            let key = "\(backend) engine" + (ingest == .auto ? "" : " (--ingest \(ingest))")
            if report.facts.allSatisfy({ $0.0 != key }) {
                report.facts.append((key, "\(e.backend.summary); ingest \(e.ingestReason)"))
            }
            return e
        }

        /// One run of every method, the page cache dropped before each when `cold`.
        mutating func runOnce(cold: Bool, log: (String) -> Void) throws(PipelineError) {
            func drop() throws(PipelineError) { if cold { try dropPageCache() } }
            func record(_ m: inout MethodRuns, _ seconds: Double, _ result: CountResult?) {
                if cold { m.coldSeconds = seconds } else { m.seconds.append(seconds) }
                if let result { m.result = result }
            }
            let prefix = cold ? "cold " : ""
            let first = try engine(cuda ? .cuda : .cpu)
            try drop()
            log("\(prefix)raw io_uring read")
            let (rawBytes, rawNs) = try rawRead(stream: first.stream, path: options.path)
            guard rawBytes == size else {
                throw .fileChanged(path: options.path, detail: "the raw read got \(rawBytes) of \(size) bytes")
            }
            record(&raw, Double(rawNs) / 1e9, nil)
            if cuda {
                try drop()
                log("\(prefix)sluice count, cuda")
                let (r, ns) = try engineCount(first, path: options.path)
                record(&sluice, Double(ns) / 1e9, r)
            }
            try first.close()
            if cuda {
                let e = try engine(.cuda, ingest: .pread)
                try drop()
                log("\(prefix)sluice count, cuda, pread ingest")
                let (r, ns) = try engineCount(e, path: options.path)
                record(&sluicePread, Double(ns) / 1e9, r)
                try e.close()
            }
            if let measurements {
                try drop()
                log("\(prefix)user copy-and-launch loop")
                let r = try measurements.countFileWithCopies(path: options.path, chunkBytes: options.chunkBytes)
                record(&loop, Double(r.nanoseconds) / 1e9, r.result)
            }
            if options.cpu {
                let e = try engine(.cpu)
                try drop()
                log("\(prefix)sluice count, cpu")
                let (r, ns) = try engineCount(e, path: options.path)
                record(&cpu, Double(ns) / 1e9, r)
                try e.close()
            }
        }

        /// Every method must agree on every count, and count the whole file.
        mutating func checkAgreement() throws(PipelineError) {
            let results = [sluice, sluicePread, loop, cpu].compactMap { m in m.result.map { (m.name, $0) } }
            guard let (name0, r0) = results.first else { return }
            for (name, r) in results.dropFirst() where r != r0 {
                let bin = (0..<256).first { r.histogram[$0] != r0.histogram[$0] }
                throw .malformed(
                    what: "count benchmark", detail: "\(name) counted \(r.newlines) newlines, \(r.bytes) bytes\(bin.map { ", bin \($0): \(r.histogram[$0])" } ?? ""); \(name0) counted \(r0.newlines), \(r0.bytes)\(bin.map { ", \(r0.histogram[$0])" } ?? "")")
            }
            guard r0.bytes == size else {
                throw .malformed(what: "count benchmark", detail: "\(name0) counted \(r0.bytes) bytes of a \(size)-byte file")
            }
            report.facts.append(("counts", "every method: \(r0.newlines) newlines, \(r0.bytes) bytes, identical 256-bin histograms"))
        }

        /// A row per method that ran (best and median warm, cold), then the ratios between them.
        mutating func addRowsAndRatios() {
            func gbps(_ s: Double) -> Double { Double(size) / s / 1e9 }
            var best: [String: Double] = [:]
            for m in [raw, sluice, sluicePread, loop, cpu] where !m.seconds.isEmpty || m.coldSeconds != nil {
                let sorted = m.seconds.sorted()
                var row: [String: BenchValue] = ["method": .text(m.name), "runs": .integer(sorted.count)]
                if let fastest = sorted.first {
                    row["best GB/s"] = .number(gbps(fastest))
                    row["median GB/s"] = .number(gbps(sorted[sorted.count / 2]))
                    row["best s"] = .number(fastest)
                    best[m.name] = gbps(fastest)
                }
                if let c = m.coldSeconds { row["cold GB/s"] = .number(gbps(c)) }
                report.rows.append(row)
            }
            if let s = best[sluice.name], let l = best[loop.name] {
                report.ratios.append(("sluice cuda / user copy-and-launch loop, best warm (target >= 1)", s / l))
            }
            if let s = best[sluice.name], let r = best[raw.name] {
                report.ratios.append(("sluice cuda / raw io_uring read of the same stream, best warm", s / r))
            }
            if let l = best[loop.name], let r = best[raw.name] {
                report.ratios.append(("user loop / raw io_uring read, best warm", l / r))
            }
            if let p = best[sluicePread.name], let l = best[loop.name] {
                report.ratios.append(("sluice cuda with pread ingest / user loop, best warm", p / l))
            }
            if let c = best[cpu.name], let s = best[sluice.name] {
                report.ratios.append(("sluice cuda / sluice cpu, best warm", s / c))
            }
            if let s = sluice.coldSeconds, let l = loop.coldSeconds {
                report.ratios.append(("sluice cuda / user loop, cold", l / s))
            }
        }
    }

    /// Whether a CUDA device is here: names it in the report's facts, or
    /// notes what was measured instead.
    static func probeCUDA(into report: inout BenchReport, otherwise: String) -> Bool {
        switch CUDAProbe.probe() {
        case .success(let info):
            report.facts.append(("device", info.description))
            return true
        case .failure(let error):
            report.notes.append("no CUDA device here (\(error.message)): \(otherwise)")
            return false
        }
    }

    static func fileSize(_ path: String) throws(PipelineError) -> UInt64 {
        do { return UInt64(try RawPath(path).stat().size) } catch {
            throw .io(IOFailure(operation: "stat", path: path, errno: error.rawValue))
        }
    }

    /// Reads the whole file through `stream` into its chunk buffers, keeping
    /// every chunk busy, and does nothing with the bytes.
    static func rawRead(stream: any ChunkReadStream, path: String) throws(PipelineError) -> (UInt64, UInt64) {
        let fd = try openForIngest(path: RawPath(path), direct: false)
        defer { try? fd.close() }
        let size = try fileSize(path)
        let chunk = stream.chunkBytes
        var free = Array((0..<stream.chunkCount).reversed())
        var next: UInt64 = 0
        var got: UInt64 = 0
        let start = clockNow()
        while next < size || stream.inflight > 0 {
            while next < size, let c = free.popLast() {
                let length = Int(min(UInt64(chunk), size - next))
                try stream.submit(ReadRequest(fd: fd, path: path, fileOffset: next, length: length, chunkIndex: c))
                next += UInt64(length)
            }
            for completion in try stream.reap(waitingUpTo: .milliseconds(100)) {
                switch completion.result {
                case .success(let n): got += UInt64(n)
                case .failure(let error): throw error
                }
                free.append(completion.chunkIndex)
            }
        }
        return (got, clockNow() - start)
    }

    /// `sluice count`'s path: a scanner over the engine, CountJob over one file.
    static func engineCount(_ engine: Engine, path: String) throws(PipelineError) -> (CountResult, UInt64) {
        let start = clockNow()
        let scanner = try engine.makeScanner()
        var result: FileCount?
        _ = try CountJob.run(scanner: scanner, paths: [RawPath(path)], onFile: { result = $0 })
        let ns = clockNow() - start
        guard let result else { throw .unaccounted(path: path, chunks: []) }
        if let error = result.errors.first { throw error }
        return (result.result, ns)
    }

    /// Empties the page cache (root only), so the next read comes from the device.
    static func dropPageCache() throws(PipelineError) {
        sync()
        let fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            throw .io(IOFailure(operation: "open", path: "/proc/sys/vm/drop_caches", errno: e,
                                reason: SystemErrors.text(e) + " (dropping the page cache needs root)"))
        }
        defer { close(fd) }
        guard write(fd, "3", 1) == 1 else {
            let e = errno
            throw .io(IOFailure(operation: "write", path: "/proc/sys/vm/drop_caches", errno: e))
        }
    }
}
