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
            #"{"path":"\#(a)","offset":3,"pattern":0,"literal":"aB"}"#,
            #"{"path":"\#(a)","offset":6,"pattern":0,"literal":"aB"}"#,
            #"{"path":"\#(a)","offset":10,"pattern":0,"literal":"aB"}"#,
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
