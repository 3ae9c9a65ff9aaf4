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
    /// Knobs of `sluice bench resident`.
    public struct ResidentOptions: Sendable {
        /// The file whose first slots × chunk bytes are loaded once.
        public var path: String
        /// The literals matched.
        public var patterns: PatternSet
        /// Scan slots with the count-only flag: no match records stored.
        public var countOnly: Bool
        /// Which backend runs the slots; `auto` takes CUDA where it probes usable.
        public var backend: BackendChoice
        /// Bytes per chunk, a multiple of 4096.
        public var chunkBytes: Int
        /// Seconds timed (after a warm-up of a tenth of it).
        public var seconds: Double
        /// Ring slots; 0 takes the default (CUDA: 128; CPU: two per worker and two more, at least 8).
        public var slots: Int
        /// CPU worker threads; 0: one per core.
        public var workers: Int

        /// Options with 4 MiB chunks, 2 seconds, the default ring and records stored.
        public init(
            path: String, patterns: PatternSet, countOnly: Bool = false, backend: BackendChoice = .auto,
            chunkBytes: Int = 4 << 20, seconds: Double = 2, slots: Int = 0, workers: Int = 0
        ) {
            self.path = path
            self.patterns = patterns
            self.countOnly = countOnly
            self.backend = backend
            self.chunkBytes = chunkBytes
            self.seconds = seconds
            self.slots = slots
            self.workers = workers
        }
    }

    /// The literal set of `bench resident`: `literals` (already decoded), then
    /// each pattern file's lines (as `sluice scan -f`). A file that holds no
    /// literal is an error naming it.
    public static func residentPatterns(literals: [[UInt8]], files: [String]) throws(PipelineError) -> PatternSet {
        var all = literals
        for file in files {
            let lines = PatternSet.parseLines(try readWholeFile(file, what: "pattern file"))
            guard !lines.isEmpty else {
                throw .invalidConfiguration("the pattern file \(file) holds no literals (one per line; empty lines are skipped)")
            }
            all += lines
        }
        return try PatternSet(literals: all)
    }

    /// Where the resident chunks lie in the loaded bytes. Chunk c owns the
    /// start positions [c × chunk, (c + 1) × chunk) and its slot reads
    /// `ScanJob.overlap` bytes more from the chunks after it (as the scanner
    /// reads past a chunk in a file), so a match across a boundary is counted
    /// once, by the chunk it starts in; a pass counts exactly the matches of
    /// the loaded bytes as one text.
    struct ResidentLayout {
        var loaded: Int
        var chunkBytes: Int
        var overlap: Int

        var chunks: Int { (loaded + chunkBytes - 1) / chunkBytes }
        func start(_ c: Int) -> Int { c * chunkBytes }
        func owned(_ c: Int) -> Int { min(chunkBytes, loaded - start(c)) }
        func length(_ c: Int) -> Int { min(chunkBytes + overlap, loaded - start(c)) }
    }

    /// What the timed loop saw.
    struct ResidentRun {
        var slotsRun = 0
        var bytes: UInt64 = 0
        var nanoseconds: UInt64 = 0
        /// Slots whose records did not all fit the area (found > stored).
        var overflowed = 0
        /// Per chunk, the matches the backend found (every slot of it agreed).
        var found: [UInt64?]
    }

    /// The scan kernel alone: the first slots × chunk bytes of a file are
    /// loaded once into the memory the workers read (the CPU backend's data
    /// region; on CUDA the device ingest region, in GPU memory), then scan
    /// slots over those chunks are published again and again for
    /// `options.seconds`, the ring kept full; no file is read while timed.
    /// Every slot's match count must equal the host `ScanOp`'s for its chunk.
    public static func resident(_ options: ResidentOptions, log: (String) -> Void) throws(PipelineError) -> BenchReport {
        let patterns = options.patterns
        let size = try fileSize(options.path)
        guard size > 0 else {
            throw .invalidConfiguration("\(options.path) is empty: bench resident needs at least one byte to keep in memory")
        }
        let (useCUDA, why) = try residentBackendChoice(options.backend)
        let slots = options.slots > 0
            ? options.slots
            : useCUDA ? BackendSelection.cudaDefaultSlots : max(8, 2 * (options.workers > 0 ? options.workers : ProcessorCount.online) + 2)
        let chunk = options.chunkBytes
        let records = options.countOnly ? 0 : ScanJob.defaultRecords(chunkBytes: chunk)
        let geometry = try RingGeometry(slotCount: slots, resultWordsPerSlot: ScanJob.resultWords(records: records))
        let layout = ResidentLayout(loaded: Int(min(size, UInt64(slots * chunk))), chunkBytes: chunk, overlap: ScanJob.overlap(for: patterns))
        let configuration = BackendConfiguration(
            geometry: geometry, dataBytes: slots * chunk, workers: useCUDA ? 0 : options.workers > 0 ? options.workers : ProcessorCount.online)
        let (backend, device) = try makeResidentBackend(configuration, cuda: useCUDA, reason: why, ingestBytes: slots * chunk)
        try backend.start()
        defer { try? backend.shutdown() }
        let table = ScanTable(patterns)
        let matcher = try backend.installScanTable(table.words, literals: patterns.literals, caseInsensitive: patterns.caseInsensitive)

        log("loading \(layout.loaded) bytes of \(options.path)\(device == nil ? "" : " and copying them to GPU memory")")
        let host = UnsafeMutableRawBufferPointer(rebasing: backend.dataRegion[0..<layout.loaded])
        try loadResident(path: options.path, into: host)
        try device?.copyFromHost(offset: 0, UnsafeRawBufferPointer(host))
        log("host ScanOp over the resident bytes (the reference)")
        let expected = try residentReference(
            table: table.words, longest: patterns.maxLength, bytes: UnsafeRawBufferPointer(host), layout: layout)

        let payloads = residentPayloads(
            slots: slots, layout: layout, geometry: geometry, countOnly: options.countOnly, region: device == nil ? .host : .device)
        log("\(backend.name): \(slots) slots over \(layout.chunks) resident chunks, \(options.seconds) s")
        let run = try timeResident(backend: backend, payloads: payloads, expected: expected, path: options.path, seconds: options.seconds)

        let kernelPass = run.found.reduce(UInt64(0)) { $0 + ($1 ?? 0) }
        let hostPass = expected.reduce(0, +)
        // Every chunk is in at least one slot, and each slot was checked as it finished.
        guard run.found.allSatisfy({ $0 != nil }), kernelPass == hostPass else {
            throw .malformed(what: "bench resident", detail: "\(backend.name) found \(kernelPass) matches per pass, the host ScanOp \(hostPass)")
        }
        var report = BenchReport(
            title: "scan kernel on resident data (chunks loaded once; no reads, no PCIe for the chunk bytes while timed)",
            columns: ["backend", "literals", "slot", "seconds", "slots run", "GB/s", "matches per pass", "host ScanOp per pass"])
        let seconds = Double(run.nanoseconds) / 1e9
        report.rows.append([
            "backend": .text(backend.name == "cpu" ? "cpu (\(configuration.workers) threads)" : backend.name),
            "literals": .integer(patterns.count), "slot": .text(options.countOnly ? "scan, count only" : "scan, records"),
            "seconds": .number(seconds), "slots run": .integer(run.slotsRun), "GB/s": .number(Double(run.bytes) / seconds / 1e9),
            "matches per pass": .integer(Int(kernelPass)), "host ScanOp per pass": .integer(Int(hostPass)),
        ])
        report.facts.append(("file", "\(options.path), \(size) bytes; resident: its first \(layout.loaded) bytes (\(formatSize(layout.loaded)))"))
        report.facts.append(("chunks", "\(layout.chunks) of \(formatSize(chunk)), \(slots) slots (slot s scans chunk s mod \(layout.chunks)), overlap \(layout.overlap) bytes"))
        report.facts.append(("resident in", device == nil ? "the CPU backend's host data region" : "the CUDA device ingest region (GPU memory), slots with region .device"))
        report.facts.append(("backend", backend.summary))
        report.facts.append(("matcher", matcher))
        if !options.countOnly {
            report.facts.append(("records", "\(records) per slot; \(run.overflowed) slots of the whole run (the untimed warm-up and the drain included) found more matches than fit (counted in full; a real scan would rescan those chunks on the host)"))
        }
        report.notes += residentNotes
        return report
    }

    /// The backend the chunks stay resident for, and on CUDA its device
    /// ingest region (where they are loaded).
    static func makeResidentBackend(
        _ configuration: BackendConfiguration, cuda: Bool, reason: String, ingestBytes: Int
    ) throws(PipelineError) -> (any MegakernelBackend, CUDADeviceIngestRegion?) {
        guard cuda else { return (try CPUBackend(configuration: configuration, reason: reason), nil) }
        let backend = try CUDABackend(configuration: configuration, reason: reason, deviceIngestBytes: ingestBytes)
        guard let region = backend.deviceIngest else {
            throw .backendUnavailable(backend: "cuda", reason: "no device ingest region was allocated for the resident chunks")
        }
        return (backend, region)
    }

    /// One scan slot per ring slot: slot s scans resident chunk s mod the chunk count.
    static func residentPayloads(
        slots: Int, layout: ResidentLayout, geometry: RingGeometry, countOnly: Bool, region: ChunkRegion
    ) -> [SlotPayload] {
        let flags = countOnly ? ScanOp.countOnlyFlag : 0
        return (0..<slots).map { slot in
            let c = slot % layout.chunks
            return SlotPayload(
                opcode: .scan, bufferOffset: UInt64(layout.start(c)), length: UInt32(layout.length(c)), fileOffset: UInt64(layout.start(c)),
                chunkIndex: UInt32(c), arguments: (UInt32(layout.owned(c)), ScanDirectory.argument1(index: 0, flags: flags)),
                resultOffset: UInt32(geometry.resultOffset(ofSlot: slot)), resultCapacity: UInt32(geometry.resultWordsPerSlot),
                region: region)
        }
    }

    /// What the report's figures include and exclude.
    static let residentNotes = [
        "GB/s: bytes owned by the slots finished in the timed window (chunk bytes, the overlap read past each chunk not counted) / the window (at least --seconds long, and holding at least as many finished slots as the ring has); slot dispatch, the scan, result stores and the host's reclaim and republish are included; file reads and PCIe transfers of chunk bytes are excluded (the bytes were loaded once, before timing)",
        "matches per pass: each chunk owns its chunk bytes as start positions and reads the longest literal less one (rounded up to 4 KiB) past them, so a match across a chunk boundary is counted once, by the chunk it starts in; a pass counts every (overlapping) match in the resident bytes as one text, exact duplicate literals once",
        "every finished slot's count was compared with the host ScanOp's count for its chunk, and the per-pass sum equals the host ScanOp over the same bytes; a difference fails the benchmark",
    ]

    /// Whether CUDA runs, and why.
    static func residentBackendChoice(_ choice: BackendChoice) throws(PipelineError) -> (Bool, String) {
        switch choice {
        case .cpu: return (false, "chosen with --backend cpu")
        case .cuda:
            let info = try CUDAProbe.probe().get()
            return (true, "chosen with --backend cuda (\(info.name))")
        case .auto:
            switch CUDAProbe.probe() {
            case .success(let info): return (true, "auto: \(info.name) found")
            case .failure(let error): return (false, "auto: no usable GPU: \(error.message)")
            }
        }
    }

    /// Reads the first `target.count` bytes of `path` into `target`.
    static func loadResident(path: String, into target: UnsafeMutableRawBufferPointer) throws(PipelineError) {
        let fd = try openForIngest(path: RawPath(path), direct: false)
        defer { try? fd.close() }
        var done = 0
        while done < target.count {
            let n: Int
            do {
                n = try fd.read(fromAbsoluteOffset: Int64(done), into: UnsafeMutableRawBufferPointer(rebasing: target[done...]))
            } catch {
                let code = (error as? Errno)?.rawValue ?? EIO
                throw .io(IOFailure(
                    operation: "pread", path: path, fileOffset: UInt64(done), length: target.count - done, errno: code,
                    reason: SystemErrors.text(code)))
            }
            guard n > 0 else { throw .fileChanged(path: path, detail: "it ended at byte \(done) while \(target.count) were being loaded") }
            done += n
        }
    }

    /// The host ScanOp over `bytes` as one text, each match counted for the
    /// chunk its start lies in. Threads take contiguous runs of chunks; each
    /// scans its run's start positions plus `longest` − 1 bytes after them
    /// (the most a match starting there can reach), so the counts are those
    /// of one scan over the whole text, whatever overlap the slots read.
    static func residentReference(
        table words: [UInt32], longest: Int, bytes: UnsafeRawBufferPointer, layout: ResidentLayout
    ) throws(PipelineError) -> [UInt64] {
        // The view needs memory that outlives it; an array's buffer only lives inside a closure.
        let copy = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: words.count)
        defer { copy.deallocate() }
        _ = copy.initialize(from: words)
        let counts = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: layout.chunks)
        defer { counts.deallocate() }
        counts.initialize(repeating: 0)
        let shared = ReferenceScan(view: try ScanTableView(UnsafeBufferPointer(copy)), bytes: bytes, counts: counts)
        let threads = min(ProcessorCount.online, layout.chunks)
        var started: [PosixThread] = []
        for t in 0..<threads {
            let first = layout.chunks * t / threads, end = layout.chunks * (t + 1) / threads
            let from = layout.start(first), to = min(layout.loaded, layout.start(end))
            do throws(ThreadStartFailure) {
                started.append(try PosixThread(name: "bench resident reference \(t)") {
                    shared.count(from: from, to: to, reach: min(layout.loaded, to + longest - 1), chunkBytes: layout.chunkBytes)
                })
            } catch {
                for thread in started { thread.join() }
                throw .backendUnavailable(backend: "cpu", reason: error.message)
            }
        }
        for thread in started { thread.join() }
        return Array(counts)
    }

    /// What the reference threads share: each writes only its own chunks' counts.
    struct ReferenceScan: @unchecked Sendable {
        let view: ScanTableView
        let bytes: UnsafeRawBufferPointer
        let counts: UnsafeMutableBufferPointer<UInt64>

        /// Counts the matches starting in [from, to) of `bytes[..<reach]`, per chunk.
        func count(from: Int, to: Int, reach: Int, chunkBytes: Int) {
            ScanOp.forEachMatch(table: view, chunk: UnsafeRawBufferPointer(rebasing: bytes[from..<reach]), startLimit: to - from) { p, _ in
                counts[(from + p) / chunkBytes] += 1
            }
        }
    }

    /// Keeps every slot in flight for a tenth of `seconds` (warm-up), then
    /// `seconds` timed, or longer until a ring's worth of slots finished in
    /// the window; each finished slot is checked against `expected` and
    /// published again at once. Drains and checks the ring at the end.
    static func timeResident(
        backend: any MegakernelBackend, payloads: [SlotPayload], expected: [UInt64], path: String, seconds: Double
    ) throws(PipelineError) -> ResidentRun {
        let ring = backend.ring
        let slots = payloads.count
        var run = ResidentRun(found: [UInt64?](repeating: nil, count: expected.count))
        let patience: UInt64 = 30_000_000_000
        func check(_ slot: Int) throws(PipelineError) -> UInt64 {
            let chunk = Int(payloads[slot].chunkIndex)
            let record = try ring.reclaim(slot: slot)
            guard record.status == .done else {
                throw .slotFaulted(slot: slot, chunk: chunk, path: path, code: record.fault ?? .badArguments)
            }
            let area = ring.resultArea(ofSlot: slot)
            let found = UInt64(area[0]) | UInt64(area[1]) << 32
            guard found == expected[chunk] else {
                throw .malformed(
                    what: "bench resident, chunk \(chunk) (bytes \(payloads[slot].bufferOffset)..<\(payloads[slot].bufferOffset + UInt64(payloads[slot].arguments.0)) of \(path)), slot \(slot)",
                    detail: "\(backend.name) found \(found) matches, the host ScanOp \(expected[chunk])")
            }
            if UInt64(area[2]) < found, payloads[slot].arguments.1 & ScanOp.countOnlyFlag == 0 { run.overflowed += 1 }
            run.found[chunk] = found
            return UInt64(payloads[slot].arguments.0)
        }
        for slot in 0..<slots { try ring.publish(slot: slot, payloads[slot]) }
        let begin = clockNow()
        let warmEnd = begin + UInt64(seconds * 0.1 * 1e9)
        let end = warmEnd + UInt64(seconds * 1e9)
        var start = begin, lastMove = begin, counting = false
        while true {
            let now = clockNow()
            if !counting, now >= warmEnd {
                (counting, start, run.slotsRun, run.bytes) = (true, now, 0, 0)
            }
            // At least a ring's worth of slots, however slow each one is.
            if now >= end, run.slotsRun >= slots { break }
            let epoch = ring.epoch
            var moved = false
            for slot in 0..<slots {
                guard try ring.status(ofSlot: slot).isTerminal else { continue }
                let bytes = try check(slot)
                if counting { (run.slotsRun, run.bytes) = (run.slotsRun + 1, run.bytes + bytes) }
                try ring.publish(slot: slot, payloads[slot])
                moved = true
            }
            if moved {
                lastMove = now
            } else if now - lastMove > patience {
                throw .stuck(slots: (0..<slots).filter { (try? ring.status(ofSlot: $0)) == .claimed }, seconds: 30, runner: backend.slotRunner)
            } else if backend is CPUBackend {
                // The host shares the cores with the CPU workers: wait rather than spin.
                _ = try backend.waitForProgress(after: epoch, timeout: .milliseconds(20))
            }
        }
        run.nanoseconds = clockNow() - start
        let drainStart = clockNow()
        for slot in 0..<slots {
            while try !ring.status(ofSlot: slot).isTerminal {
                if clockNow() - drainStart > patience { throw .stuck(slots: [slot], seconds: 30, runner: backend.slotRunner) }
            }
            _ = try check(slot)
        }
        return run
    }
}
