#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Sluice
import SluiceCore
import SluiceOps

/// `sluice selftest --faults`: the robustness checks, run through whole
/// engines of the backend under test (on the GPU: real CUDA context losses).
///
/// - test-only opcodes on an engine without fault injection fault as unknown
///   opcodes, and nothing is lost;
/// - a slot that loses the context (an illegal address on the GPU) in the
///   middle of a scan: the backend is recreated and the output equals the
///   host reference;
/// - a pack of small files that loses the context: its files are packed
///   again on the new backend, each reported once, equal to the host reference;
/// - the lost context again with `--ingest gds` (cuFile into the device
///   ingest region), where cuFile can run: the rebuilt backend reads through
///   a new cuFile stream into a new region;
/// - a chunk that kills every new backend: the run ends with
///   `recoveryFailed` naming the chunk's file and offset after 2 recoveries;
/// - a hung slot: the watchdog (2 s) names its slot, and the engine still
///   shuts down with every worker gone;
/// - user operations whose CUDA source traps or spins (`UserFaultSelfTest`),
///   each in a child process.
///
/// Each check makes and releases its own engine, so a lost CUDA context is
/// reset before the next check starts.
enum FaultSelfTest {
    static let chunkBytes = 64 << 10
    static let literals: [[UInt8]] = [Array("needle".utf8), Array("hay".utf8), Array("sluice".utf8)]

    static func run(
        backend: BackendChoice, seed: UInt64, child: SelfTestOptions.FaultChild? = nil, log: @escaping (String) -> Void
    ) -> (passed: Int, failed: Int) {
        var passed = 0
        var failed = 0
        let scratch: ScratchFiles
        do { scratch = try ScratchFiles(under: "/var/tmp") } catch {
            log("FAIL  faults: \(error.message)")
            return (0, 1)
        }
        defer { scratch.remove() }
        var rng = SplitMix64(seed: seed ^ 0xFA17_5E1F)
        var paths: [String] = []
        var contents: [[UInt8]] = []
        let sizes = [0, 1, chunkBytes - 1, chunkBytes, chunkBytes + 1, 5 * chunkBytes + 333, 9 * chunkBytes]
        for (i, size) in sizes.enumerated() {
            var bytes = (0..<size).map { _ in UInt8(97 + rng.below(8)) }
            var at = rng.below(2000)
            while at + 6 <= size {
                let l = literals[rng.below(literals.count)]
                bytes.replaceSubrange(at..<(at + l.count), with: l)
                at += 1 + rng.below(5000)
            }
            guard let p = try? scratch.write("faults-\(i)", bytes) else {
                log("FAIL  faults: cannot write scratch files under /var/tmp")
                return (0, 1)
            }
            paths.append(p)
            contents.append(bytes)
        }
        defer { for p in paths { unlink(p) } }
        let reference = contents.map { Soak.naiveMatches($0, literals, caseInsensitive: false) }
        let stride = chunkBytes - ScanJob.overlap(for: (try? PatternSet(literals: literals))!)
        let target = (path: paths[5], chunk: 3)

        func check(_ name: String, _ body: () throws(CheckFailure) -> String) {
            let started = clockNow()
            do {
                let detail = try body()
                passed += 1
                log("ok    \(name): \(detail) [\(elapsedText(since: started))]")
            } catch {
                failed += 1
                log("FAIL  \(name): \(error.message) (seed \(seed))")
            }
        }

        func engine(faults: Bool, watchdog: Duration = .seconds(30)) throws(CheckFailure) -> Engine {
            var c = EngineConfiguration(backend: backend, chunkBytes: chunkBytes, slots: 8, watchdog: watchdog)
            c.faultInjection = faults
            do { return try Engine(c, resultWordsPerSlot: ScanJob.resultWords(records: 64)) } catch {
                throw CheckFailure(message: "engine: \(error.message)")
            }
        }

        func scan(
            _ e: Engine, paths: [String] = paths, inject: @escaping (ChunkScheduler.Submission, inout SlotPayload) -> Void
        ) throws(PipelineError) -> [FileMatches] {
            let patterns = try PatternSet(literals: literals)
            let scanner = try e.scanner()
            scanner.injectFault = inject
            defer { scanner.injectFault = nil }
            var out: [FileMatches] = []
            _ = try ScanJob.run(
                scanner: scanner, patterns: patterns, table: ScanTable(patterns), paths: paths.map { RawPath($0) }, onFile: { out.append($0) })
            return out
        }

        func compare(_ got: [FileMatches], except skipped: Int? = nil) throws(CheckFailure) {
            guard got.count == paths.count else { throw CheckFailure(message: "\(got.count) files reported of \(paths.count)") }
            for (i, f) in got.enumerated() where i != skipped {
                guard f.errors.isEmpty else { throw CheckFailure(message: "\(f.path): \(f.errors.map(\.message))") }
                guard f.matches == reference[i], f.count == UInt64(reference[i].count) else {
                    throw CheckFailure(message: "\(f.path): \(f.matches.count) matches, the host reference \(reference[i].count)")
                }
            }
        }

        /// Kills the backend at the target chunk's first submission only; its rerun succeeds.
        func killTargetOnce(_ site: ChunkScheduler.Submission, _ payload: inout SlotPayload) {
            if site.path == RawPath(target.path), site.chunkNumber == target.chunk, site.attempt == 0 {
                payload.opcode = .testIllegalAddress
            }
        }

        /// Scans with the target chunk's first submission killing the backend,
        /// compares with the reference, and checks the engine was rebuilt once.
        func scanKillingTargetOnce(_ e: Engine) throws(CheckFailure) {
            let got: [FileMatches]
            do throws(PipelineError) {
                got = try scan(e, inject: killTargetOnce)
            } catch { throw CheckFailure(message: error.message) }
            try compare(got)
            guard e.rebuilds == 1 else { throw CheckFailure(message: "\(e.rebuilds) backends recreated, expected 1") }
        }

        check("faults: test opcodes need fault injection") { () throws(CheckFailure) in
            let e = try engine(faults: false)
            defer { try? e.close() }
            let got: [FileMatches]
            do throws(PipelineError) {
                got = try scan(e) { site, payload in
                    if site.path == RawPath(target.path), site.chunkNumber == target.chunk { payload.opcode = .testIllegalAddress }
                    if site.path == RawPath(target.path), site.chunkNumber == target.chunk + 1 { payload.opcode = .testHang }
                }
            } catch { throw CheckFailure(message: error.message) }
            try compare(got, except: 5)
            let codes = got[5].errors.compactMap { e -> FaultCode? in
                if case .slotFaulted(_, _, _, let code) = e { return code }
                return nil
            }
            guard codes == [.unknownOpcode, .unknownOpcode], got[5].errors.count == 2 else {
                throw CheckFailure(message: "expected two unknownOpcode faults, got \(got[5].errors.map(\.message))")
            }
            return "both faulted with unknownOpcode; the other files matched the host reference"
        }

        check("faults: hung kernel") { () throws(CheckFailure) in
            let e = try engine(faults: true, watchdog: .seconds(2))
            var hung = -1
            do {
                _ = try scan(e) { site, payload in
                    if site.path == RawPath(target.path), site.chunkNumber == target.chunk, site.attempt == 0 {
                        payload.opcode = .testHang
                        hung = site.slot
                    }
                }
                try? e.close()
                throw CheckFailure(message: "the scan finished although a slot hung")
            } catch let failure as CheckFailure {
                throw failure
            } catch let error as PipelineError {
                guard case .stuck(let slots, _, _) = error, slots.contains(hung) else {
                    try? e.close()
                    throw CheckFailure(message: "expected the watchdog to name slot \(hung), got \(error.message)")
                }
                do throws(PipelineError) { try e.close() } catch {
                    throw CheckFailure(message: "shutdown after the hang: \(error.message)")
                }
                let left = (try? e.backend.ring.observe().workersRunning) ?? 1
                guard left == 0 else { throw CheckFailure(message: "\(left) workers still running after shutdown") }
                return "the watchdog named slots \(slots) (the hung one is \(hung)); shutdown released it and every worker left"
            } catch {
                throw CheckFailure(message: "\(error)")
            }
        }
        // On CUDA, the first illegal address leaves this process without a
        // GPU (the driver refuses every new context: CUDA_ERROR_ILLEGAL_ADDRESS
        // is sticky), so the hang goes first and the checks that need a fresh
        // context after the first loss say why they did not run; all of them
        // run on the CPU twin in `swift test`.
        var contextGone = false
        func freshContextNeeded() -> String? {
            guard backend != .cpu, contextGone else { return nil }
            return "skipped on \(backend.rawValue): CUDA cannot start again in this process after the illegal address of the check above (CUDA_ERROR_ILLEGAL_ADDRESS is sticky); the CPU twin runs it in swift test"
        }

        check("faults: lost context recovered") { () throws(CheckFailure) in
            let e = try engine(faults: true)
            defer { try? e.close() }
            // Whatever the scan's outcome, the kill below ends CUDA in this process.
            if backend != .cpu { contextGone = true }
            try scanKillingTargetOnce(e)
            let matches = reference.reduce(0) { $0 + $1.count }
            let how = e.cpuFallback.map { "the unfinished chunks were finished on the CPU backend (\($0))" } ?? "the backend was recreated once"
            return "\(how); all \(paths.count) files equal the host reference (\(matches) matches)"
        }

        check("faults: lost context with packed small files") { () throws(CheckFailure) in
            if let skip = freshContextNeeded() { return skip }
            // 64 small files (1 byte to a quarter chunk): several per pack.
            var small: [String] = []
            var smallReference: [[ScanMatch]] = []
            defer { for p in small { unlink(p) } }
            for i in 0..<64 {
                let size = 1 + rng.below(chunkBytes / 4)
                var bytes = (0..<size).map { _ in UInt8(97 + rng.below(8)) }
                let l = literals[i % literals.count]
                if size >= l.count { bytes.replaceSubrange((size - l.count)..<size, with: l) }
                guard let p = try? scratch.write("faults-small-\(i)", bytes) else {
                    throw CheckFailure(message: "cannot write scratch files under /var/tmp")
                }
                small.append(p)
                smallReference.append(Soak.naiveMatches(bytes, literals, caseInsensitive: false))
            }
            let e = try engine(faults: true)
            defer { try? e.close() }
            guard e.stream.landing == .host else {
                return "skipped: chunks land in GPU memory here (\(e.ingestReason)), where nothing is packed"
            }
            var killedPack: [RawPath] = []
            var repacked = Set<RawPath>()
            let got: [FileMatches]
            do throws(PipelineError) {
                got = try scan(e, paths: small) { site, payload in
                    guard site.packed.count > 1 else { return }
                    if killedPack.isEmpty, site.attempt == 0 {
                        killedPack = site.packed
                        payload.opcode = .testIllegalAddress
                    } else if site.attempt > 0 {
                        repacked.formUnion(site.packed)
                    }
                }
            } catch { throw CheckFailure(message: error.message) }
            guard !killedPack.isEmpty else { throw CheckFailure(message: "no pack of several files was made") }
            guard e.rebuilds == 1 else { throw CheckFailure(message: "\(e.rebuilds) backends recreated, expected 1") }
            guard repacked.isSuperset(of: killedPack) else {
                throw CheckFailure(message: "files of the lost pack not packed again: \(Set(killedPack).subtracting(repacked).sorted().map(\.description))")
            }
            guard got.map(\.path) == small.map({ RawPath($0) }) else {
                throw CheckFailure(message: "\(got.count) files reported of \(small.count), or not each once in input order")
            }
            for (i, f) in got.enumerated() {
                guard f.errors.isEmpty else { throw CheckFailure(message: "\(f.path): \(f.errors.map(\.message))") }
                guard f.matches == smallReference[i] else {
                    throw CheckFailure(message: "\(f.path): \(f.matches.count) matches, the host reference \(smallReference[i].count)")
                }
            }
            return "a pack of \(killedPack.count) files lost the context; the backend was recreated once, they were packed again, and all \(small.count) files equal the host reference"
        }

        check("faults: lost context with cuFile ingest") { () throws(CheckFailure) in
            if let skip = freshContextNeeded() { return skip }
            var c = EngineConfiguration(backend: backend, ingest: .gds, chunkBytes: chunkBytes, slots: 8)
            c.faultInjection = true
            let e: Engine
            do throws(PipelineError) { e = try Engine(c, resultWordsPerSlot: ScanJob.resultWords(records: 64)) } catch {
                // No cuFile, or not the CUDA backend: nothing to check here.
                return "skipped: --ingest gds cannot run here (\(error.message))"
            }
            defer { try? e.close() }
            try scanKillingTargetOnce(e)
            // Only cuFile reads land in GPU memory.
            guard e.stream.landing == .device else {
                throw CheckFailure(message: "the rebuilt engine reads with \(e.ingestReason), not cuFile into GPU memory")
            }
            return "the backend was recreated once with a new cuFile stream (\(e.ingestReason)); all \(paths.count) files equal the host reference"
        }

        check("faults: lost on every attempt") { () throws(CheckFailure) in
            if let skip = freshContextNeeded() { return skip }
            let e = try engine(faults: true)
            defer { try? e.close() }
            do {
                _ = try scan(e) { site, payload in
                    if site.path == RawPath(target.path), site.chunkNumber == target.chunk { payload.opcode = .testIllegalAddress }
                }
                throw CheckFailure(message: "the scan finished although every backend was lost")
            } catch let failure as CheckFailure {
                throw failure
            } catch let error as PipelineError {
                guard case .recoveryFailed(let attempts, _, let unfinished) = error else {
                    throw CheckFailure(message: "expected recoveryFailed, got \(error.message)")
                }
                let offset = UInt64(target.chunk * stride)
                guard attempts == 2, unfinished.contains(where: { $0.path == target.path && $0.fileOffset == offset }) else {
                    throw CheckFailure(message: "\(attempts) recoveries; the error does not name \(target.path) at offset \(offset): \(error.message)")
                }
                return "gave up after \(attempts) recoveries naming \(unfinished.count) unfinished chunks, \(target.path) at offset \(offset) among them"
            } catch {
                throw CheckFailure(message: "\(error)")
            }
        }

        // Each in a child process of its own (where the CLI gives one): a
        // trap leaves its process without CUDA, and a spinning block keeps
        // running in its process until it exits.
        for userCheck in UserFaultSelfTest.Check.allCases {
            check(userCheck.title) { () throws(CheckFailure) in
                try UserFaultSelfTest.run(userCheck, backend: backend, seed: seed, child: child)
            }
        }

        return (passed, failed)
    }
}
