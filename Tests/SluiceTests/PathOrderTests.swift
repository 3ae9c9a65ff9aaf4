import Sluice
import Testing

/// Scan output order is the order of the paths' bytes, and no path is lost
/// or doubled on the way there.
@Suite struct PathOrderTests {
    /// Against Array<UInt8>'s own lexicographic order on random byte paths,
    /// with duplicates, prefixes and bytes above 0x7F.
    @Test func matchesTheOrderOfTheBytes() {
        var rng = SeededRandom(state: 77)
        let alphabet: [String] = ["a", "b", "/", "-", ".", "é", "e\u{301}", "Ω", "z", "\u{1}"]
        var paths: [String] = []
        for _ in 0..<3000 {
            let n = Int(rng.next() % 7)
            paths.append((0..<n).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }.joined())
        }
        paths += paths.prefix(500)   // exact duplicates
        let got = PathOrder.sortedUnique(paths.raw)
        var seen: [[UInt8]: String] = [:]
        for p in paths { seen[Array(p.utf8)] = p }
        let want = seen.keys.sorted { $0.lexicographicallyPrecedes($1) }
        #expect(got.map(\.bytes) == want)
        #expect(PathOrder.sortedUnique([]) == [])
        #expect(PathOrder.compare("ab", "ab") == 0)
        #expect(PathOrder.precedes("ab", "abc") && !PathOrder.precedes("abc", "ab"))
        #expect(PathOrder.precedes("a-c", "a/b"))   // '-' 0x2D before '/' 0x2F
        #expect(PathOrder.precedes("z", "\u{e9}"))  // 0x7A before 0xC3
    }

    /// Two names that are canonically equivalent Unicode ("é" composed and
    /// decomposed) are different files; String's `==` would call them equal.
    @Test func canonicallyEquivalentNamesStayTwoFiles() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let composed = dir.write("caf\u{e9}", Array("a needle".utf8))
        let decomposed = dir.write("cafe\u{301}", Array("needle!".utf8))
        #expect(composed == decomposed)   // String equality: canonical equivalence
        #expect(Array(composed.utf8) != Array(decomposed.utf8))
        let r = run([sluiceExecutable, "scan", "--backend", "cpu", "--count", "-e", "needle", dir.path])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.utf8.split(separator: UInt8(ascii: "\n")).map { Array($0) }
        #expect(lines == [Array((decomposed + ":1").utf8), Array((composed + ":1").utf8)])
    }
}
