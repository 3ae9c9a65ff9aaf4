import Sluice
import Testing

@Suite struct ShardTests {
    /// Every file lands in exactly one share, for any N, and shares are balanced by bytes.
    @Test(arguments: 1...12)
    func sharesPartitionTheInput(count: Int) {
        var rng = SeededRandom(state: UInt64(count))
        let n = Int.random(in: 0...300, using: &rng)
        let paths = (0..<n).map { "/data/dir\($0 % 7)/file-\($0)" }
        let sizes = (0..<n).map { _ in UInt64.random(in: 0...(1 << 30), using: &rng) }
        let shares = Shard.assignment(paths: paths.raw, sizes: sizes, count: count)
        #expect(shares.count == n)
        #expect(shares.allSatisfy { (0..<count).contains($0) })
        // The same files in another order give every file the same share.
        let order = Array(paths.indices).shuffled(using: &rng)
        let again = Shard.assignment(paths: order.map { paths[$0].raw }, sizes: order.map { sizes[$0] }, count: count)
        for (k, i) in order.enumerated() { #expect(again[k] == shares[i]) }
        // Greedy largest-first: no share exceeds the lightest by more than the largest file.
        if n > 0 {
            var load = [UInt64](repeating: 0, count: count)
            for (i, s) in shares.enumerated() { load[s] += sizes[i] }
            #expect(load.max()! - load.min()! <= sizes.max()!)
        }
    }

    @Test func parsingRejectsBadShards() {
        #expect(throws: (any Error).self) { try Shard(parsing: "3/3") }
        #expect(throws: (any Error).self) { try Shard(parsing: "-1/3") }
        #expect(throws: (any Error).self) { try Shard(parsing: "1") }
        #expect(throws: (any Error).self) { try Shard(parsing: "0/0") }
        #expect((try? Shard(parsing: "2/5"))?.description == "2/5")
    }

    /// N processes' `--json` outputs, concatenated, are one run's output.
    @Test func mergedShardOutputsEqualOneRun() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 31)
        for i in 0..<25 {
            var text = textLikeBytes(Int.random(in: 0...40_000, using: &rng), &rng)
            if text.count > 20 { text.replaceSubrange(3..<9, with: Array("secret".utf8)) }
            dir.write("d\(i % 4)/f\(i)", text)
        }
        let base = [sluiceExecutable, "scan", "--backend", "cpu", "--json", "--quiet", "-e", "secret", "-e", "\n\n", dir.path]
        let single = run(base)
        #expect(single.status == 0)
        let expected = single.stdout.split(separator: "\n").map(String.init)
        for n in [2, 3, 7] {
            var merged: [String] = []
            for i in 0..<n {
                let r = run(base + ["--shard", "\(i)/\(n)"])
                #expect(r.status == 0 || r.status == 1, "\(r.stderr)")
                merged += r.stdout.split(separator: "\n").map(String.init)
            }
            #expect(merged.count == expected.count)
            #expect(merged.sorted() == expected.sorted())
        }
        let bad = run(base + ["--shard", "4/4"])
        #expect(bad.status == 2 && bad.stderr.contains("shard"))
    }
}
