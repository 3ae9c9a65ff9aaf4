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

/// One value in a benchmark table.
public enum BenchValue: Sendable {
    /// A measurement, printed with 2 to 3 significant digits; JSON null when not finite.
    case number(Double)
    /// A count, printed as is.
    case integer(Int)
    /// A label or a fact, printed as is.
    case text(String)

    var json: String {
        switch self {
        case .number(let v): return v.isFinite ? String(v) : "null"
        case .integer(let v): return String(v)
        case .text(let s): return jsonString(s)
        }
    }

    var cell: String {
        switch self {
        case .number(let v):
            if !v.isFinite { return "-" }
            if abs(v) >= 100 { return String(Int(v.rounded())) }
            if abs(v) >= 10 { return String((v * 10).rounded() / 10) }
            return String((v * 100).rounded() / 100)
        case .integer(let v): return String(v)
        case .text(let s): return s
        }
    }
}

/// A benchmark's result: a table (rows of named values, in column order),
/// derived ratios and notes; printed as text or JSON.
public struct BenchReport: Sendable {
    /// The table's heading.
    public var title: String
    /// Column names, in printing order; rows are keyed by them.
    public var columns: [String]
    /// One dictionary per row, from column name to value; a missing column prints empty.
    public var rows: [[String: BenchValue]] = []
    /// Named ratios, e.g. "dispatch p50 / mapped round trip p50".
    public var ratios: [(String, Double)] = []
    /// Lines printed after the table, each prefixed "note:".
    public var notes: [String] = []
    /// Facts about the run (device, sizes, ...).
    public var facts: [(String, String)] = []

    /// An empty report with this title and these columns.
    public init(title: String, columns: [String]) {
        self.title = title
        self.columns = columns
    }

    /// The report as text: heading, facts, aligned table, ratios and notes.
    public var table: String {
        var lines = ["## \(title)"]
        for (k, v) in facts { lines.append("\(k): \(v)") }
        let cells = rows.map { row in columns.map { row[$0]?.cell ?? "" } }
        let widths = columns.indices.map { c in max(columns[c].count, cells.map { $0[c].count }.max() ?? 0) }
        func line(_ values: [String]) -> String {
            values.indices.map { c in
                let v = values[c]
                let pad = String(repeating: " ", count: widths[c] - v.count)
                return c == 0 ? v + pad : pad + v
            }.joined(separator: "  ")
        }
        lines.append(line(columns))
        lines.append(line(widths.map { String(repeating: "-", count: $0) }))
        for row in cells { lines.append(line(row)) }
        for (name, value) in ratios { lines.append("ratio: \(name) = \(BenchValue.number(value).cell)") }
        for note in notes { lines.append("note: \(note)") }
        return lines.joined(separator: "\n")
    }

    /// The report as one JSON object: title, facts, rows, ratios and notes.
    public var json: String {
        var parts: [String] = []
        parts.append("\"title\": \(jsonString(title))")
        parts.append("\"facts\": {" + facts.map { "\(jsonString($0.0)): \(jsonString($0.1))" }.joined(separator: ", ") + "}")
        let rowTexts = rows.map { row in
            "{" + columns.compactMap { c in row[c].map { "\(jsonString(c)): \($0.json)" } }.joined(separator: ", ") + "}"
        }
        parts.append("\"rows\": [" + rowTexts.joined(separator: ", ") + "]")
        parts.append("\"ratios\": {" + ratios.map { "\(jsonString($0.0)): \(BenchValue.number($0.1).json)" }.joined(separator: ", ") + "}")
        parts.append("\"notes\": [" + notes.map(jsonString).joined(separator: ", ") + "]")
        return "{" + parts.joined(separator: ", ") + "}"
    }
}

func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 { out += "\\u" + hex(UInt64(u.value), digits: 4) } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}

/// Percentiles of latency samples, in microseconds.
public struct LatencySummary: Sendable {
    /// Samples summarized.
    public var count: Int
    /// Median, in microseconds.
    public var p50: Double
    /// 99th percentile, in microseconds.
    public var p99: Double
    /// 99.9th percentile, in microseconds.
    public var p999: Double
    /// Fastest sample, in microseconds.
    public var min: Double
    /// Mean, in microseconds.
    public var mean: Double

    /// Summarizes `samples`, given in nanoseconds; NaN for every figure when there are none.
    public init(nanoseconds samples: [UInt64]) {
        let sorted = samples.sorted()
        count = sorted.count
        func at(_ q: Double) -> Double {
            guard !sorted.isEmpty else { return .nan }
            return Double(sorted[Swift.min(sorted.count - 1, Int(Double(sorted.count) * q))]) / 1000
        }
        p50 = at(0.5)
        p99 = at(0.99)
        p999 = at(0.999)
        min = sorted.first.map { Double($0) / 1000 } ?? .nan
        mean = sorted.isEmpty ? .nan : Double(sorted.reduce(0, +)) / Double(sorted.count) / 1000
    }

    func row(_ name: String) -> [String: BenchValue] {
        ["what": .text(name), "n": .integer(count), "p50 us": .number(p50), "p99 us": .number(p99),
         "p99.9 us": .number(p999), "min us": .number(min), "mean us": .number(mean)]
    }
}

/// `sluice bench`: dispatch latency, slots per second, and count throughput,
/// each side by side with the ceilings and baselines measured in the same
/// process (docs/benchmarks.md has the method).
public enum Bench {
    // MARK: dispatch

    /// Knobs of `sluice bench dispatch`.
    public struct DispatchOptions: Sendable {
        /// Slots timed per variant (and samples per ceiling).
        public var iterations: Int
        /// Slots run first and not timed, per variant.
        public var warmup: Int
        /// Idle-sleep caps of the megakernel's polling warps to try, in ns (the first is the default).
        public var sleepCaps: [Int]

        /// Options with the defaults: 100,000 timed slots after 2,000 untimed, at three idle-sleep caps.
        public init(iterations: Int = 100_000, warmup: Int = 2_000,
                    sleepCaps: [Int] = [CUDABackend.defaultIdleSleepMaxNanoseconds, 0, 8192]) {
            self.iterations = iterations
            self.warmup = warmup
            self.sleepCaps = sleepCaps
        }
    }

    static let latencyColumns = ["what", "n", "p50 us", "p99 us", "p99.9 us", "min us", "mean us"]

    /// Publish one small slot, busy-poll its status until DONE, reclaim, repeat;
    /// side by side with the mapped-memory round trip and launch + synchronize
    /// of an empty kernel, both measured before the megakernel starts, and
    /// variants that show where the megakernel's time goes.
    public static func dispatch(_ options: DispatchOptions, log: (String) -> Void) throws(PipelineError) -> BenchReport {
        var report = BenchReport(
            title: "dispatch latency: publish one small slot (a nop, or a count of 64 bytes) -> host sees DONE",
            columns: latencyColumns)
        var ceilings = DispatchCeilings()
        var defaults: (nop: LatencySummary, count: LatencySummary)?
        switch CUDAProbe.probe() {
        case .failure(let error):
            report.notes.append("no CUDA device here (\(error.message)): only the CPU backend was measured")
        case .success(let info):
            report.facts.append(("device", info.description))
            // Ceilings first, with no persistent kernel on the device. `m` stays
            // alive to the end: its ping-pong page is reused while a megakernel runs.
            let m = try CUDAMeasurements()
            report.facts.append(("kernels", m.kernelOrigin))
            ceilings = try dispatchCeilings(m, options: options, report: &report, log: log)
            let measured = try megakernelDefaults(options, report: &report, log: log)
            defaults = measured
            try megakernelVariants(options, countP50: measured.count.p50, report: &report, log: log)
            try roundTripsWhileIdle(m, iterations: options.iterations, report: &report, log: log)
        }
        for opcode in [Opcode.nop, .count] {
            let cpu = try cpuDispatch(n: options.iterations, warmup: options.warmup, opcode: opcode, log: log)
            report.rows.append(cpu.row("cpu backend (\(ProcessorCount.online) worker threads), \(opcode == .nop ? "nop slot" : "count slot of 64 bytes"), next slot each time"))
        }
        if let d = defaults?.nop, let rt = ceilings.roundTrip, let l = ceilings.launch {
            report.ratios.append(("megakernel nop dispatch p50 / mapped round trip p50 (target <= 1.5)", d.p50 / rt.p50))
            report.ratios.append(("empty launch+sync p50 / megakernel nop dispatch p50 (target >= 3)", l.p50 / d.p50))
        }
        if let d = defaults?.count, let rt = ceilings.roundTrip, let l = ceilings.launch {
            report.ratios.append(("megakernel count-slot dispatch p50 / mapped round trip p50", d.p50 / rt.p50))
            report.ratios.append(("empty launch+sync p50 / megakernel count-slot dispatch p50", l.p50 / d.p50))
        }
        if let d = defaults?.count, let f = ceilings.twoReads {
            report.ratios.append(("megakernel count-slot dispatch p50 / round trip with 2 dependent reads p50 (the floor of a slot with a chunk: payload, then chunk)", d.p50 / f.p50))
        }
        report.notes.append("the host busy-polls the slot's status word (no sleep); the time runs from before the publish to the poll that sees DONE")
        report.notes.append("ceilings run before the megakernel starts, each on its own (the persistent kernel occupies multiprocessors and its dispatcher warp polls PCIe); the last rows repeat some while it idles")
        report.notes.append("a nop slot is the megakernel's counterpart of the empty kernel: the dispatcher warp's poll reads each slot's status and opcode in one 8-byte read, and a nop is finished by one DONE store from that poll (no fence before it, no hand-off, no chunk)")
        report.notes.append("the megakernel's path for a count slot: the dispatcher warp's poll sees PUBLISHED, fences, reads the slot (one round trip), stores CLAIMED and hands the job to the slot's worker block through a mailbox in device memory; the worker reads the chunk (a second dependent read), writes the results, fences and stores DONE")
        report.notes.append("a 64-bit atomicAdd_system on mapped host memory is not measured: on the H100 machine no round trip through it completed within 2 s (runs 2-4 of benchmarks/RESULTS.md)")
        return report
    }

    /// The dispatch ceilings the megakernel is held against.
    struct DispatchCeilings {
        /// The mapped-memory round trip (echo).
        var roundTrip: LatencySummary?
        /// A round trip of two dependent reads: the floor of a slot with a chunk.
        var twoReads: LatencySummary?
        /// An empty kernel's launch and synchronize.
        var launch: LatencySummary?
    }

    /// Every mapped round trip, an empty kernel's launch + synchronize and
    /// launches back to back, with no megakernel on the device; a row each.
    static func dispatchCeilings(
        _ m: CUDAMeasurements, options: DispatchOptions, report: inout BenchReport, log: (String) -> Void
    ) throws(PipelineError) -> DispatchCeilings {
        let n = options.iterations
        var ceilings = DispatchCeilings()
        for step in CUDAMeasurements.RoundTripStep.measured {
            // Atomics on host memory may be slow or hang: fewer samples, and a failure is a note.
            let atomic = step == .compareAndSwap || step == .atomicAdd
            let linePolling = step == .writePolledLineVolatile || step == .writePolledLineCacheVolatile
            let samples = atomic ? min(n, 2_000) : linePolling ? min(n, 10_000) : n
            log("mapped round trip (\(step)): \(samples) samples")
            let trip: CUDAMeasurements.RoundTrip
            do {
                trip = try m.mappedRoundTrip(iterations: samples, warmup: atomic || linePolling ? 100 : options.warmup, step: step)
            } catch where atomic || linePolling {
                report.notes.append("mapped round trip, \(step): \(error.message)")
                continue
            }
            if let anomaly = trip.anomaly { report.notes.append(anomaly) }
            let s = LatencySummary(nanoseconds: trip.samples)
            if step == .echo { ceilings.roundTrip = s }
            if step == .twoMappedReads { ceilings.twoReads = s }
            report.rows.append(s.row("mapped round trip, \(step) (no megakernel running)"))
        }
        if m.kernelsLeftRunning > 0 {
            report.notes.append("\(m.kernelsLeftRunning) ping-pong kernel(s) never answered and stay on the device for the rest of this run: the rows below may be disturbed by them")
        }
        log("empty kernel launch + synchronize: \(n) samples")
        let l = LatencySummary(nanoseconds: try m.emptyLaunchAndSynchronize(iterations: n, warmup: options.warmup))
        ceilings.launch = l
        report.rows.append(l.row("empty kernel launch + cuStreamSynchronize (no megakernel running)"))
        let backToBack = try m.emptyLaunchesBackToBack(count: min(n, 20_000))
        var row: [String: BenchValue] = ["what": .text("empty kernel launches back to back, mean per launch"),
                                         "n": .integer(min(n, 20_000)), "mean us": .number(backToBack / 1000)]
        row["p50 us"] = .text("-")
        report.rows.append(row)
        return ceilings
    }

    /// The megakernel in its default configuration, every sample asked for:
    /// nop and count slots, the count slot with the stage trace (and with
    /// lane claims), a nop in the same slot every time. Returns the nop and count rows.
    static func megakernelDefaults(
        _ options: DispatchOptions, report: inout BenchReport, log: (String) -> Void
    ) throws(PipelineError) -> (nop: LatencySummary, count: LatencySummary) {
        let defaultCap = options.sleepCaps.first ?? CUDABackend.defaultIdleSleepMaxNanoseconds
        func byDefault(_ opcode: Opcode, rotate: Bool = true, traceStages: Bool = false, laneClaims: Bool = false)
            throws(PipelineError) -> (latency: LatencySummary, stages: MegakernelStageTrace?)
        {
            try megakernelDispatch(
                n: options.iterations, warmup: options.warmup, slots: BackendSelection.cudaDefaultSlots, sleepCap: defaultCap,
                fence: .acquireRelease, volatilePolling: true, writeBackStores: false, rotate: rotate, opcode: opcode,
                traceStages: traceStages, laneClaims: laneClaims, log: log, facts: &report.facts)
        }
        let nop = try byDefault(.nop)
        report.rows.append(nop.latency.row("megakernel, nop slot (the dispatcher's poll reads status and opcode and finishes it), default ring of \(BackendSelection.cudaDefaultSlots) slots, next slot each time"))
        let d = try byDefault(.count)
        report.rows.append(d.latency.row("megakernel, count slot of 64 bytes (default: \(BackendSelection.cudaDefaultSlots) slots, one dispatcher warp polls host memory, idle sleep <= \(defaultCap) ns, volatile polling, st.wt stores, fence.acq_rel.sys), next slot each time"))
        let traced = try byDefault(.count, traceStages: true)
        report.rows.append(traced.latency.row("megakernel, count slot of 64 bytes, stage trace on (%globaltimer at each stage)"))
        if let t = traced.stages, t.slots > 0 {
            report.notes.append("stage trace of the count slot: " + stageText(t, hostMean: traced.latency.mean) + "; the rest is the poll that sees PUBLISHED and DONE's trip to the host")
        }
        let tracedLane = try byDefault(.count, traceStages: true, laneClaims: true)
        report.rows.append(tracedLane.latency.row("megakernel variant (count slot): lane claims (a lone slot claimed by its polling lane, not the whole warp), stage trace on"))
        if let t = tracedLane.stages, t.slots > 0 {
            report.notes.append("stage trace with lane claims: " + stageText(t, hostMean: tracedLane.latency.mean))
        }
        report.rows.append(try byDefault(.nop, rotate: false).latency.row("megakernel variant: nop slot, same slot every time"))
        return (nop.latency, d.latency)
    }

    /// A stage trace's means, each named, against the host's mean.
    static func stageText(_ t: MegakernelStageTrace, hostMean: Double) -> String {
        func us(_ ns: Double) -> String { BenchValue.number(ns / 1000).cell }
        return "claim fence \(us(t.claimFence)) us (poll saw PUBLISHED -> fence.acq_rel.sys done), claim read \(us(t.claimRead)) us (slot and table words read and checked), hand-off \(us(t.handOff)) us (CLAIMED store, mailbox, worker's polling warp, barrier), work \(us(t.work)) us (chunk read, count, 258 result words stored, barrier), release \(us(t.release)) us (completion store, system fence); sum \(us(t.total)) us of the host's mean \(us(hostMean * 1000)) us (means over \(t.slots) slots, %globaltimer)"
    }

    /// One megakernel configuration that differs from the default.
    struct DispatchVariant {
        var name: String
        var slots = BackendSelection.cudaDefaultSlots
        var cap: Int
        var fence = CUDABackend.SystemFence.acquireRelease
        var volatilePolling = true
        var writeBackStores = false
        var rotate = true
    }

    /// The count slot under each variant (memory access, fences, idle-sleep
    /// caps, ring sizes), with fewer samples when the default is slow.
    static func megakernelVariants(
        _ options: DispatchOptions, countP50: Double, report: inout BenchReport, log: (String) -> Void
    ) throws(PipelineError) {
        let defaultCap = options.sleepCaps.first ?? CUDABackend.defaultIdleSleepMaxNanoseconds
        let v = countP50 > 20 ? min(options.iterations, 10_000) : options.iterations
        var variants: [DispatchVariant] = [
            DispatchVariant(name: "same slot every time", cap: defaultCap, rotate: false),
            DispatchVariant(name: "phase-1 memory access: volatile polling, write-back stores, fence.sc.sys", cap: defaultCap,
                            fence: .sequentiallyConsistent, volatilePolling: true, writeBackStores: true),
            DispatchVariant(name: "ld.cv polling instead of volatile (the default of runs 4-6)", cap: defaultCap, volatilePolling: false),
            DispatchVariant(name: "write-back stores instead of st.wt", cap: defaultCap, writeBackStores: true),
            DispatchVariant(name: "fence.sc.sys instead of fence.acq_rel.sys", cap: defaultCap, fence: .sequentiallyConsistent),
        ]
        for cap in options.sleepCaps.dropFirst() {
            variants.append(DispatchVariant(name: "idle sleep <= \(cap) ns", cap: cap))
        }
        variants.append(DispatchVariant(name: "ring of 8 slots (8 worker blocks)", slots: 8, cap: defaultCap))
        variants.append(DispatchVariant(name: "ring of 1 slot (1 worker block, so the same slot every time)", slots: 1, cap: defaultCap))
        for variant in variants {
            let s = try megakernelDispatch(
                n: v, warmup: min(options.warmup, v), slots: variant.slots, sleepCap: variant.cap,
                fence: variant.fence, volatilePolling: variant.volatilePolling,
                writeBackStores: variant.writeBackStores, rotate: variant.rotate, opcode: .count, log: log,
                facts: &report.facts)
            report.rows.append(s.latency.row("megakernel variant (count slot): \(variant.name)"))
        }
    }

    /// The plain round trips again, while the default megakernel idles:
    /// what its polling does to every PCIe round trip and system fence.
    static func roundTripsWhileIdle(
        _ m: CUDAMeasurements, iterations n: Int, report: inout BenchReport, log: (String) -> Void
    ) throws(PipelineError) {
        try m.preparePingPage()
        let geometry = try RingGeometry(slotCount: BackendSelection.cudaDefaultSlots, resultWordsPerSlot: CountOp.resultWords)
        let backend = try CUDABackend(
            configuration: BackendConfiguration(geometry: geometry, dataBytes: geometry.slotCount * 4096),
            reason: "sluice bench dispatch")
        try backend.start()
        defer { try? backend.shutdown() }
        for step in [CUDAMeasurements.RoundTripStep.echo, .storeAndFence, .twoMappedReads] {
            let samples = min(n, 5_000)
            log("mapped round trip (\(step)) while the megakernel idles: \(samples) samples")
            let trip = try m.mappedRoundTrip(iterations: samples, warmup: 200, step: step)
            report.rows.append(LatencySummary(nanoseconds: trip.samples).row("mapped round trip, \(step), while the default megakernel idles"))
        }
    }

    static func megakernelDispatch(
        n: Int, warmup: Int, slots: Int, sleepCap: Int, fence: CUDABackend.SystemFence, volatilePolling: Bool,
        writeBackStores: Bool, rotate: Bool, opcode: Opcode, traceStages: Bool = false, laneClaims: Bool = false,
        log: (String) -> Void,
        facts: inout [(String, String)]
    ) throws(PipelineError) -> (latency: LatencySummary, stages: MegakernelStageTrace?) {
        let geometry = try RingGeometry(slotCount: slots, resultWordsPerSlot: CountOp.resultWords)
        let chunk = 4096
        let backend = try CUDABackend(
            configuration: BackendConfiguration(geometry: geometry, dataBytes: geometry.slotCount * chunk),
            reason: "sluice bench dispatch")
        backend.idleSleepMaxNanoseconds = sleepCap
        backend.systemFence = fence
        backend.volatilePolling = volatilePolling
        backend.writeBackStores = writeBackStores
        backend.traceStages = traceStages
        backend.laneClaims = laneClaims
        try backend.start()
        defer { try? backend.shutdown() }
        if facts.allSatisfy({ $0.0 != "megakernel" }) { facts.append(("megakernel", backend.summary)) }
        log("megakernel dispatch (\(opcode.name), \(slots) slots, idle sleep <= \(sleepCap) ns, \(fence.rawValue), \(volatilePolling ? "volatile" : "ld.cv") polling, \(writeBackStores ? "write-back" : "st.wt") stores, \(rotate ? "rotating" : "one") slot\(traceStages ? ", stage trace" : "")): \(n) samples")
        let latency = try timeDispatch(backend: backend, n: n, warmup: warmup, rotate: rotate, opcode: opcode)
        return (latency, traceStages ? try backend.stageTrace() : nil)
    }

    static func cpuDispatch(n: Int, warmup: Int, opcode: Opcode, log: (String) -> Void) throws(PipelineError) -> LatencySummary {
        let geometry = try RingGeometry(slotCount: 64, resultWordsPerSlot: CountOp.resultWords)
        let backend = try CPUBackend(
            configuration: BackendConfiguration(geometry: geometry, dataBytes: geometry.slotCount * 4096))
        try backend.start()
        defer { try? backend.shutdown() }
        log("cpu backend dispatch (\(opcode.name)): \(n) samples")
        return try timeDispatch(backend: backend, n: n, warmup: warmup, rotate: true, opcode: opcode)
    }

    /// The dispatch loop: one slot in flight at a time. Every 997th count
    /// slot's results are checked against CountOp; every nop must end DONE
    /// with completion 0 and its result area untouched.
    static func timeDispatch(backend: any MegakernelBackend, n: Int, warmup: Int, rotate: Bool, opcode: Opcode) throws(PipelineError)
        -> LatencySummary
    {
        let ring = backend.ring
        let slots = ring.geometry.slotCount
        let chunk = backend.dataRegion.count / slots
        let length = 64
        var rng = SelfTestRandom(seed: 0x5EED)
        for i in 0..<backend.dataRegion.count { backend.dataRegion[i] = UInt8(truncatingIfNeeded: rng.next()) }
        var expected = [UInt32](repeating: 0, count: CountOp.resultWords)
        var samples: [UInt64] = []
        samples.reserveCapacity(n)
        for i in 0..<(warmup + n) {
            let slot = rotate ? i % slots : 0
            let payload = SlotPayload(
                opcode: opcode, bufferOffset: UInt64(slot * chunk), length: UInt32(length), chunkIndex: UInt32(slot),
                resultOffset: UInt32(ring.geometry.resultOffset(ofSlot: slot)),
                resultCapacity: UInt32(ring.geometry.resultWordsPerSlot))
            let start = clockNow()
            try ring.publish(slot: slot, payload)
            var status = try ring.status(ofSlot: slot)
            var spins = 0
            while !status.isTerminal {
                status = try ring.status(ofSlot: slot)
                spins &+= 1
                if spins & 0xFFFF == 0, clockNow() - start > 5_000_000_000 {
                    throw .stuck(slots: [slot], seconds: 5, runner: backend.slotRunner)
                }
            }
            let end = clockNow()
            let record = try ring.reclaim(slot: slot)
            guard record.status == .done else {
                throw .slotFaulted(slot: slot, chunk: i, path: nil, code: record.fault ?? .badArguments)
            }
            if opcode == .nop {
                guard record.completion == 0 else {
                    throw .malformed(what: "nop slot \(slot)", detail: "DONE with completion \(record.completion), not 0")
                }
                if i % 997 == 0 {
                    let area = ring.resultArea(ofSlot: slot)
                    // The ring starts zeroed and only nops run on this backend.
                    if let w = (0..<area.count).first(where: { area[$0] != 0 }) {
                        throw .malformed(what: "nop slot \(slot)", detail: "result word \(w) was written (\(area[w]))")
                    }
                }
            } else if i % 997 == 0 {
                let base = slot * chunk
                expected.withUnsafeMutableBufferPointer { out in
                    CountOp.run(UnsafeRawBufferPointer(rebasing: backend.dataRegion[base..<(base + length)]), into: out)
                }
                let area = ring.resultArea(ofSlot: slot)
                if let w = (0..<CountOp.resultWords).first(where: { area[$0] != expected[$0] }) {
                    throw .malformed(what: "dispatch result of slot \(slot)", detail: "word \(w) is \(area[w]), CountOp says \(expected[w])")
                }
            }
            if i >= warmup { samples.append(end - start) }
        }
        return LatencySummary(nanoseconds: samples)
    }

    // MARK: slots per second

    /// Knobs of `sluice bench slots`.
    public struct SlotsOptions: Sendable {
        /// How long each backend is measured, in seconds.
        public var seconds: Double
        /// Options measuring for `seconds` seconds.
        public init(seconds: Double = 2) { self.seconds = seconds }
    }

    /// Slots per second with every slot in flight: publish the whole ring,
    /// then reclaim and republish each slot as soon as it is DONE.
    public static func slots(_ options: SlotsOptions, log: (String) -> Void) throws(PipelineError) -> BenchReport {
        var report = BenchReport(
            title: "slots per second: count, whole ring in flight, each slot republished as soon as it is DONE",
            columns: ["backend", "slots", "chunk B", "slots/s", "GB/s", "us per slot (mean)", "completed"])
        var configs: [(cuda: Bool, slots: Int, chunk: Int, laneClaims: Bool)] = []
        switch CUDAProbe.probe() {
        case .success(let info):
            report.facts.append(("device", info.description))
            configs += [(true, 128, 4096, false), (true, 128, 64, false), (true, 1024, 4096, false), (true, 128, 65536, false),
                        (true, 128, 4096, true), (true, 128, 65536, true)]
        case .failure(let error):
            report.notes.append("no CUDA device here (\(error.message)): only the CPU backend was measured")
        }
        let cpuSlots = max(8, 2 * ProcessorCount.online + 2)
        configs += [(false, cpuSlots, 4096, false), (false, cpuSlots, 64, false), (false, cpuSlots, 65536, false)]
        for config in configs {
            let geometry = try RingGeometry(slotCount: config.slots, resultWordsPerSlot: CountOp.resultWords)
            let configuration = BackendConfiguration(geometry: geometry, dataBytes: config.slots * max(config.chunk, 4096))
            let backend: any MegakernelBackend
            if config.cuda {
                let cuda = try CUDABackend(configuration: configuration, reason: "sluice bench slots")
                cuda.laneClaims = config.laneClaims
                backend = cuda
            } else {
                backend = try CPUBackend(configuration: configuration, reason: "sluice bench slots")
            }
            try backend.start()
            defer { try? backend.shutdown() }
            if config.cuda, report.facts.allSatisfy({ $0.0 != "megakernel (128 slots)" }), config.slots == 128 {
                report.facts.append(("megakernel (128 slots)", backend.summary))
            }
            log("slots/s: \(backend.name)\(config.laneClaims ? " (lane claims)" : ""), \(config.slots) slots, \(config.chunk)-byte chunks, \(options.seconds) s")
            let (completed, ns) = try timeSlots(backend: backend, chunk: config.chunk, seconds: options.seconds)
            let rate = Double(completed) / (Double(ns) / 1e9)
            report.rows.append([
                "backend": .text(backend.name == "cpu" ? "cpu (\(ProcessorCount.online) threads)" : config.laneClaims ? "cuda, lane claims" : backend.name),
                "slots": .integer(config.slots), "chunk B": .integer(config.chunk), "slots/s": .number(rate),
                "GB/s": .number(rate * Double(config.chunk) / 1e9),
                "us per slot (mean)": .number(Double(config.slots) / rate * 1e6), "completed": .integer(completed),
            ])
        }
        report.notes.append("one host thread reclaims and republishes (RingView, as the scanner does); chunk bytes stay the same between rounds; results of the last round are checked against CountOp")
        report.notes.append("'us per slot' is slots in flight / rate: the time one slot spends from publish to reclaim under full load")
        return report
    }

    static func timeSlots(backend: any MegakernelBackend, chunk: Int, seconds: Double) throws(PipelineError) -> (Int, UInt64) {
        let ring = backend.ring
        let slots = ring.geometry.slotCount
        let stride = backend.dataRegion.count / slots
        var rng = SelfTestRandom(seed: 0xB0B)
        for i in 0..<backend.dataRegion.count { backend.dataRegion[i] = UInt8(truncatingIfNeeded: rng.next()) }
        let payloads = (0..<slots).map { slot in
            SlotPayload(
                opcode: .count, bufferOffset: UInt64(slot * stride), length: UInt32(chunk), chunkIndex: UInt32(slot),
                resultOffset: UInt32(ring.geometry.resultOffset(ofSlot: slot)),
                resultCapacity: UInt32(ring.geometry.resultWordsPerSlot))
        }
        // Warm up for a tenth of the time, then count completions.
        var completed = 0
        for slot in 0..<slots { try ring.publish(slot: slot, payloads[slot]) }
        let warmEnd = clockNow() + UInt64(seconds * 0.1 * 1e9)
        var start = clockNow()
        var counting = false
        let total = UInt64(seconds * 1.1 * 1e9)
        let begin = clockNow()
        var lastMove = clockNow()
        while true {
            let now = clockNow()
            if !counting, now >= warmEnd {
                counting = true
                completed = 0
                start = now
            }
            if now - begin >= total { break }
            var moved = false
            for slot in 0..<slots {
                guard try ring.status(ofSlot: slot).isTerminal else { continue }
                let record = try ring.reclaim(slot: slot)
                guard record.status == .done else {
                    throw .slotFaulted(slot: slot, chunk: slot, path: nil, code: record.fault ?? .badArguments)
                }
                try ring.publish(slot: slot, payloads[slot])
                completed += 1
                moved = true
            }
            if moved {
                lastMove = now
            } else if now - lastMove > 5_000_000_000 {
                throw .stuck(
                    slots: (0..<slots).filter { (try? ring.status(ofSlot: $0)) == .claimed }, seconds: 5,
                    runner: backend.slotRunner)
            }
        }
        let elapsed = clockNow() - start
        // Drain, and check the last round's words.
        let drainStart = clockNow()
        var expected = [UInt32](repeating: 0, count: CountOp.resultWords)
        for slot in 0..<slots {
            while try !ring.status(ofSlot: slot).isTerminal {
                if clockNow() - drainStart > 5_000_000_000 {
                    throw .stuck(slots: [slot], seconds: 5, runner: backend.slotRunner)
                }
            }
            let record = try ring.reclaim(slot: slot)
            guard record.status == .done else {
                throw .slotFaulted(slot: slot, chunk: slot, path: nil, code: record.fault ?? .badArguments)
            }
            let base = slot * stride
            expected.withUnsafeMutableBufferPointer { out in
                CountOp.run(UnsafeRawBufferPointer(rebasing: backend.dataRegion[base..<(base + chunk)]), into: out)
            }
            let area = ring.resultArea(ofSlot: slot)
            if let w = (0..<CountOp.resultWords).first(where: { area[$0] != expected[$0] }) {
                throw .malformed(what: "slots benchmark result of slot \(slot)", detail: "word \(w) is \(area[w]), CountOp says \(expected[w])")
            }
        }
        return (completed, elapsed)
    }
}
