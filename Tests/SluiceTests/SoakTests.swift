import SluiceCore
import Testing

@testable import Sluice

/// A short soak on the CPU backend: a fixed number of scans (not a time),
/// every result against the host reference, faults seen, nothing leaked.
@Suite(.serialized) struct SoakTests {
    /// In this process: results, faults and recoveries (resources are
    /// process-wide and other suites run alongside, so they are checked in
    /// the subprocess below).
    @Test(arguments: [UInt64(3), 20_251_124])
    func aShortCPUSoakFindsNoMismatchAndSeesEveryFault(seed: UInt64) throws {
        var lines: [String] = []
        let report = try Soak.run(
            SoakOptions(backend: .cpu, duration: .seconds(600), seed: seed, maxScans: 40)) { lines.append($0) }
        #expect(report.scans == 40)
        #expect(report.mismatches == 0, "\(report.problems.joined(separator: "\n"))")
        #expect(report.hostileInjected > 0)
        #expect(report.faultsObserved == report.hostileInjected)
        #expect(report.contextKillsInjected > 0)
        #expect(report.recoveries == report.contextKillsInjected)
        #expect(report.engines == 2)
        #expect(lines.last == report.summary)
    }

    /// The command in its own process: the verdict includes pinned memory,
    /// CPU regions and file descriptors back at their starting values.
    @Test func theSoakCommandPassesAndPrintsItsFigures() {
        let r = run([sluiceExecutable, "soak", "--backend", "cpu", "--scans", "30", "--seed", "5", "--duration", "600"])
        #expect(r.status == 0, "\(r.stdout.suffix(3000))\(r.stderr.suffix(2000))")
        let last = r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        #expect(last.hasPrefix("soak PASSED: backend cpu, seed 5"))
        for figure in ["scans 30", "mismatches 0", "pinned 0 B", "cpu regions 0 B", "fds 0"] {
            #expect(last.contains(figure), "\(figure) in \(last)")
        }
    }

    @Test func theReferenceScanFindsOverlappingAndFoldedMatches() {
        let text = Array("aAaa\nAB".utf8)
        let got = Soak.naiveMatches(text, [Array("aa".utf8), Array("ab".utf8), Array("aa".utf8)], caseInsensitive: true)
        #expect(got == [
            ScanMatch(offset: 0, pattern: 0), ScanMatch(offset: 1, pattern: 0), ScanMatch(offset: 2, pattern: 0),
            ScanMatch(offset: 5, pattern: 1),
        ])
        let counted = Soak.referenceCount(text)
        #expect(counted.bytes == 7 && counted.newlines == 1 && counted.histogram[0x61] == 3)
    }
}
