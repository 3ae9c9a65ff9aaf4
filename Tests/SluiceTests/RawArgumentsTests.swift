import Sluice
import Testing

/// `RawArguments.prepare`: what ArgumentParser gets, and the raw bytes kept aside.
@Suite struct RawArgumentsTests {
    static func words(_ s: String...) -> [[UInt8]] { s.map { Array($0.utf8) } }

    @Test func everySpellingOfDashEBecomesOneWordWithItsValue() {
        let cases: [([String], [String], [String])] = [
            (["scan", "-e", "abc", "f"], ["scan", "--regexp=abc", "f"], ["abc"]),
            (["scan", "-eabc", "f"], ["scan", "--regexp=abc", "f"], ["abc"]),
            (["scan", "-e=abc", "f"], ["scan", "--regexp=abc", "f"], ["abc"]),  // ArgumentParser's meaning, kept
            (["scan", "--regexp", "abc", "f"], ["scan", "--regexp=abc", "f"], ["abc"]),
            (["scan", "--regexp=a=b", "f"], ["scan", "--regexp=a=b", "f"], ["a=b"]),
            (["scan", "-e", "-foo", "f"], ["scan", "--regexp=-foo", "f"], ["-foo"]),
            (["scan", "-ne", "-foo", "f"], ["scan", "-n", "--regexp=-foo", "f"], ["-foo"]),
            (["scan", "-Zne", "x", "f"], ["scan", "-Zn", "--regexp=x", "f"], ["x"]),
            (["scan", "--regexp", "--", "f"], ["scan", "--regexp=--", "f"], ["--"]),
            (["scan", "-ie", "x", "-c", "f"], ["scan", "-i", "--regexp=x", "-c", "f"], ["x"]),
            (["scan", "-e", "", "f"], ["scan", "--regexp", "", "f"], [""]),
            (["scan", "-e", "a", "--regexp", "-b", "-e", "c", "f"],
             ["scan", "--regexp=a", "--regexp=-b", "--regexp=c", "f"], ["a", "-b", "c"]),
        ]
        for (argv, parsed, literals) in cases {
            let r = RawArguments.prepare(argv.map { Array($0.utf8) })
            #expect(r.words == parsed, "\(argv)")
            #expect(r.literals == literals.map { Array($0.utf8) }, "\(argv)")
            #expect(r.patternFiles.isEmpty)
        }
    }

    @Test func patternFilesTooAndOtherWordsAlone() {
        let r = RawArguments.prepare(Self.words("scan", "-f", "-lits", "--file=b", "-q", "--backend", "cpu", "x"))
        #expect(r.words == ["scan", "--file=-lits", "--file=b", "-q", "--backend", "cpu", "x"])
        #expect(r.patternFiles == Self.words("-lits", "b"))
        // After `--` words are paths; an unknown short group is ArgumentParser's to judge.
        let s = RawArguments.prepare(Self.words("scan", "-e", "a", "--", "-e", "b", "-xe"))
        #expect(s.words == ["scan", "--regexp=a", "--", "-e", "b", "-xe"])
        #expect(s.literals == Self.words("a"))
        let t = RawArguments.prepare(Self.words("scan", "-x", "-e"))
        #expect(t.words == ["scan", "-x", "-e"])  // a lone -e at the end: "missing value" from ArgumentParser
        #expect(t.literals.isEmpty)
    }

    @Test func otherCommandsPassThrough() {
        // hash's -c takes a value and count has no -e: nothing is rewritten.
        let argv = Self.words("hash", "-c", "-e", "list")
        #expect(RawArguments.prepare(argv).words == ["hash", "-c", "-e", "list"])
        #expect(RawArguments.prepare(argv).literals.isEmpty)
        #expect(RawArguments.prepare([]).words == [])
    }

    @Test func rawBytesAreKeptWhereTheWordIsRepaired() {
        let r = RawArguments.prepare([Array("scan".utf8), Array("-e".utf8), [0xFF, 0x41], Array("-f".utf8), [0x70, 0xC3]])
        #expect(r.literals == [[0xFF, 0x41]])
        #expect(r.patternFiles == [[0x70, 0xC3]])
        #expect(r.words == ["scan", "--regexp=\u{FFFD}A", "--file=p\u{FFFD}"])
    }
}
