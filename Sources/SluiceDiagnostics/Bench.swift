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
