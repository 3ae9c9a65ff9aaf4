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

// `sluice bench dispatch`: one small slot's latency, beside the mapped
// round trip and an empty kernel's launch, and the megakernel's variants.

extension Bench {
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
}
