import Foundation
import SluiceCore
import SluiceCPU
import SluiceIngest
import Synchronization
import Testing

@testable import Sluice

/// Units shared between the jobs of one run: a job that arrives while
/// another holds the whole ring gets the units given back until both are at
/// their shares, and a job's own cap holds even when it runs alone.
@Suite struct FairShareTests {
    static let chunk = 4096

    /// Submissions and reclaims of a run, as each job's units held.
    final class HeldLog {
        var held: [Int: Int] = [:]
        var most: [Int: Int] = [:]
        /// (job submitted, units each job held just before) for every submission.
        var submissions: [(job: Int, held: [Int: Int])] = []
        var chunks: [Int: Set<Int>] = [:]

        func submitted(job: Int) {
            submissions.append((job, held))
            held[job, default: 0] += 1
            most[job] = max(most[job, default: 0], held[job]!)
        }

        func reclaimed(job: Int, chunk: Int) {
            held[job, default: 0] -= 1
            let inserted = chunks[job, default: []].insert(chunk).inserted
            #expect(inserted, "chunk \(chunk) of job \(job) delivered twice")
        }
    }

    func job(_ index: Int, path: String, log: HeldLog) -> ChunkScheduler.Job {
        ChunkScheduler.Job(
            tenant: 0, paths: [RawPath(path)], opcode: .count,
            onChunk: { log.reclaimed(job: index, chunk: $0.chunkNumber) }, onFile: { #expect($0.errors.isEmpty) })
    }

    @Test func aJobArrivingLateGetsItsShareBeforeTheFirstGetsMore() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let chunks = 64
        let a = dir.write("a", [UInt8](repeating: 10, count: chunks * Self.chunk))
        let b = dir.write("b", [UInt8](repeating: 10, count: chunks * Self.chunk))
        let units = 16
        let (scanner, stream, backend) = try makeScriptedScanner(chunk: Self.chunk, slots: units, order: .submission)
        defer { try? backend.shutdown() }
        // One read lands per turn, so job 0's units stay held for a while.
        stream.stepsPerReap = 1
        let log = HeldLog()
        scanner.onUnitTaken = { log.submitted(job: $0) }
        var turns = 0
        var bArrivedAt: Int?
        try scanner.run(jobs: [job(0, path: a, log: log)], admitting: { () throws(PipelineError) -> [ChunkScheduler.Job] in
            turns += 1
            // Job 1 comes once job 0 has filled the ring on its own.
            guard turns == 2 else { return [] }
            bArrivedAt = log.submissions.count
            return [job(1, path: b, log: log)]
        })
        #expect(log.chunks[0] == Set(0..<chunks) && log.chunks[1] == Set(0..<chunks))
        let arrival = try #require(bArrivedAt)
        #expect(log.most[0] == units, "alone, job 0 took the whole ring")
        let share = units / 2
        // While job 1 had work and fewer than its share, job 0 got no unit
        // that took it to its share or beyond.
        var bSubmitted = 0
        for (job, held) in log.submissions[arrival...] {
            if job == 1 { bSubmitted += 1; continue }
            guard bSubmitted < chunks else { continue }
            #expect(held[0, default: 0] < share || held[1, default: 0] >= share,
                    "job 0 got a unit holding \(held[0, default: 0]) while job 1 held \(held[1, default: 0])")
        }
        #expect(log.most[1, default: 0] >= share)
    }

    @Test func aJobsCapHoldsEvenAlone() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let bytes = (0..<(20 * Self.chunk + 7)).map { UInt8(truncatingIfNeeded: $0 % 13 == 0 ? 10 : $0) }
        let path = dir.write("f", bytes)
        let (scanner, _, backend) = try makeScriptedScanner(chunk: Self.chunk, slots: 8, order: .reverse)
        defer { try? backend.shutdown() }
        let log = HeldLog()
        scanner.onUnitTaken = { log.submitted(job: $0) }
        var newlines: UInt64 = 0
        var capped = job(0, path: path, log: log)
        capped.maxUnits = 3
        let onChunk = capped.onChunk
        capped.onChunk = { result in
            onChunk(result)
            newlines += UInt64(result.words[1])
        }
        try scanner.run(jobs: [capped])
        #expect(log.most[0] == 3)
        #expect(log.chunks[0] == Set(0..<21))
        #expect(newlines == oracleCount(bytes).lines)
    }

    @Test func aCapBelowOneIsRefused() throws {
        let (scanner, _, backend) = try makeScriptedScanner(chunk: Self.chunk, slots: 4, order: .submission)
        defer { try? backend.shutdown() }
        var j = job(0, path: "/dev/null", log: HeldLog())
        j.maxUnits = 0
        #expect(throws: PipelineError.self) { try scanner.run(jobs: [j]) }
    }

    @Test func sharesFollowWeightsAndCaps() {
        func state(weight: Int, cap: Int?, paths: Int = 1) -> JobState {
            var job = ChunkScheduler.Job(
                tenant: 0, weight: weight, paths: (0..<paths).map { RawPath("/f\($0)") }, opcode: .count,
                onChunk: { _ in }, onFile: { _ in })
            job.maxUnits = cap
            return JobState(job: job, stride: 4096, packs: false)
        }
        let alone = UnitShares(units: 128, jobs: [state(weight: 1, cap: nil)])
        #expect(!alone.limitsAnyJob && alone.limit(for: state(weight: 1, cap: nil)) == Int.max)
        let aloneCapped = UnitShares(units: 128, jobs: [state(weight: 1, cap: 32)])
        #expect(aloneCapped.limitsAnyJob && aloneCapped.limit(for: state(weight: 1, cap: 32)) == 32)
        let jobs = [state(weight: 1, cap: nil), state(weight: 3, cap: nil), state(weight: 1, cap: 5), state(weight: 1, cap: nil, paths: 0)]
        let shares = UnitShares(units: 100, jobs: jobs)
        // The job with no paths wants nothing: weights 1 + 3 + 1 share the ring.
        #expect(shares.limit(for: jobs[0]) == 20)
        #expect(shares.limit(for: jobs[1]) == 60)
        #expect(shares.limit(for: jobs[2]) == 5)
        // Sixteen requests on 128 units: 8 each; seventeen: 8 each, rounded up.
        #expect(UnitShares(units: 128, jobs: (0..<16).map { _ in state(weight: 1, cap: 32) }).limit(for: jobs[0]) == 8)
        #expect(UnitShares(units: 128, jobs: (0..<17).map { _ in state(weight: 1, cap: 32) }).limit(for: jobs[0]) == 8)
    }

    @Test func aCapDoublesFromTheJobsFirstUnit() throws {
        var job = ChunkScheduler.Job(tenant: 0, paths: [RawPath("/f")], opcode: .count, onChunk: { _ in }, onFile: { _ in })
        job.maxUnits = 8
        job.maxUnitsDoublesEvery = .milliseconds(4)
        let j = JobState(job: job, stride: 4096, packs: false)
        // Before its first unit the clock has not started.
        #expect(j.unitCap(at: .now + .seconds(5)) == 8)
        j.held += 1
        let first = try #require(j.firstUnitAt)
        #expect(j.unitCap(at: first) == 8)
        #expect(j.unitCap(at: first + .milliseconds(3)) == 8)
        #expect(j.unitCap(at: first + .milliseconds(4)) == 16)
        #expect(j.unitCap(at: first + .milliseconds(9)) == 32)
        #expect(j.unitCap(at: first + .seconds(3600)) == 8 << 30)
        // Giving units back does not restart it.
        j.held -= 1
        #expect(j.unitCap(at: first + .milliseconds(9)) == 32)
        // Shares see the grown cap: alone on 64 units after 9 ms, 32.
        #expect(UnitShares(units: 64, jobs: [j], now: first + .milliseconds(9)).limit(for: j) == 32)
        #expect(!UnitShares(units: 64, jobs: [j], now: first + .milliseconds(13)).limitsAnyJob)
    }

    @Test func aSessionsRequestCapComesFromTheRing() {
        #expect(SharedRun.unitsPerRequest(configured: nil, units: 128) == 32)
        #expect(SharedRun.unitsPerRequest(configured: nil, units: 16) == 8)
        #expect(SharedRun.unitsPerRequest(configured: nil, units: 4) == 4)
        #expect(SharedRun.unitsPerRequest(configured: 0, units: 128) == nil)
        #expect(SharedRun.unitsPerRequest(configured: 500, units: 128) == 128)
        #expect(SharedRun.unitsPerRequest(configured: 3, units: 128) == 3)
    }
}

/// A job whose consumer fell behind gets no more finished chunks until it
/// caught up: they wait with their slots held, so a dense scan's results
/// cannot pile up in memory (`sluice serve` with a slow client).
@Suite struct ReaderPauseTests {
    @Test func aPausedJobsFinishedChunksWaitForItsReader() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let chunk = 4096
        let chunks = 40
        let path = dir.write("f", [UInt8](repeating: 10, count: chunks * chunk))
        let (scanner, _, backend) = try makeScriptedScanner(chunk: chunk, slots: 8, order: .seeded(7))
        defer { try? backend.shutdown() }
        // The reader asks for a pause after each chunk and is behind for
        // the next three questions; a chunk may come only after it said it
        // caught up.
        var pausedFor = 0
        var caughtUp = true
        var delivered: [Int] = []
        var job = ChunkScheduler.Job(
            tenant: 0, paths: [RawPath(path)], opcode: .count,
            onChunk: { result in
                #expect(caughtUp, "chunk \(result.chunkNumber) came while its reader was behind")
                delivered.append(result.chunkNumber)
                caughtUp = false
                pausedFor = 3
            },
            onFile: { #expect($0.errors.isEmpty) })
        job.finishInOrder = true
        job.isPaused = {
            if pausedFor > 0 {
                pausedFor -= 1
                return true
            }
            caughtUp = true
            return false
        }
        try scanner.run(jobs: [job])
        #expect(delivered == Array(0..<chunks))
    }

    /// A reader that stops keeps no more than its share of the ring from
    /// the others: its finished chunks beyond the share are handed out.
    @Test func aStoppedReaderKeepsOnlyItsShare() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let chunk = 4096
        let chunks = 64
        let a = dir.write("a", [UInt8](repeating: 10, count: chunks * chunk))
        let b = dir.write("b", [UInt8](repeating: 10, count: chunks * chunk))
        let units = 16
        let (scanner, stream, backend) = try makeScriptedScanner(chunk: chunk, slots: units, order: .submission)
        defer { try? backend.shutdown() }
        stream.stepsPerReap = 1
        let log = FairShareTests.HeldLog()
        scanner.onUnitTaken = { log.submitted(job: $0) }
        var aDelivered = 0
        var bDone = false
        // A's reader takes one chunk, then stops until B has finished.
        var first = ChunkScheduler.Job(
            tenant: 0, paths: [RawPath(a)], opcode: .count,
            onChunk: { aDelivered += 1; log.reclaimed(job: 0, chunk: $0.chunkNumber) }, onFile: { #expect($0.errors.isEmpty) })
        first.finishInOrder = true
        first.isPaused = { aDelivered >= 1 && !bDone }
        let second = ChunkScheduler.Job(
            tenant: 0, paths: [RawPath(b)], opcode: .count,
            onChunk: { log.reclaimed(job: 1, chunk: $0.chunkNumber) },
            onFile: { outcome in
                #expect(outcome.errors.isEmpty)
                bDone = true
            })
        var turns = 0
        try scanner.run(jobs: [first], admitting: { () throws(PipelineError) -> [ChunkScheduler.Job] in
            turns += 1
            return turns == 2 ? [second] : []
        })
        #expect(log.chunks[0] == Set(0..<chunks) && log.chunks[1] == Set(0..<chunks))
        #expect(log.most[0] == units, "A filled the ring before B came")
        #expect(log.most[1, default: 0] >= units / 2, "B held at most \(log.most[1, default: 0]) units")
    }

    /// A job whose reader never comes back, with chunks held, ends when it
    /// is cancelled: its held chunks are released and its file reported
    /// cancelled, and the run returns.
    @Test func heldChunksAreReleasedWhenTheJobIsCancelled() throws {
        let outcome = try runWithAStoppedReader(stopping: .cancel)
        #expect(outcome.thrown == nil)
        #expect(outcome.files.count == 1)
        #expect(outcome.files.first.map { $0.errors.contains { if case .cancelled = $0 { true } else { false } } } == true)
    }

    /// The same job ends with an interrupt: held chunks are released and the
    /// run throws `.interrupted`.
    @Test func heldChunksAreReleasedOnAnInterrupt() throws {
        let outcome = try runWithAStoppedReader(stopping: .interrupt)
        guard case .interrupted? = outcome.thrown else {
            Issue.record("expected .interrupted, got \(String(describing: outcome.thrown))")
            return
        }
    }

    enum Stop { case cancel, interrupt }

    /// A 40-chunk job whose reader takes two chunks and then stops for good;
    /// once some of its chunks are held, `stopping` ends it. Runs on a thread
    /// so that a run that never returns fails the test instead of hanging it.
    func runWithAStoppedReader(stopping: Stop) throws -> (thrown: PipelineError?, files: [ChunkScheduler.FileOutcome]) {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let path = dir.write("f", [UInt8](repeating: 10, count: 40 * 4096))
        let stop = Atomic<Bool>(false)
        let geometry = try RingGeometry(slotCount: 8, resultWordsPerSlot: CountOp.resultWords)
        let backend = try CPUBackend(configuration: BackendConfiguration(geometry: geometry, dataBytes: 8 * 4096, workers: 2))
        try backend.start()
        defer { try? backend.shutdown() }
        let stream = try ScriptedReadStream(region: backend.dataRegion, chunkBytes: 4096, chunkCount: 8, order: .submission)
        let scanner = try ChunkScheduler(
            backend: backend, stream: stream,
            options: ChunkScheduler.Options(shouldStop: { stopping == .interrupt && stop.load(ordering: .relaxed) }))
        let delivered = Atomic<Int>(0)
        var job = ChunkScheduler.Job(
            tenant: 0, paths: [RawPath(path)], opcode: .count,
            isCancelled: { stopping == .cancel && stop.load(ordering: .relaxed) },
            onChunk: { _ in delivered.add(1, ordering: .relaxed) }, onFile: { _ in })
        job.finishInOrder = true
        var turnsPaused = 0
        job.isPaused = {
            guard delivered.load(ordering: .relaxed) >= 2 else { return false }
            turnsPaused += 1
            // Long enough for the ring's finished chunks to be held.
            if turnsPaused == 200 { stop.store(true, ordering: .relaxed) }
            return true
        }
        let result = Mutex<(PipelineError?, [ChunkScheduler.FileOutcome])?>(nil)
        let finished = DispatchSemaphore(value: 0)
        let work = UncheckedBox((scanner, [job]))
        let thread = Thread {
            var files: [ChunkScheduler.FileOutcome] = []
            let scanner = work.value.0
            var jobs = work.value.1
            let onFile = jobs[0].onFile
            jobs[0].onFile = { files.append($0); onFile($0) }
            do throws(PipelineError) {
                try scanner.run(jobs: jobs)
                result.withLock { $0 = (nil, files) }
            } catch {
                result.withLock { $0 = (error, files) }
            }
            finished.signal()
        }
        thread.start()
        guard finished.wait(timeout: .now() + 60) == .success else {
            Issue.record("the run did not end: held chunks were not released")
            throw CancellationError()
        }
        #expect(delivered.load(ordering: .relaxed) < 40, "the reader stopped before the end")
        return try #require(result.withLock { $0 })
    }

    @Test func aPausedJobsHoldLimitIsItsShare() {
        func state(weight: Int, paused: Bool) -> JobState {
            var job = ChunkScheduler.Job(
                tenant: 0, weight: weight, paths: [RawPath("/f")], opcode: .count, onChunk: { _ in }, onFile: { _ in })
            job.isPaused = { paused }
            return JobState(job: job, stride: 4096, packs: false)
        }
        let alone = [state(weight: 1, paused: true)]
        #expect(UnitShares.holdLimit(for: 0, jobs: alone, units: 128) == Int.max)
        // Others paused too want nothing: no limit.
        #expect(UnitShares.holdLimit(for: 0, jobs: alone + [state(weight: 1, paused: true)], units: 128) == Int.max)
        let busy = alone + [state(weight: 1, paused: false), state(weight: 2, paused: false)]
        #expect(UnitShares.holdLimit(for: 0, jobs: busy, units: 128) == 32)
        #expect(UnitShares.holdLimit(for: 0, jobs: [state(weight: 1, paused: true)] + (0..<200).map { _ in state(weight: 1, paused: false) }, units: 128) == 1)
    }
}

/// Hands a value that is not Sendable to the one thread that uses it.
final class UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
