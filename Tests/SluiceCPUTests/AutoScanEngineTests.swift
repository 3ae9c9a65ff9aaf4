import SluiceCPU
import Testing

/// `--cpu-engine auto`'s rule: Hyperscan below the measured crossover, the
/// built-in matcher from it on, with a reason naming the count and the bound.
@Suite struct AutoScanEngineTests {
    @Test func theRuleSwitchesAtTheThreshold() {
        let bound = AutoScanEngine.builtinFromLiterals
        for n in [1, 10, 1000, bound - 1] {
            let (engine, reason) = AutoScanEngine.choose(literalCount: n)
            #expect(engine == .hyperscan, "\(n) literals")
            #expect(reason.contains("\(n) literals") && reason.contains("fewer than \(bound)"), "\(reason)")
        }
        for n in [bound, bound + 1, 100_000, 1 << 24] {
            let (engine, reason) = AutoScanEngine.choose(literalCount: n)
            #expect(engine == .builtin, "\(n) literals")
            #expect(reason.contains("\(n) literals") && reason.contains("at least \(bound)"), "\(reason)")
        }
    }

    /// The bound lies between the measured points: Hyperscan tied or won
    /// everywhere at 30,000 literals; the built-in matcher must run at
    /// 100,000, where it won on 16 cores (issue 16).
    @Test func theThresholdIsBetweenTheMeasuredPoints() {
        #expect(AutoScanEngine.builtinFromLiterals > 30_000 && AutoScanEngine.builtinFromLiterals <= 100_000)
        #expect(AutoScanEngine.choose(literalCount: 100_000).engine == .builtin)
    }
}
