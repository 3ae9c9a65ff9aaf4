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

/// What a packing run promises besides its matches: every file reported
/// once through any number of backend losses, an interrupt that counts every
/// chunk it leaves, progress that ends at its total.
@Suite(.serialized) struct PackingEdgeTests {
    func engine(faults: Bool = false) throws -> Engine {
        var c = EngineConfiguration(backend: .cpu, ingest: .pread, chunkBytes: 8192, slots: 4, workers: 2)
        c.faultInjection = faults
        return try Engine(c, resultWordsPerSlot: CountOp.resultWords)
    }

    /// Random backend losses (up to two) among small, large, empty and
    /// missing files, with packs of at most 7 files: each file has one
    /// outcome, and each packed file is in one reclaimed pack.
    @Test(arguments: [UInt64(1), 2, 3, 4])
    func everyFileOnceThroughBackendLosses(seed: UInt64) throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var (paths, _) = writePackingTree(dir, seed: 30 + seed, files: 300, chunk: 8192)
        paths.insert(dir.file("missing"), at: 50)
        let engine = try engine(faults: true)
        defer { try? engine.close() }
        let scanner = try engine.scanner()
        var rng = SeededRandom(state: seed)
        var kills = 0
        scanner.injectFault = { _, payload in
            if kills < 2, rng.next() % 15 == 0 {
                kills += 1
                payload.opcode = .testIllegalAddress
            }
        }
        var outcomes: [Int: Int] = [:]
        var packed: [Int: Int] = [:]
        let summary = try scanner.run(
            paths: paths.raw, opcode: .count, packing: ChunkScheduler.Packing(maxFileBytes: 2048, maxFiles: 7),
            onChunk: { chunk in for f in chunk.packed { packed[f.fileIndex, default: 0] += 1 } },
            onFile: { outcomes[$0.fileIndex, default: 0] += 1 })
        #expect(kills >= 1, "the seed kills at least once")
        // Two poisoned slots can be in flight at once; the loss they cause
        // together is one recovery.
        #expect(scanner.recoveries >= 1 && scanner.recoveries <= kills)
        #expect(outcomes.count == paths.count && outcomes.values.allSatisfy { $0 == 1 })
        #expect(!packed.isEmpty && packed.values.allSatisfy { $0 == 1 })
        #expect(summary.files == paths.count)
    }

    /// Files too large to pack, interrupted early: every chunk of theirs is
    /// counted, finished or pending, as without packing.
    @Test(arguments: [true, false])
    func anInterruptCountsEveryChunkOfLargeFiles(packing: Bool) throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let paths = (0..<40).map { dir.write("f\($0)", [UInt8](repeating: 10, count: 3 * 8192 + 1 + $0)) }
        let stop = Atomic<Bool>(false)
        let engine = try engine()
        defer { try? engine.close() }
        let scanner = try ChunkScheduler(
            backend: engine.backend, stream: engine.stream, options: ChunkScheduler.Options(shouldStop: { stop.load(ordering: .relaxed) }))
        var chunks = 0
        do {
            _ = try scanner.run(
                paths: paths.raw, opcode: .count, packing: packing ? ChunkScheduler.Packing(maxFileBytes: 2048) : nil,
                onChunk: { _ in
                    chunks += 1
                    if chunks == 2 { stop.store(true, ordering: .relaxed) }
                },
                onFile: { _ in })
            Issue.record("not interrupted")
        } catch {
            guard case .interrupted(let finished, let pending) = error else {
                Issue.record("\(error)")
                return
            }
            #expect(finished + pending == 40 * 4, "finished \(finished), pending \(pending)")
        }
    }

    /// After a lost pack is packed again, the progress still ends at its total.
    @Test(arguments: [false, true])
    func progressEndsAtItsTotal(losingAPack: Bool) throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let paths = (0..<200).map { dir.write("f\($0)", [UInt8](repeating: 65, count: 100 + $0)) }
        let engine = try engine(faults: true)
        defer { try? engine.close() }
        let scanner = try engine.scanner()
        var killed = !losingAPack
        scanner.injectFault = { site, payload in
            if !killed, !site.packed.isEmpty {
                killed = true
                payload.opcode = .testIllegalAddress
            }
        }
        var last: ChunkScheduler.Progress?
        _ = try scanner.run(
            paths: paths.raw, opcode: .count, packing: ChunkScheduler.Packing(maxFileBytes: 2048),
            onChunk: { _ in }, onFile: { _ in }, onProgress: { last = $0 })
        #expect(scanner.recoveries == (losingAPack ? 1 : 0))
        let bytes = UInt64((0..<200).reduce(0) { $0 + 100 + $1 })
        #expect(last?.bytesDone == bytes && last?.bytesTotal == bytes)
    }
}
