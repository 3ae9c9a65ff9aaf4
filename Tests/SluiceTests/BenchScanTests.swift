import SluiceCore
import SluiceOps
import Testing

@testable import SluiceDiagnostics

/// `bench scan` on the CPU backend (no GPU here): the raw read row, one row
/// per pattern file with the oracle's match count, and the hash row with
/// the reference CRC-32C.
@Suite struct BenchScanTests {
    func text(_ row: [String: BenchValue], _ column: String) -> String {
        if case .text(let s)? = row[column] { return s }
        return ""
    }

    @Test func rowsCarryTheOraclesCountsAndChecksum() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var words: [UInt8] = []
        var rng = SeededRandom(state: 7)
        while words.count < 1 << 20 {
            words += Array(["needle", "hay", "stack", "needles", "\n", " "].randomElement(using: &rng)!.utf8)
        }
        let file = dir.write("words.txt", words)
        let sparse = dir.write("sparse.txt", Array("needle\nzzzz\n".utf8))
        let dense = dir.write("dense.txt", Array("a\ne\n".utf8))
        var options = Bench.ScanOptions(path: file, literalFiles: [sparse, dense], chunkBytes: 256 << 10, repeats: 1)
        options.copyPaths = [.mapped, .engine]  // CUDA only; no GPU here, so ignored
        let report = try Bench.scan(options, log: { _ in })
        let methods = report.rows.map { text($0, "method") }
        #expect(methods.first == "io_uring read only (same stream, no work)")
        #expect(text(report.rows[0], "result") == "\(words.count) bytes")
        let scans = report.rows.filter { text($0, "method").hasPrefix("sluice scan") }
        #expect(scans.count == 2)
        let expected = [
            naiveMatches(words, [Array("needle".utf8), Array("zzzz".utf8)]).count,
            naiveMatches(words, [Array("a".utf8), Array("e".utf8)]).count,
        ]
        #expect(scans.map { text($0, "result") } == expected.map { "\($0) matches" })
        let hash = report.rows.first { text($0, "method").hasPrefix("sluice hash") }
        let crc = String(CRC32C.checksum(words), radix: 16)
        #expect(hash.map { text($0, "result") } == "crc32c " + String(repeating: "0", count: 8 - crc.count) + crc)
    }
}
