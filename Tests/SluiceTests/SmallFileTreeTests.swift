import Testing

@testable import Sluice

/// `--backend auto` runs trees of many small files on the CPU backend.
@Suite struct SmallFileTreeTests {
    func walk(files: Int, sized: Int, bytes: Int) -> FileWalker.Result {
        var w = FileWalker.Result()
        w.files = (0..<files).map { "f\($0)".raw }
        w.sizedFiles = sized
        w.bytes = bytes
        return w
    }

    @Test func theRuleLooksAtTheCountAndTheMeanSize() {
        let limit = SmallFileTrees.largestMeanFileBytes
        #expect(SmallFileTrees.cpuReason(walk(files: 999, sized: 999, bytes: 999 * 100)) == nil)
        let tree = SmallFileTrees.cpuReason(walk(files: 40_000, sized: 4096, bytes: 4096 * 16384))
        #expect(tree?.contains("40000 files of 16384 bytes on average") == true)
        #expect(SmallFileTrees.cpuReason(walk(files: 1000, sized: 1000, bytes: 1000 * limit)) != nil)
        #expect(SmallFileTrees.cpuReason(walk(files: 1000, sized: 1000, bytes: 1000 * limit + 1000)) == nil)
        // Sizes unknown: no rule.
        #expect(SmallFileTrees.cpuReason(walk(files: 5000, sized: 0, bytes: 0)) == nil)
        // cuFile needs the CUDA backend: the rule never takes it away.
        let small = walk(files: 5000, sized: 4096, bytes: 4096 * 100)
        #expect(SmallFileTrees.cpuReason(small, ingest: .uring) != nil)
        #expect(SmallFileTrees.cpuReason(small, ingest: .gds) == nil)
    }

    /// The walk of a real tree feeds the rule, and the tool says why the CPU runs.
    @Test func theToolSaysWhyTheCPURunsATreeOfSmallFiles() {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 5)
        for i in 0..<1000 { dir.write("d\(i / 100)/f\(i)", textLikeBytes(Int(rng.next() % 3000), &rng)) }
        let tree = run([sluiceExecutable, "count", "--backend", "auto", "--verbose", dir.path])
        #expect(tree.status == 0, "\(tree.stderr)")
        #expect(tree.stderr.contains("(auto: 1000 files of "), "\(tree.stderr)")
        let few = run([sluiceExecutable, "count", "--backend", "auto", "--verbose", dir.file("d0")])
        #expect(few.status == 0)
        #expect(!few.stderr.contains("files of "), "\(few.stderr)")
        let named = run([sluiceExecutable, "scan", "--backend", "cpu", "--verbose", "-e", "x", dir.path])
        #expect(named.stderr.contains("chosen with --backend cpu"), "\(named.stderr)")
    }
}
