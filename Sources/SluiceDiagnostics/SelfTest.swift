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
import SluiceThreads

/// Knobs of `sluice selftest`.
public struct SelfTestOptions: Sendable {
    /// The backend under test. `.cpu` is compared with the opcodes run on the
    /// host; `.cuda` (and `.auto` when it finds a GPU) with the CPU backend.
    public var backend: BackendChoice
    /// Every random input derives from it; print it to replay a failure.
    public var seed: UInt64
    /// Smaller sizes, fewer rounds and cycles (under 20 s on two cores, debug build).
    public var quick: Bool
    /// Publish/cancel/reclaim cycles of the stress check; nil: 100,000 (20,000 quick).
    public var stressCycles: Int?
    /// Also run the fault checks (`FaultSelfTest`): test-only opcodes, a lost
    /// context recovered, one lost on every attempt, a hung slot.
    public var faults: Bool

    /// Options for a self-test; only the seed has no default.
    public init(
        backend: BackendChoice = .auto, seed: UInt64, quick: Bool = false, stressCycles: Int? = nil, faults: Bool = false
    ) {
        self.backend = backend
        self.seed = seed
        self.quick = quick
        self.stressCycles = stressCycles
        self.faults = faults
    }
}

/// What `SelfTest.run` found.
public struct SelfTestReport: Sendable {
    /// Checks that passed.
    public var passed = 0
    /// Checks that failed; the command exits 1 when there is any.
    public var failed = 0
    /// The backend under test, as its `summary` says.
    public var backendSummary = ""
    /// "the cpu backend" or the host reference (the opcodes run on the host).
    public var reference = ""
    /// The seed every random input came from (`--seed` replays it).
    public var seed: UInt64 = 0
}

/// `sluice selftest`: runs every opcode the backend supports (count, crc32c,
/// scan) on fresh random inputs through the backend under test and through a
/// reference (the CPU backend for CUDA; `CountOp`, `CRC32COp` and `ScanOp` on
/// the host for the CPU backend), and compares every result word (scan: found
/// counts, and record sets when every record fits); then bad slots, cancels,
/// a full ring reused many rounds, tenant regions, reordered completions
/// through the pump, and a publish/cancel/reclaim stress that checks the
/// counters equal what was published.
///
/// It is how GPU correctness is shown: the Swift test runner cannot run on the
/// GPU machine. Each check prints one line through `log`; a failure names the
/// slot, size, seed and the first differing word.
public enum SelfTest {
    /// Sentinel written over result areas before every round: a worker that
    /// writes outside its slot's 258 words, or a result that was never
    /// written, shows up as a word that is (or is not) this value.
    static let poison: UInt32 = 0xA5C3_5A3C

    /// Runs every check (and the fault checks with `options.faults`), printing
    /// one line per check through `log`; throws only when the backend under
    /// test cannot start.
    public static func run(_ options: SelfTestOptions, log: @escaping (String) -> Void) throws(PipelineError)
        -> SelfTestReport
    {
        var report = try SelfTestRun(options: options, log: log).runAll()
        if options.faults {
            // After the main checks' backends are released: a lost CUDA
            // context is reset, and their memory must not be in it.
            let (passed, failed) = FaultSelfTest.run(backend: options.backend, seed: options.seed, log: log)
            report.passed += passed
            report.failed += failed
            log("\(report.passed) passed, \(report.failed) failed with the fault checks (seed \(options.seed))")
        }
        return report
    }
}

typealias SelfTestRandom = SplitMix64

/// What a test chunk's bytes look like.
enum TestPattern: CustomStringConvertible {
    case random
    /// Lowercase letters with a newline every 1 to 120 bytes.
    case text
    /// Every byte the same value.
    case constant(UInt8)

    var description: String {
        switch self {
        case .random: return "random"
        case .text: return "text"
        case .constant(0x0A): return "all newlines"
        case .constant(let b): return "all 0x" + hex(UInt64(b), digits: 2)
        }
    }

    func bytes(count: Int, rng: inout SelfTestRandom) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        switch self {
        case .constant(let b):
            if b != 0 { for i in 0..<count { out[i] = b } }
        case .random:
            out.withUnsafeMutableBytes { raw in
                var i = 0
                while i + 8 <= count {
                    raw.storeBytes(of: rng.next(), toByteOffset: i, as: UInt64.self)
                    i += 8
                }
                while i < count {
                    raw[i] = UInt8(truncatingIfNeeded: rng.next())
                    i += 1
                }
            }
        case .text:
            var i = 0
            var word = rng.next()
            var left = 0
            var untilNewline = 1 + rng.below(120)
            while i < count {
                if untilNewline == 0 {
                    out[i] = 0x0A
                    untilNewline = 1 + rng.below(120)
                } else {
                    if left == 0 {
                        word = rng.next()
                        left = 8
                    }
                    out[i] = 0x61 + UInt8(truncatingIfNeeded: word % 26)
                    word >>= 8
                    left -= 1
                    untilNewline -= 1
                }
                i += 1
            }
        }
        return out
    }
}

/// One slot of a test round: what to publish, the bytes to place at its
/// buffer offset first, and what must come back.
struct TestSlot {
    enum Expect: Equatable {
        /// DONE with the reference's result words for the slot's opcode
        /// (count, crc32c, or scan compared as a set of records).
        case count
        /// FAULTED with this code.
        case fault(FaultCode)
        /// Cancel requested right after publishing: CANCELLED, or DONE with
        /// the right words if a worker claimed it first.
        case cancelOrCount
    }

    var slot: Int
    var payload: SlotPayload
    var data: [UInt8]
    var expect: Expect
    var label: String
    /// Request a cancel right after publishing even though `expect` is not
    /// `cancelOrCount` (a nop ignores the request).
    var cancel = false
}

/// What one slot ended as.
struct Observed {
    var status: SlotStatus
    var completion: UInt32
    /// The slot's result area (`resultCapacity` words at its resultOffset, cut at
    /// the end of the result region), when in range.
    var area: [UInt32]?
    /// When the host's cancel request came too late (the slot was already claimed).
    var cancelLate = false
}

/// Counter deltas over one round.
struct ControlDelta {
    var epoch: UInt64
    var done: UInt64
    var faulted: UInt64
    var cancelled: UInt64
    var bytes: UInt64
    var lastFault: FaultRecord?
}

/// What the reference produced for one slot that must end DONE.
struct ReferenceResult {
    /// The first `completion` words of its result area.
    var words: [UInt32]
    var completion: UInt32
}

/// The scan table installed in the subject (and the reference), with the
/// literals it was compiled from, so scan results can be checked on the host.
struct InstalledScan {
    var words: [UInt32]
    var literals: [[UInt8]]
    var caseInsensitive: Bool
    var name: String
}

/// A failed comparison, ready to print.
struct CheckFailure: Error {
    var message: String

    init(message: String) { self.message = message }

    /// Any error as a check's failure: itself, or a `PipelineError`'s message.
    init(_ error: any Error) {
        switch error {
        case let failure as CheckFailure: self = failure
        case let error as PipelineError: message = error.message
        default: message = "\(error)"
        }
    }
}

final class SelfTestRun {
    let options: SelfTestOptions
    let log: (String) -> Void
    var rng: SelfTestRandom
    var report = SelfTestReport()

    /// The backend under test and its reference (nil: CountOp).
    let subject: any MegakernelBackend
    let reference: CPUBackend?
    let geometry: RingGeometry
    let dataBytes: Int
    /// The engine's chunk size the sizes are chosen around.
    let chunkBytes: Int
    /// The scan table the subject and the reference run (nil: none installed yet).
    var installedScan: InstalledScan?

    init(options: SelfTestOptions, log: @escaping (String) -> Void) throws(PipelineError) {
        self.options = options
        self.log = log
        self.rng = SelfTestRandom(seed: options.seed)
        chunkBytes = options.quick ? 1 << 20 : 4 << 20
        dataBytes = options.quick ? 16 << 20 : 64 << 20
        let resultWords = CountOp.resultWords + 6

        var useCUDA: Bool
        var why: String
        switch options.backend {
        case .cpu:
            useCUDA = false
            why = "chosen with --backend cpu"
        case .cuda:
            _ = try CUDAProbe.probe().get()
            useCUDA = true
            why = "chosen with --backend cuda"
        case .auto:
            switch CUDAProbe.probe() {
            case .success(let info):
                useCUDA = true
                why = "auto: \(info.name) found"
            case .failure(let error):
                useCUDA = false
                why = "auto: no usable GPU: \(error.message)"
            }
        }
        let slots = useCUDA ? BackendSelection.cudaDefaultSlots : 64
        geometry = try RingGeometry(slotCount: slots, resultWordsPerSlot: resultWords)
        let configuration = BackendConfiguration(geometry: geometry, dataBytes: dataBytes)
        if useCUDA {
            subject = try CUDABackend(configuration: configuration, reason: why)
            reference = try CPUBackend(configuration: configuration, reason: "the self-test's reference")
        } else {
            var cpu = configuration
            cpu.workers = ProcessorCount.online
            subject = try CPUBackend(configuration: cpu, reason: why)
            reference = nil
        }
        report.seed = options.seed
        report.reference = reference == nil ? "the host reference (CountOp, CRC32COp, ScanOp)" : "the cpu backend"
    }

    // MARK: driver

    func runAll() throws(PipelineError) -> SelfTestReport {
        log("sluice selftest: seed \(options.seed) (replay with --seed \(options.seed))\(options.quick ? ", quick" : "")")
        log("backend under test: \(subject.summary)")
        log("reference: \(report.reference)")
        try subject.start()
        try reference?.start()
        report.backendSummary = subject.summary

        check("start") { () throws(CheckFailure) in
            // Workers report in as they start (CPU threads) or before start() returns (CUDA).
            var control: ControlBlock
            let waited = clockNow()
            repeat {
                do throws(PipelineError) { control = try subject.ring.observe() } catch {
                    throw CheckFailure(message: error.message)
                }
                if control.workersRunning == 0 { sleepMicroseconds(200) }
            } while control.workersRunning == 0 && clockNow() - waited < 2_000_000_000
            guard control.workersRunning > 0 else {
                throw CheckFailure(message: "no worker reported in (workersRunning is 0)")
            }
            return "\(control.workersRunning) workers polling a ring of \(geometry.slotCount) slots, \(formatSize(dataBytes)) data region"
        }

        for op in Opcode.defined where !subject.supportedOpcodes.contains(op) {
            log("skip  \(op.name): this backend does not run it (its slots must fault with unsupportedOpcode)")
        }

        check("sizes") { () throws(CheckFailure) in try sizesCheck() }
        check("full ring") { () throws(CheckFailure) in try fullRingCheck() }
        check("bad slots") { () throws(CheckFailure) in try badSlotsCheck() }
        check("cancel") { () throws(CheckFailure) in try cancelCheck() }
        if subject.supportedOpcodes.contains(.nop) {
            check("nop") { () throws(CheckFailure) in try nopCheck() }
        }
        if subject.supportedOpcodes.contains(.crc32c) {
            check("crc32c") { () throws(CheckFailure) in try crcCheck() }
        }
        if subject.supportedOpcodes.contains(.scan) {
            check("scan") { () throws(CheckFailure) in try scanCheck() }
        }
        check("tenants") { () throws(CheckFailure) in try tenantCheck() }
        for (name, order, steps) in [
            ("reordered completions (reverse)", ScriptedReadStream.Order.reverse, Int.max),
            ("reordered completions (seeded)", ScriptedReadStream.Order.seeded(options.seed), 3),
        ] {
            check(name) { () throws(CheckFailure) in try pumpCheck(order: order, stepsPerReap: steps) }
        }
        check("stress") { () throws(CheckFailure) in try stressCheck() }
        check("shutdown") { () throws(CheckFailure) in
            let left: UInt64
            do throws(PipelineError) {
                try subject.shutdown()
                try reference?.shutdown()
                left = try subject.ring.observe().workersRunning
            } catch {
                throw CheckFailure(message: error.message)
            }
            guard left == 0 else { throw CheckFailure(message: "\(left) workers still report running after shutdown") }
            return "every worker left its loop"
        }
        // The library's Session on the same backend, once this run's backends are released.
        let session = SessionSelfTest.run(backend: options.backend, seed: options.seed, log: log)
        report.passed += session.passed
        report.failed += session.failed
        log("\(report.passed) passed, \(report.failed) failed (seed \(options.seed))")
        return report
    }

    /// Runs one check and prints its line.
    func check(_ name: String, _ body: () throws(CheckFailure) -> String) {
        let started = clockNow()
        do {
            let detail = try body()
            report.passed += 1
            log("ok    \(name): \(detail) [\(elapsedText(since: started))]")
        } catch {
            report.failed += 1
            log("FAIL  \(name): \(error.message) (seed \(options.seed))")
        }
    }

    // MARK: rounds

    /// Places the data, poisons the result region, publishes every slot
    /// (requesting cancels where asked), waits for all to finish, reads and
    /// reclaims them. Returns what each slot ended as and the counter deltas.
    func runRound(_ slots: [TestSlot], on backend: any MegakernelBackend) throws(CheckFailure) -> ([Observed], ControlDelta) {
        let ring = backend.ring
        let data = backend.dataRegion
        let results = ring.results
        for i in 0..<results.count { results[i] = SelfTest.poison }
        for s in slots where !s.data.isEmpty {
            let offset = Int(s.payload.bufferOffset)
            s.data.withUnsafeBytes { bytes in
                UnsafeMutableRawBufferPointer(rebasing: data[offset..<(offset + bytes.count)]).copyMemory(from: bytes)
            }
        }
        var observed = [Observed](repeating: Observed(status: .empty, completion: 0), count: slots.count)
        do {
            let before = try ring.observe()
            for (i, s) in slots.enumerated() {
                try ring.publish(slot: s.slot, s.payload)
                if s.expect == .cancelOrCount || s.cancel {
                    do { try ring.requestCancel(slot: s.slot) } catch { observed[i].cancelLate = true }
                }
            }
            let started = clockNow()
            var epoch = ring.epoch
            while try !slots.allSatisfy({ s throws(PipelineError) in try ring.status(ofSlot: s.slot).isTerminal }) {
                if clockNow() - started > 30_000_000_000 {
                    let stuck = try slots.filter { s throws(PipelineError) in try !ring.status(ofSlot: s.slot).isTerminal }
                    let list = try stuck.prefix(8).map { s throws(PipelineError) in
                        "slot \(s.slot) (\(s.label)) \(try ring.status(ofSlot: s.slot))"
                    }
                    throw CheckFailure(message: "after 30 s these slots had not finished: " + list.joined(separator: ", "))
                }
                epoch = try backend.waitForProgress(after: epoch, timeout: .milliseconds(10))
            }
            // The epoch may trail the statuses a moment (the CUDA kernel copies
            // its device counters to the host after the status): wait for it.
            let target = before.epoch &+ UInt64(slots.count)
            let waited = clockNow()
            while ring.epoch < target, clockNow() - waited < 2_000_000_000 {
                _ = try backend.waitForProgress(after: ring.epoch, timeout: .milliseconds(1))
            }
            let after = try ring.observe()
            for (i, s) in slots.enumerated() {
                let record = try ring.reclaim(slot: s.slot)
                observed[i].status = record.status
                observed[i].completion = record.completion
                let start = Int(s.payload.resultOffset)
                if start < results.count {
                    let span = min(Int(s.payload.resultCapacity), results.count - start)
                    observed[i].area = Array(results[start..<(start + span)])
                }
            }
            let delta = ControlDelta(
                epoch: after.epoch &- before.epoch, done: after.slotsDone &- before.slotsDone,
                faulted: after.slotsFaulted &- before.slotsFaulted,
                cancelled: after.slotsCancelled &- before.slotsCancelled,
                bytes: after.bytesProcessed &- before.bytesProcessed,
                lastFault: after.lastFault == before.lastFault ? nil : after.lastFault)
            // Every word outside a DONE slot's result words must still be poison.
            var written = [Bool](repeating: false, count: results.count)
            for (i, s) in slots.enumerated() where observed[i].status == .done {
                let start = Int(s.payload.resultOffset)
                let owned = min(Int(observed[i].completion), Int(s.payload.resultCapacity))
                guard owned > 0, start < results.count else { continue }
                for w in start..<min(start + owned, results.count) { written[w] = true }
            }
            if let bad = (0..<results.count).first(where: { !written[$0] && results[$0] != SelfTest.poison }) {
                let owner = slots.first { bad >= Int($0.payload.resultOffset) && bad < Int($0.payload.resultOffset) + geometry.resultWordsPerSlot }
                throw CheckFailure(message: "result word \(bad) (in the area of \(owner.map { "slot \($0.slot), \($0.label)" } ?? "no slot of this round")) was written (0x\(hex(UInt64(results[bad]), digits: 8))) though no DONE slot owns it")
            }
            return (observed, delta)
        } catch {
            throw CheckFailure(error)
        }
    }

    /// The reference's result for each slot: the CPU backend run on the same
    /// round, or (testing the CPU backend itself) the opcode run on the host.
    func referenceWords(_ slots: [TestSlot]) throws(CheckFailure) -> [ReferenceResult] {
        guard let reference else {
            return try slots.map { s throws(CheckFailure) in try hostReference(s) }
        }
        var round = slots
        for i in round.indices { round[i].expect = .count }
        let (observed, _) = try runRound(round, on: reference)
        return try observed.enumerated().map { pair throws(CheckFailure) -> ReferenceResult in
            let (i, o) = pair
            // A nop's result fields may point anywhere: it owns no words.
            let area = slots[i].payload.opcode == .nop ? o.area ?? [] : o.area
            guard o.status == .done, let area, area.count >= Int(o.completion) else {
                throw CheckFailure(message: "the reference ended slot \(slots[i].slot) (\(slots[i].label)) \(o.status) with completion \(o.completion)")
            }
            return ReferenceResult(words: Array(area[0..<Int(o.completion)]), completion: o.completion)
        }
    }

    /// The opcode run on the host (CountOp, CRC32COp, ScanOp with the installed table).
    func hostReference(_ s: TestSlot) throws(CheckFailure) -> ReferenceResult {
        // Before any allocation: a nop's capacity may be anything.
        if s.payload.opcode == .nop { return ReferenceResult(words: [], completion: 0) }
        var words = [UInt32](repeating: SelfTest.poison, count: Int(s.payload.resultCapacity))
        let outcome: ScanOp.Outcome
        switch s.payload.opcode {
        case .count:
            words = [UInt32](repeating: 0, count: CountOp.resultWords)
            s.data.withUnsafeBytes { bytes in words.withUnsafeMutableBufferPointer { CountOp.run(bytes, into: $0) } }
            return ReferenceResult(words: words, completion: UInt32(CountOp.resultWords))
        case .crc32c:
            words = [UInt32](repeating: 0, count: CRC32COp.resultWords)
            s.data.withUnsafeBytes { bytes in words.withUnsafeMutableBufferPointer { CRC32COp.run(bytes, into: $0) } }
            return ReferenceResult(words: words, completion: UInt32(CRC32COp.resultWords))
        case .scan:
            guard let table = installedScan else {
                throw CheckFailure(message: "slot \(s.slot) (\(s.label)): a scan slot expected DONE with no table installed")
            }
            do {
                outcome = try table.words.withUnsafeBufferPointer { (w) throws(PipelineError) -> ScanOp.Outcome in
                    let view = try ScanTableView(w)
                    return s.data.withUnsafeBytes { bytes in
                        words.withUnsafeMutableBufferPointer { area in
                            ScanOp.run(table: view, chunk: bytes, startLimit: Int(s.payload.arguments.0), flags: s.payload.arguments.1, into: area)
                        }
                    }
                }
            } catch {
                throw CheckFailure(message: error.message)
            }
        default:
            throw CheckFailure(message: "slot \(s.slot) (\(s.label)): no host reference for opcode \(s.payload.opcode.rawValue)")
        }
        guard case .done(let n) = outcome else {
            throw CheckFailure(message: "slot \(s.slot) (\(s.label)): ScanOp faulted with \(outcome) on a slot expected DONE")
        }
        return ReferenceResult(words: Array(words[0..<Int(n)]), completion: n)
    }

    /// Compares a round's outcome with expectations and the reference, and its counters.
    func verify(_ slots: [TestSlot], _ observed: [Observed], _ delta: ControlDelta, reference: [ReferenceResult?])
        throws(CheckFailure)
    {
        var done: UInt64 = 0, faulted: UInt64 = 0, cancelled: UInt64 = 0, bytes: UInt64 = 0
        for (i, s) in slots.enumerated() {
            let o = observed[i]
            let place = "slot \(s.slot), \(s.label), \(s.payload.length) bytes at offset \(s.payload.bufferOffset)"
            switch (s.expect, o.status) {
            case (.fault(let code), .faulted):
                guard o.completion == code.rawValue else {
                    throw CheckFailure(message: "\(place): faulted with code \(o.completion), expected \(code.rawValue) (\(code))")
                }
                faulted += 1
            case (.fault(let code), let status):
                throw CheckFailure(message: "\(place): ended \(status) (completion \(o.completion)), expected FAULTED with \(code)")
            case (.cancelOrCount, .cancelled):
                guard o.completion == 0 else {
                    throw CheckFailure(message: "\(place): CANCELLED but its completion word is \(o.completion)")
                }
                cancelled += 1
            case (.count, .done) where s.payload.opcode == .nop:
                // Nothing to compare but the completion; the poison check in
                // runRound already showed that it wrote no result word.
                guard o.completion == 0, reference[i]?.completion == 0 else {
                    throw CheckFailure(message: "\(place): nop DONE with completion \(o.completion) (\(report.reference): \(reference[i].map { String($0.completion) } ?? "none")), expected 0")
                }
                done += 1
            case (.count, .done), (.cancelOrCount, .done):
                guard let area = o.area, let expected = reference[i], area.count >= Int(o.completion) else {
                    throw CheckFailure(message: "\(place): DONE (completion \(o.completion)) but no result area to compare")
                }
                if s.payload.opcode == .scan {
                    try compareScan(s, area: area, completion: o.completion, expected: expected, place: place)
                } else {
                    guard o.completion == expected.completion else {
                        throw CheckFailure(message: "\(place): DONE with completion \(o.completion), expected \(expected.completion)")
                    }
                    let n = Int(expected.completion)
                    if let w = (0..<n).first(where: { area[$0] != expected.words[$0] }) {
                        let differing = (0..<n).filter { area[$0] != expected.words[$0] }
                        let name = s.payload.opcode == .count ? wordName(w) : w == 0 ? "crc32c" : "length"
                        throw CheckFailure(message: "\(place): \(s.payload.opcode.name) word \(w) (\(name)) is 0x\(hex(UInt64(area[w]), digits: 8)), \(report.reference) says 0x\(hex(UInt64(expected.words[w]), digits: 8)); \(differing.count) words differ")
                    }
                }
                if let w = (Int(o.completion)..<area.count).first(where: { area[$0] != SelfTest.poison }) {
                    throw CheckFailure(message: "\(place): wrote word \(w) of its area, past the \(o.completion) it reported")
                }
                done += 1
                bytes += UInt64(s.payload.length)
            case (_, let status):
                throw CheckFailure(message: "\(place): ended \(status) (completion \(o.completion)), expected \(s.expect == .count ? "DONE" : "CANCELLED or DONE")")
            }
        }
        let expected = (epoch: UInt64(slots.count), done: done, faulted: faulted, cancelled: cancelled, bytes: bytes)
        guard delta.epoch == expected.epoch, delta.done == done, delta.faulted == faulted,
              delta.cancelled == cancelled, delta.bytes == bytes
        else {
            throw CheckFailure(message: "counters moved by epoch \(delta.epoch), done \(delta.done), faulted \(delta.faulted), cancelled \(delta.cancelled), bytes \(delta.bytes); the slots say \(expected.epoch), \(done), \(faulted), \(cancelled), \(bytes)")
        }
        if faulted > 0 {
            guard let last = delta.lastFault,
                  let owner = slots.firstIndex(where: { $0.slot == last.slot }),
                  slots[owner].expect == .fault(last.code), last.opcodeLow16 == slots[owner].payload.opcode.rawValue & 0xFFFF
            else {
                throw CheckFailure(message: "lastFault is \(delta.lastFault.map(String.init(describing:)) ?? "unchanged"), which names no faulted slot of this round with its code and opcode")
            }
        }
    }

    /// Runs `slots` on the subject, compares with the reference, returns a summary.
    func runAndCompare(_ slots: [TestSlot]) throws(CheckFailure) -> (observed: [Observed], delta: ControlDelta) {
        let (observed, delta) = try runRound(slots, on: subject)
        // The reference runs only the slots that must (or may) end DONE.
        let countable = slots.indices.filter { slots[$0].expect != .count ? slots[$0].expect == .cancelOrCount && observed[$0].status == .done : true }
        let words = try referenceWords(countable.map { slots[$0] })
        var byIndex = [ReferenceResult?](repeating: nil, count: slots.count)
        for (k, i) in countable.enumerated() { byIndex[i] = words[k] }
        try verify(slots, observed, delta, reference: byIndex)
        return (observed, delta)
    }

    // MARK: checks

    func countSlot(_ slot: Int, offset: Int, data: [UInt8], label: String, expect: TestSlot.Expect = .count) -> TestSlot {
        TestSlot(
            slot: slot,
            payload: SlotPayload(
                opcode: .count, tenant: 7, bufferOffset: UInt64(offset), length: UInt32(data.count),
                fileOffset: UInt64(offset) &* 3, chunkIndex: UInt32(slot),
                resultOffset: UInt32(geometry.resultOffset(ofSlot: slot)), resultCapacity: UInt32(geometry.resultWordsPerSlot)),
            data: data, expect: expect, label: label)
    }

    /// Many sizes and patterns, at unaligned offsets, in rounds that fill the ring.
    func sizesCheck() throws(CheckFailure) -> String {
        let c = chunkBytes
        var sizes = [0, 1, 2, 3, 5, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255, 256, 257, 1000, 4095, 4096, 4097,
                     16383, 65535, 65536, 65537, 1 << 20 | 1, c - 1, c, c + 1, 3 * c + 12_345]
        for _ in 0..<(options.quick ? 6 : 16) { sizes.append(1 + rng.below(1 << 18) * 2) }   // odd sizes
        for _ in 0..<(options.quick ? 2 : 6) { sizes.append(rng.below(2 * c)) }
        var plan: [(Int, TestPattern)] = []
        let patterns: [TestPattern] = [.random, .text]
        for (k, size) in sizes.enumerated() { plan.append((size, patterns[k % 2])) }
        for size in [1, 4095, 4096, 4097, 65536, c] {
            plan.append((size, .constant(0x0A)))
            plan.append((size, .constant(UInt8(truncatingIfNeeded: rng.next()))))
        }
        plan.append((c + 1, .constant(0x00)))
        plan.append((4097, .constant(0xFF)))
        plan.shuffle(using: &rng)

        var rounds = 0
        var chunks = 0
        var total = 0
        var index = 0
        while index < plan.count {
            var slots: [TestSlot] = []
            var cursor = 0
            while index < plan.count, slots.count < geometry.slotCount {
                let (size, pattern) = plan[index]
                let offset = cursor + rng.below(64)
                guard offset + size <= dataBytes else { break }
                let slot = slots.count
                slots.append(countSlot(slot, offset: offset, data: pattern.bytes(count: size, rng: &rng), label: "\(pattern)"))
                cursor = offset + size
                index += 1
            }
            if slots.isEmpty {
                throw CheckFailure(message: "size \(plan[index].0) does not fit the \(dataBytes)-byte data region")
            }
            // A chunk that ends exactly at the end of the data region.
            if rounds == 0, slots.count < geometry.slotCount {
                let size = 4097
                if cursor + size <= dataBytes {
                    slots.append(countSlot(slots.count, offset: dataBytes - size, data: TestPattern.random.bytes(count: size, rng: &rng), label: "random, ending at the end of the data region"))
                }
            }
            _ = try runAndCompare(slots)
            rounds += 1
            chunks += slots.count
            total += slots.reduce(0) { $0 + Int($1.payload.length) }
        }
        let largest = plan.map(\.0).max() ?? 0
        return "\(chunks) chunks of 0 B to \(formatSize(largest)) (\(formatSize(total)) in all) in \(rounds) rounds, random/text/one-value/all-newline bytes at unaligned offsets: every word equal to \(report.reference)"
    }

    /// Every slot published at once, many rounds over the same buffers whose
    /// content and lengths change each round (stale reads of data, payload or
    /// results would show).
    func fullRingCheck() throws(CheckFailure) -> String {
        let rounds = options.quick ? 6 : 24
        let stride = (dataBytes / geometry.slotCount) / 64 * 64
        let maxSize = min(stride, 64 << 10)
        var total = 0
        for round in 0..<rounds {
            var slots: [TestSlot] = []
            for slot in 0..<geometry.slotCount {
                let size: Int
                switch round % 3 {
                case 0: size = 4096
                case 1: size = rng.below(maxSize + 1)
                default: size = maxSize - rng.below(64)
                }
                let pattern: TestPattern = round % 4 == 3 ? .constant(UInt8(truncatingIfNeeded: round &* 37 &+ slot)) : .random
                slots.append(countSlot(slot, offset: slot * stride, data: pattern.bytes(count: size, rng: &rng), label: "round \(round), \(pattern)"))
                total += size
            }
            _ = try runAndCompare(slots)
        }
        return "\(rounds) rounds × \(geometry.slotCount) slots published at once over the same buffers with new content and lengths each round (\(formatSize(total))): every word equal to \(report.reference)"
    }

    /// Bad slots fault with the right code while good slots in the same round finish right.
    func badSlotsCheck() throws(CheckFailure) -> String {
        let d = UInt64(dataBytes)
        let t = UInt64(geometry.resultWordsTotal)
        let r = geometry.resultWordsPerSlot
        var slots: [TestSlot] = []
        var cursor = 0
        func next() -> Int { slots.count }
        func good(_ label: String) {
            let size = 1 + rng.below(20_000)
            let offset = cursor + rng.below(16)
            cursor = offset + size
            slots.append(countSlot(next(), offset: offset, data: TestPattern.text.bytes(count: size, rng: &rng), label: label))
        }
        func bad(_ label: String, _ code: FaultCode, opcode: Opcode = .count, offset: UInt64 = 0, length: UInt32 = 16,
                 arguments: (UInt32, UInt32) = (0, 0), resultOffset: UInt32? = nil, capacity: UInt32? = nil,
                 region: ChunkRegion = .host) {
            let slot = next()
            slots.append(TestSlot(
                slot: slot,
                payload: SlotPayload(
                    opcode: opcode, bufferOffset: offset, length: length, chunkIndex: UInt32(slot), arguments: arguments,
                    resultOffset: resultOffset ?? UInt32(geometry.resultOffset(ofSlot: slot)),
                    resultCapacity: capacity ?? UInt32(r), region: region),
                data: [], expect: .fault(code), label: label))
        }
        good("good before")
        bad("opcode 0", .unknownOpcode, opcode: Opcode(rawValue: 0))
        bad("opcode 99", .unknownOpcode, opcode: Opcode(rawValue: 99))
        bad("opcode 0xFFFFFFFF", .unknownOpcode, opcode: Opcode(rawValue: .max))
        good("good between")
        var unsupported: [Opcode] = []
        for op in Opcode.defined where !subject.supportedOpcodes.contains(op) {
            unsupported.append(op)
            bad("opcode \(op.name) (not supported here)", .unsupportedOpcode, opcode: op)
        }
        // Neither backend here has a device ingest region (only --ingest gds makes one).
        bad("chunk in the device ingest region, which this backend lacks", .regionUnavailable, region: .device)
        bad("device-region chunk past any region (the region is checked first)", .regionUnavailable, offset: d + 1, region: .device)
        bad("buffer end 1 byte past the region", .bufferOutOfBounds, offset: d - 10, length: 11)
        bad("buffer offset past the region", .bufferOutOfBounds, offset: d + 1, length: 0)
        bad("buffer offset + length overflows 64 bits", .bufferOutOfBounds, offset: UInt64.max - 4, length: 10)
        bad("buffer offset high word set", .bufferOutOfBounds, offset: 1 << 32, length: 1)
        bad("length 0xFFFFFFFF", .bufferOutOfBounds, offset: 0, length: .max)
        good("good between")
        bad("result area past the region", .resultOutOfBounds, resultOffset: UInt32(t) - 100, capacity: UInt32(CountOp.resultWords))
        bad("result offset + capacity overflows 32 bits", .resultOutOfBounds, resultOffset: .max, capacity: .max)
        bad("result capacity 257", .resultOverflow, capacity: UInt32(CountOp.resultWords - 1))
        bad("result capacity 0", .resultOverflow, capacity: 0)
        bad("buffer out of bounds and capacity 0 (buffer is checked first)", .bufferOutOfBounds, offset: d, length: 1, capacity: 0)
        bad("unknown opcode and buffer out of bounds (opcode is checked first)", .unknownOpcode,
            opcode: Opcode(rawValue: 1234), offset: d + 100, length: 5)
        if subject.supportedOpcodes.contains(.crc32c) {
            bad("crc32c, result capacity 1", .resultOverflow, opcode: .crc32c, capacity: 1)
            bad("crc32c, buffer out of bounds", .bufferOutOfBounds, opcode: .crc32c, offset: d - 3, length: 4)
        }
        if subject.supportedOpcodes.contains(.scan), installedScan == nil {
            bad("scan with no scan table installed", .badArguments, opcode: .scan, arguments: (16, 0))
            bad("scan with no table and capacity 0 (the table is checked first)", .badArguments, opcode: .scan, capacity: 0)
        }
        // Good edge cases: a chunk ending exactly at the end of the data
        // region, an empty chunk there, and a result area ending exactly at
        // the end of the result region (the last slot's, which this round leaves unused).
        let tail = TestPattern.random.bytes(count: 7, rng: &rng)
        slots.append(countSlot(next(), offset: dataBytes - 7, data: tail, label: "7 bytes ending at the end of the data region"))
        slots.append(countSlot(next(), offset: dataBytes, data: [], label: "0 bytes at the end of the data region"))
        var edge = countSlot(next(), offset: cursor + 3, data: TestPattern.random.bytes(count: 999, rng: &rng), label: "result area ending at the end of the result region")
        edge.payload.resultOffset = UInt32(t) - UInt32(CountOp.resultWords)
        edge.payload.resultCapacity = UInt32(CountOp.resultWords)
        slots.append(edge)
        cursor += 3 + 999
        good("good after")
        guard slots.count < geometry.slotCount else {
            throw CheckFailure(message: "the bad-slot round needs \(slots.count + 1) slots; the ring has \(geometry.slotCount)")
        }
        let (observed, _) = try runAndCompare(slots)
        let faults = observed.filter { $0.status == .faulted }.count
        return "\(faults) bad slots (unknown opcodes 0/99/0xFFFFFFFF, crc32c and scan arguments, unsupported \(unsupported.isEmpty ? "none here" : unsupported.map(\.name).joined(separator: "/")), buffer out of bounds incl. 64-bit overflow, result out of bounds incl. overflow, result overflow, check order) faulted with the right code; \(slots.count - faults) good slots in the same round right; lastFault names a faulted slot; no result word written outside a DONE slot"
    }

    /// Cancel requested right after each publish: CANCELLED (nothing written)
    /// or, when a worker claimed first, DONE and right; counters agree.
    func cancelCheck() throws(CheckFailure) -> String {
        var cancelled = 0, late = 0, total = 0
        for round in 0..<(options.quick ? 2 : 4) {
            var slots: [TestSlot] = []
            let stride = (dataBytes / geometry.slotCount) / 64 * 64
            for slot in 0..<geometry.slotCount {
                let size = rng.below(min(stride, 8192))
                var s = countSlot(slot, offset: slot * stride, data: TestPattern.random.bytes(count: size, rng: &rng), label: "round \(round), cancel requested", expect: .cancelOrCount)
                if slot % 4 == 3 { s.expect = .count; s.label = "round \(round), not cancelled" }
                slots.append(s)
            }
            let (observed, _) = try runAndCompare(slots)
            cancelled += observed.filter { $0.status == .cancelled }.count
            late += observed.indices.filter { slots[$0].expect == .cancelOrCount && observed[$0].status == .done }.count
            total += slots.filter { $0.expect == .cancelOrCount }.count
        }
        guard cancelled > 0 else {
            throw CheckFailure(message: "none of \(total) cancel requests took effect (every slot was claimed first)")
        }
        return "\(cancelled) of \(total) cancel requests took effect (CANCELLED, nothing written, counted); \(late) came after the claim and finished DONE with the right words"
    }

    /// Nops with arguments that would fault any other opcode, some with a
    /// cancel request, between count slots: every nop DONE with completion 0,
    /// no result word written, no bytes counted; the count slots right.
    func nopCheck() throws(CheckFailure) -> String {
        var nops = 0
        for round in 0..<(options.quick ? 2 : 6) {
            var slots: [TestSlot] = []
            let stride = (dataBytes / geometry.slotCount) / 64 * 64
            for slot in 0..<geometry.slotCount {
                if slot % 3 == 2 {
                    let size = rng.below(min(stride, 4096))
                    slots.append(countSlot(slot, offset: slot * stride, data: TestPattern.random.bytes(count: size, rng: &rng), label: "round \(round), count beside nops"))
                    continue
                }
                let own = UInt32(geometry.resultOffset(ofSlot: slot))
                let (payload, what): (SlotPayload, String) = switch rng.below(5) {
                case 0: (SlotPayload(opcode: .nop, bufferOffset: 0, length: 0, resultOffset: own), "nop")
                case 1: (SlotPayload(opcode: .nop, bufferOffset: UInt64(dataBytes) + 100, length: 5, resultOffset: own, resultCapacity: 258), "nop, buffer out of bounds")
                case 2: (SlotPayload(opcode: .nop, bufferOffset: 0, length: 64, resultOffset: .max, resultCapacity: .max), "nop, result out of bounds")
                case 3: (SlotPayload(opcode: .nop, tenant: 99, bufferOffset: 0, length: 64, resultOffset: own, resultCapacity: 1, region: .device), "nop, device region, capacity 1")
                default: (SlotPayload(opcode: .nop, bufferOffset: 0, length: 16, resultOffset: own, resultCapacity: 258), "nop, cancel requested")
                }
                var s = TestSlot(slot: slot, payload: payload, data: [], expect: .count, label: "round \(round), \(what)")
                s.cancel = what.hasSuffix("cancel requested")
                slots.append(s)
                nops += 1
            }
            _ = try runAndCompare(slots)
        }
        return "\(nops) nops (out-of-bounds buffers and results, a device-region flag, tenant 99, cancel requests) DONE with completion 0, no result word written, no bytes counted; the count slots between them right"
    }

    /// Files read through ScriptedReadStream in a chosen completion order,
    /// through the pump and scanner into the backend; per-file counts equal
    /// CountOp over the whole file.
    func pumpCheck(order: ScriptedReadStream.Order, stepsPerReap: Int) throws(CheckFailure) -> String {
        let streamChunk = 64 << 10
        let chunkCount = min(geometry.slotCount, dataBytes / streamChunk)
        var template = [UInt8]("/tmp/sluice-selftest-XXXXXX".utf8CString.map { UInt8(bitPattern: $0) })
        let made = template.withUnsafeMutableBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { mkdtemp($0.baseAddress!) }
        }
        guard made != nil else {
            throw CheckFailure(message: "mkdtemp failed: \(String(cString: strerror(errno)))")
        }
        let directory = String(decoding: template.prefix { $0 != 0 }, as: UTF8.self)
        var paths: [String] = []
        defer {
            for path in paths { unlink(path) }
            rmdir(directory)
        }
        let sizes = [0, 1, 4095, streamChunk - 1, streamChunk, streamChunk + 1, 5 * streamChunk + 17,
                     rng.below(3 * streamChunk), 40 * streamChunk + rng.below(streamChunk)]
        var expected: [CountResult] = []
        for (i, size) in sizes.enumerated() {
            let path = "\(directory)/file\(i)"
            let bytes = (i % 2 == 0 ? TestPattern.text : TestPattern.random).bytes(count: size, rng: &rng)
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw CheckFailure(message: "cannot create \(path): \(String(cString: strerror(errno)))") }
            var written = 0
            while written < bytes.count {
                let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
                if n <= 0 {
                    close(fd)
                    throw CheckFailure(message: "cannot write \(path): \(String(cString: strerror(errno)))")
                }
                written += n
            }
            close(fd)
            paths.append(path)
            var words = [UInt32](repeating: 0, count: CountOp.resultWords)
            var whole = CountResult()
            // CountOp over the whole file, in pieces below 4 GiB (none here is).
            bytes.withUnsafeBytes { raw in words.withUnsafeMutableBufferPointer { CountOp.run(raw, into: $0) } }
            do { whole = try CountResult(words: words) } catch { throw CheckFailure(message: error.message) }
            expected.append(whole)
        }
        do {
            let region = UnsafeMutableRawBufferPointer(rebasing: subject.dataRegion[0..<(chunkCount * streamChunk)])
            let stream = try ScriptedReadStream(
                region: region, chunkBytes: streamChunk, chunkCount: chunkCount, order: order, stepsPerReap: stepsPerReap)
            let scanner = try ChunkScheduler(backend: subject, stream: stream)
            var got: [FileCount] = []
            let summary = try CountJob.run(scanner: scanner, paths: paths.map { RawPath($0) }, onFile: { got.append($0) })
            guard got.count == paths.count else {
                throw CheckFailure(message: "\(got.count) of \(paths.count) files reported")
            }
            for (i, file) in got.enumerated() {
                guard file.errors.isEmpty else {
                    throw CheckFailure(message: "\(file.path) (\(sizes[i]) bytes): \(file.errors.map(\.message).joined(separator: "; "))")
                }
                guard file.result == expected[i] else {
                    let w = (0..<256).first { file.result.histogram[$0] != expected[i].histogram[$0] }
                    throw CheckFailure(message: "\(file.path) (\(sizes[i]) bytes): counted \(file.result.newlines) newlines, \(file.result.bytes) bytes\(w.map { ", bin 0x\(hex(UInt64($0), digits: 2)) \(file.result.histogram[$0])" } ?? ""); CountOp says \(expected[i].newlines), \(expected[i].bytes)\(w.map { ", \(expected[i].histogram[$0])" } ?? "")")
                }
            }
            let orderText: String
            switch order {
            case .reverse: orderText = "reverse submission order"
            case .seeded(let s): orderText = "random order (seed \(s)), \(stepsPerReap) read steps per reap"
            default: orderText = "scripted order"
            }
            return "\(paths.count) files (0 B to \(formatSize(sizes.max() ?? 0)), \(summary.chunks) chunks of \(formatSize(streamChunk))) read in \(orderText) through the pump and scanner: every file's counts equal CountOp"
        } catch {
            throw CheckFailure(error)
        }
    }

    /// Publish/cancel/reclaim as fast as the host can, with some bad slots;
    /// every slot's outcome and every counter must equal what was published.
    func stressCheck() throws(CheckFailure) -> String {
        let cycles = options.stressCycles ?? (options.quick ? 20_000 : 100_000)
        let ring = subject.ring
        let results = ring.results
        let slots = geometry.slotCount
        // Small chunks of distinct lengths with known counts.
        let patternCount = 61
        var offsets: [Int] = []
        var lengths: [Int] = []
        var expected: [[UInt32]] = []
        var cursor = 0
        for k in 0..<patternCount {
            let length = 1 + (k * 37) % 300
            let offset = cursor + k % 7
            let bytes = (k % 3 == 0 ? TestPattern.text : TestPattern.random).bytes(count: length, rng: &rng)
            bytes.withUnsafeBytes { raw in
                UnsafeMutableRawBufferPointer(rebasing: subject.dataRegion[offset..<(offset + length)]).copyMemory(from: raw)
            }
            var words = [UInt32](repeating: 0, count: CountOp.resultWords)
            bytes.withUnsafeBytes { raw in words.withUnsafeMutableBufferPointer { CountOp.run(raw, into: $0) } }
            offsets.append(offset)
            lengths.append(length)
            expected.append(words)
            cursor = offset + length
        }
        enum Kind { case count, bad, cancel }
        var inFlight = [(pattern: Int, kind: Kind)?](repeating: nil, count: slots)
        var lastPattern = [Int](repeating: -1, count: slots)
        var published = 0, done = 0, faulted = 0, cancelled = 0, lateCancels = 0
        var bytes: UInt64 = 0
        do {
            let before = try ring.observe()
            let started = clockNow()
            var lastMove = clockNow()
            var epoch = ring.epoch
            while published < cycles || inFlight.contains(where: { $0 != nil }) {
                var moved = false
                for slot in 0..<slots {
                    if let entry = inFlight[slot] {
                        let status = try ring.status(ofSlot: slot)
                        guard status.isTerminal else { continue }
                        let record = try ring.reclaim(slot: slot)
                        inFlight[slot] = nil
                        moved = true
                        let place = "slot \(slot), cycle \(published), pattern \(entry.pattern) (\(lengths[entry.pattern]) bytes)"
                        switch (record.status, entry.kind) {
                        case (.done, .count), (.done, .cancel):
                            if entry.kind == .cancel { lateCancels += 1 }
                            let start = geometry.resultOffset(ofSlot: slot)
                            let want = expected[entry.pattern]
                            guard record.completion == UInt32(CountOp.resultWords) else {
                                throw CheckFailure(message: "\(place): DONE with completion \(record.completion)")
                            }
                            if let w = (0..<CountOp.resultWords).first(where: { results[start + $0] != want[$0] }) {
                                throw CheckFailure(message: "\(place): word \(w) (\(wordName(w))) is \(results[start + w]), CountOp says \(want[w]) (a stale or doubly processed slot?)")
                            }
                            done += 1
                            bytes += UInt64(lengths[entry.pattern])
                        case (.faulted, .bad):
                            guard record.completion == FaultCode.unknownOpcode.rawValue else {
                                throw CheckFailure(message: "\(place): faulted with code \(record.completion), expected \(FaultCode.unknownOpcode.rawValue)")
                            }
                            faulted += 1
                        case (.cancelled, .cancel):
                            cancelled += 1
                        default:
                            throw CheckFailure(message: "\(place): ended \(record.status) with completion \(record.completion) though it was published as \(entry.kind)")
                        }
                    }
                    guard published < cycles, inFlight[slot] == nil else { continue }
                    var pattern = rng.below(patternCount)
                    if pattern == lastPattern[slot] { pattern = (pattern + 1) % patternCount }
                    lastPattern[slot] = pattern
                    let roll = rng.below(16)
                    let kind: Kind = roll == 0 ? .bad : roll < 5 ? .cancel : .count
                    let start = geometry.resultOffset(ofSlot: slot)
                    for w in 0..<geometry.resultWordsPerSlot { results[start + w] = SelfTest.poison }
                    try ring.publish(slot: slot, SlotPayload(
                        opcode: kind == .bad ? Opcode(rawValue: 77) : .count, bufferOffset: UInt64(offsets[pattern]),
                        length: UInt32(lengths[pattern]), chunkIndex: UInt32(published),
                        resultOffset: UInt32(start), resultCapacity: UInt32(geometry.resultWordsPerSlot)))
                    if kind == .cancel {
                        // Racing the workers: the request may come after the claim.
                        do { try ring.requestCancel(slot: slot) } catch {}
                    }
                    inFlight[slot] = (pattern, kind)
                    published += 1
                    moved = true
                }
                let now = clockNow()
                if moved {
                    lastMove = now
                } else {
                    if now - lastMove > 30_000_000_000 {
                        let stuck = (0..<slots).filter { inFlight[$0] != nil }
                        throw CheckFailure(message: "no slot finished for 30 s; \(stuck.count) in flight (first: slot \(stuck.first ?? -1)), \(published) published")
                    }
                    epoch = try subject.waitForProgress(after: epoch, timeout: .milliseconds(1))
                }
            }
            let elapsed = clockNow() - started
            let target = before.epoch &+ UInt64(published)
            let waited = clockNow()
            while ring.epoch < target, clockNow() - waited < 2_000_000_000 {
                _ = try subject.waitForProgress(after: ring.epoch, timeout: .milliseconds(1))
            }
            let after = try ring.observe()
            let delta = (epoch: after.epoch &- before.epoch, done: after.slotsDone &- before.slotsDone,
                         faulted: after.slotsFaulted &- before.slotsFaulted,
                         cancelled: after.slotsCancelled &- before.slotsCancelled,
                         bytes: after.bytesProcessed &- before.bytesProcessed)
            guard delta.epoch == UInt64(published), delta.done == UInt64(done), delta.faulted == UInt64(faulted),
                  delta.cancelled == UInt64(cancelled), delta.bytes == bytes
            else {
                throw CheckFailure(message: "after \(published) publishes the counters moved by epoch \(delta.epoch), done \(delta.done), faulted \(delta.faulted), cancelled \(delta.cancelled), bytes \(delta.bytes); the host saw \(done) DONE, \(faulted) FAULTED, \(cancelled) CANCELLED, \(bytes) bytes (a lost or double claim?)")
            }
            let rate = Double(published) / (Double(elapsed) / 1e9)
            return "\(published) publish/reclaim cycles over \(slots) slots (\(done) DONE incl. \(lateCancels) cancels that came too late, \(cancelled) CANCELLED, \(faulted) FAULTED), \(Int(rate)) slots/s: epoch and every counter equal what was published; no stale or doubled result"
        } catch {
            throw CheckFailure(error)
        }
    }
}

/// What word `w` of a count result holds.
func wordName(_ w: Int) -> String {
    switch w {
    case 0: return "bytes"
    case 1: return "newlines"
    default: return "bin 0x" + hex(UInt64(w - 2), digits: 2)
    }
}

func hex(_ value: UInt64, digits: Int) -> String {
    let text = String(value, radix: 16)
    return String(repeating: "0", count: max(0, digits - text.count)) + text
}

func formatSize(_ bytes: Int) -> String {
    if bytes < 1024 { return "\(bytes) B" }
    let units = ["KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes) / 1024
    var unit = 0
    while value >= 1024, unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    let tenths = (value * 10).rounded() / 10
    return tenths == tenths.rounded() ? "\(Int(tenths)) \(units[unit])" : "\(tenths) \(units[unit])"
}

func sleepMicroseconds(_ us: Int) {
    var ts = timespec(tv_sec: us / 1_000_000, tv_nsec: (us % 1_000_000) * 1000)
    _ = nanosleep(&ts, nil)
}

/// CLOCK_MONOTONIC nanoseconds.
func clockNow() -> UInt64 { monotonicNanoseconds() }

func elapsedText(since start: UInt64) -> String {
    let ns = clockNow() - start
    if ns < 1_000_000 { return "\(ns / 1000) us" }
    if ns < 10_000_000_000 { return "\(ns / 1_000_000) ms" }
    return "\(ns / 1_000_000_000) s"
}
