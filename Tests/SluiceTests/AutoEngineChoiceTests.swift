import SluiceCPU
import SluiceCore
import SluiceHyperscan
import SluiceOps
import Testing

@testable import Sluice

/// `--cpu-engine auto` through a whole CPU engine: the rule's choice is the
/// engine that runs, and its reason is the line `-v` prints.
@Suite(.enabled(if: HyperscanLibrary.isAvailable, hyperscanSkipped))
struct AutoEngineChoiceTests {
    func install(_ literals: [[UInt8]]) throws -> (line: String, engine: ActiveScanEngine?) {
        let patterns = try PatternSet(literals: literals)
        let engine = try Engine(
            EngineConfiguration(backend: .cpu, chunkBytes: 8192, slots: 2, workers: 1, cpuScanEngine: .auto),
            resultWordsPerSlot: ScanJob.resultWords(records: 4))
        defer { try? engine.close() }
        let line = try engine.installScan(table: ScanTable(patterns), patterns: patterns)
        return (line, engine.activeCPUScanEngine)
    }

    @Test func aLargeSetRunsTheBuiltInMatcherAndSaysWhy() throws {
        var rng = SeededRandom(state: 41)
        let n = AutoScanEngine.builtinFromLiterals
        let literals = (0..<n).map { _ in (0..<12).map { _ in UInt8.random(in: 97...122, using: &rng) } }
        let large = try install(literals)
        #expect(large.engine == .builtin)
        #expect(large.line.hasPrefix("built-in (auto: \(n) literals"), "\(large.line)")
        let small = try install(Array(literals.prefix(10)))
        #expect(small.engine == .hyperscan(version: try HyperscanLibrary.shared.get().version))
        #expect(small.line.contains("(auto: 10 literals, fewer than \(n)"), "\(small.line)")
    }
}
