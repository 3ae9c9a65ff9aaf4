import SluiceCore
import SluiceIngest
import SluiceOps
import Testing

@testable import Sluice

/// An engine with `deferIngestSetup` (what `sluice scan` asks for with
/// packing on) never sets its read stream up for a tree of packable files,
/// sets it up at the first file too large to pack, and finds the same
/// matches as the oracle either way.
@Suite struct DeferredIngestTests {
    static let literals: [[UInt8]] = [Array("NEEDLE".utf8), Array("EDL".utf8), Array("a".utf8), Array("E\nN".utf8)]

    func scan(_ paths: [String], ingest: IngestChoice, chunk: Int) throws -> (files: [FileMatches], engine: String, setUp: Bool) {
        let patterns = try PatternSet(literals: DeferredIngestTests.literals)
        var configuration = EngineConfiguration(backend: .cpu, ingest: ingest, chunkBytes: chunk, slots: 4, workers: 2)
        configuration.deferIngestSetup = true
        let engine = try Engine(configuration, resultWordsPerSlot: ScanJob.resultWords(records: 64))
        defer { try? engine.close() }
        let deferred = try #require(engine.stream as? DeferredReadStream)
        #expect(!deferred.isSetUp)
        #expect(engine.ingestReason.hasPrefix("not set up"), "\(engine.ingestReason)")
        var out: [FileMatches] = []
        _ = try ScanJob.run(
            scanner: try engine.makeScanner(), patterns: patterns, table: ScanTable(patterns), paths: paths.raw,
            mode: .matches, packing: true, onFile: { out.append($0) })
        return (out, engine.ingestReason, deferred.isSetUp)
    }

    func expectOracle(_ files: [FileMatches], _ paths: [String], _ texts: [[UInt8]]) {
        #expect(files.map(\.path) == paths)
        for (file, text) in zip(files, texts) {
            #expect(file.errors.isEmpty, "\(file.path): \(file.errors)")
            expectSameMatches(file.matches, naiveMatches(text, DeferredIngestTests.literals), file.path.description)
        }
    }

    @Test(arguments: [IngestChoice.auto, .pread])
    func aTreeOfPackableFilesNeverSetsTheStreamUp(ingest: IngestChoice) throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let chunk = 8192
        var rng = SeededRandom(state: 11)
        var paths: [String] = []
        var texts: [[UInt8]] = []
        // 0 bytes up to exactly the packing limit (a quarter chunk).
        for i in 0..<300 {
            let size = i % 50 == 0 ? chunk / 4 : Int(rng.next() % UInt64(chunk / 4))
            var text = textLikeBytes(size, &rng)
            if size >= 6, i % 3 == 0 { text.replaceSubrange(0..<6, with: Array("NEEDLE".utf8)) }
            paths.append(dir.write("d\(i / 60)/f\(i)", text))
            texts.append(text)
        }
        let run = try scan(paths, ingest: ingest, chunk: chunk)
        expectOracle(run.files, paths, texts)
        #expect(!run.setUp, "\(run.engine)")
        #expect(run.engine.hasPrefix("not set up"), "\(run.engine)")
    }

    @Test(arguments: [IngestChoice.auto, .pread])
    func aFileTooLargeToPackSetsItUpOnce(ingest: IngestChoice) throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let chunk = 8192
        let (paths, texts) = writePackingTree(dir, seed: 12, files: 200, chunk: chunk)
        var all = paths
        var allTexts = texts
        // One file a byte past the packing limit and one of several chunks, in the middle of the tree.
        var rng = SeededRandom(state: 13)
        for (name, size) in [("large-a", chunk / 4 + 1), ("large-b", 3 * chunk + 5)] {
            var text = textLikeBytes(size, &rng)
            text.replaceSubrange((size - 6)..<size, with: Array("NEEDLE".utf8))
            all.insert(dir.write("d0/\(name)", text), at: 50)
            allTexts.insert(text, at: 50)
        }
        let run = try scan(all, ingest: ingest, chunk: chunk)
        expectOracle(run.files, all, allTexts)
        #expect(run.setUp)
        #expect(run.engine.contains("(set up at the first file too large to pack)"), "\(run.engine)")
        if ingest == .pread { #expect(run.engine.hasPrefix("pread thread pool"), "\(run.engine)") }
    }

    /// A forced `--ingest uring` is set up at start even with packing on, so
    /// that where io_uring cannot run the run fails once, at once.
    @Test func forcedURingIsSetUpAtStart() throws {
        var configuration = EngineConfiguration(backend: .cpu, ingest: .uring, chunkBytes: 8192, slots: 4, workers: 2)
        configuration.deferIngestSetup = true
        let engine: Engine
        do {
            engine = try Engine(configuration, resultWordsPerSlot: ScanJob.resultWords(records: 64))
        } catch {
            #expect(error.message.contains("io_uring"), "\(error.message)")
            return
        }
        defer { try? engine.close() }
        #expect(!(engine.stream is DeferredReadStream))
        #expect(engine.ingestReason.hasPrefix("io_uring"), "\(engine.ingestReason)")
    }
}
