#if canImport(Glibc)
import Glibc
#endif
import SluiceCore
import SluiceIngest
import SluiceOps
import Testing

@testable import Sluice

/// The scanner's watchdog measures the workers, not the host.
@Suite struct WatchdogTests {
    /// A host that spends 4 s in every `onChunk` (as one writing a flood of
    /// matches to a slow pipe would) under a 3 s watchdog: the workers are
    /// never late (a chunk takes them well under a second, even on a loaded
    /// 2-core machine running the rest of the suite), so the scan finishes,
    /// with every chunk's count right.
    @Test func aSlowHostCallbackIsNotAHungWorker() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        // Chunks slow enough to scan (every position a candidate verified
        // over 15 bytes, by the built-in matcher of a debug build: a tenth
        // of a second or so) that a worker is still on the next one when
        // the host, back from its callback, checks the watchdog.
        let chunk = 1 << 20
        let literals: [[UInt8]] = [[UInt8](repeating: 97, count: 15) + [98], Array("ab".utf8)]
        let patterns = try PatternSet(literals: literals)
        let stride = chunk - ScanJob.overlap(for: patterns)
        // Three chunks through one slot: each is published after the host
        // spent 4 s on the one before, and scanned while the host waits.
        var rng = SeededRandom(state: 21)
        var text = [UInt8](repeating: 97, count: 2 * stride + 5000)
        for _ in 0..<(text.count / 1000) { text[Int.random(in: 0..<text.count, using: &rng)] = 98 }
        let path = dir.write("text", text)
        let table = ScanTable(patterns)
        let engine = try Engine(
            EngineConfiguration(
                backend: .cpu, ingest: .pread, chunkBytes: chunk, slots: 1, workers: 2, watchdog: .seconds(3),
                cpuScanEngine: .builtin),
            resultWordsPerSlot: ScanJob.resultWords(records: 0))
        defer { try? engine.close() }
        let scanner = try engine.scanner()
        _ = try scanner.installScanTable(table.words, literals: literals, caseInsensitive: false)
        var found: UInt64 = 0
        var chunks = 0
        var errors: [PipelineError] = []
        let summary = try scanner.run(
            paths: [path.raw], opcode: .scan, flags: ScanOp.countOnlyFlag, overlap: ScanJob.overlap(for: patterns),
            onChunk: { result in
                found += UInt64(result.words[0]) | UInt64(result.words[1]) << 32
                chunks += 1
                usleep(4_000_000)
            },
            onFile: { errors += $0.errors })
        #expect(errors.isEmpty)
        #expect(summary.chunks == 3 && chunks == 3)
        #expect(found == (try #require(pythonMatchCount(text, literals))))
    }
}
