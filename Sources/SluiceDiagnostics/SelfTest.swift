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
    /// context recovered, one lost on every attempt, a hung slot, and user
    /// operations that trap and spin.
    public var faults: Bool
    /// The arguments that make this executable run one fault check alone in a
    /// child process (`SelfTest.runFaultChild`), given the check's name, the
    /// seed and the backend; nil: the user-operation fault checks run in this
    /// process on the CPU backend and are skipped on others.
    public var faultChild: FaultChild?

    /// Arguments for a child process that runs one fault check.
    public typealias FaultChild = @Sendable (_ check: String, _ seed: UInt64, _ backend: BackendChoice) -> [String]

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
            let (passed, failed) = FaultSelfTest.run(
                backend: options.backend, seed: options.seed, child: options.faultChild, log: log)
            report.passed += passed
            report.failed += failed
            log("\(report.passed) passed, \(report.failed) failed with the fault checks (seed \(options.seed))")
        }
        return report
    }

    /// The names `runFaultChild` takes.
    public static let faultChildChecks = UserFaultSelfTest.Check.allCases.map(\.rawValue)

    /// Runs the one fault check named `check` (of `faultChildChecks`) in
    /// this process, as the child that `SelfTestOptions.faultChild` starts:
    /// progress lines, then `ok    TITLE: ...` or `FAIL  TITLE: ...`.
    /// Returns whether it passed.
    public static func runFaultChild(_ check: String, backend: BackendChoice, seed: UInt64, log: @escaping @Sendable (String) -> Void)
        -> Bool
    {
        guard let which = UserFaultSelfTest.Check(rawValue: check) else {
            log("FAIL  \(check): no such fault check (\(faultChildChecks.joined(separator: ", ")))")
            return false
        }
        switch UserFaultSelfTest.inProcess(which, backend: backend, seed: seed, progress: { log("      \($0)") }) {
        case .success(let detail):
            log("ok    \(which.title): \(detail)")
            return true
        case .failure(let failure):
            log("FAIL  \(which.title): \(failure.message) (seed \(seed))")
            return false
        }
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

    /// How far each counter moved from `before` to `after`; the last fault
    /// where it is a new one.
    init(from before: ControlBlock, to after: ControlBlock) {
        epoch = after.epoch &- before.epoch
        done = after.slotsDone &- before.slotsDone
        faulted = after.slotsFaulted &- before.slotsFaulted
        cancelled = after.slotsCancelled &- before.slotsCancelled
        bytes = after.bytesProcessed &- before.bytesProcessed
        lastFault = after.lastFault == before.lastFault ? nil : after.lastFault
    }

    /// The ring's counters once its epoch reaches `target`, waited for up to
    /// 2 s: the epoch may trail the statuses a moment (the CUDA kernel
    /// copies its device counters to the host after the status).
    static func observe(_ backend: any MegakernelBackend, atEpoch target: UInt64) throws(PipelineError) -> ControlBlock {
        let ring = backend.ring
        let waited = clockNow()
        while ring.epoch < target, clockNow() - waited < 2_000_000_000 {
            _ = try backend.waitForProgress(after: ring.epoch, timeout: .milliseconds(1))
        }
        return try ring.observe()
    }
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
    /// The scan table the subject and the reference run at directory index 0 (nil: none installed yet).
    var installedScan: InstalledScan?
    /// Tables installed at other directory indexes (the two-table check), by index.
    var otherScans: [Int: InstalledScan] = [:]

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

        check("start") { () throws(CheckFailure) in try startCheck() }

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
        if subject.supportedOpcodes.contains(.scan), subject.scanDirectoryEntries > SelfTestRun.secondTableIndex {
            check("two scan tables") { () throws(CheckFailure) in try twoTablesCheck() }
        }
        for (name, order, steps) in [
            ("reordered completions (reverse)", ScriptedReadStream.Order.reverse, Int.max),
            ("reordered completions (seeded)", ScriptedReadStream.Order.seeded(options.seed), 3),
        ] {
            check(name) { () throws(CheckFailure) in try pumpCheck(order: order, stepsPerReap: steps) }
        }
        check("stress") { () throws(CheckFailure) in try stressCheck() }
        check("shutdown") { () throws(CheckFailure) in try shutdownCheck() }
        // The library's Session on the same backend, once this run's backends are released.
        let session = SessionSelfTest.run(backend: options.backend, seed: options.seed, log: log)
        report.passed += session.passed
        report.failed += session.failed
        // The example user operations through a session of the same backend.
        let operations = OperationsSelfTest.run(backend: options.backend, seed: options.seed, log: log)
        report.passed += operations.passed
        report.failed += operations.failed
        log("\(report.passed) passed, \(report.failed) failed (seed \(options.seed))")
        return report
    }

    /// Workers report in as they start (CPU threads) or before start()
    /// returns (CUDA): waits up to 2 s for the first.
    func startCheck() throws(CheckFailure) -> String {
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

    /// Shuts both backends down; every worker of the one under test must have left its loop.
    func shutdownCheck() throws(CheckFailure) -> String {
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
