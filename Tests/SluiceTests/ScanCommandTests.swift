#if canImport(Glibc)
import Glibc
#endif
import Testing

/// `sluice scan` run as a user would.
@Suite(.serialized) struct ScanCommandTests {
    /// Where grep's non-overlapping semantics agree with ours (literals that
    /// cannot overlap themselves or each other), the offsets are the same.
    @Test func agreesWithGrepOnNonOverlappingLiterals() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 21)
        var paths: [String] = []
        for i in 0..<4 {
            var text = textLikeBytes(200_000 + i * 70_001, &rng)
            for k in 0..<40 {
                let needle = Array((k % 2 == 0 ? "Q7needle#" : "Z9other%").utf8)
                let p = (k * 4999 + i * 13) % (text.count - needle.count)
                text.replaceSubrange(p..<(p + needle.count), with: needle)
            }
            paths.append(dir.write("g\(i).txt", text))
        }
        let ours = run([sluiceExecutable, "scan", "--backend", "cpu", "--chunk-size", "8K", "--quiet",
                        "-e", "Q7needle#", "-e", "Z9other%", dir.path])
        #expect(ours.status == 0, "\(ours.stderr)")
        let grep = run(["/bin/grep", "-r", "-F", "-b", "-o", "-a", "-H", "-e", "Q7needle#", "-e", "Z9other%", dir.path])
        #expect(grep.status == 0)
        let mine = Set(ours.stdout.split(separator: "\n").map(String.init))
        let theirs = Set(grep.stdout.split(separator: "\n").map(String.init))
        #expect(mine.count == 160)
        #expect(mine == theirs)
    }

    @Test func outputModesAndExitStatus() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let a = dir.write("a", Array("xx ab\nAB aab\u{1}\u{2}".utf8))
        let b = dir.write("b", Array("nothing here".utf8))
        let empty = dir.write("c", [])
        let patterns = dir.write("pats", Array("ab\r\n\nzz\n".utf8))
        let plain = run([sluiceExecutable, "scan", "--backend", "cpu", "-f", patterns, "-e", #"\x01\x02"#, b, a, empty])
        #expect(plain.status == 0)
        #expect(plain.stdout == "\(a):3:ab\n\(a):10:ab\n\(a):12:\u{1}\u{2}\n")

        let ci = run([sluiceExecutable, "scan", "--backend", "cpu", "-i", "--json", "-e", "aB", a])
        #expect(ci.status == 0)
        #expect(ci.stdout.split(separator: "\n") == [
            #"{"path":"\#(a)","line":1,"offset":3,"pattern":0,"literal":"aB"}"#,
            #"{"path":"\#(a)","line":2,"offset":6,"pattern":0,"literal":"aB"}"#,
            #"{"path":"\#(a)","line":2,"offset":10,"pattern":0,"literal":"aB"}"#,
        ].map { Substring($0) })

        let count = run([sluiceExecutable, "scan", "--backend", "cpu", "--count", "-e", "a", a, b])
        #expect(count.stdout == "\(a):3\n")
        let list = run([sluiceExecutable, "scan", "--backend", "cpu", "-l", "-e", "o", a, b])
        #expect(list.stdout == "\(b)\n")

        let none = run([sluiceExecutable, "scan", "--backend", "cpu", "-e", "absent", a, b])
        #expect(none.status == 1 && none.stdout.isEmpty)
        let error = run([sluiceExecutable, "scan", "--backend", "cpu", "-e", "ab", a, dir.file("missing")])
        #expect(error.status == 2)
        #expect(error.stderr.contains(dir.file("missing")))
        #expect(error.stdout.contains("\(a):3:ab"))
    }

    /// `-n` against `grep -H -n -b -o -F` on literals that cannot overlap
    /// (where grep's semantics agree), over files of many lines and chunks.
    @Test func lineNumbersAgreeWithGrep() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 16)
        var paths: [String] = []
        for i in 0..<3 {
            var text = textLikeBytes(90_000 + i * 40_000, &rng)
            for k in 0..<60 {
                let needle = Array((k % 3 == 0 ? "Q7needle#" : "Z9\nother%").utf8)
                let p = (k * 2011 + i * 7) % (text.count - needle.count)
                text.replaceSubrange(p..<(p + needle.count), with: needle)
            }
            paths.append(dir.write("n\(i).txt", text))
        }
        paths.append(dir.write("small.txt", Array("a\nQ7needle#\n\nQ7needle#".utf8)))
        let ours = run([sluiceExecutable, "scan", "--backend", "cpu", "--chunk-size", "8K", "--quiet", "-n",
                        "-e", "Q7needle#", "-e", "Z9", dir.path])
        #expect(ours.status == 0, "\(ours.stderr)")
        let grep = run(["/bin/grep", "-r", "-F", "-n", "-b", "-o", "-a", "-H", "-e", "Q7needle#", "-e", "Z9", dir.path])
        #expect(grep.status == 0)
        let mine = ours.stdout.split(separator: "\n").map(String.init)
        #expect(mine.count > 150)
        #expect(Set(mine) == Set(grep.stdout.split(separator: "\n").map(String.init)))
        #expect(mine == mine.sorted { a, b in
            let (pa, pb) = (a.split(separator: ":"), b.split(separator: ":"))
            return (pa[0], Int(pa[2])!) < (pb[0], Int(pb[2])!)
        }, "sorted by path, then offset")
    }

    /// `-Z` ends each path with a NUL, as `grep -Z` does, in every output mode.
    @Test func nullAfterPaths() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let a = dir.write("a", Array("xab\nab".utf8))
        let b = dir.write("b:c", Array("ab".utf8))
        let plain = run([sluiceExecutable, "scan", "--backend", "cpu", "-Z", "-e", "ab", a, b])
        let grep = run(["/bin/grep", "-Z", "-H", "-b", "-o", "-F", "-e", "ab", a, b])
        #expect(plain.status == 0 && plain.stdout == grep.stdout)
        #expect(plain.stdout == "\(a)\u{0}1:ab\n\(a)\u{0}4:ab\n\(b)\u{0}0:ab\n")
        let numbered = run([sluiceExecutable, "scan", "--backend", "cpu", "-Z", "-n", "-e", "ab", a])
        #expect(numbered.stdout == run(["/bin/grep", "-Z", "-H", "-n", "-b", "-o", "-F", "-e", "ab", a]).stdout)
        let list = run([sluiceExecutable, "scan", "--backend", "cpu", "-Z", "-l", "-e", "ab", a, b])
        #expect(list.stdout == run(["/bin/grep", "-Z", "-l", "-F", "-e", "ab", a, b]).stdout)
        let counts = run([sluiceExecutable, "scan", "--backend", "cpu", "-Z", "-c", "-e", "ab", a, b])
        #expect(counts.stdout == "\(a)\u{0}2\n\(b)\u{0}1\n")
    }

    /// Dense matches stream out under a memory limit that holding a file's
    /// matches (16 bytes or more each) would break: 8 MiB of `a` has 8 Mi
    /// matches; the process may map 450 MB, ring and thread stacks included
    /// (the build that held every match died here with an allocation failure).
    @Test func denseMatchesStreamUnderAMemoryLimit() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let path = dir.file("a")
        #expect(run(["/bin/sh", "-c", "head -c 8388608 /dev/zero | tr '\\0' a > \(path)"]).status == 0)
        let r = run(["/bin/sh", "-c",
                     "ulimit -v 450000; \(sluiceExecutable) scan --backend cpu --quiet -e a \(path) | wc -l"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "8388608\n")
    }

    @Test func badPatternInputIsAClearUsageError() {
        let none = run([sluiceExecutable, "scan", "/dev/null"])
        #expect(none.status == 2 && none.stderr.contains("-e"))
        let empty = run([sluiceExecutable, "scan", "-e", "", "/dev/null"])
        #expect(empty.status == 2 && empty.stderr.contains("empty"))
        let escape = run([sluiceExecutable, "scan", "-e", #"\xZZ"#, "/dev/null"])
        #expect(escape.status == 2 && escape.stderr.contains("hex"))
        let missing = run([sluiceExecutable, "scan", "-f", "/nonexistent/patterns", "/dev/null"])
        #expect(missing.status == 2 && missing.stderr.contains("/nonexistent/patterns"))
    }
}
