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

/// Independent oracle for `count`: newline count and length.
func oracleCount(_ bytes: [UInt8]) -> (lines: UInt64, bytes: UInt64, histogram: [UInt64]) {
    var h = [UInt64](repeating: 0, count: 256)
    for b in bytes { h[Int(b)] += 1 }
    return (h[10], UInt64(bytes.count), h)
}

/// A CPU backend plus a scripted stream over its data region.
func makeScriptedScanner(
    chunk: Int = 4096, slots: Int = 4, order: ScriptedReadStream.Order, watchdog: Duration = .seconds(30)
) throws -> (ChunkScheduler, ScriptedReadStream, CPUBackend) {
    let geometry = try RingGeometry(slotCount: slots, resultWordsPerSlot: CountOp.resultWords)
    let backend = try CPUBackend(configuration: BackendConfiguration(geometry: geometry, dataBytes: slots * chunk, workers: 2))
    try backend.start()
    let stream = try ScriptedReadStream(region: backend.dataRegion, chunkBytes: chunk, chunkCount: slots, order: order, stepsPerReap: 2)
    let scanner = try ChunkScheduler(backend: backend, stream: stream, options: ChunkScheduler.Options(watchdog: watchdog))
    return (scanner, stream, backend)
}

@Suite struct ChunkSchedulerTests {
    static let c = 4096
    static let sizes = [0, 1, c - 1, c, c + 1, 7 * c + 5, 3 * (1 << 20) + 11]

    func writeFiles(_ dir: ScratchDirectory, seed: UInt64) -> (paths: [String], contents: [[UInt8]]) {
        var rng = SeededRandom(state: seed)
        var paths: [String] = []
        var contents: [[UInt8]] = []
        for (i, size) in ChunkSchedulerTests.sizes.enumerated() {
            let bytes = textLikeBytes(size, &rng)
            paths.append(dir.write("f\(i)", bytes))
            contents.append(bytes)
        }
        return (paths, contents)
    }

    /// Every byte of every file counted exactly once, whatever order reads complete in.
    @Test(arguments: [ScriptedReadStream.Order.submission, .reverse, .seeded(1), .seeded(99)])
    func everyByteAccountedForInAnyCompletionOrder(order: ScriptedReadStream.Order) throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (paths, contents) = writeFiles(dir, seed: 3)
        let (scanner, _, backend) = try makeScriptedScanner(order: order)
        defer { try? backend.shutdown() }
        var files: [FileCount] = []
        var chunksSeen: [Int: Set<Int>] = [:]
        let summary = try scanner.run(
            paths: paths.raw, opcode: .count,
            onChunk: { chunkResult in
                let inserted = chunksSeen[chunkResult.fileIndex, default: []].insert(chunkResult.chunkNumber).inserted
                #expect(inserted, "chunk \(chunkResult.chunkNumber) of file \(chunkResult.fileIndex) delivered twice")
                #expect(chunkResult.fileOffset == UInt64(chunkResult.chunkNumber * ChunkSchedulerTests.c))
            },
            onFile: { _ in })
        _ = try CountJob.run(scanner: scanner, paths: paths.raw, onFile: { files.append($0) })
        let expectedChunks = ChunkSchedulerTests.sizes.map { ($0 + ChunkSchedulerTests.c - 1) / ChunkSchedulerTests.c }
        for (i, n) in expectedChunks.enumerated() {
            #expect(chunksSeen[i, default: []] == Set(0..<n), "file \(i)")
        }
        #expect(summary.chunks == expectedChunks.reduce(0, +))
        #expect(summary.bytes == UInt64(ChunkSchedulerTests.sizes.reduce(0, +)))
        #expect(summary.files == paths.count && summary.filesFailed == 0)
        #expect(files.map(\.path) == paths)
        for (i, file) in files.enumerated() {
            let o = oracleCount(contents[i])
            #expect(file.errors.isEmpty)
            #expect(file.result.bytes == o.bytes && file.result.newlines == o.lines && file.result.histogram == o.histogram)
        }
    }

    @Test func aFailedReadNamesItsFileAndChunkAndTheRunGoesOn() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (paths, contents) = writeFiles(dir, seed: 4)
        let (scanner, stream, backend) = try makeScriptedScanner(slots: 4, order: .reverse)
        defer { try? backend.shutdown() }
        // Units are filled in order; file 0 is empty, file 1 takes unit 0, file 2 unit 1.
        stream.inject(.errno(EIO), forChunk: 1)
        var files: [FileCount] = []
        let summary = try CountJob.run(scanner: scanner, paths: paths.raw, onFile: { files.append($0) })
        #expect(summary.filesFailed == 1)
        let failed = files.filter { !$0.errors.isEmpty }
        #expect(failed.map(\.path) == [paths[2]])
        guard case .io(let failure)? = failed.first?.errors.first else {
            Issue.record("expected an I/O error, got \(failed)")
            return
        }
        #expect(failure.errno == EIO && failure.path == paths[2])
        for (i, file) in files.enumerated() where file.errors.isEmpty {
            #expect(file.result.bytes == UInt64(contents[i].count) && file.result.newlines == oracleCount(contents[i]).lines)
        }
    }

    @Test func faultedSlotsAreReportedPerChunk() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let path = dir.write("x", [UInt8](repeating: 65, count: 3 * ChunkSchedulerTests.c))
        let (scanner, _, backend) = try makeScriptedScanner(order: .submission)
        defer { try? backend.shutdown() }
        var outcomes: [ChunkScheduler.FileOutcome] = []
        // No backend knows opcode 77: every chunk faults.
        try scanner.run(paths: [path.raw], opcode: Opcode(rawValue: 77), onChunk: { _ in Issue.record("no chunk should finish") },
                        onFile: { outcomes.append($0) })
        #expect(outcomes.count == 1)
        let chunks = outcomes[0].errors.compactMap { e -> Int? in
            if case .slotFaulted(_, let chunk, let p, .unknownOpcode) = e, p == path { return chunk }
            return nil
        }
        #expect(chunks.sorted() == [0, 1, 2])
        #expect(try backend.ring.observe().slotsFaulted == 3)
    }

    @Test func missingFilesAndFilesThatChangeAreReported() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let grows = dir.write("grows", [UInt8](repeating: 10, count: 2 * ChunkSchedulerTests.c))
        let missing = dir.file("missing")
        let order = ScriptedReadStream.Order.custom { _ in
            // Append to the file while its reads are in flight.
            let fd = open(grows, O_WRONLY | O_APPEND)
            _ = write(fd, "more", 4)
            close(fd)
            return 0
        }
        let (scanner, _, backend) = try makeScriptedScanner(order: order)
        defer { try? backend.shutdown() }
        var outcomes: [ChunkScheduler.FileOutcome] = []
        try scanner.run(paths: [missing.raw, grows.raw], opcode: .count, onChunk: { _ in }, onFile: { outcomes.append($0) })
        #expect(outcomes.count == 2)
        let byPath = Dictionary(uniqueKeysWithValues: outcomes.map { ($0.path, $0.errors) })
        guard case .io(let f)? = byPath[missing.raw]?.first else {
            Issue.record("missing file: \(String(describing: byPath[missing.raw]))")
            return
        }
        #expect(f.errno == ENOENT)
        guard case .fileChanged(let p, _)? = byPath[grows.raw]?.first else {
            Issue.record("growing file: \(String(describing: byPath[grows.raw]))")
            return
        }
        #expect(p == grows)
    }

    @Test func readsThatNeverCompleteTripTheWatchdog() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let path = dir.write("slow", [UInt8](repeating: 1, count: ChunkSchedulerTests.c))
        let (scanner, stream, backend) = try makeScriptedScanner(order: .submission, watchdog: .milliseconds(300))
        defer { try? backend.shutdown() }
        stream.inject(.neverCompletes, forChunk: 0)
        #expect {
            try scanner.run(paths: [path.raw], opcode: .count, onChunk: { _ in }, onFile: { _ in })
        } throws: { error in
            guard let e = error as? PipelineError, case .readsStuck(let p, let chunks, _) = e else { return false }
            return p == path && chunks == [0]
        }
        stream.releaseStuckReads()
    }
}

@Suite struct InterruptTests {
    /// An interrupt mid-run: nothing new is submitted, in-flight work drains,
    /// finished files are reported, the rest is counted as pending, and the
    /// backend and stream are left idle.
    @Test func anInterruptStopsCleanlyAndCountsWhatIsPending() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let paths = (0..<40).map { dir.write("f\($0)", [UInt8](repeating: 10, count: 3 * 4096 + $0)) }
        let stop = Atomic<Bool>(false)
        let geometry = try RingGeometry(slotCount: 4, resultWordsPerSlot: CountOp.resultWords)
        let backend = try CPUBackend(configuration: BackendConfiguration(geometry: geometry, dataBytes: 4 * 4096, workers: 2))
        try backend.start()
        let stream = try ScriptedReadStream(region: backend.dataRegion, chunkBytes: 4096, chunkCount: 4, order: .seeded(3))
        let scanner = try ChunkScheduler(
            backend: backend, stream: stream,
            options: ChunkScheduler.Options(shouldStop: { stop.load(ordering: .relaxed) }))
        var files: [ChunkScheduler.FileOutcome] = []
        var chunks = 0
        do {
            try scanner.run(
                paths: paths.raw, opcode: .count,
                onChunk: { _ in
                    chunks += 1
                    if chunks == 10 { stop.store(true, ordering: .relaxed) }
                },
                onFile: { files.append($0) })
            Issue.record("the run should end with .interrupted")
        } catch {
            guard case .interrupted(let finished, let pending) = error else {
                Issue.record("expected .interrupted, got \(error)")
                return
            }
            #expect(finished == chunks)
            #expect(finished >= 10 && finished < 120)
            #expect(pending > 0)
            // 1 file of 3 chunks and 39 of 4: every chunk is finished or pending.
            #expect(finished + pending == 3 + 39 * 4)
        }
        #expect(files.allSatisfy { $0.errors.isEmpty && $0.chunks == ($0.size == 3 * 4096 ? 3 : 4) }, "\(files.filter { !$0.errors.isEmpty }.map { "\($0.path) \($0.errors.map(\.message))" })")
        #expect(stream.inflight == 0)
        for slot in 0..<4 { #expect(try backend.ring.status(ofSlot: slot) == .empty) }
        try backend.shutdown()
        #expect(try backend.ring.observe().workersRunning == 0)
    }
}
