#if canImport(Glibc)
import Glibc
#endif
import SluiceCore
import SluiceCPU
import SluiceIngest
import SluiceOps
import Testing

@testable import Sluice

/// CRC-32C from the definition, one bit a step in the unreflected form
/// (polynomial 0x1EDC6F41, bytes and result bit-reversed): no table, no
/// combining, nothing shared with `CRC32C`. The oracle for whole files.
func oracleCRC32C(_ bytes: [UInt8]) -> UInt32 {
    var reversed = [UInt8](repeating: 0, count: 256)
    for v in 0..<256 {
        var r = 0
        for i in 0..<8 where v & (1 << i) != 0 { r |= 1 << (7 - i) }
        reversed[v] = UInt8(r)
    }
    var c: UInt32 = 0xFFFF_FFFF
    bytes.withUnsafeBufferPointer { p in
        for byte in p {
            c ^= UInt32(reversed[Int(byte)]) << 24
            for _ in 0..<8 { c = c & 0x8000_0000 != 0 ? (c << 1) ^ 0x1EDC_6F41 : c << 1 }
        }
    }
    var r: UInt32 = 0
    for i in 0..<32 where c & (1 << i) != 0 { r |= 1 << (31 - i) }
    return ~r
}

/// CRC-32C of each path from Python's `crc32c` or `google-crc32c` package,
/// or nil when neither is installed (the check is then skipped).
func pythonCRC32C(_ paths: [String]) -> [String: UInt32]? {
    let script = """
        import sys
        try:
            from crc32c import crc32c as f
        except ImportError:
            try:
                import google_crc32c
                f = google_crc32c.value
            except ImportError:
                sys.exit(3)
        for p in sys.argv[1:]:
            print("%08x %s" % (f(open(p, "rb").read()), p))
        """
    let r = run(["/usr/bin/env", "python3", "-c", script] + paths)
    guard r.status == 0 else { return nil }
    var out: [String: UInt32] = [:]
    for line in r.stdout.split(separator: "\n") {
        let parts = line.split(separator: " ", maxSplits: 1)
        if parts.count == 2, let v = UInt32(parts[0], radix: 16) { out[String(parts[1])] = v }
    }
    return out
}

func hex8(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 8 - s.count) + s
}

/// HashJob over a scripted stream: reads complete in the order the test chooses.
@Suite struct HashJobTests {
    static let c = 4096
    static let sizes = [0, 1, c - 1, c, c + 1, 7 * c + 5, (1 << 20) + 11]

    func scanner(order: ScriptedReadStream.Order) throws -> (ChunkScheduler, ScriptedReadStream, CPUBackend) {
        let slots = 4
        let geometry = try RingGeometry(slotCount: slots, resultWordsPerSlot: HashJob.resultWords)
        let backend = try CPUBackend(configuration: BackendConfiguration(geometry: geometry, dataBytes: slots * HashJobTests.c, workers: 2))
        try backend.start()
        let stream = try ScriptedReadStream(
            region: backend.dataRegion, chunkBytes: HashJobTests.c, chunkCount: slots, order: order, stepsPerReap: 2)
        return (try ChunkScheduler(backend: backend, stream: stream), stream, backend)
    }

    @Test(arguments: [ScriptedReadStream.Order.submission, .reverse, .seeded(1), .seeded(99)])
    func wholeFileChecksumsInAnyCompletionOrder(order: ScriptedReadStream.Order) throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 12)
        var paths: [String] = []
        var contents: [[UInt8]] = []
        for (i, size) in HashJobTests.sizes.enumerated() {
            let bytes = textLikeBytes(size, &rng)
            paths.append(dir.write("f\(i)", bytes))
            contents.append(bytes)
        }
        let (scanner, _, backend) = try scanner(order: order)
        defer { try? backend.shutdown() }
        var files: [FileHash] = []
        let summary = try HashJob.run(scanner: scanner, paths: paths.raw, onFile: { files.append($0) })
        #expect(files.map(\.path) == paths)
        for (i, f) in files.enumerated() {
            #expect(f.errors.isEmpty, "\(f.path): \(f.errors)")
            #expect(f.crc32c == oracleCRC32C(contents[i]), "file \(i), \(contents[i].count) bytes")
            #expect(f.bytes == UInt64(contents[i].count))
        }
        #expect(summary.bytes == UInt64(HashJobTests.sizes.reduce(0, +)) && summary.filesFailed == 0)
    }

    @Test func aFailedReadFailsOnlyItsFile() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 13)
        let a = textLikeBytes(10 * HashJobTests.c, &rng), b = textLikeBytes(3 * HashJobTests.c + 1, &rng)
        let paths = [dir.write("a", a), dir.write("b", b)]
        let (scanner, stream, backend) = try scanner(order: .seeded(5))
        defer { try? backend.shutdown() }
        stream.inject(.errno(EIO), forChunk: 1)
        var files: [FileHash] = []
        _ = try HashJob.run(scanner: scanner, paths: paths.raw, onFile: { files.append($0) })
        #expect(files.count == 2)
        #expect(!files[0].errors.isEmpty)
        #expect(files[0].errors.contains { $0.message.contains(paths[0]) })
        #expect(files[1].errors.isEmpty && files[1].crc32c == oracleCRC32C(b))
    }
}

/// `sluice hash` run as a user would.
@Suite(.serialized) struct HashCommandTests {
    static let chunk = 16384

    @Test(arguments: ["cpu", "auto"], ["uring", "pread"])
    func agreesWithTheOracleOnEveryChunkEdge(backend: String, ingest: String) throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 99)
        let c = HashCommandTests.chunk
        var paths: [String] = []
        var expected: [String: UInt32] = [:]
        for size in [0, 1, c - 1, c, c + 1, 3 * c, 5 * (1 << 20) + 17] {
            let bytes = textLikeBytes(size, &rng)
            let p = dir.write("f\(size)", bytes)
            paths.append(p)
            expected[p] = oracleCRC32C(bytes)
        }
        let r = run([sluiceExecutable, "hash", "--backend", backend, "--ingest", ingest,
                     "--chunk-size", "16K", "--slots", "4", "--quiet"] + paths)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines == paths.map { hex8(expected[$0]!) + "  " + $0 })
        if let python = pythonCRC32C(paths) {
            for p in paths { #expect(python[p] == expected[p], "python crc32c disagrees with the oracle on \(p)") }
        }
    }

    /// `auto` checksums on the CPU where it has CRC-32C instructions, says
    /// so with --verbose (for a list to --check too), and the checksums are
    /// the oracle's; the rule never takes cuFile's GPU away.
    @Test func autoChecksumsOnTheCPUWhereItHasCRCInstructions() throws {
        #expect(ChecksumBackends.cpuReason(ingest: .auto, instructions: nil) == nil)
        #expect(ChecksumBackends.cpuReason(ingest: .gds, instructions: "sse4.2") == nil)
        let why = try #require(ChecksumBackends.cpuReason(ingest: .uring, instructions: "armv8-crc"))
        #expect(why.contains("armv8-crc instructions"), "\(why)")
        guard CRC32C.hardwareAvailable else { return }
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 41)
        let bytes = textLikeBytes(70_000, &rng)
        let path = dir.write("f", bytes)
        let r = run([sluiceExecutable, "hash", "--verbose", "--quiet", path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == hex8(oracleCRC32C(bytes)) + "  " + path + "\n")
        #expect(r.stderr.contains("auto: CRC-32C runs on the CPU's \(CRC32C.implementation) instructions"), "\(r.stderr)")
        let list = dir.write("list", Array(r.stdout.utf8))
        let check = run([sluiceExecutable, "hash", "--verbose", "--check", list])
        #expect(check.status == 0 && check.stdout == path + ": OK\n", "\(check.stdout) \(check.stderr)")
        #expect(check.stderr.contains("auto: CRC-32C runs on the CPU's"), "\(check.stderr)")
        // A named backend is not overruled.
        let named = run([sluiceExecutable, "hash", "--backend", "cpu", "--verbose", "--quiet", path])
        #expect(named.stderr.contains("chosen with --backend cpu"), "\(named.stderr)")
    }

    /// Several (simulated) devices take batches of files; the output is still in input order.
    @Test func severalDevicesGiveTheSameOutput() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 31)
        var paths: [String] = []
        var expected: [String] = []
        for i in 0..<150 {
            let bytes = textLikeBytes(Int.random(in: 0...40_000, using: &rng), &rng)
            paths.append(dir.write("f\(i)", bytes))
            expected.append(hex8(oracleCRC32C(bytes)) + "  " + paths[i])
        }
        let r = run([sluiceExecutable, "hash", "--backend", "cpu", "--devices", "0,1,2", "--chunk-size", "16K", "-q"] + paths)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.split(separator: "\n").map(String.init) == expected)
    }

    @Test func formatsHexBase64AndJSON() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let check = dir.write("check", Array("123456789".utf8))
        let empty = dir.write("empty", [])
        let hex = run([sluiceExecutable, "hash", "--backend", "cpu", check, empty])
        #expect(hex.status == 0, "\(hex.stderr)")
        #expect(hex.stdout == "e3069283  \(check)\n00000000  \(empty)\n")
        let b64 = run([sluiceExecutable, "hash", "--backend", "cpu", "--format", "base64", check, empty])
        #expect(b64.stdout == "4waSgw==  \(check)\nAAAAAA==  \(empty)\n")
        let json = run([sluiceExecutable, "hash", "--backend", "cpu", "--json", check])
        #expect(json.stdout == "{\"path\":\"\(check)\",\"crc32c\":\"e3069283\",\"bytes\":9}\n")
        let jsonB64 = run([sluiceExecutable, "hash", "--backend", "cpu", "--json", "--format", "base64", empty])
        #expect(jsonB64.stdout == "{\"path\":\"\(empty)\",\"crc32c\":\"AAAAAA==\",\"bytes\":0}\n")
        let bad = run([sluiceExecutable, "hash", "--format", "decimal", check])
        #expect(bad.status == 2 && bad.stderr.contains("format"))
    }

    @Test func walksTreesInByteOrder() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 3)
        var contents: [String: [UInt8]] = [:]
        for name in ["tree/b.txt", "tree/a/z.bin", "tree/a/Y.bin", "tree/c/empty"] {
            let bytes = textLikeBytes(name.hasSuffix("empty") ? 0 : Int.random(in: 1...70_000, using: &rng), &rng)
            contents[dir.write(name, bytes)] = bytes
        }
        symlink(dir.file("tree/b.txt"), dir.file("tree/link-to-b"))
        let r = run([sluiceExecutable, "hash", "--backend", "cpu", "--chunk-size", "16K", dir.file("tree")])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let order = ["a/Y.bin", "a/z.bin", "b.txt", "c/empty"].map { dir.file("tree/" + $0) }
        #expect(r.stdout.split(separator: "\n").map(String.init) == order.map { hex8(oracleCRC32C(contents[$0]!)) + "  " + $0 })
        #expect(r.stderr.contains("skipping symbolic link: \(dir.file("tree/link-to-b"))"))
    }

    @Test func missingPathsExitTwoNamingThePath() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let good = dir.write("good", Array("123456789".utf8))
        let missing = dir.file("does-not-exist")
        let r = run([sluiceExecutable, "hash", "--backend", "cpu", good, missing])
        #expect(r.status == 2)
        #expect(r.stderr.contains(missing))
        #expect(r.stdout == "e3069283  \(good)\n")
    }

    @Test func usageErrorsExitTwo() {
        // No path is not one here: the harness's standard input is not a terminal (InputSourceTests).
        for args in [["hash", "--check", "x", "y"], ["hash", "--json", "--check", "x"],
                     ["hash", "--format", "hex", "--check", "x"], ["hash", "--chunk-size", "1000", "/dev/null"]] {
            let r = run([sluiceExecutable] + args)
            #expect(r.status == 2, "\(args): \(r.stderr)")
            #expect(!r.stderr.isEmpty)
        }
    }

    /// Paths with a backslash or newline are escaped as sha256sum does, and read back by --check.
    @Test func escapesAwkwardPathsAndChecksThemBack() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let slash = dir.write("back\\slash", Array("123456789".utf8))
        let newline = dir.write("new\nline", [])
        let r = run([sluiceExecutable, "hash", "--backend", "cpu", slash, newline])
        #expect(r.status == 0, "\(r.stderr)")
        let escapedDir = dir.path  // /var/tmp/sluice-test-XXXXXX: nothing to escape
        #expect(r.stdout == "\\e3069283  \(escapedDir)/back\\\\slash\n\\00000000  \(escapedDir)/new\\nline\n")
        let list = dir.write("sums", Array(r.stdout.utf8))
        let c = run([sluiceExecutable, "hash", "--check", list, "--backend", "cpu"])
        #expect(c.status == 0, "\(c.stderr)")
        #expect(c.stdout == "\\\(escapedDir)/back\\\\slash: OK\n\\\(escapedDir)/new\\nline: OK\n")
    }

    @Test func checkReportsOKFailedMissingAndMalformed() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 21)
        let a = textLikeBytes(100_000, &rng), b = textLikeBytes(5, &rng)
        let pa = dir.write("a", a), pb = dir.write("b", b), pc = dir.write("c", Array("123456789".utf8))
        // Either encoding per line, hex in either case, sha256sum's binary marker.
        let good = """
            \(hex8(oracleCRC32C(a)).uppercased())  \(pa)
            \(CRC32CText.format(oracleCRC32C(b), as: .base64)) *\(pb)
            4waSgw==  \(pc)

            """
        let list = dir.write("good.crc", Array(good.utf8))
        let ok = run([sluiceExecutable, "hash", "--backend", "cpu", "--chunk-size", "16K", "--check", list])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout == "\(pa): OK\n\(pb): OK\n\(pc): OK\n")
        #expect(ok.stderr.isEmpty)

        // From standard input.
        let stdin = run(["/bin/sh", "-c", "exec \"$0\" hash --backend cpu --check - < \"$1\"", sluiceExecutable, list])
        #expect(stdin.status == 0 && stdin.stdout == ok.stdout, "\(stdin.stderr)")

        // A changed file: FAILED, exit 1.
        dir.write("b", b.reversed() + [0])
        let changed = run([sluiceExecutable, "hash", "--backend", "cpu", "--check", list])
        #expect(changed.status == 1, "\(changed.stderr)")
        #expect(changed.stdout == "\(pa): OK\n\(pb): FAILED\n\(pc): OK\n")
        #expect(changed.stderr.contains("1 computed checksum did NOT match"))

        // A missing file and a directory: FAILED with the reason on stderr, exit 2, in list order.
        let missing = dir.file("gone")
        let withMissing = dir.write("missing.crc", Array("00000000  \(missing)\n\(good)00000000  \(dir.path)\n".utf8))
        let m = run([sluiceExecutable, "hash", "--backend", "cpu", "--check", withMissing])
        #expect(m.status == 2)
        #expect(m.stdout == "\(missing): FAILED\n\(pa): OK\n\(pb): FAILED\n\(pc): OK\n\(dir.path): FAILED\n")
        #expect(m.stderr.contains(missing) && m.stderr.contains("not a regular file"))

        // Malformed lines are named with their numbers; the others are still checked.
        let malformed = dir.write("bad.crc", Array("e3069283  \(pc)\nnot a checksum line\ne306928  \(pc)\ne3069283 \(pc)\n".utf8))
        let bad = run([sluiceExecutable, "hash", "--backend", "cpu", "--check", malformed])
        #expect(bad.status == 2)
        #expect(bad.stdout == "\(pc): OK\n")
        for n in 2...4 { #expect(bad.stderr.contains("\(malformed):\(n): malformed"), "line \(n)") }
        #expect(!bad.stderr.contains("\(malformed):1:"))

        // No lines at all, or no list: exit 2 naming it.
        let empty = dir.write("empty.crc", [])
        let e = run([sluiceExecutable, "hash", "--backend", "cpu", "--check", empty])
        #expect(e.status == 2 && e.stderr.contains(empty))
        let none = run([sluiceExecutable, "hash", "--backend", "cpu", "--check", dir.file("no-list")])
        #expect(none.status == 2 && none.stderr.contains(dir.file("no-list")))
    }
}
