#if canImport(Glibc)
import Glibc
#endif
import Sluice
import SluiceCore
import SluiceDiagnostics
import Testing

/// `sluice bench resident` on the CPU backend: its per-pass count against
/// the naive oracle over the bytes it kept resident, its edges and errors.
@Suite struct BenchResidentTests {
    static let chunk = 4096

    /// Runs the bench briefly and returns its one row's per-pass counts (the backend's, the host ScanOp's).
    func perPass(
        _ path: String, _ literals: [[UInt8]], slots: Int, countOnly: Bool = false
    ) throws -> (backend: Int, host: Int, report: BenchReport) {
        let options = Bench.ResidentOptions(
            path: path, patterns: try PatternSet(literals: literals), countOnly: countOnly, backend: .cpu,
            chunkBytes: Self.chunk, seconds: 0.05, slots: slots, workers: 2)
        let report = try Bench.resident(options, log: { _ in })
        guard report.rows.count == 1, case .integer(let b)? = report.rows[0]["matches per pass"],
              case .integer(let h)? = report.rows[0]["host ScanOp per pass"]
        else { throw PipelineError.malformed(what: "test", detail: "no row in \(report.table)") }
        return (b, h, report)
    }

    /// A text with every literal placed across every chunk boundary, and a
    /// few inside chunks; literals that prefix and overlap each other, one
    /// duplicated, one longer than a chunk.
    static func straddlingCase() -> (text: [UInt8], literals: [[UInt8]]) {
        var rng = SeededRandom(state: 0x5EED_0019)
        var text = (0..<(5 * chunk + 1_000)).map { _ in UInt8(ascii: "c") + UInt8(rng.next() % 3) }
        let long = (0..<5_000).map { UInt8(truncatingIfNeeded: $0 &* 7 | 0x80) }
        let literals: [[UInt8]] = [Array("abab".utf8), Array("ab".utf8), [0x00, 0xFF, 0x00], Array("ab".utf8), long]
        for boundary in stride(from: chunk, to: text.count, by: chunk) {
            text.replaceSubrange((boundary - 3)..<(boundary + 3), with: Array("ababab".utf8))
            text.replaceSubrange((boundary + 100)..<(boundary + 103), with: [0x00, 0xFF, 0x00])
        }
        // The long literal across the boundaries at 2 and 3 chunks (it is longer than a chunk).
        text.replaceSubrange((2 * chunk - 500)..<(2 * chunk + 4_500), with: long)
        return (text, literals)
    }

    @Test(arguments: [false, true])
    func straddlingMatchesAreCountedOnceByTheChunkTheyStartIn(countOnly: Bool) throws {
        let dir = ScratchDirectory("sluice-resident")
        defer { dir.remove() }
        let (text, literals) = Self.straddlingCase()
        let path = dir.write("text", text)
        // 8 slots over 6 chunks: the whole file is resident, two chunks are in two slots each.
        let all = try perPass(path, literals, slots: 8, countOnly: countOnly)
        let oracle = naiveMatches(text, literals).count
        #expect(all.backend == oracle)
        #expect(all.host == oracle)
        // Counting each chunk as a window of its own would miss the straddlers:
        // the oracle's count is not that, so they were counted, and only once.
        let windows = stride(from: 0, to: text.count, by: Self.chunk).reduce(0) {
            $0 + naiveMatches(Array(text[$1..<min($1 + Self.chunk, text.count)]), literals).count
        }
        #expect(windows < oracle)
        // 4 slots: only the first 4 chunks are resident, and the count is the oracle's over those bytes.
        let part = try perPass(path, literals, slots: 4, countOnly: countOnly)
        #expect(part.backend == naiveMatches(Array(text[0..<(4 * Self.chunk)]), literals).count)
        #expect(part.report.facts.contains { $0.0 == "file" && $0.1.contains("resident: its first 16384 bytes") })
    }

    @Test func aFileSmallerThanOneChunkIsScannedWhole() throws {
        let dir = ScratchDirectory("sluice-resident")
        defer { dir.remove() }
        let text = Array("xabababx".utf8)
        let path = dir.write("small", text)
        let r = try perPass(path, [Array("aba".utf8), Array("x".utf8)], slots: 3)
        #expect(r.backend == 4)   // aba at 1 and 3, x at 0 and 7
        #expect(r.backend == naiveMatches(text, [Array("aba".utf8), Array("x".utf8)]).count)
        guard case .integer(let slotsRun)? = r.report.rows[0]["slots run"] else { Issue.record("no slots run"); return }
        #expect(slotsRun > 0)
    }

    @Test func anEmptyFileIsAnError() throws {
        let dir = ScratchDirectory("sluice-resident")
        defer { dir.remove() }
        let path = dir.write("empty", [])
        do {
            _ = try perPass(path, [Array("a".utf8)], slots: 2)
            Issue.record("an empty file ran")
        } catch let error as PipelineError {
            guard case .invalidConfiguration(let what) = error else { Issue.record("\(error)"); return }
            #expect(what.contains(path) && what.contains("empty"))
        }
    }

    @Test func badPatternFilesAreErrorsNamingThem() throws {
        let dir = ScratchDirectory("sluice-resident")
        defer { dir.remove() }
        let blank = dir.write("blank", Array("\n\r\n\n".utf8))
        let good = dir.write("good", Array("one\ntwo\n".utf8))
        for file in [blank, dir.write("empty", [])] {
            do {
                _ = try Bench.residentPatterns(literals: [], files: [good, file])
                Issue.record("\(file) was accepted")
            } catch {
                guard case .invalidConfiguration(let what) = error else { Issue.record("\(error)"); continue }
                #expect(what.contains(file))
            }
        }
        do {
            _ = try Bench.residentPatterns(literals: [], files: [dir.file("missing")])
            Issue.record("a missing pattern file was accepted")
        } catch {
            guard case .io(let failure) = error else { Issue.record("\(error)"); return }
            #expect(failure.errno == ENOENT && failure.path == dir.file("missing"))
        }
        let set = try Bench.residentPatterns(literals: [[0xFF]], files: [good])
        #expect(set.literals == [[0xFF], Array("one".utf8), Array("two".utf8)])
    }

    @Test func commandPrintsTheRowAndFailsClearly() {
        let dir = ScratchDirectory("sluice-resident")
        defer { dir.remove() }
        let path = dir.write("text", Array("ab\u{0}ab".utf8))
        let help = run([sluiceExecutable, "bench", "--help"])
        #expect(help.stdout.contains("resident"))
        let ok = run([sluiceExecutable, "bench", "resident", path, "-e", "ab", "-e", "\\x00a", "--backend", "cpu",
                      "--chunk-size", "4K", "--slots", "2", "--seconds", "0.05", "--json", "-q"])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.contains("\"matches per pass\": 3"), "\(ok.stdout)")
        let empty = run([sluiceExecutable, "bench", "resident", dir.write("empty", []), "-e", "a", "--backend", "cpu", "-q"])
        #expect(empty.status == 2 && empty.stderr.contains("is empty"))
        let none = run([sluiceExecutable, "bench", "resident", path, "--backend", "cpu"])
        #expect(none.status == 2 && none.stderr.contains("give at least one literal"))
        let chunk = run([sluiceExecutable, "bench", "resident", path, "-e", "a", "--chunk-size", "1000"])
        #expect(chunk.status == 2 && chunk.stderr.contains("--chunk-size"))
    }
}
