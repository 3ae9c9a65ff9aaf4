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

/// `sluice soak`: repeated multi-tenant runs over one engine with random
/// files, random tenant mixes and random injected faults, every result
/// checked against a reference computed on the host from the whole file
/// (naive byte loops for count and scan, CRC-32C of the whole file), and
/// resources (pinned memory, CPU regions, file descriptors, device memory)
/// compared before and after.
public enum Soak {
    /// Scans between two engine replacements (so teardown is soaked too).
    static let enginesEvery = 25
    static let tenants = 4

    /// Runs the soak `options` describe, logging progress through `log`; returns what it did and found. Throws the error that kept it from going on (scratch files, an engine that cannot start).
    public static func run(_ options: SoakOptions, log: (String) -> Void) throws(PipelineError) -> SoakReport {
        var report = SoakReport()
        report.seed = options.seed
        let dir = try ScratchFiles(under: options.scratch)
        defer { dir.remove() }
        var configuration = EngineConfiguration(
            backend: options.backend, chunkBytes: options.chunkBytes, slots: 0, workers: 0, watchdog: .seconds(30))
        configuration.faultInjection = true
        configuration.recoveryAttempts = 2
        let plan = try warmUp(configuration, options: options, report: &report, log: log)
        report.resourcesChecked = !options.killOnce
        let before = Resources.measure(gpu: plan.usesCUDA)
        log("soak: start: pinned \(before.pinned) B, cpu regions \(before.cpuRegions) B, fds \(before.fds)"
            + (before.gpu.map { ", gpu memory in use \($0) B" } ?? ""))
        let started = monotonicNanoseconds()
        try scanUntilDone(configuration, options: options, plan: plan, dir: dir, report: &report, log: log)
        report.seconds = Double(monotonicNanoseconds() - started) / 1e9
        let after = Resources.measure(gpu: plan.usesCUDA)
        log("soak: end: pinned \(after.pinned) B, cpu regions \(after.cpuRegions) B, fds \(after.fds)"
            + (after.gpu.map { ", gpu memory in use \($0) B" } ?? ""))
        report.pinnedDelta = after.pinned - before.pinned
        report.cpuRegionDelta = after.cpuRegions - before.cpuRegions
        report.fdDelta = after.fds - before.fds
        if let a = after.gpu, let b = before.gpu { report.gpuDelta = Int64(a) - Int64(b) }
        for p in report.problems { log("soak: problem: \(p)") }
        log(report.summary)
        return report
    }

    /// Result words per slot: a count's, or a scan's with 32 records.
    static let resultWords = max(CountOp.resultWords, ScanJob.resultWords(records: 32))

    /// What the warm-up engine showed: the backend, and the faults the soak injects on it.
    struct Plan {
        var usesCUDA: Bool
        /// The child kills this soak runs: none in a child itself, nor where they are for CUDA only.
        var childKills: ChildKills?
        /// In-process kills: sometimes on the CPU backend, on the first chunk in a child, never on CUDA.
        var kills: KillPolicy
    }

    /// One engine made and closed first, so that what the process keeps
    /// for good after its first use (driver and library handles, the
    /// kernel cache) is in both resource readings; says which faults run.
    static func warmUp(
        _ configuration: EngineConfiguration, options: SoakOptions, report: inout SoakReport, log: (String) -> Void
    ) throws(PipelineError) -> Plan {
        let warm = try Engine(configuration, resultWordsPerSlot: resultWords)
        let usesCUDA = warm.backend is CUDABackend
        report.backend = warm.backend.name
        let childKills = options.killOnce || (options.childKillsOnlyOnCUDA && !usesCUDA) ? nil : options.childKills
        log("soak: seed \(options.seed) (replay with --seed \(options.seed)); backend \(warm.backend.summary)")
        if options.killOnce {
            log("soak: a child that kills its backend once: one scan, its first chunk an illegal address")
        } else if let kills = childKills {
            log("soak: context kills run in child processes of this executable about every \(kills.interval.components.seconds) s, each on \(warm.backend.name) while this process's engine stays up"
                + (usesCUDA ? " (after an illegal address CUDA cannot start again in the process that caused it)" : ""))
        } else if usesCUDA {
            log("soak: context kills are not injected on cuda: after an illegal address CUDA cannot start again in this process (selftest --faults checks that the run finishes on the CPU); hostile slots are")
        }
        try warm.close()
        return Plan(
            usesCUDA: usesCUDA, childKills: childKills,
            kills: options.killOnce ? .firstChunk : usesCUDA ? .never : .sometimes)
    }

    /// Scans until the duration or the scan count runs out, replacing the
    /// engine every `enginesEvery` scans and after a failed scan, and
    /// running a child kill when one is due; logs the figures every 10 s.
    static func scanUntilDone(
        _ configuration: EngineConfiguration, options: SoakOptions, plan: Plan, dir: ScratchFiles, report: inout SoakReport,
        log: (String) -> Void
    ) throws(PipelineError) {
        var rng = SplitMix64(seed: options.seed)
        var childRng = SplitMix64(seed: options.seed ^ 0x6368_696C_645F_6B69)
        func nextChildKill(after now: UInt64) -> UInt64? {
            guard let interval = plan.childKills?.interval else { return nil }
            return now + UInt64(interval.inSeconds * (0.5 + Double(childRng.below(1001)) / 1000) * 1e9)
        }
        let maxScans = options.killOnce ? 1 : options.maxScans
        let started = monotonicNanoseconds()
        let deadline = started + UInt64(max(0, options.duration.components.seconds)) * 1_000_000_000
        var lastLog = started
        var childKillAt = nextChildKill(after: started)
        var engine: Engine?
        defer { try? engine?.close() }
        while monotonicNanoseconds() < deadline, report.scans < (maxScans ?? Int.max) {
            if let at = childKillAt, monotonicNanoseconds() >= at, let childKills = plan.childKills {
                // With this process's engine up, its kernel running.
                killInChild(childKills, seed: rng.next(), dir: dir, report: &report, log: log)
                childKillAt = nextChildKill(after: monotonicNanoseconds())
            }
            if engine == nil || report.scans % enginesEvery == 0 {
                try? engine?.close()
                engine = nil
                guard let made = freshEngine(configuration, report: &report) else { break }
                engine = made
            }
            let scanSeed = rng.next()
            do {
                try oneScan(
                    engine: engine!, dir: dir, seed: scanSeed, chunkBytes: options.chunkBytes, kills: plan.kills,
                    report: &report)
            } catch {
                report.mismatches += 1
                report.note("scan \(report.scans) (seed \(scanSeed)) failed: \(error.message)")
                try? engine?.close()
                engine = nil
            }
            report.scans += 1
            let now = monotonicNanoseconds()
            if now - lastLog > 10_000_000_000 {
                lastLog = now
                report.seconds = Double(now - started) / 1e9
                log("soak: so far: \(report.figures)")
            }
        }
        try engine?.close()
        engine = nil
    }

    /// A new engine with tenant checks on, counted; nil (a failure, noted
    /// with every figure so far) after a loss the process could not get past.
    static func freshEngine(_ configuration: EngineConfiguration, report: inout SoakReport) -> Engine? {
        do throws(PipelineError) {
            let made = try Engine(configuration, resultWordsPerSlot: resultWords)
            try made.scanner().enableTenantChecks(tenants: tenants)
            report.engines += 1
            return made
        } catch {
            report.mismatches += 1
            report.note("engine \(report.engines + 1) could not be made after scan \(report.scans): \(error.message)")
            return nil
        }
    }

    /// Runs one killed scan in a child process and counts it: a kill
    /// injected, and a recovery when the child passed on the same backend.
    static func killInChild(
        _ kills: ChildKills, seed: UInt64, dir: ScratchFiles, report: inout SoakReport, log: (String) -> Void
    ) {
        let label = "child kill \(report.childKills + 1) (seed \(seed))"
        report.contextKillsInjected += 1
        do throws(PipelineError) {
            let outcome = try ChildProcess.run(
                executable: kills.executable, arguments: kills.arguments(seed, report.backend),
                outputPath: dir.path + "/child-\(seed).log", timeout: kills.timeout)
            let lines = outcome.output.split(separator: "\n")
            let last = lines.last { $0.hasPrefix("soak PASSED") || $0.hasPrefix("soak FAILED") }.map(String.init)
            let sameBackend = last?.contains("backend \(report.backend),") ?? false
            let seconds = Double(Int(outcome.seconds * 10)) / 10
            if outcome.status == 0, sameBackend, last?.hasPrefix("soak PASSED") == true {
                report.recoveries += 1
                report.childKills += 1
                log("soak: \(label): passed in \(seconds) s: \(last ?? "")")
            } else {
                report.mismatches += 1
                let why = outcome.timedOut ? "killed after \(kills.timeout.components.seconds) s" : "exit \(outcome.status)"
                let tail = lines.suffix(6).joined(separator: " | ")
                report.note("\(label): \(why)\(sameBackend ? "" : ", not on \(report.backend)"): \(tail)")
                log("soak: \(label): FAILED (\(why)) in \(seconds) s")
            }
        } catch {
            report.mismatches += 1
            report.note("\(label): could not run: \(error.message)")
        }
    }

    /// Where a scan kills its backend with the test-only opcode.
    enum KillPolicy {
        /// Never (CUDA: the process could not start CUDA again).
        case never
        /// One scan in three, at one of its first six chunks.
        case sometimes
        /// At the first chunk (a `killOnce` child).
        case firstChunk
    }

    /// What a hostile slot does, and the fault it must end with.
    enum Hostile: CaseIterable {
        case unknownOpcode, pastTheData, otherTenant

        var code: FaultCode {
            switch self {
            case .unknownOpcode: return .unknownOpcode
            case .pastTheData: return .bufferOutOfBounds
            case .otherTenant: return .tenantViolation
            }
        }

        func apply(_ p: inout SlotPayload, salt: UInt64) {
            switch self {
            case .unknownOpcode: p.opcode = Opcode(rawValue: 0xBAD0_0000 | UInt32(truncatingIfNeeded: salt & 0xFFFF))
            case .pastTheData: p.length = UInt32.max - UInt32(truncatingIfNeeded: salt & 0xFF)
            case .otherTenant: p.tenant = (p.tenant + 1 + UInt32(salt % UInt64(Soak.tenants - 1))) % UInt32(Soak.tenants)
            }
        }
    }

    /// What one job collected for one file.
    struct Collected {
        var count = CountResult()
        var crc = CRC32CChunkCombiner()
        var matches: [ScanMatch] = []
        var found: UInt64 = 0
        var problems: [String] = []
        var errors: [PipelineError] = []
    }

    static func oneScan(
        engine: Engine, dir: ScratchFiles, seed: UInt64, chunkBytes: Int, kills: KillPolicy, report: inout SoakReport
    ) throws(PipelineError) {
        var rng = SplitMix64(seed: seed)
        // Literals, then files with some of them planted.
        let caseInsensitive = rng.below(4) == 0
        let literals: [[UInt8]] = (0..<(1 + rng.below(6))).map { _ in
            (0..<(1 + rng.below(12))).map { _ in rng.below(3) == 0 ? UInt8(rng.below(256)) : UInt8(97 + rng.below(4)) }
        }
        let patterns = try PatternSet(literals: literals, caseInsensitive: caseInsensitive)
        let table = ScanTable(patterns)
        let overlap = ScanJob.overlap(for: patterns)
        let stride = chunkBytes - overlap
        let edges = [0, 1, stride - 1, stride, stride + 1, chunkBytes - 1, chunkBytes, chunkBytes + 1, 2 * stride + 7]
        var contents: [[UInt8]] = []
        var paths: [String] = []
        for i in 0..<(1 + rng.below(8)) {
            var size = rng.below(3) == 0 ? rng.below(3 * chunkBytes + 1) : edges[rng.below(edges.count)]
            // A killed child's first file has a chunk to kill with.
            if kills == .firstChunk, i == 0 { size = max(size, 1) }
            var bytes = [UInt8](repeating: 0, count: size)
            for j in 0..<size { bytes[j] = rng.below(2) == 0 ? UInt8(97 + rng.below(5)) : UInt8(truncatingIfNeeded: rng.next()) }
            for _ in 0..<rng.below(1 + size / 512) {
                let l = literals[rng.below(literals.count)]
                guard l.count <= size else { continue }
                let at = rng.below(size - l.count + 1)
                bytes.replaceSubrange(at..<(at + l.count), with: l)
            }
            paths.append(try dir.write("s\(report.scans)-\(i)", bytes))
            contents.append(bytes)
        }
        defer { for p in paths { unlink(p) } }

        // Tenants: 1 to 4 jobs, each an opcode over some of the files.
        let scanner = try engine.scanner()
        try scanner.installScanTable(table.words, literals: patterns.literals, caseInsensitive: caseInsensitive)
        let opcodes: [Opcode] = [.count, .crc32c, .scan]
        var jobSpecs: [(tenant: UInt32, opcode: Opcode, files: [Int])] = []
        for t in 0..<(1 + rng.below(Soak.tenants)) {
            let files = (0..<paths.count).filter { _ in rng.below(3) != 0 }
            jobSpecs.append((UInt32(t), opcodes[rng.below(3)], files.isEmpty ? [rng.below(paths.count)] : files))
        }
        if kills == .firstChunk, !jobSpecs[0].files.contains(0) { jobSpecs[0].files.insert(0, at: 0) }

        // Faults: each first submission may turn hostile (decided once per
        // chunk, so a rerun after a recovery is hostile the same way); one
        // scan in three kills the backend once.
        var hostile: [String: Hostile?] = [:]
        var expectedFaults: [Int: [Int: [FaultCode]]] = [:]   // job -> file index -> codes
        let killRoll = rng.below(3) == 0 ? rng.below(6) : -1
        // Never in a CUDA soak's own process: after an illegal address the
        // driver refuses every new context in the process, so one kill would
        // end the soak's GPU use; its kills run in children (`ChildKills`).
        let killAt: Int
        switch kills {
        case .never: killAt = -1
        case .sometimes: killAt = killRoll
        case .firstChunk: killAt = 0
        }
        var submissions = 0
        var killed = 0
        var faultRng = SplitMix64(seed: rng.next())
        let recoveriesBefore = scanner.recoveries
        scanner.injectFault = { site, payload in
            let key = "\(site.job)/\(site.path)/\(site.chunkNumber)"
            if site.attempt == 0 {
                defer { submissions += 1 }
                if submissions == killAt {
                    payload.opcode = .testIllegalAddress
                    killed += 1
                    hostile[key] = .some(nil)
                    return
                }
            }
            if hostile[key] == nil {
                let roll = faultRng.below(100)
                let kind: Hostile? = roll < 4 ? Hostile.allCases[faultRng.below(Hostile.allCases.count)] : nil
                hostile[key] = .some(kind)
                if let kind {
                    let file = paths.firstIndex { RawPath($0) == site.path } ?? -1
                    expectedFaults[site.job, default: [:]][file, default: []].append(kind.code)
                }
            }
            if let kind = hostile[key] ?? nil { kind.apply(&payload, salt: faultRng.next()) }
        }
        defer { scanner.injectFault = nil }

        var collected = [[Int: Collected]](repeating: [:], count: jobSpecs.count)
        var hostRescanView: ScanTableView?
        let hostWords = table.words
        let jobs = jobSpecs.enumerated().map { (j, spec) in
            ChunkScheduler.Job(
                tenant: spec.tenant, weight: 1 + Int(spec.tenant % 3), paths: spec.files.map { RawPath(paths[$0]) },
                opcode: spec.opcode, flags: 0, overlap: spec.opcode == .scan ? overlap : 0,
                onChunk: { c in
                    let file = spec.files[c.fileIndex]
                    var entry = collected[j][file] ?? Collected()
                    defer { collected[j][file] = entry }
                    switch spec.opcode {
                    case .count:
                        do throws(PipelineError) {
                            let r = try CountResult(words: c.words)
                            if r.bytes != UInt64(c.length) { entry.problems.append("chunk \(c.chunkNumber) counted \(r.bytes) of \(c.length) bytes") }
                            entry.count.add(r)
                        } catch { entry.problems.append(error.message) }
                    case .crc32c:
                        do throws(PipelineError) {
                            let r = try CRC32CResult(words: c.words)
                            try entry.crc.add(chunk: c.chunkNumber, offset: c.fileOffset, crc: r.crc, length: r.length)
                        } catch { entry.problems.append(error.message) }
                    default:
                        let w = c.words
                        guard w.count >= ScanOp.headerWords else {
                            entry.problems.append("chunk \(c.chunkNumber): \(w.count) result words")
                            return
                        }
                        let found = UInt64(w[0]) | UInt64(w[1]) << 32
                        let stored = Int(w[2])
                        entry.found += found
                        if UInt64(stored) == found, w.count >= ScanOp.headerWords + 2 * stored {
                            for r in 0..<stored {
                                entry.matches.append(ScanMatch(
                                    offset: c.fileOffset + UInt64(w[ScanOp.headerWords + 2 * r]),
                                    pattern: Int(w[ScanOp.headerWords + 2 * r + 1])))
                            }
                        } else {
                            // Overflowed area: the host finds the chunk's matches again.
                            let bytes: UnsafeRawBufferPointer
                            do throws(PipelineError) { bytes = try c.bytes } catch {
                                entry.problems.append("chunk \(c.chunkNumber): \(error.message)")
                                return
                            }
                            hostWords.withUnsafeBufferPointer { words in
                                if hostRescanView == nil { hostRescanView = try? ScanTableView(words) }
                                guard let view = hostRescanView else { return }
                                ScanOp.forEachMatch(table: view, chunk: bytes, startLimit: c.length) { p, pattern in
                                    entry.matches.append(ScanMatch(offset: c.fileOffset + UInt64(p), pattern: Int(pattern)))
                                }
                            }
                        }
                    }
                },
                onFile: { outcome in
                    let file = spec.files[outcome.fileIndex]
                    collected[j][file, default: Collected()].errors += outcome.errors
                })
        }
        let summary = try withExtendedLifetime(hostWords) { () throws(PipelineError) -> ChunkScheduler.Summary in
            try scanner.run(jobs: jobs)
        }
        report.slots += summary.chunks
        report.recoveries += scanner.recoveries - recoveriesBefore
        report.contextKillsInjected += killed

        // Compare with the reference, file by file and job by job.
        for (j, spec) in jobSpecs.enumerated() {
            for file in spec.files {
                let bytes = contents[file]
                report.bytes += UInt64(bytes.count)
                let got = collected[j][file] ?? Collected()
                let expected = expectedFaults[j]?[file] ?? []
                let label = "scan \(report.scans) (seed \(seed)) tenant \(spec.tenant) \(spec.opcode) \(paths[file]) (\(bytes.count) bytes)"
                report.hostileInjected += expected.count
                report.slots += expected.count
                if !expected.isEmpty {
                    var codes: [FaultCode] = []
                    var other: [PipelineError] = []
                    for e in got.errors {
                        if case .slotFaulted(_, _, _, let code) = e { codes.append(code) } else { other.append(e) }
                    }
                    let matched = zip(codes.sorted { $0.rawValue < $1.rawValue }, expected.sorted { $0.rawValue < $1.rawValue })
                        .filter { $0 == $1 }.count
                    report.faultsObserved += matched
                    if matched != expected.count || codes.count != expected.count || !other.isEmpty {
                        report.mismatches += 1
                        report.note("\(label): expected faults \(expected), got \(got.errors.map(\.message))")
                    }
                    continue
                }
                var problems = got.problems + got.errors.map(\.message)
                switch spec.opcode {
                case .count:
                    let reference = referenceCount(bytes)
                    if got.count != reference {
                        problems.append("count \(got.count.bytes) bytes, \(got.count.newlines) newlines; reference \(reference.bytes), \(reference.newlines)")
                    }
                case .crc32c:
                    let reference = CRC32C.checksum(bytes)
                    if got.crc.crc != reference || got.crc.bytes != UInt64(bytes.count) {
                        problems.append("crc32c 0x\(String(got.crc.crc, radix: 16)) over \(got.crc.bytes) bytes; reference 0x\(String(reference, radix: 16))")
                    }
                default:
                    let reference = naiveMatches(bytes, literals, caseInsensitive: caseInsensitive)
                    let matches = got.matches.sorted()
                    if matches != reference || got.found != UInt64(reference.count) {
                        problems.append("\(matches.count) matches (found \(got.found)); reference \(reference.count)")
                    }
                }
                if !problems.isEmpty {
                    report.mismatches += 1
                    report.note("\(label): " + problems.joined(separator: "; "))
                }
            }
        }
    }

    /// Bytes, newlines and byte histogram, one byte at a time.
    static func referenceCount(_ bytes: [UInt8]) -> CountResult {
        var r = CountResult()
        r.bytes = UInt64(bytes.count)
        for b in bytes {
            r.histogram[Int(b)] += 1
            if b == 0x0A { r.newlines += 1 }
        }
        return r
    }

    /// Every occurrence of every literal, compared byte by byte at every
    /// offset (the first of equal literals names them, as the scan table does).
    static func naiveMatches(_ text: [UInt8], _ literals: [[UInt8]], caseInsensitive: Bool) -> [ScanMatch] {
        let fold: (UInt8) -> UInt8 = { caseInsensitive && $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }
        let t = text.map(fold)
        var firstIndex: [[UInt8]: Int] = [:]
        for (i, l) in literals.enumerated() where firstIndex[l.map(fold)] == nil { firstIndex[l.map(fold)] = i }
        var out: [ScanMatch] = []
        for (folded, i) in firstIndex where folded.count <= t.count {
            let first = folded[0]
            for p in 0...(t.count - folded.count) where t[p] == first {
                if t[p..<(p + folded.count)].elementsEqual(folded) { out.append(ScanMatch(offset: UInt64(p), pattern: i)) }
            }
        }
        return out.sorted()
    }
}
