#if canImport(Glibc)
import Glibc
#endif
import Testing

/// `sluice count` run as a user would, compared with `wc -c -l`.
@Suite(.serialized) struct CountCommandTests {
    static let chunk = 16384

    func parse(_ stdout: String) -> [String: (lines: UInt64, bytes: UInt64)] {
        var out: [String: (UInt64, UInt64)] = [:]
        for line in stdout.split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count >= 3, let l = UInt64(parts[0]), let b = UInt64(parts[1]) else { continue }
            out[parts[2...].joined(separator: " ")] = (l, b)
        }
        return out
    }

    @Test(arguments: [["uring"], ["pread"], ["uring", "--direct"], ["pread", "--direct"]])
    func agreesWithWcOnEdgeSizes(ingest: [String]) throws {
        let backend = "cpu"
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 77)
        let c = CountCommandTests.chunk
        var paths: [String] = []
        for size in [0, 1, c - 1, c, c + 1, 3 * c, 5 * (1 << 20) + 17] {
            paths.append(dir.write("f\(size)", textLikeBytes(size, &rng)))
        }
        let r = run([sluiceExecutable, "count", "--backend", backend, "--ingest"] + ingest
                    + ["--chunk-size", "\(c)", "--slots", "4", "--quiet"] + paths)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let ours = parse(r.stdout)
        let theirs = wcCounts(paths)
        #expect(theirs.count == paths.count + 1)
        for p in paths + ["total"] {
            #expect(ours[p]?.lines == theirs[p]?.lines, "\(p)")
            #expect(ours[p]?.bytes == theirs[p]?.bytes, "\(p)")
        }
    }

    @Test func walksTreesInByteOrderSkippingLinksAndSpecialFiles() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 5)
        dir.write("tree/b.txt", textLikeBytes(1000, &rng))
        dir.write("tree/a/z.bin", textLikeBytes(70_000, &rng))
        dir.write("tree/a/Y.bin", textLikeBytes(3, &rng))
        dir.write("tree/c/empty", [])
        symlink(dir.file("tree/b.txt"), dir.file("tree/link-to-b"))
        mkfifo(dir.file("tree/pipe"), 0o644)
        let r = run([sluiceExecutable, "count", "--backend", "cpu", "--chunk-size", "16K", dir.file("tree")])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map { $0.split(separator: " ").last.map(String.init) ?? "" }
        #expect(lines == ["a/Y.bin", "a/z.bin", "b.txt", "c/empty"].map { dir.file("tree/" + $0) } + ["total"])
        #expect(r.stderr.contains("skipping symbolic link: \(dir.file("tree/link-to-b"))"))
        #expect(r.stderr.contains("skipping FIFO: \(dir.file("tree/pipe"))"))
        let files = ["a/Y.bin", "a/z.bin", "b.txt", "c/empty"].map { dir.file("tree/" + $0) }
        let theirs = wcCounts(files)
        let ours = parse(r.stdout)
        for p in files + ["total"] {
            #expect(ours[p]?.lines == theirs[p]?.lines && ours[p]?.bytes == theirs[p]?.bytes, "\(p)")
        }
    }

    @Test func missingAndUnreadablePathsExitTwoNamingThePath() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let good = dir.write("good", Array("one\ntwo\n".utf8))
        let locked = dir.write("locked", Array("secret\n".utf8))
        chmod(locked, 0)
        let missing = dir.file("does-not-exist")
        let r = run([sluiceExecutable, "count", "--backend", "cpu", good, missing, locked])
        #expect(r.status == 2)
        #expect(r.stderr.contains(missing))
        #expect(parse(r.stdout)[good]?.lines == 2)
        #expect(parse(r.stdout)[good]?.bytes == 8)
        if getuid() != 0 {  // root reads mode-000 files
            #expect(r.stderr.contains(locked))
        }
    }

    @Test func badOptionsAreUsageErrorsWithExitTwo() {
        let r = run([sluiceExecutable, "count", "--chunk-size", "1000", "/dev/null"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("chunk-size"))
        let b = run([sluiceExecutable, "count", "--backend", "tpu", "/dev/null"])
        #expect(b.status == 2)
        #expect(b.stderr.contains("backend"))
    }
}
