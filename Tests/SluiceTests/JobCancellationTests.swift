import SluiceCore
import SluiceCPU
import SluiceIngest
import SluiceOps
import Synchronization
import Testing

@testable import Sluice

/// What one job of a run handed out: per file, the chunks seen and their
/// summed counts, and every outcome.
final class JobRecord {
    var chunks: [Int: [Int]] = [:]
    var counts: [Int: CountResult] = [:]
    var outcomes: [Int: [ChunkScheduler.FileOutcome]] = [:]
    /// Files in packs that were handed out, with the count of each pack.
    var packs: [(files: [Int], result: CountResult)] = []
    /// Set by the test: chunks handed out once the run knew the job was cancelled.
    var cancelSeen: FlagBox?
    var lateChunks = 0

    func job(tenant: UInt32, paths: [String], packing: ChunkScheduler.Packing? = nil) -> ChunkScheduler.Job {
        ChunkScheduler.Job(
            tenant: tenant, paths: paths.raw, opcode: .count, packing: packing,
            onChunk: { c in
                if self.cancelSeen?.wasSeen == true { self.lateChunks += 1 }
                guard let r = try? CountResult(words: c.words) else { return }
                if c.packed.isEmpty {
                    self.chunks[c.fileIndex, default: []].append(c.chunkNumber)
                    self.counts[c.fileIndex, default: CountResult()].add(r)
                } else {
                    self.packs.append((c.packed.map(\.fileIndex), r))
                }
            },
            onFile: { self.outcomes[$0.fileIndex, default: []].append($0) })
    }

    /// Files whose one outcome carries `.cancelled`.
    var cancelled: Set<Int> {
        Set(outcomes.filter { $0.value.contains { $0.errors.contains { if case .cancelled = $0 { true } else { false } } } }.keys)
    }
}

/// A flag a job's `isCancelled` reads; the test sets it from a callback.
final class FlagBox: Sendable {
    let value = Atomic<Bool>(false)
    /// Set once `isCancelled` answered true: the run knows from then on.
    let seen = Atomic<Bool>(false)

    var wasSeen: Bool { seen.load(ordering: .acquiring) }

    /// An `isCancelled` hook reading this flag.
    var hook: @Sendable () -> Bool {
        { [self] in
            let cancelled = value.load(ordering: .acquiring)
            if cancelled { seen.store(true, ordering: .releasing) }
            return cancelled
        }
    }
}

/// Per-job cancellation: a cancelled job stops, each of its files not yet
/// reported is reported once with `.cancelled`, and the other jobs of the
/// same run get exactly the results an oracle gives.
@Suite(.serialized) struct JobCancellationTests {
    static let chunk = 4096
    static let slots = 4

    func makeEngine(faults: Bool = false) throws -> Engine {
        var c = EngineConfiguration(backend: .cpu, ingest: .pread, chunkBytes: Self.chunk, slots: Self.slots, workers: 2)
        c.faultInjection = faults
        return try Engine(c, resultWordsPerSlot: CountOp.resultWords)
    }

    func files(_ dir: ScratchDirectory, prefix: String, count: Int, seed: UInt64, maxSize: Int = 20_000) -> ([String], [[UInt8]]) {
        var rng = SeededRandom(state: seed)
        var paths: [String] = [], contents: [[UInt8]] = []
        for i in 0..<count {
            let bytes = textLikeBytes(Int.random(in: 1...maxSize, using: &rng), &rng)
            paths.append(dir.write("\(prefix)\(i)", bytes))
            contents.append(bytes)
        }
        return (paths, contents)
    }

    /// Every file of a job that was not cancelled: one clean outcome, every
    /// chunk once, counts equal to the oracle's.
    func expectComplete(_ record: JobRecord, _ contents: [[UInt8]], _ files: some Sequence<Int>, _ label: String) {
        for i in files {
            let outcomes = record.outcomes[i] ?? []
            #expect(outcomes.count == 1 && outcomes.first?.errors.isEmpty == true, "\(label) file \(i): \(outcomes.map(\.errors))")
            let n = (contents[i].count + Self.chunk - 1) / Self.chunk
            #expect((record.chunks[i] ?? []).sorted() == Array(0..<n), "\(label) file \(i) chunks")
            let o = oracleCount(contents[i])
            let got = record.counts[i] ?? CountResult()
            #expect(got.bytes == o.bytes && got.newlines == o.lines && got.histogram == o.histogram, "\(label) file \(i) counts")
        }
    }

    func expectAllSlotsFree(_ scanner: ChunkScheduler) throws {
        let ring = scanner.backend.ring
        for slot in 0..<ring.geometry.slotCount { #expect(try ring.status(ofSlot: slot) == .empty, "slot \(slot)") }
    }

    /// (a) One job is cancelled when its first file is reported while a
    /// second runs: the second's results equal the oracle; each of the
    /// first's files has exactly one outcome, clean and correct or
    /// `.cancelled`, and no result of a cancelled file came after it was
    /// cancelled. (b) The same scanner then runs a fresh job correctly.
    @Test func aJobCancelledAfterItsFirstFileLeavesTheOtherJobIntact() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (pathsA, contentsA) = files(dir, prefix: "a", count: 30, seed: 1)
        let (pathsB, contentsB) = files(dir, prefix: "b", count: 15, seed: 2)
        let engine = try makeEngine()
        defer { try? engine.close() }
        let scanner = try engine.makeScanner()
        let a = JobRecord(), b = JobRecord()
        let cancelA = FlagBox()
        a.cancelSeen = cancelA
        var jobA = a.job(tenant: 0, paths: pathsA)
        jobA.isCancelled = cancelA.hook
        let reportA = jobA.onFile
        jobA.onFile = { outcome in
            reportA(outcome)
            cancelA.value.store(true, ordering: .releasing)
        }
        let summary = try scanner.run(jobs: [jobA, b.job(tenant: 0, paths: pathsB)])

        expectComplete(b, contentsB, 0..<pathsB.count, "job b")
        #expect(cancelA.wasSeen)
        #expect(a.lateChunks == 0, "results of the cancelled job were handed out after it was cancelled")
        #expect(Set(a.outcomes.keys) == Set(0..<pathsA.count))
        #expect(a.outcomes.values.allSatisfy { $0.count == 1 }, "a file of the cancelled job was reported twice")
        let cancelled = a.cancelled
        // Only chunks reclaimed in the pass that reported the first file can finish normally.
        #expect(cancelled.count >= pathsA.count - 1 - Self.slots, "\(cancelled.count) cancelled")
        expectComplete(a, contentsA, Set(0..<pathsA.count).subtracting(cancelled), "job a")
        for i in cancelled {
            let outcome = try #require(a.outcomes[i]?.first)
            #expect(outcome.errors == [.cancelled(path: pathsA[i])], "file \(i): \(outcome.errors)")
            // Chunks handed out before the cancel are each whole and seen once.
            let seen = a.chunks[i] ?? []
            #expect(Set(seen).count == seen.count)
        }
        #expect(summary.files == pathsA.count + pathsB.count)
        #expect(summary.filesFailed == cancelled.count)
        try expectAllSlotsFree(scanner)

        // (b) The same scanner, a fresh job: every file correct.
        let fresh = JobRecord()
        try scanner.run(jobs: [fresh.job(tenant: 0, paths: pathsA)])
        expectComplete(fresh, contentsA, 0..<pathsA.count, "after the cancelled run")
        try expectAllSlotsFree(scanner)
    }

    /// (c) A job cancelled before any of its files starts: no read, no
    /// result, each file reported once with `.cancelled` in input order;
    /// the other job of the run is complete, and `run` returns normally.
    @Test func aJobCancelledBeforeItStartsReadsNothing() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (pathsA, _) = files(dir, prefix: "a", count: 12, seed: 3)
        let (pathsB, contentsB) = files(dir, prefix: "b", count: 9, seed: 4)
        let engine = try makeEngine()
        defer { try? engine.close() }
        let scanner = try engine.makeScanner()
        let a = JobRecord(), b = JobRecord()
        var order: [Int] = []
        var jobA = a.job(tenant: 0, paths: pathsA + [dir.file("missing")])
        jobA.isCancelled = { true }
        let reportA = jobA.onFile
        jobA.onFile = { order.append($0.fileIndex); reportA($0) }
        let summary = try scanner.run(jobs: [jobA, b.job(tenant: 0, paths: pathsB)])

        #expect(a.chunks.isEmpty && a.packs.isEmpty)
        #expect(order == Array(0...pathsA.count))
        for (i, path) in (pathsA + [dir.file("missing")]).enumerated() {
            #expect(a.outcomes[i]?.count == 1)
            #expect(a.outcomes[i]?.first?.errors == [.cancelled(path: path)])
            #expect(a.outcomes[i]?.first?.chunks == 0)
        }
        expectComplete(b, contentsB, 0..<pathsB.count, "job b")
        #expect(summary.files == pathsA.count + 1 + pathsB.count)
        #expect(summary.chunks == contentsB.reduce(0) { $0 + ($1.count + Self.chunk - 1) / Self.chunk })
        try expectAllSlotsFree(scanner)
    }

    /// A job that finishes in order holds its finished slots while its first
    /// read is stuck; it is cancelled (and the read let go) when the other
    /// job reports its first file. None of its held results is handed out,
    /// each of its files is reported once with `.cancelled`, and the other
    /// job is complete.
    @Test func heldResultsOfACancelledJobAreDropped() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (pathsA, _) = files(dir, prefix: "a", count: 6, seed: 9)
        let (pathsB, contentsB) = files(dir, prefix: "b", count: 6, seed: 10)
        let (scanner, stream, backend) = try makeScriptedScanner(order: .submission)
        defer { try? backend.shutdown() }
        // Unit 0 takes job a's first chunk; its read is held until released.
        stream.inject(.neverCompletes, forChunk: 0)
        let a = JobRecord(), b = JobRecord()
        let cancelA = FlagBox()
        a.cancelSeen = cancelA
        var jobA = a.job(tenant: 0, paths: pathsA)
        jobA.finishInOrder = true
        jobA.isCancelled = cancelA.hook
        var jobB = b.job(tenant: 0, paths: pathsB)
        let reportB = jobB.onFile
        jobB.onFile = { outcome in
            reportB(outcome)
            cancelA.value.store(true, ordering: .releasing)
            stream.releaseStuckReads()
        }
        try scanner.run(jobs: [jobA, jobB])

        #expect(cancelA.wasSeen)
        #expect(a.chunks.isEmpty && a.lateChunks == 0, "held results of the cancelled job were handed out")
        #expect(a.cancelled == Set(0..<pathsA.count))
        #expect(a.outcomes.values.allSatisfy { $0.count == 1 })
        expectComplete(b, contentsB, 0..<pathsB.count, "job b")
        try expectAllSlotsFree(scanner)
    }

    /// Packed small files: a packing job cancelled after its first file
    /// while another packing job runs. Each file of either job has one
    /// outcome; the other job's packs hold each of its files once, and each
    /// pack's count is the sum of its files' (the oracle's).
    @Test func aPackingJobCancelledMidRun() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (pathsA, _) = files(dir, prefix: "a", count: 400, seed: 5, maxSize: 600)
        let (pathsB, contentsB) = files(dir, prefix: "b", count: 300, seed: 6, maxSize: 600)
        let engine = try makeEngine()
        defer { try? engine.close() }
        let scanner = try engine.makeScanner()
        let a = JobRecord(), b = JobRecord()
        let cancelA = FlagBox()
        a.cancelSeen = cancelA
        let packing = ChunkScheduler.Packing(maxFileBytes: 1024, maxFiles: 8)
        var jobA = a.job(tenant: 0, paths: pathsA, packing: packing)
        jobA.isCancelled = cancelA.hook
        let reportA = jobA.onFile
        jobA.onFile = { reportA($0); cancelA.value.store(true, ordering: .releasing) }
        try scanner.run(jobs: [jobA, b.job(tenant: 0, paths: pathsB, packing: packing)])

        #expect(cancelA.wasSeen)
        #expect(a.lateChunks == 0, "results of the cancelled job were handed out after it was cancelled")
        #expect(Set(a.outcomes.keys) == Set(0..<pathsA.count))
        #expect(a.outcomes.values.allSatisfy { $0.count == 1 })
        #expect(a.cancelled.count > pathsA.count / 2, "\(a.cancelled.count) cancelled")
        // A cancelled job's pack results are dropped: no handed-out pack holds a cancelled file.
        #expect(a.packs.allSatisfy { Set($0.files).isDisjoint(with: a.cancelled) })
        #expect(Set(b.outcomes.keys) == Set(0..<pathsB.count))
        #expect(b.outcomes.values.allSatisfy { $0.count == 1 && $0.first?.errors.isEmpty == true })
        let packed = b.packs.flatMap(\.files)
        #expect(packed.sorted() == Array(0..<pathsB.count))
        for pack in b.packs {
            let o = oracleCount(pack.files.flatMap { contentsB[$0] })
            #expect(pack.result.bytes == o.bytes && pack.result.newlines == o.lines)
        }
        try expectAllSlotsFree(scanner)
    }

    /// A job is cancelled while the backend is lost: its chunks in flight
    /// are not rerun on the new backend, each of its files is reported
    /// once, and the other job's results after the recovery equal the oracle.
    @Test func aCancelledJobIsNotRerunAfterARecovery() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (pathsA, contentsA) = files(dir, prefix: "a", count: 20, seed: 7)
        let (pathsB, contentsB) = files(dir, prefix: "b", count: 10, seed: 8)
        let engine = try makeEngine(faults: true)
        defer { try? engine.close() }
        let scanner = try engine.makeScanner()
        let a = JobRecord(), b = JobRecord()
        let cancelA = FlagBox()
        a.cancelSeen = cancelA
        var killed = 0
        // Chunk 0 of job b's fourth file kills the backend (first time only).
        var rerunOfA = 0
        scanner.injectFault = { site, payload in
            if site.job == 0, site.attempt > 0 { rerunOfA += 1 }
            if site.job == 1, site.path == RawPath(pathsB[3]), site.chunkNumber == 0, site.attempt == 0 {
                payload.opcode = .testIllegalAddress
                killed += 1
            }
        }
        // Job a is cancelled while the backend is rebuilt, with chunks of it in flight.
        var lostOfA = 0
        scanner.onRecovery = { recovery in
            lostOfA = recovery.unfinished.filter { chunk in pathsA.contains(chunk.path) }.count
            cancelA.value.store(true, ordering: .releasing)
        }
        var jobA = a.job(tenant: 0, paths: pathsA)
        jobA.isCancelled = cancelA.hook
        try scanner.run(jobs: [jobA, b.job(tenant: 0, paths: pathsB)])

        #expect(killed == 1)
        #expect(lostOfA > 0, "no chunk of job a was in flight when the backend was lost")
        #expect(rerunOfA == 0, "a chunk of the cancelled job was submitted again")
        #expect(scanner.recoveries == 1)
        expectComplete(b, contentsB, 0..<pathsB.count, "job b")
        #expect(cancelA.wasSeen)
        #expect(a.lateChunks == 0, "results of the cancelled job were handed out after it was cancelled")
        #expect(Set(a.outcomes.keys) == Set(0..<pathsA.count))
        #expect(a.outcomes.values.allSatisfy { $0.count == 1 })
        #expect(!a.cancelled.isEmpty)
        expectComplete(a, contentsA, Set(0..<pathsA.count).subtracting(a.cancelled), "job a")
        try expectAllSlotsFree(scanner)
    }
}
