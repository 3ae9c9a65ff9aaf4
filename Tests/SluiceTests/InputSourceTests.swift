#if canImport(Glibc)
import Glibc
#endif
import SluiceCore
import SluiceCPU
import SluiceIngest
import SluiceOps
import Testing

@testable import Sluice

/// What Python reads from each path (the oracle for files whose size lies):
/// the bytes, in hex, one path a line.
func pythonReads(_ paths: [String]) -> [String: [UInt8]] {
    let script = """
        import sys
        for p in sys.argv[1:]:
            print(open(p, "rb").read().hex(), p)
        """
    let r = run(["/usr/bin/env", "python3", "-c", script] + paths)
    var out: [String: [UInt8]] = [:]
    for line in r.stdout.split(separator: "\n", omittingEmptySubsequences: false) where !line.isEmpty {
        let parts = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { continue }
        let hex = Array(parts[0].utf8)
        var bytes: [UInt8] = []
        var i = 0
        while i + 1 < hex.count {
            bytes.append(UInt8(String(decoding: hex[i...i + 1], as: UTF8.self), radix: 16)!)
            i += 2
        }
        out[String(parts[1])] = bytes
    }
    return out
}

/// Every start offset of `needle` in `bytes`, overlapping ones too.
func occurrences(of needle: [UInt8], in bytes: [UInt8]) -> [Int] {
    guard !needle.isEmpty, bytes.count >= needle.count else { return [] }
    return (0...(bytes.count - needle.count)).filter { Array(bytes[$0..<($0 + needle.count)]) == needle }
}

/// Runs a shell command line with `$0` the sluice executable and `$1`... the arguments.
func runShell(_ script: String, _ args: [String] = []) -> ProcessResult {
    run(["/bin/sh", "-c", script, sluiceExecutable] + args)
}

/// Files whose reported size is not their length, standard input, named
/// FIFOs and files that change while they are read.
@Suite struct InputSourceTests {
    /// procfs files whose bytes do not change between two reads, and a sysfs file (it reports a page).
    static let pseudoFiles: [String] = ["/proc/version", "/proc/sys/kernel/ostype", "/proc/cmdline", "/sys/devices/system/cpu/online"]
        .filter { access($0, R_OK) == 0 }

    @Test func procfsAndSysfsFilesAreCountedHashedAndScannedToTheirEnd() throws {
        let paths = InputSourceTests.pseudoFiles
        let truth = pythonReads(paths)
        #expect(truth.count == paths.count)
        let count = run([sluiceExecutable, "count", "--backend", "cpu"] + paths)
        #expect(count.status == 0, "\(count.stderr)")
        let hash = run([sluiceExecutable, "hash", "--backend", "cpu"] + paths)
        #expect(hash.status == 0, "\(hash.stderr)")
        #expect(!hash.stderr.contains("changed"))
        for path in paths {
            let bytes = try #require(truth[path])
            #expect(!bytes.isEmpty, "\(path) reads empty in Python")
            let lines = bytes.filter { $0 == 10 }.count
            #expect(count.stdout.split(separator: "\n").contains { line in
                line.split(separator: " ").map(String.init) == ["\(lines)", "\(bytes.count)", path]
            }, "\(path): \(count.stdout)")
            #expect(hash.stdout.contains("\(hex8(oracleCRC32C(bytes)))  \(path)\n"), "\(path): \(hash.stdout)")
        }
        // Scan: every (overlapping) occurrence of the file's first two bytes.
        for path in paths {
            let bytes = try #require(truth[path])
            let needle = Array(bytes.prefix(2))
            guard needle.allSatisfy({ $0 >= 0x21 && $0 < 0x7F && $0 != UInt8(ascii: "\\") }) else { continue }
            let scan = run([sluiceExecutable, "scan", "--backend", "cpu", "-e", String(decoding: needle, as: UTF8.self), path])
            #expect(scan.status == 0, "\(path): \(scan.stderr)")
            let expected = occurrences(of: needle, in: bytes).map { "\(path):\($0):\(String(decoding: needle, as: UTF8.self))\n" }.joined()
            #expect(scan.stdout == expected)
        }
    }

    /// The library reads them too, through the chunk path and the small-file packs.
    @Test func theScannerReadsProcfsFilesToTheirEnd() throws {
        let paths = InputSourceTests.pseudoFiles
        let truth = pythonReads(paths)
        let (scanner, _, backend) = try makeScriptedScanner(order: .submission)
        defer { try? backend.shutdown() }
        var counted: [String] = []
        _ = try CountJob.run(scanner: scanner, paths: paths.raw, onFile: { file in
            #expect(file.errors.isEmpty, "\(file.path): \(file.errors)")
            #expect(file.result.bytes == UInt64(truth[file.path.description]?.count ?? -1), "\(file.path)")
            #expect(file.result.newlines == UInt64(truth[file.path.description]?.filter { $0 == 10 }.count ?? -1))
            counted.append(file.path.description)
        })
        #expect(counted == paths)

        var packed: [String: Int] = [:]
        var failures: [String: [PipelineError]] = [:]
        try scanner.run(
            paths: paths.raw, opcode: .count, packing: ChunkScheduler.Packing(maxFileBytes: 4096),
            onChunk: { chunk in for f in chunk.packed { packed[f.path.description] = f.length } },
            onFile: { outcome in if !outcome.errors.isEmpty { failures[outcome.path.description] = outcome.errors } })
        #expect(failures.isEmpty, "\(failures)")
        for path in paths { #expect(packed[path] == truth[path]?.count, "\(path)") }
    }

    /// A read error while a file is copied names the file and the errno
    /// (/proc/self/mem reports 0 bytes and fails with EIO at offset 0).
    @Test func aReadErrorWhileCopyingNamesTheFileAndErrno() throws {
        do {
            let (fd, _) = try InputSource.open(path: "/proc/self/mem", direct: false)
            try? fd.close()
            Issue.record("/proc/self/mem opened and read to its end")
        } catch {
            guard case .io(let f) = error else {
                Issue.record("\(error)")
                return
            }
            #expect(f.path == "/proc/self/mem" && f.errno == EIO && f.operation == "read")
        }
        let r = run([sluiceExecutable, "count", "--backend", "cpu", "/proc/self/mem"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("/proc/self/mem: read failed") && r.stderr.contains("(errno \(EIO))"), "\(r.stderr)")
    }

    /// Bytes around the copy buffer's size and a chunk edge, with matches and newlines.
    func writeInput(_ dir: ScratchDirectory) -> (path: String, bytes: [UInt8]) {
        var rng = SeededRandom(state: 16)
        let bytes = textLikeBytes(StreamSpool.bufferBytes + 3 * 4096 + 17, &rng)
        return (dir.write("input", bytes), bytes)
    }

    /// `-` and a pipe with no path read standard input as `<stdin>`: the
    /// output is that of the same bytes in a regular file, renamed.
    @Test(arguments: ["scan", "count", "hash"])
    func standardInputReadsLikeTheSameFile(command: String) throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (path, bytes) = writeInput(dir)
        let args: String
        switch command {
        case "scan": args = "scan --backend cpu -e ab -e b"
        case "count": args = "count --backend cpu"
        default: args = "hash --backend cpu"
        }
        let file = runShell("\"$0\" \(args) \"$1\"", [path])
        #expect(file.status == 0, "\(file.stderr)")
        let expected = file.stdout.replacing(path, with: "<stdin>")
        #expect(expected.contains("<stdin>"))
        // The copy is made in $TMPDIR and leaves nothing there.
        let tmp = dir.file("tmp")
        mkdir(tmp, 0o700)
        let copied = runShell("cat \"$1\" | TMPDIR=\"$2\" \"$0\" \(args)", [path, tmp])
        #expect(copied.stdout == expected, "\(copied.stderr)")
        #expect(run(["/bin/ls", "-A", tmp]).stdout.isEmpty)
        for script in ["cat \"$1\" | \"$0\" \(args)", "cat \"$1\" | \"$0\" \(args) -", "\"$0\" \(args) - < \"$1\"",
                       "cat \"$1\" | \"$0\" \(args) /dev/stdin"] {
            let r = runShell(script, [path])
            #expect(r.status == 0, "\(script): \(r.stderr)")
            let want = script.hasSuffix("/dev/stdin") ? file.stdout.replacing(path, with: "/dev/stdin") : expected
            #expect(r.stdout == want, "\(script)")
        }
        // Independent oracles for the counts and the checksum.
        if command == "count" {
            #expect(expected.split(separator: " ", omittingEmptySubsequences: true).map(String.init) ==
                ["\(bytes.filter { $0 == 10 }.count)", "\(bytes.count)", "<stdin>\n"])
        } else if command == "hash" {
            #expect(expected == "\(hex8(oracleCRC32C(bytes)))  <stdin>\n")
        }
    }

    @Test func emptyStandardInputAndStandardInputWithAFile() throws {
        // The test harness's standard input is /dev/null: not a terminal, so it is read.
        let empty = run([sluiceExecutable, "hash", "--backend", "cpu"])
        #expect(empty.status == 0 && empty.stdout == "00000000  <stdin>\n", "\(empty.stderr)")
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let other = dir.write("other", Array("x\n".utf8))
        let r = runShell("printf 'a\\nb\\n' | \"$0\" count --backend cpu \"$1\" - \"$1\"", [other])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) } ==
            [["1", "2", other], ["2", "4", "<stdin>"], ["1", "2", other], ["4", "8", "total"]])
        let noLiteralsFromStdin = run([sluiceExecutable, "scan", "-f", "-"])
        #expect(noLiteralsFromStdin.status == 2 && noLiteralsFromStdin.stderr.contains("-f -"))
    }

    /// A FIFO named on the command line is read as a stream; one met in a walk is skipped.
    @Test(arguments: ["scan", "count", "hash"])
    func aNamedFIFOIsRead(command: String) throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let (path, _) = writeInput(dir)
        let fifo = dir.file("fifo")
        #expect(mkfifo(fifo, 0o600) == 0)
        let args = command == "scan" ? "scan --backend cpu -e ab" : "\(command) --backend cpu"
        let file = runShell("\"$0\" \(args) \"$1\"", [path])
        let r = runShell("cat \"$1\" > \"$2\" & \"$0\" \(args) \"$2\"; s=$?; wait; exit $s", [path, fifo])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == file.stdout.replacing(path, with: fifo))
        #expect(!r.stderr.contains("skipping"))
        let walked = run([sluiceExecutable, "count", "--backend", "cpu", dir.path])
        #expect(walked.stderr.contains("skipping FIFO: \(fifo)"))
        // A character device named is read too (it was skipped with a note).
        let device = run([sluiceExecutable, "count", "--backend", "cpu", "/dev/null"])
        #expect(device.status == 0 && device.stdout == "0 0 /dev/null\n", "\(device.stderr)")
        // Under auto a scan samples its input's matches first: from the walk's copy, never
        // by opening the FIFO again (whose writer is gone: that open would wait for ever).
        if command == "scan" {
            let auto = runShell("cat \"$1\" > \"$2\" & timeout -s KILL 60 \"$0\" scan -e ab \"$2\"; s=$?; wait; exit $s", [path, fifo])
            #expect(auto.status == 0, "\(auto.stderr)")
            #expect(auto.stdout == file.stdout.replacing(path, with: fifo))
        }
    }

    /// A file that grows between its first chunk and its last (unaligned)
    /// one fails with `fileChanged` naming it, not a rejected request.
    @Test func aFileThatGrowsDuringTheScanIsNamedAsChanged() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let c = ChunkSchedulerTests.c
        let path = dir.write("grows", [UInt8](repeating: 10, count: 10 * c + 100))
        let other = dir.write("other", [UInt8](repeating: 10, count: 3 * c))
        // Two slots: the last chunk is submitted well after the first one's result is handed out.
        let (scanner, _, backend) = try makeScriptedScanner(slots: 2, order: .submission)
        defer { try? backend.shutdown() }
        var appended = false
        var outcomes: [String: [PipelineError]] = [:]
        try scanner.run(
            paths: [path.raw, other.raw], opcode: .count,
            onChunk: { chunk in
                guard chunk.path == path, !appended else { return }
                appended = true
                let fd = open(path, O_WRONLY | O_APPEND)
                _ = write(fd, "grown", 5)
                close(fd)
            },
            onFile: { outcomes[$0.path.description] = $0.errors })
        #expect(appended)
        #expect(outcomes[other]?.isEmpty == true)
        let errors = try #require(outcomes[path])
        #expect(!errors.isEmpty)
        for error in errors {
            guard case .fileChanged(let p, let detail) = error else {
                Issue.record("not a fileChanged: \(error.message)")
                continue
            }
            #expect(p == path)
            #expect(detail.contains("\(10 * c + 100)") && detail.contains("\(10 * c + 105)"), "\(detail)")
        }
    }

    /// A file that shrinks during the scan is named too, with what was read.
    @Test func aFileThatShrinksDuringTheScanIsNamedAsChanged() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let c = ChunkSchedulerTests.c
        let path = dir.write("shrinks", [UInt8](repeating: 10, count: 10 * c + 100))
        let (scanner, _, backend) = try makeScriptedScanner(slots: 2, order: .submission)
        defer { try? backend.shutdown() }
        var truncated = false
        var errors: [PipelineError] = []
        try scanner.run(
            paths: [path.raw], opcode: .count,
            onChunk: { _ in
                guard !truncated else { return }
                truncated = true
                _ = truncate(path, off_t(5 * c + 7))
            },
            onFile: { errors = $0.errors })
        #expect(!errors.isEmpty)
        for error in errors {
            guard case .fileChanged(let p, _) = error else {
                Issue.record("not a fileChanged: \(error.message)")
                continue
            }
            #expect(p == path)
        }
    }
}
