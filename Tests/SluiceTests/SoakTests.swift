import SluiceCore
import Testing

@testable import Sluice
@testable import SluiceDiagnostics

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

    /// Context kills in child processes (how a CUDA soak kills contexts):
    /// each child runs one scan that kills its backend and must pass; the
    /// parent counts it as a kill and a recovery, and its own engine and
    /// resources are unaffected.
    @Test func childKillsPassAndAreCounted() {
        let r = run([
            sluiceExecutable, "soak", "--backend", "cpu", "--duration", "3", "--seed", "9", "--child-kills", "on",
            "--child-kill-interval", "1",
        ])
        #expect(r.status == 0, "\(r.stdout.suffix(3000))\(r.stderr.suffix(2000))")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        let passedChildren = lines.filter { $0.contains(": child kill ") && $0.contains(": passed in ") }
        #expect(passedChildren.count >= 1, "\(r.stdout.suffix(3000))")
        for line in passedChildren {
            #expect(line.contains("soak PASSED: backend cpu") && line.contains("context kills 1,") && line.contains("recoveries 1,"))
        }
        let last = lines.last ?? ""
        #expect(last.contains("\(passedChildren.count) of them in child processes"), "\(last)")
        for figure in ["mismatches 0", "pinned 0 B", "cpu regions 0 B", "fds 0"] {
            #expect(last.contains(figure), "\(figure) in \(last)")
        }
    }

    /// A child that does not pass (here: one that is not a killed scan at
    /// all, and one that hangs past its deadline) fails the soak and is named.
    @Test(arguments: [["soak", "--backend", "cpu", "--duration", "0"], ["selftest", "--backend", "cpu", "--stress-cycles", "100000000"]])
    func aChildThatFailsOrHangsFailsTheSoak(arguments: [String]) throws {
        var options = SoakOptions(backend: .cpu, duration: .seconds(600), seed: 11, maxScans: 3)
        options.childKills = ChildKills(interval: .milliseconds(1), timeout: .seconds(2), executable: sluiceExecutable) { _, _ in
            arguments
        }
        var lines: [String] = []
        let report = try Soak.run(options) { lines.append($0) }
        #expect(!report.passed)
        #expect(report.childKills == 0)
        #expect(report.mismatches >= 1)
        #expect(report.problems.contains { $0.contains("child kill 1") }, "\(report.problems)")
        #expect(lines.contains { $0.contains("child kill 1") && $0.contains("FAILED") })
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
