#if canImport(Glibc)
import Glibc
#endif
import Sluice
import SluiceCore
import Testing

/// File names are bytes: names that are not UTF-8 (0xFF, 0x80), or that
/// hold a newline or a colon, are walked, opened, printed as their raw
/// bytes and accepted in `hash --check` lists, like any other.
@Suite(.serialized) struct FileNameBytesTests {
    /// The odd names, as bytes.
    static let names: [[UInt8]] = [
        Array("bad".utf8) + [0xFF] + Array("name".utf8),
        Array("x".utf8) + [0x80] + Array("y".utf8),
        Array("new\nline".utf8),
        Array("co:lon".utf8),
        Array("plain".utf8),
    ]

    static func b(_ s: String) -> [UInt8] { Array(s.utf8) }

    /// A directory `t` under `dir` holding a file of each name; each file
    /// has "needle" at offsets 0 and 16 (and the file's number after it).
    static func makeTree(_ dir: ScratchDirectory) -> [UInt8] {
        let tree = b(dir.path + "/t")
        mkdir(dir.path + "/t", 0o755)
        for (i, name) in names.enumerated() {
            writeRawPath(tree + [0x2F] + name, b("needle x\(i)\nabcd needle\n"))
        }
        return tree
    }

    /// `path NUL rest NEWLINE` records of `-Z` output (grep's and ours), as (path, rest).
    static func nullRecords(_ out: [UInt8]) -> [([UInt8], [UInt8])]? {
        var records: [([UInt8], [UInt8])] = []
        var i = 0
        while i < out.count {
            guard let nul = out[i...].firstIndex(of: 0), let nl = out[nul...].firstIndex(of: 0x0A) else { return nil }
            records.append((Array(out[i..<nul]), Array(out[(nul + 1)..<nl])))
            i = nl + 1
        }
        return records
    }

    static func sorted(_ records: [([UInt8], [UInt8])]) -> [[UInt8]] {
        records.map { $0.0 + [0] + $0.1 }.sorted { $0.lexicographicallyPrecedes($1) }
    }

    @Test func walkAndNamedFilesScanLikeGrep() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let tree = FileNameBytesTests.makeTree(dir)
        let sluice = FileNameBytesTests.b(sluiceExecutable)
        let b = FileNameBytesTests.b

        // -Z: records split unambiguously; the same records as grep's, in path byte order.
        let ours = runBytes([sluice, b("scan"), b("--backend"), b("cpu"), b("-q"), b("-Z"), b("-e"), b("needle"), tree])
        #expect(ours.status == 0, "\(ours.stderr)")
        #expect(ours.stderr.isEmpty)
        let grep = runBytes([b("/bin/grep"), b("-r"), b("-Z"), b("-F"), b("-b"), b("-o"), b("-a"), b("-H"), b("-e"), b("needle"), tree])
        #expect(grep.status == 0)
        let mine = try #require(FileNameBytesTests.nullRecords(ours.stdout))
        let theirs = try #require(FileNameBytesTests.nullRecords(grep.stdout))
        #expect(mine.count == 2 * FileNameBytesTests.names.count)
        #expect(FileNameBytesTests.sorted(mine) == FileNameBytesTests.sorted(theirs))
        let paths = mine.map(\.0)
        #expect(zip(paths, paths.dropFirst()).allSatisfy { !$1.lexicographicallyPrecedes($0) }, "output in path byte order")
        for name in FileNameBytesTests.names {
            #expect(paths.contains(tree + [0x2F] + name))
        }

        // Plain output: the same lines as grep's (a name with a newline splits alike in both).
        let plain = runBytes([sluice, b("scan"), b("--backend"), b("cpu"), b("-q"), b("-e"), b("needle"), tree])
        let grepPlain = runBytes([b("/bin/grep"), b("-r"), b("-F"), b("-b"), b("-o"), b("-a"), b("-H"), b("-e"), b("needle"), tree])
        func lines(_ out: [UInt8]) -> [[UInt8]] {
            out.split(separator: 0x0A, omittingEmptySubsequences: false).map(Array.init).sorted { $0.lexicographicallyPrecedes($1) }
        }
        #expect(plain.status == 0)
        #expect(lines(plain.stdout) == lines(grepPlain.stdout))

        // Each odd file named on the command line: byte for byte grep's output.
        for name in FileNameBytesTests.names {
            let path = tree + [0x2F] + name
            let one = runBytes([sluice, b("scan"), b("--backend"), b("cpu"), b("-e"), b("needle"), path])
            let oracle = runBytes([b("/bin/grep"), b("-F"), b("-b"), b("-o"), b("-a"), b("-H"), b("-e"), b("needle"), path])
            #expect(one.status == 0, "\(one.stderr)")
            #expect(one.stdout == oracle.stdout, "\(String(decoding: name, as: UTF8.self))")
            let numbered = runBytes([sluice, b("scan"), b("--backend"), b("cpu"), b("-n"), b("-e"), b("needle"), path])
            let grepNumbered = runBytes([b("/bin/grep"), b("-n"), b("-F"), b("-b"), b("-o"), b("-a"), b("-H"), b("-e"), b("needle"), path])
            #expect(numbered.stdout == grepNumbered.stdout)
        }

        // -c and -l (with and without -Z): the raw path bytes, in path byte order.
        let byteOrder = FileNameBytesTests.names.map { tree + [0x2F] + $0 }.sorted { $0.lexicographicallyPrecedes($1) }
        let counts = runBytes([sluice, b("scan"), b("--backend"), b("cpu"), b("-q"), b("-c"), b("-e"), b("needle"), tree])
        #expect(counts.stdout == byteOrder.flatMap { $0 + b(":2\n") })
        let countsZ = runBytes([sluice, b("scan"), b("--backend"), b("cpu"), b("-q"), b("-c"), b("-Z"), b("-e"), b("needle"), tree])
        #expect(countsZ.stdout == byteOrder.flatMap { $0 + [0] + b("2\n") })
        let list = runBytes([sluice, b("scan"), b("--backend"), b("cpu"), b("-q"), b("-l"), b("-e"), b("needle"), tree])
        #expect(list.stdout == byteOrder.flatMap { $0 + [0x0A] })
        let listZ = runBytes([sluice, b("scan"), b("--backend"), b("cpu"), b("-q"), b("-l"), b("-Z"), b("-e"), b("needle"), tree])
        let grepListZ = runBytes([b("/bin/grep"), b("-r"), b("-l"), b("-Z"), b("-F"), b("-e"), b("needle"), tree])
        #expect(listZ.stdout == byteOrder.flatMap { $0 + [0] })
        #expect(Set(listZ.stdout.split(separator: 0).map(Array.init)) == Set(grepListZ.stdout.split(separator: 0).map(Array.init)))
    }

    /// `--json` writes a path that is not UTF-8 as `{"bytes":"BASE64"}`
    /// (base64 from python3), others as JSON strings.
    @Test func jsonPathsAreBase64BytesWhenNotUTF8() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let tree = FileNameBytesTests.makeTree(dir)
        let b = FileNameBytesTests.b
        let bad = tree + [0x2F] + FileNameBytesTests.names[0]
        let hex = bad.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        let py = run(["/usr/bin/env", "python3", "-c", "import base64,sys; print(base64.b64encode(bytes.fromhex(sys.argv[1])).decode())", hex])
        try #require(py.status == 0, "python3 is needed: \(py.stderr)")
        let base64 = String(py.stdout.filter { $0 != "\n" })
        let json = runBytes([b(sluiceExecutable), b("scan"), b("--backend"), b("cpu"), b("--json"), b("-e"), b("needle"), bad])
        #expect(json.status == 0, "\(json.stderr)")
        let text = try #require(String(validating: json.stdout, as: UTF8.self), "JSON output is UTF-8")
        #expect(text.split(separator: "\n") == [
            #"{"path":{"bytes":"\#(base64)"},"line":1,"offset":0,"pattern":0,"literal":"needle"}"#,
            #"{"path":{"bytes":"\#(base64)"},"line":2,"offset":15,"pattern":0,"literal":"needle"}"#,
        ].map { Substring($0) })

        let newline = tree + [0x2F] + FileNameBytesTests.names[2]
        let escaped = runBytes([b(sluiceExecutable), b("scan"), b("--backend"), b("cpu"), b("--json"), b("-e"), b("x2"), newline])
        #expect(escaped.stdout == b(#"{"path":"\#(dir.path)/t/new\nline","line":1,"offset":7,"pattern":0,"literal":"x2"}"#) + [0x0A])
    }

    /// `count` prints the raw names as `wc -c -l` does (names without a
    /// newline, which wc quotes), from a walk and from the command line.
    @Test func countPrintsRawNamesLikeWc() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let tree = FileNameBytesTests.makeTree(dir)
        let b = FileNameBytesTests.b
        let files = FileNameBytesTests.names.filter { !$0.contains(0x0A) }.map { tree + [0x2F] + $0 }
        let ours = runBytes([b(sluiceExecutable), b("count"), b("--backend"), b("cpu"), b("-q")] + files)
        let wc = runBytes([b("/usr/bin/wc"), b("-c"), b("-l")] + files)
        #expect(ours.status == 0, "\(ours.stderr)")
        #expect(wc.status == 0)
        #expect(ours.stdout == wc.stdout)

        // The walk finds every name, the newline one included (5 files, 2 lines each).
        let walked = runBytes([b(sluiceExecutable), b("count"), b("--backend"), b("cpu"), b("-q"), tree])
        #expect(walked.status == 0, "\(walked.stderr)")
        #expect(walked.stderr.isEmpty)
        for file in files { #expect(walked.stdout.split(separator: 0x0A).contains { Array($0.suffix(file.count)) == file }) }
        #expect(walked.stdout.split(separator: 0x0A).last.map(Array.init) == b(" 10 110 total"))
    }

    /// `hash` prints raw names; `hash --check` reads a list whose path field
    /// is raw bytes (and whose own name is not UTF-8): exit 0 while the file
    /// is unchanged, 1 after it changes.
    @Test func hashAndCheckTakeRawNames() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let b = FileNameBytesTests.b
        let sluice = b(sluiceExecutable)
        let bad = b(dir.path + "/bad") + [0xFF] + b("name")
        let colon = b(dir.path + "/x") + [0x80] + b(":y")
        writeRawPath(bad, b("123456789"))   // CRC-32C check value e3069283
        writeRawPath(colon, [])
        let hashed = runBytes([sluice, b("hash"), b("--backend"), b("cpu"), bad, colon])
        #expect(hashed.status == 0, "\(hashed.stderr)")
        #expect(hashed.stdout == b("e3069283  ") + bad + [0x0A] + b("00000000  ") + colon + [0x0A])

        let list = b(dir.path + "/list") + [0xFE]
        writeRawPath(list, hashed.stdout)
        let ok = runBytes([sluice, b("hash"), b("--backend"), b("cpu"), b("--check"), list])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout == bad + b(": OK\n") + colon + b(": OK\n"))

        writeRawPath(bad, b("123456780"))
        let changed = runBytes([sluice, b("hash"), b("--backend"), b("cpu"), b("--check"), list])
        #expect(changed.status == 1, "\(changed.stderr)")
        #expect(changed.stdout == bad + b(": FAILED\n") + colon + b(": OK\n"))

        // A name that is missing is still named by its bytes (FAILED, exit 2).
        _ = (colon.map { CChar(bitPattern: $0) } + [0]).withUnsafeBufferPointer { unlink($0.baseAddress!) }
        let missing = runBytes([sluice, b("hash"), b("--backend"), b("cpu"), b("--check"), list])
        #expect(missing.status == 2)
        #expect(missing.stdout == bad + b(": FAILED\n") + colon + b(": FAILED\n"))
    }

    /// The library's walk keeps names that are not UTF-8 (no error), and
    /// joins names to the directory as spelled (`dir/` gives `dir/x`, `dir//` gives `dir//x`).
    @Test func walkKeepsRawNamesAndTheSpelling() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let tree = FileNameBytesTests.makeTree(dir)
        let walk = FileWalker(threads: 1).expand([RawPath(bytes: tree)])
        #expect(walk.errors.isEmpty)
        #expect(walk.files.map(\.bytes) == FileNameBytesTests.names.map { tree + [0x2F] + $0 }.sorted { $0.lexicographicallyPrecedes($1) })
        let slash = FileWalker(threads: 1).expand([RawPath(bytes: tree + [0x2F])])
        #expect(slash.files == walk.files)
        let twice = FileWalker(threads: 1).expand([RawPath(bytes: tree + [0x2F, 0x2F])])
        #expect(twice.files.map(\.bytes) == walk.files.map { tree + [0x2F] + $0.bytes.dropFirst(tree.count) })
    }

    /// Command-line words that are not UTF-8 reach a command as their bytes,
    /// and two that differ only in invalid bytes stay apart.
    @Test func rawArgumentsKeepPathBytes() {
        let ff = [UInt8(0x61), 0xFF]
        let fe = [UInt8(0x61), 0xFE]
        let prepared = RawArguments.prepare([Array("count".utf8), ff, fe, Array("é".utf8)])
        #expect(prepared.words.count == 4)
        #expect(prepared.words[1] != prepared.words[2])
        #expect(prepared.bytes(of: prepared.words[1]) == ff)
        #expect(prepared.bytes(of: prepared.words[2]) == fe)
        #expect(prepared.bytes(of: prepared.words[3]) == Array("é".utf8))
        let scan = RawArguments.prepare([Array("scan".utf8), Array("-e".utf8), ff, fe])
        #expect(scan.literals == [ff])
        #expect(scan.bytes(of: scan.words.last!) == fe)
    }
}
