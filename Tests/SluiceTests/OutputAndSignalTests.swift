#if canImport(Glibc)
import Glibc
#endif
import Sluice
import Testing

/// A child process started with raw-byte arguments and chosen descriptors.
private struct Child {
    let pid: pid_t

    /// Starts `argv`; fd 0 is /dev/null; fd 1 and 2 open `stdoutPath` and
    /// `stderrPath` (or take `stdoutFD` as fd 1); `defaultSIGPIPE` resets
    /// SIGPIPE to its default action in the child.
    init?(_ argv: [[UInt8]], stdinFD: Int32? = nil, stdoutPath: String? = nil, stdoutFD: Int32? = nil, stderrPath: String,
          defaultSIGPIPE: Bool = false) {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let stdinFD {
            posix_spawn_file_actions_adddup2(&actions, stdinFD, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        if let stdoutFD {
            posix_spawn_file_actions_adddup2(&actions, stdoutFD, 1)
        } else {
            posix_spawn_file_actions_addopen(&actions, 1, stdoutPath ?? "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        }
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_RDWR | O_CREAT | O_TRUNC | O_NOCTTY, 0o600)
        var cargs = cStrings(argv)
        defer { cargs.forEach { $0?.deallocate() } }
        var pid = pid_t()
        let rc = withChildSpawnAttributes(defaultSIGPIPE: defaultSIGPIPE) { attributes in
            withChildEnvironment { env in posix_spawn(&pid, cargs[0]!, &actions, &attributes, &cargs, env) }
        }
        guard rc == 0 else { return nil }
        self.pid = pid
    }

    /// The exit status once the child ended within `seconds`, else nil.
    func wait(seconds: Int) -> Int32? {
        for _ in 0..<(seconds * 100) {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                return (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
            }
            usleep(10_000)
        }
        return nil
    }

    /// The exit status as a shell reports it (128 + N for signal N).
    func wait() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
    }
}

private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// Runs `args` (after the sluice executable) and returns (status, stdout bytes, stderr).
private func runRaw(_ args: [[UInt8]], stdoutPath: String? = nil, dir: ScratchDirectory) -> (Int32, [UInt8], String) {
    let out = stdoutPath ?? dir.file("stdout")
    let err = dir.file("stderr")
    guard let child = Child([bytes(sluiceExecutable)] + args, stdoutPath: out, stderrPath: err) else {
        return (-1, [], "spawn failed")
    }
    let status = child.wait()
    return (status, stdoutPath == nil ? readBytes(out) : [], readFile(err))
}

/// Every byte offset where `needle` occurs in `haystack` (overlaps included).
private func naiveOffsets(_ needle: [UInt8], in haystack: [UInt8]) -> [Int] {
    guard needle.count <= haystack.count else { return [] }
    return (0...(haystack.count - needle.count)).filter { Array(haystack[$0..<($0 + needle.count)]) == needle }
}

/// Writes to standard output that fail are errors; signals end with 128 + N.
@Suite(.serialized) struct OutputAndSignalTests {
    /// A write that fails (ENOSPC on /dev/full) is an error naming standard
    /// output, for each command that prints, with exit status 2.
    @Test func writesToDevFullFail() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let file = dir.write("f", Array(repeating: Array("abc\n".utf8), count: 1000).flatMap { $0 })
        let list = dir.file("list")
        let made = runRaw([bytes("hash"), bytes("--backend"), bytes("cpu"), bytes(file)], stdoutPath: list, dir: dir)
        #expect(made.0 == 0, "\(made.2)")
        let commands: [[String]] = [
            ["scan", "--backend", "cpu", "-q", "-e", "abc", file],
            ["scan", "--backend", "cpu", "-q", "-c", "-e", "abc", file],
            ["count", "--backend", "cpu", "-q", file],
            ["hash", "--backend", "cpu", "-q", file],
            ["hash", "--backend", "cpu", "-q", "--check", list],
            ["doctor"],
            ["scan", "--help"],
        ]
        for command in commands {
            let (status, _, stderr) = runRaw(command.map(bytes), stdoutPath: "/dev/full", dir: dir)
            #expect(status == 2, "\(command): \(stderr)")
            #expect(stderr.contains("standard output") && stderr.contains("No space left on device"), "\(command): \(stderr)")
            #expect(!stderr.contains("interrupted"), "\(command): \(stderr)")
        }
    }

    /// On a full 64 KiB tmpfs the output stops at what fit, and the run
    /// says so with exit status 2 (it used to exit 0).
    @Test func writesToAFullFileSystemFail() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let mountPoint = dir.file("small")
        mkdir(mountPoint, 0o755)
        guard mount("tmpfs", mountPoint, "tmpfs", 0, "size=64k") == 0 else {
            print("skipped: cannot mount a tmpfs here (\(String(cString: strerror(errno))))")
            return
        }
        defer { umount(mountPoint) }
        // 20,000 matches, about 40 bytes a line: 800 KB of output.
        let file = dir.write("f", Array(repeating: Array("needle..\n".utf8), count: 20_000).flatMap { $0 })
        for command in [["scan", "--backend", "cpu", "-q", "-e", "needle", file], ["scan", "--backend", "cpu", "-q", "--json", "-e", "needle", file]] {
            let out = mountPoint + "/out"
            let (status, _, stderr) = runRaw(command.map(bytes), stdoutPath: out, dir: dir)
            #expect(status == 2, "\(command): \(stderr)")
            #expect(stderr.contains("standard output") && stderr.contains("No space left on device"), "\(command): \(stderr)")
            unlink(out)
        }
        // The hash line fits: a small output on the same file system still succeeds.
        let ok = runRaw([bytes("hash"), bytes("--backend"), bytes("cpu"), bytes(file)], stdoutPath: mountPoint + "/ok", dir: dir)
        #expect(ok.0 == 0, "\(ok.2)")
    }

    /// A closed pipe ends the run quietly with 141, whether SIGPIPE kills the
    /// process (its default) or is ignored and the write returns EPIPE.
    @Test func aClosedPipeEndsQuietlyWith141() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let file = dir.write("f", Array(repeating: Array("abc\n".utf8), count: 50_000).flatMap { $0 })
        let previous = signal(SIGPIPE, SIG_IGN)  // inherited as ignored unless reset
        defer { signal(SIGPIPE, previous) }
        for defaultAction in [true, false] {
            var fds: [Int32] = [0, 0]
            #expect(pipe(&fds) == 0)
            close(fds[0])  // nobody will read
            let err = dir.file("stderr")
            let child = try #require(Child(
                [sluiceExecutable, "scan", "--backend", "cpu", "-q", "-e", "abc", file].map(bytes),
                stdoutFD: fds[1], stderrPath: err, defaultSIGPIPE: defaultAction))
            close(fds[1])
            #expect(child.wait() == 141, "SIGPIPE default: \(defaultAction)")
            #expect(readFile(err) == "", "SIGPIPE default: \(defaultAction)")
        }
    }

    /// SIGTERM ends a run with 143 and SIGINT with 130, through the
    /// graceful path (the "interrupted" report), not by the default action.
    @Test func signalsEndWith128PlusTheirNumber() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let big = dir.file("sparse")
        close(open(big, O_CREAT | O_WRONLY, 0o600))
        #expect(truncate(big, 1 << 36) == 0)  // 64 GiB of holes: minutes to scan, no disk used
        for (number, expected) in [(SIGTERM, Int32(143)), (SIGINT, Int32(130))] {
            let err = dir.file("stderr")
            let child = try #require(Child(
                [sluiceExecutable, "scan", "--backend", "cpu", "-v", "-e", "x", big].map(bytes), stderrPath: err))
            // --verbose says which engine runs once the pool is up: the handlers are installed by then.
            var waited = 0
            while !readFile(err).contains("scan engine"), waited < 3000 {
                usleep(10_000)
                waited += 10
            }
            kill(child.pid, number)
            let status = child.wait()
            #expect(status == expected, "signal \(number): \(readFile(err))")
            #expect(readFile(err).contains("interrupted"), "signal \(number)")
        }
    }

    /// SIGTERM while standard input is a pipe that stays open and idle (as
    /// with `sleep 60 | sluice scan -e x`): the copy of standard input stops,
    /// and the process ends with 143 at once, not when the writer closes.
    @Test func aSignalStopsTheCopyOfAnIdleStandardInput() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        defer { close(ends[1]) }
        let err = dir.file("stderr")
        let child = try #require(Child(
            [sluiceExecutable, "scan", "--backend", "cpu", "-e", "x"].map(bytes), stdinFD: ends[0], stderrPath: err))
        close(ends[0])
        usleep(500_000)  // the handlers are installed first thing in main
        kill(child.pid, SIGTERM)
        let status = child.wait(seconds: 10)
        if status == nil { close(ends[1]) }
        #expect(status == 143, "\(readFile(err))")
        if status == nil { _ = child.wait() }
    }

    /// The progress line is cleared before a message: here the report of
    /// an interrupt, printed while a progress line is drawn on a terminal.
    @Test func theProgressLineIsClearedBeforeAMessage() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let big = dir.file("sparse")
        close(open(big, O_CREAT | O_WRONLY, 0o600))
        #expect(truncate(big, 1 << 36) == 0)
        // /dev/ptmx by hand: Glibc's module does not export posix_openpt and its kin.
        let master = open("/dev/ptmx", O_RDWR | O_NOCTTY)
        var unlock: Int32 = 0
        var number: UInt32 = 0
        guard master >= 0, ioctl(master, 0x4004_5431 /* TIOCSPTLCK */, &unlock) == 0,
              ioctl(master, 0x8004_5430 /* TIOCGPTN */, &number) == 0 else {
            print("skipped: no pseudo-terminal here")
            return
        }
        let name = "/dev/pts/\(number)"
        defer { close(master) }
        let child = try #require(Child(
            [sluiceExecutable, "scan", "--backend", "cpu", "-e", "x", big].map(bytes), stderrPath: name))
        var seen: [UInt8] = []
        var signalled = false
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            var p = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 100) >= 0 else { break }
            if p.revents & Int16(POLLIN) != 0 {
                let n = buffer.withUnsafeMutableBytes { read(master, $0.baseAddress, $0.count) }
                if n <= 0 { break }  // EIO: the child closed the terminal
                seen += buffer[0..<n]
            } else if p.revents != 0 {
                break
            }
            // A progress line is drawn (after a second): interrupt while it shows.
            if !signalled, naiveOffsets(bytes(" files, "), in: seen).count > 0 {
                kill(child.pid, SIGINT)
                signalled = true
            }
        }
        if !signalled { kill(child.pid, SIGKILL) }
        #expect(child.wait() == 130)
        #expect(signalled, "no progress line was drawn: \(String(decoding: seen, as: UTF8.self))")
        let message = try #require(naiveOffsets(bytes("sluice: interrupted"), in: seen).first)
        let clear = bytes("\r\u{1B}[K")
        #expect(message >= clear.count && Array(seen[(message - clear.count)..<message]) == clear,
                "\(String(decoding: seen, as: UTF8.self).debugDescription)")
    }

    /// `-e` takes its argument's raw bytes: 0xFF finds the byte 0xFF, not
    /// the UTF-8 of U+FFFD; `-e -foo` is a literal; `-f` opens a non-UTF-8 path.
    @Test func dashETakesRawBytesAndAnyValue() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let content: [UInt8] = bytes("a-foo b") + [0xFF, 0x41, 0xEF, 0xBF, 0xBD, 0xFF] + bytes(" -foo-foo\n")
        let file = dir.write("f", content)
        func lines(_ needle: [UInt8]) -> [UInt8] {
            naiveOffsets(needle, in: content).flatMap { bytes(file + ":\($0):") + needle + [0x0A] }
        }
        let ff = runRaw([bytes("scan"), bytes("--backend"), bytes("cpu"), bytes("-e"), [0xFF], bytes(file)], dir: dir)
        #expect(ff.0 == 0, "\(ff.2)")
        #expect(ff.1 == lines([0xFF]))
        #expect(naiveOffsets([0xFF], in: content) == [7, 12])
        for spelling in [[bytes("-e"), bytes("-foo")], [bytes("--regexp"), bytes("-foo")], [bytes("-e-foo")], [bytes("--regexp=-foo")]] {
            let r = runRaw([bytes("scan"), bytes("--backend"), bytes("cpu")] + spelling + [bytes(file)], dir: dir)
            #expect(r.0 == 0, "\(spelling): \(r.2)")
            #expect(r.1 == lines(bytes("-foo")), "\(spelling)")
        }
        // Escapes still work, and mix with raw bytes.
        let escaped = runRaw([bytes("scan"), bytes("--backend"), bytes("cpu"), bytes("-e"), bytes("\\xffA"), bytes(file)], dir: dir)
        #expect(escaped.1 == lines([0xFF, 0x41]))
        // A pattern file whose name is not UTF-8.
        let raw = bytes(dir.file("p")) + [0xFF]
        let fd = (raw + [0]).map { CChar(bitPattern: $0) }.withUnsafeBufferPointer { open($0.baseAddress!, O_WRONLY | O_CREAT, 0o600) }
        #expect(fd >= 0)
        _ = bytes("-foo\n").withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        let f = runRaw([bytes("scan"), bytes("--backend"), bytes("cpu"), bytes("-f"), raw, bytes(file)], dir: dir)
        #expect(f.0 == 0, "\(f.2)")
        #expect(f.1 == lines(bytes("-foo")))
    }

    /// A ring that cannot fit the machine is refused at once, with the
    /// numbers, before anything is allocated. The ring is about 1 TiB, so a
    /// host with that much memory free cannot show it.
    @Test(.enabled(if: (HostMemoryFacts.current().availableBytes ?? 0) < 1 << 40, "a host with 1 TiB free fits the ring"))
    func aRingLargerThanTheMachineIsRefused() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        // A sparse file of 16 TiB less a block (ext4's largest): the 1 GiB chunks are lowered
        // until it fills each of the 65,536 slots 16 times, to 16 MiB less 4 KiB.
        let file = dir.write("f", bytes("x\n"))
        #expect(truncate(file, (1 << 44) - 4096) == 0)
        let (status, out, stderr) = runRaw(
            ["scan", "--backend", "cpu", "--slots", "65536", "--chunk-size", "1G", "-e", "x", file].map(bytes), dir: dir)
        #expect(status == 2)
        #expect(out.isEmpty)
        #expect(stderr.contains("65536 slots of 16.0 MiB") && stderr.contains("bytes") && stderr.contains("available"), "\(stderr)")
        #expect(stderr.contains("would fit"), "\(stderr)")
    }
}
