#if canImport(Glibc)
import Glibc
#endif
import SluiceCore
import SluiceOps
import Testing

@testable import Sluice

/// Line numbers by the definition: one plus the newlines before the offset.
func oracleLines(_ text: [UInt8], _ matches: [ScanMatch]) -> [ScanMatch] {
    var newlinesBefore = [UInt64](repeating: 0, count: text.count + 1)
    for i in text.indices { newlinesBefore[i + 1] = newlinesBefore[i] + (text[i] == 10 ? 1 : 0) }
    return matches.map { ScanMatch(offset: $0.offset, pattern: $0.pattern, line: newlinesBefore[Int($0.offset)] + 1) }
}

/// The streaming scan: pieces in file order and offset order, each sorted,
/// line numbers right, nothing lost or doubled, whatever order chunks finish in.
@Suite struct StreamingScanTests {
    /// Runs a streaming scan through a CPU engine and returns every piece.
    func pieces(
        _ paths: [String], _ literals: [[UInt8]], chunk: Int = 8192, records: Int = 64, slots: Int = 8,
        output: ScanJob.Output, packing: Bool = true
    ) throws -> [FileMatches] {
        let patterns = try PatternSet(literals: literals)
        let engine = try Engine(
            EngineConfiguration(backend: .cpu, chunkBytes: chunk, slots: slots, workers: 2),
            resultWordsPerSlot: ScanJob.resultWords(records: records))
        defer { try? engine.close() }
        var out: [FileMatches] = []
        _ = try ScanJob.run(
            scanner: try engine.makeScanner(), patterns: patterns, table: ScanTable(patterns), paths: paths.raw,
            output: output, packing: packing, onMatches: { out.append($0) })
        return out
    }

    /// Checks the pieces of `paths` against the oracle and returns them per file.
    func expectOrdered(_ got: [FileMatches], _ paths: [String], _ texts: [[UInt8]], _ literals: [[UInt8]], lines: Bool) {
        var file = 0
        var joined: [ScanMatch] = []
        var count: UInt64 = 0
        for piece in got {
            guard file < paths.count else {
                Issue.record("a piece after the last file: \(piece.path)")
                return
            }
            #expect(piece.path == paths[file], "pieces of one file are consecutive and files in input order")
            #expect(piece.matches == piece.matches.sorted(), "a piece is sorted")
            #expect(piece.errors.isEmpty)
            joined += piece.matches
            count += piece.count
            if piece.isComplete {
                let expected = naiveMatches(texts[file], literals)
                expectSameMatches(joined, lines ? oracleLines(texts[file], expected) : expected, "file \(file)")
                #expect(count == UInt64(expected.count))
                if lines {
                    #expect(piece.newlines == UInt64(texts[file].filter { $0 == 10 }.count), "file \(file)")
                }
                file += 1
                joined = []
                count = 0
            }
        }
        #expect(file == paths.count, "every file has a complete piece")
    }

    @Test(arguments: [false, true])
    func piecesComeInOrderWithLines(lines: Bool) throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 161)
        var paths: [String] = []
        var texts: [[UInt8]] = []
        // Small files (packed), one of a chunk and more, and a large one; dense
        // newlines and matches, some across chunk boundaries.
        for size in [0, 1, 700, 3000, 8191, 8192, 8193, 40_000, 150_000] {
            let text = (0..<size).map { _ in [UInt8]("ab\nb".utf8).randomElement(using: &rng)! }
            texts.append(text)
            paths.append(dir.write("f\(paths.count)", text))
        }
        let literals = [Array("ab".utf8), Array("b\nb".utf8), Array("bab".utf8)]
        let got = try pieces(paths, literals, output: ScanJob.Output(lineNumbers: lines))
        expectOrdered(got, paths, texts, literals, lines: lines)
    }

    /// Every slot overflows (8 records): chunks are scanned again on the host
    /// and handed out in pieces of at most `matchesPerPiece`.
    @Test func overflowedChunksStreamInBoundedPieces() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var text = [UInt8](repeating: 97, count: 100_000)
        for i in stride(from: 50, to: text.count, by: 97) { text[i] = 10 }
        let path = dir.write("dense", text)
        let literals = [Array("a".utf8), Array("aa".utf8)]
        let got = try pieces([path], literals, records: 8, output: ScanJob.Output(lineNumbers: true, matchesPerPiece: 1000))
        expectOrdered(got, [path], [text], literals, lines: true)
        #expect(got.allSatisfy { $0.matches.count <= 1001 }, "pieces stay small")
        #expect(got.count > 100, "the file comes out in many pieces, not at its end")
    }

    /// Count mode keeps no matches at all, and its counts add up.
    @Test func countModeKeepsNoMatches() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let text = [UInt8](repeating: 97, count: 60_000)
        let path = dir.write("a", text)
        let got = try pieces([path], [Array("a".utf8)], records: 4, output: ScanJob.Output(mode: .count))
        #expect(got.allSatisfy { $0.matches.isEmpty })
        #expect(got.reduce(0) { $0 + $1.count } == 60_000)
        #expect(got.last?.isComplete == true)
    }

    /// A chunk that failed (its slot faulted) leaves a gap: the matches after
    /// it still come out, in order, and their lines are unknown, not wrong.
    @Test func aFailedChunkMakesLaterLinesUnknown() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var text = [UInt8](repeating: 120, count: 40_000)
        for i in stride(from: 0, to: text.count, by: 100) { text[i] = 10 }
        for i in stride(from: 7, to: text.count, by: 3000) { text[i] = 81 }
        let path = dir.write("gap", text)
        let patterns = try PatternSet(literals: [[81]])
        let engine = try Engine(
            EngineConfiguration(backend: .cpu, chunkBytes: 8192, slots: 4, workers: 2),
            resultWordsPerSlot: ScanJob.resultWords(records: 64))
        defer { try? engine.close() }
        let scanner = try engine.makeScanner()
        scanner.injectFault = { site, payload in
            if site.chunkNumber == 2 { payload.opcode = Opcode(rawValue: 77) }
        }
        var got: [FileMatches] = []
        _ = try ScanJob.run(
            scanner: scanner, patterns: patterns, table: ScanTable(patterns), paths: [path.raw],
            output: ScanJob.Output(lineNumbers: true), onMatches: { got.append($0) })
        let matches = got.flatMap(\.matches)
        let expected = oracleLines(text, naiveMatches(text, [[81]])).filter { $0.offset < 16384 || $0.offset >= 24576 }
        #expect(matches.map(\.offset) == expected.map(\.offset))
        for (m, e) in zip(matches, expected) {
            #expect(m.line == (m.offset < 16384 ? e.line : nil), "offset \(m.offset)")
        }
        #expect(got.last?.isComplete == true && got.last?.errors.isEmpty == false)
        #expect(got.last?.newlines == nil)
    }

    /// Several simulated devices split a file into ranges: the lines of each
    /// range are moved on by the newlines of the ranges before it.
    @Test func rangesOnSeveralDevicesKeepLineNumbers() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 99)
        let text = (0..<200_000).map { _ in [UInt8]("xy\nQz".utf8).randomElement(using: &rng)! }
        let small = Array("Qz\nQz".utf8)
        let paths = [dir.write("big", text), dir.write("small", small)]
        let patterns = try PatternSet(literals: [Array("Qz".utf8)])
        let table = ScanTable(patterns)
        let pool = try DevicePool(
            EngineConfiguration(backend: .cpu, chunkBytes: 8192, slots: 4), devices: .list([0, 1, 2]),
            resultWordsPerSlot: ScanJob.resultWords(records: 64))
        defer { try? pool.close() }
        pool.rangeSize = .bytes(16384)
        for engine in pool.engines { _ = try engine.installScan(table: table, patterns: patterns) }
        var got: [FileMatches] = []
        try pool.run(
            splitting: paths.raw,
            job: { engine, batch, report, progress throws(PipelineError) in
                _ = try ScanJob.run(
                    scanner: try engine.scanner(), patterns: patterns, table: table, paths: batch.map(\.path),
                    ranges: batch.ranges, output: ScanJob.Output(lineNumbers: true), installTable: false,
                    onMatches: report, onProgress: progress)
            },
            onOutcome: { got.append($0) })
        expectOrdered(got, paths, [text, small], [Array("Qz".utf8)], lines: true)
        #expect(got.filter(\.isComplete).count == 2)
    }
}
