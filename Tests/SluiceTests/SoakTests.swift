import SluiceCore
import Testing

@testable import Sluice

/// A short soak on the CPU backend: a fixed number of scans (not a time),
/// every result against the host reference, faults seen, nothing leaked.
@Suite(.serialized) struct SoakTests {
    @Test(arguments: [UInt64(3), 20_251_124])
    func aShortCPUSoakPassesWithFaultsInjectedAndSurvived(seed: UInt64) throws {
        var lines: [String] = []
        let report = try Soak.run(
            SoakOptions(backend: .cpu, duration: .seconds(600), seed: seed, maxScans: 40)) { lines.append($0) }
        #expect(report.passed, "\(report.summary)\n\(report.problems.joined(separator: "\n"))")
        #expect(report.scans == 40)
        #expect(report.mismatches == 0)
        #expect(report.hostileInjected > 0)
        #expect(report.faultsObserved == report.hostileInjected)
        #expect(report.contextKillsInjected > 0)
        #expect(report.recoveries == report.contextKillsInjected)
        #expect(report.engines == 2)
        #expect(report.pinnedDelta == 0 && report.cpuRegionDelta == 0 && report.fdDelta == 0)
        #expect(lines.last == report.summary)
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
