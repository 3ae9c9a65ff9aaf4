#if canImport(Glibc)
import Glibc
#endif
import SluiceCore
import SluiceCPU
import SluiceIngest
import SluiceOps
import Synchronization
import Testing

@testable import Sluice

/// Collects the engine's notes (recoveries) across threads.
final class NoteLog: Sendable {
    private let lines = Mutex<[String]>([])
    func add(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}

/// A backend that loses its context (the CPU backend's twin of a CUDA
/// illegal address), a hung slot, and the test-only opcodes' gate: recovery
/// must give exactly the results of an undisturbed run, or name the chunks.
/// (Leaks of memory and descriptors are checked by the soak command in its
/// own process: other suites run alongside this one.)
@Suite(.serialized) struct RecoveryTests {
    static let chunk = 8192
    static let literals: [[UInt8]] = [Array("needle".utf8), Array("hay".utf8), [0x0A, 0x0A]]

    /// Files around chunk edges with planted literals; returns paths and contents.
    func makeFiles(_ dir: ScratchDirectory, seed: UInt64) -> ([String], [[UInt8]]) {
        var rng = SeededRandom(state: seed)
        let c = RecoveryTests.chunk
        let sizes = [0, 1, c - 1, c, c + 1, 3 * c + 17, 5 * c, Int.random(in: 1...(6 * c), using: &rng)]
        var paths: [String] = [], contents: [[UInt8]] = []
        for (i, size) in sizes.enumerated() {
            var bytes = textLikeBytes(size, &rng)
            var at = 0
            while at + 6 <= bytes.count {
                bytes.replaceSubrange(at..<(at + 6), with: Array("needle".utf8))
                at += Int.random(in: 100...3000, using: &rng)
            }
            paths.append(dir.write("f\(i)", bytes))
            contents.append(bytes)
        }
        return (paths, contents)
    }

    func makeEngine(faults: Bool, notes: NoteLog? = nil, watchdog: Duration = .seconds(30), slots: Int = 4) throws -> Engine {
        var c = EngineConfiguration(
            backend: .cpu, ingest: .pread, chunkBytes: RecoveryTests.chunk, slots: slots, workers: 2, watchdog: watchdog)
        c.faultInjection = faults
        if let notes { c.onNote = { notes.add($0) } }
        return try Engine(c, resultWordsPerSlot: max(CountOp.resultWords, ScanJob.resultWords(records: 64)))
    }

    func scan(_ engine: Engine, _ paths: [String], inject: ((ChunkScheduler.Submission, inout SlotPayload) -> Void)? = nil)
        throws(PipelineError) -> [FileMatches]
    {
        let patterns = try PatternSet(literals: RecoveryTests.literals)
        let scanner = try engine.scanner()
        scanner.injectFault = inject
        var out: [FileMatches] = []
        _ = try ScanJob.run(
            scanner: scanner, patterns: patterns, table: ScanTable(patterns), paths: paths.raw, onFile: { out.append($0) })
        return out
    }

    @Test func aBackendLostMidScanIsRecreatedAndTheOutputIsThatOfACleanRun() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (paths, contents) = makeFiles(dir, seed: 11)

        let expected = try {
            let clean = try makeEngine(faults: false)
            defer { try? clean.close() }
            return try scan(clean, paths)
        }()
        try runRecoveredScan(paths, contents, expected)
    }

    func runRecoveredScan(_ paths: [String], _ contents: [[UInt8]], _ expected: [FileMatches]) throws {
        let notes = NoteLog()
        let engine = try makeEngine(faults: true, notes: notes)
        var killed = 0
        // Chunk 2 of the 3-chunk-plus file kills the backend, the first time only.
        let got = try scan(engine, paths) { site, payload in
            if site.path == paths[5], site.chunkNumber == 2, site.attempt == 0 {
                payload.opcode = .testIllegalAddress
                killed += 1
            }
        }
        #expect(killed == 1)
        #expect(try engine.scanner().recoveries == 1)
        #expect(engine.rebuilds == 1)
        #expect(got.map(\.path) == expected.map(\.path))
        for (i, file) in got.enumerated() {
            #expect(file.errors.isEmpty, "\(file.path): \(file.errors)")
            expectSameMatches(file.matches, expected[i].matches, file.path.description)
            expectSameMatches(file.matches, naiveMatches(contents[i], RecoveryTests.literals), "oracle \(file.path)")
            #expect(file.count == expected[i].count)
        }
        // The note names the cause and the chunk that was lost, with its offset and slot.
        let line = try #require(notes.all.first)
        #expect(line.contains("lost its context"))
        let stride = RecoveryTests.chunk - ScanJob.overlap(for: try PatternSet(literals: RecoveryTests.literals))
        #expect(line.contains("\(paths[5]) at offset \(2 * stride)"), "\(line)")
        #expect(notes.all.count == 1)

        // The same engine keeps working after the recovery, scan table included.
        let again = try scan(engine, paths)
        for (i, file) in again.enumerated() { expectSameMatches(file.matches, expected[i].matches, "rerun \(file.path)") }
        try engine.close()
    }

    /// CUDA refuses every new context after an illegal address (seen on the
    /// H100 machine): the unfinished chunks are finished on the CPU backend,
    /// the output is that of a clean run, and the run says why.
    @Test func whenTheContextCannotBeMadeAgainTheRunFinishesOnTheCPU() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (paths, contents) = makeFiles(dir, seed: 17)
        let notes = NoteLog()
        var c = EngineConfiguration(
            backend: .cpu, ingest: .pread, chunkBytes: RecoveryTests.chunk, slots: 4, workers: 2)
        c.faultInjection = true
        c.unrecoverableContextForTests = true
        c.onNote = { notes.add($0) }
        let engine = try Engine(c, resultWordsPerSlot: max(CountOp.resultWords, ScanJob.resultWords(records: 64)))
        defer { try? engine.close() }
        var kills = 0
        // Two losses: the second one happens on the fallback, which stays on the CPU.
        let got = try scan(engine, paths) { site, payload in
            // Attempt 0 kills the first backend, attempt 1 the CPU fallback; attempt 2 finishes.
            if site.path == paths[5], site.chunkNumber == 1, site.attempt <= 1 {
                payload.opcode = .testIllegalAddress
                kills += 1
            }
        }
        #expect(kills == 2)
        #expect(engine.rebuilds == 2 && engine.backend.name == "cpu")
        #expect(engine.cpuFallback?.contains("CPU backend") == true)
        #expect(notes.all.contains { $0.contains("CUDA cannot start again") })
        for (i, file) in got.enumerated() {
            #expect(file.errors.isEmpty, "\(file.path): \(file.errors)")
            expectSameMatches(file.matches, naiveMatches(contents[i], RecoveryTests.literals), "oracle \(file.path)")
        }
    }

    @Test func checksumsAndCountsSurviveARecoveryExactlyOnce() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (paths, contents) = makeFiles(dir, seed: 12)
        let engine = try makeEngine(faults: true)
        defer { try? engine.close() }
        let scanner = try engine.scanner()
        var kills = 0
        scanner.injectFault = { site, payload in
            // Two separate losses in one run (the second only after the first
            // recovery): both within the retry budget.
            if site.attempt == 0, (kills == 0 && site.path == paths[6] && site.chunkNumber == 2)
                || (kills == 1 && scanner.recoveries == 1 && site.path == paths[7]) {
                payload.opcode = .testIllegalAddress
                kills += 1
            }
        }
        var hashes: [FileHash] = []
        _ = try HashJob.run(scanner: scanner, paths: paths.raw, onFile: { hashes.append($0) })
        #expect(kills == 2)
        #expect(scanner.recoveries == 2)
        for (i, h) in hashes.enumerated() {
            #expect(h.errors.isEmpty)
            #expect(h.crc32c == CRC32C.checksum(contents[i]), "\(h.path)")
            #expect(h.bytes == UInt64(contents[i].count))
        }
        scanner.injectFault = nil
        var counts: [FileCount] = []
        _ = try CountJob.run(scanner: scanner, paths: paths.raw, onFile: { counts.append($0) })
        for (i, c) in counts.enumerated() {
            #expect(c.result.bytes == UInt64(contents[i].count))
            #expect(c.result.newlines == UInt64(contents[i].filter { $0 == 0x0A }.count))
        }
    }

    @Test func aChunkThatKillsEveryNewBackendEndsTheRunNamingIt() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (paths, _) = makeFiles(dir, seed: 13)
        let notes = NoteLog()
        do {
            let engine = try makeEngine(faults: true, notes: notes)
            var attempts: [Int] = []
            do {
                _ = try scan(engine, paths) { site, payload in
                    if site.path == paths[4], site.chunkNumber == 1 {
                        payload.opcode = .testIllegalAddress
                        attempts.append(site.attempt)
                    }
                }
                Issue.record("the run finished although every backend was lost")
            } catch {
                guard case .recoveryFailed(let tries, let cause, let unfinished) = error else {
                    Issue.record("expected recoveryFailed, got \(error)")
                    return
                }
                #expect(tries == 2)
                #expect(cause.contains("lost its context"))
                let stride = RecoveryTests.chunk - ScanJob.overlap(for: try PatternSet(literals: RecoveryTests.literals))
                #expect(unfinished.contains { $0.path == paths[4] && $0.fileOffset == UInt64(stride) })
                #expect(error.message.contains(paths[4]))
                #expect(error.message.contains("offset \(stride)"))
            }
            #expect(attempts == [0, 1, 2])
            #expect(notes.all.count == 2)
            try engine.close()
        }
    }

    @Test func theWatchdogNamesAHungSlotAndTheEngineStillStops() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (paths, _) = makeFiles(dir, seed: 14)
        let engine = try makeEngine(faults: true, watchdog: .seconds(1))
        var hungSlot = -1
        do {
            _ = try scan(engine, paths) { site, payload in
                if site.path == paths[6], site.chunkNumber == 1, site.attempt == 0 {
                    payload.opcode = .testHang
                    hungSlot = site.slot
                }
            }
            Issue.record("the run finished although a slot hung")
        } catch {
            guard case .stuck(let slots, let seconds, let runner) = error else {
                Issue.record("expected stuck, got \(error)")
                return
            }
            #expect(slots == [hungSlot])
            #expect(seconds == 1)
            // The CPU backend is named as such, not as a hung GPU kernel.
            #expect(runner == .cpu)
            #expect(error.message.contains("CPU backend") && !error.description.contains("GPU"))
        }
        // Shutdown releases the hung worker; every worker leaves.
        try engine.close()
        #expect(try engine.backend.ring.observe().workersRunning == 0)
    }

    @Test func tenantChecksAreBackAfterARecovery() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (paths, contents) = makeFiles(dir, seed: 15)
        let engine = try makeEngine(faults: true, slots: 6)
        defer { try? engine.close() }
        let scanner = try engine.scanner()
        try scanner.enableTenantChecks(tenants: 3)
        var killed = false
        var forged = 0
        scanner.injectFault = { site, payload in
            if !killed, site.tenant == 1, site.chunkNumber == 1 {
                killed = true
                payload.opcode = .testIllegalAddress
            } else if scanner.recoveries == 1, site.tenant == 0, site.path == paths[7], site.chunkNumber == 0 {
                payload.tenant = 2   // claims another tenant's identity over tenant 0's buffer
                forged += 1
            }
        }
        var counts: [[Int: CountResult]] = [[:], [:]]
        var errors: [[Int: [PipelineError]]] = [[:], [:]]
        let jobs = (0..<2).map { t in
            ChunkScheduler.Job(
                tenant: UInt32(t), weight: t + 1, paths: paths.raw, opcode: .count,
                onChunk: { c in
                    if let r = try? CountResult(words: c.words) { counts[t][c.fileIndex, default: CountResult()].add(r) }
                },
                onFile: { errors[t][$0.fileIndex] = $0.errors })
        }
        _ = try scanner.run(jobs: jobs)
        #expect(killed)
        #expect(scanner.recoveries == 1)
        #expect(forged == 1)
        for t in 0..<2 {
            for (i, bytes) in contents.enumerated() {
                if t == 0 && i == 7 {
                    #expect(errors[t][i]?.contains { if case .slotFaulted(_, _, _, .tenantViolation) = $0 { true } else { false } } == true)
                    continue
                }
                #expect(errors[t][i]?.isEmpty == true, "tenant \(t) file \(i): \(errors[t][i] ?? [])")
                #expect((counts[t][i] ?? CountResult()).bytes == UInt64(bytes.count), "tenant \(t) file \(i)")
            }
        }
    }

    @Test func testOpcodesFaultAsUnknownWithoutFaultInjection() throws {
        for injection in [false, true] {
            let geometry = try RingGeometry(slotCount: 4, resultWordsPerSlot: 4)
            let backend = try CPUBackend(configuration: BackendConfiguration(
                geometry: geometry, dataBytes: 4096, workers: 1, faultInjection: injection))
            try backend.start()
            defer { try? backend.shutdown() }
            let ring = backend.ring
            // Without the flag both fault as unknown opcodes; with it, one
            // naming memory past the data region faults on its bounds first.
            for (slot, op) in Opcode.testOnly.enumerated() {
                try ring.publish(slot: slot, SlotPayload(
                    opcode: op, tenant: 0, bufferOffset: injection ? 4000 : 0, length: injection ? 200 : 16,
                    fileOffset: 0, chunkIndex: 0, arguments: (0, 0),
                    resultOffset: UInt32(geometry.resultOffset(ofSlot: slot)), resultCapacity: 4))
            }
            var epoch = ring.epoch
            while ring.epoch < 2 { epoch = try backend.waitForProgress(after: epoch, timeout: .seconds(5)) }
            for slot in 0..<2 {
                let record = try ring.reclaim(slot: slot)
                #expect(record.status == .faulted)
                #expect(record.fault == (injection ? .bufferOutOfBounds : .unknownOpcode))
            }
        }
        #expect(!Opcode.testIllegalAddress.isDefined && !Opcode.testHang.isDefined)
        #expect(Opcode.testIllegalAddress.name == "test-illegal-address")
    }
}

/// Recovery with small files packed several to a chunk (`ChunkScheduler.Job.packing`)
/// and with a cuFile-style stream: every file of a lost pack is packed again
/// and reported once, a file that changed across the loss is reported
/// changed, and a run that read through the device-ingest path gets that path
/// again from `Engine.replaceLostBackend`.
@Suite(.serialized) struct PackedRecoveryTests {
    static let chunk = 8192
    static let literals = PackingTests.literals

    func makeEngine(notes: NoteLog? = nil, slots: Int = 4, records: Int = 64) throws -> Engine {
        var c = EngineConfiguration(
            backend: .cpu, ingest: .pread, chunkBytes: PackedRecoveryTests.chunk, slots: slots, workers: 2)
        c.faultInjection = true
        if let notes { c.onNote = { notes.add($0) } }
        return try Engine(c, resultWordsPerSlot: ScanJob.resultWords(records: records))
    }

    func scan(
        _ scanner: ChunkScheduler, _ paths: [String], mode: ScanMode = .matches
    ) throws(PipelineError) -> [FileMatches] {
        let patterns = try PatternSet(literals: PackedRecoveryTests.literals)
        var out: [FileMatches] = []
        _ = try ScanJob.run(
            scanner: scanner, patterns: patterns, table: ScanTable(patterns), paths: paths.raw, mode: mode,
            onFile: { out.append($0) })
        return out
    }

    /// Every file reported once, in input order, without errors, with the
    /// oracle's matches (or count) and those of the clean packed run.
    func expectClean(
        _ got: [FileMatches], _ clean: [FileMatches], _ paths: [String], _ texts: [[UInt8]], mode: ScanMode,
        except changed: String? = nil
    ) {
        #expect(got.map(\.path) == paths)
        guard got.count == paths.count else { return }
        for (i, text) in texts.enumerated() where paths[i] != changed {
            let expected = naiveMatches(text, PackedRecoveryTests.literals)
            #expect(got[i].errors.isEmpty, "\(paths[i]): \(got[i].errors)")
            #expect(got[i].count == UInt64(expected.count), "\(paths[i]) (\(text.count) bytes)")
            #expect(got[i].count == clean[i].count)
            if mode == .matches {
                expectSameMatches(got[i].matches, expected, "oracle \(paths[i])")
                #expect(got[i].matches == clean[i].matches)
            }
        }
    }

    @Test(arguments: [ScanMode.matches, .count])
    func aPackLostInFlightIsPackedAgainAndEachFileReportedOnce(mode: ScanMode) throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (paths, texts) = writePackingTree(dir, seed: 21, files: 300, chunk: PackedRecoveryTests.chunk)
        let clean = try packScan(paths, PackedRecoveryTests.literals, packing: true, mode: mode)

        let notes = NoteLog()
        let engine = try makeEngine(notes: notes)
        defer { try? engine.close() }
        let scanner = try engine.scanner()
        var packs = 0
        var killedFiles: [String] = []
        var killedSlot = -1
        var resubmitted: [String: Int] = [:]
        // The third pack kills the backend the first time it is published;
        // every file of it must come back in a later pack (attempt 1).
        scanner.injectFault = { site, payload in
            guard !site.packed.isEmpty else { return }
            #expect(site.path == site.packed[0])
            if site.attempt == 0 {
                packs += 1
                if packs == 3 {
                    killedFiles = site.packed.map(\.description)
                    killedSlot = site.slot
                    payload.opcode = .testIllegalAddress
                }
            } else {
                for p in site.packed { resubmitted[p.description, default: 0] += 1 }
            }
        }
        let noted = scanner.onRecovery
        var recoveries: [ChunkScheduler.Recovery] = []
        scanner.onRecovery = { r in
            recoveries.append(r)
            noted?(r)
        }
        let got = try scan(scanner, paths, mode: mode)
        #expect(scanner.recoveries == 1)
        #expect(engine.rebuilds == 1)
        #expect(killedFiles.count > 1, "the killing chunk was a pack of several files")
        for p in killedFiles { #expect(resubmitted[p] == 1, "\(p) packed again once") }
        expectClean(got, clean, paths, texts, mode: mode)

        // The recovery names the lost pack's files, at offset 0, in the slot
        // it had (other packs in flight are lost with it); the note says so.
        #expect(recoveries.count == 1)
        let unfinished = recoveries.first?.unfinished ?? []
        for p in killedFiles {
            #expect(unfinished.contains { $0.path == p && $0.fileOffset == 0 && $0.slot == killedSlot }, "\(p)")
        }
        #expect(notes.all.count == 1)
        let line = try #require(notes.all.first)
        #expect(line.contains("lost its context"))
        #expect(line.contains("slot \(killedSlot)"), "\(line)")
        #expect(line.contains("rerunning \(unfinished.count) unfinished chunks: \(unfinished[0])"), "\(line)")

        // The engine and its scanner keep working, packing included.
        scanner.injectFault = nil
        expectClean(try scan(scanner, paths, mode: mode), clean, paths, texts, mode: mode)
    }

    /// Two losses in one run, the second on a pack that holds files already
    /// repacked once (their attempt is 1): within the budget, same output.
    @Test func aRepackedFileLostAgainIsPackedAThirdTime() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (paths, texts) = writePackingTree(dir, seed: 22, files: 200, chunk: PackedRecoveryTests.chunk)
        let clean = try packScan(paths, PackedRecoveryTests.literals, packing: true)
        let engine = try makeEngine()
        defer { try? engine.close() }
        let scanner = try engine.scanner()
        var kills: [Int] = []
        scanner.injectFault = { site, payload in
            guard !site.packed.isEmpty else { return }
            if (kills.isEmpty && site.attempt == 0) || (kills == [0] && site.attempt == 1) {
                kills.append(site.attempt)
                payload.opcode = .testIllegalAddress
            }
        }
        let got = try scan(scanner, paths)
        #expect(kills == [0, 1])
        #expect(scanner.recoveries == 2)
        expectClean(got, clean, paths, texts, mode: .matches)
    }

    /// A packed file that changes after its pack was lost is reported as
    /// changed (its first open's stamp no longer holds), once; the rest of
    /// the tree is exactly a clean run.
    @Test func aPackedFileThatChangesAcrossTheRecoveryIsReportedChanged() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (paths, texts) = writePackingTree(dir, seed: 23, files: 120, chunk: PackedRecoveryTests.chunk)
        let clean = try packScan(paths, PackedRecoveryTests.literals, packing: true)
        let engine = try makeEngine()
        defer { try? engine.close() }
        let scanner = try engine.scanner()
        var changed: String?
        scanner.injectFault = { site, payload in
            guard changed == nil, site.packed.count > 1 else { return }
            // The pack's reads have ended (it is being published): the file
            // grows now, before the loss is seen and the file is reopened.
            changed = site.packed[1].description
            let fd = open(site.packed[1].description, O_WRONLY | O_APPEND)
            _ = write(fd, "NEEDLE", 6)
            close(fd)
            payload.opcode = .testIllegalAddress
        }
        let got = try scan(scanner, paths)
        let path = try #require(changed)
        #expect(scanner.recoveries == 1)
        expectClean(got, clean, paths, texts, mode: .matches, except: path)
        let outcome = try #require(got.first { $0.path == path })
        #expect(outcome.errors.count == 1)
        guard case .fileChanged(let p, let detail)? = outcome.errors.first else {
            Issue.record("expected fileChanged for \(path), got \(outcome.errors)")
            return
        }
        #expect(p == path && detail.contains("size went from"), "\(detail)")
    }

    /// A pack that kills every backend ends the run naming its files.
    @Test func aPackThatKillsEveryBackendIsNamedInRecoveryFailed() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (paths, _) = writePackingTree(dir, seed: 24, files: 80, chunk: PackedRecoveryTests.chunk)
        let engine = try makeEngine()
        defer { try? engine.close() }
        let scanner = try engine.scanner()
        var victim: String?
        var attempts: [Int] = []
        scanner.injectFault = { site, payload in
            guard site.packed.count > 1 else { return }
            if victim == nil { victim = site.packed[0].description }
            if let victim, site.packed.contains(victim.raw) {
                attempts.append(site.attempt)
                payload.opcode = .testIllegalAddress
            }
        }
        do {
            _ = try scan(scanner, paths)
            Issue.record("the run finished although every backend was lost")
        } catch {
            guard case .recoveryFailed(let tries, _, let unfinished) = error else {
                Issue.record("expected recoveryFailed, got \(error)")
                return
            }
            #expect(tries == 2)
            #expect(unfinished.contains { $0.path == victim && $0.fileOffset == 0 })
        }
        #expect(attempts == [0, 1, 2])
    }

    /// The engine's device-ingest path (cuFile, here the fake reader over the
    /// CPU backend's buffers) is made again for the new backend: a new stream
    /// of the same kind over the new buffers, and the output of a clean run.
    @Test func aRebuildMakesTheDeviceIngestStreamAgain() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (paths, texts) = writePackingTree(dir, seed: 25, files: 150, chunk: PackedRecoveryTests.chunk)
        let clean = try packScan(paths, PackedRecoveryTests.literals, packing: true)
        let made = Mutex<[UInt]>([])
        var c = EngineConfiguration(backend: .cpu, ingest: .pread, chunkBytes: PackedRecoveryTests.chunk, slots: 4, workers: 2)
        c.faultInjection = true
        c.deviceStreamForTests = { backend, chunkBytes, chunkCount throws(PipelineError) in
            let base = UInt(bitPattern: backend.dataRegion.baseAddress)
            made.withLock { $0.append(base) }
            return try ChunkReaderStream(
                reader: FakeCuFileReader(memory: backend.dataRegion, chunkBytes: chunkBytes),
                region: backend.dataRegion, chunkBytes: chunkBytes, chunkCount: chunkCount, threads: 2)
        }
        let engine = try Engine(c, resultWordsPerSlot: ScanJob.resultWords(records: 64))
        defer { try? engine.close() }
        #expect(engine.stream.kind == "fake cuFile")
        // Held, not just its identifier: a freed stream's address can be reused by the new one.
        let first = engine.stream as AnyObject
        let scanner = try engine.scanner()
        var killed = 0
        scanner.injectFault = { site, payload in
            // A chunk of a file of several chunks (read through the stream).
            if killed == 0, site.packed.isEmpty, site.chunkNumber == 1 {
                killed += 1
                payload.opcode = .testIllegalAddress
            }
        }
        let got = try scan(scanner, paths)
        #expect(killed == 1)
        #expect(engine.rebuilds == 1)
        let regions = made.withLock { $0 }
        #expect(regions.count == 2)
        #expect(regions.last == UInt(bitPattern: engine.backend.dataRegion.baseAddress))
        #expect(engine.stream.kind == "fake cuFile")
        #expect(engine.stream.region.baseAddress == engine.backend.dataRegion.baseAddress)
        let sameStream = (engine.stream as AnyObject) === first
        #expect(!sameStream)
        expectClean(got, clean, paths, texts, mode: .matches)
    }
}
