#if canImport(Glibc)
import Glibc
#endif
import Sluice
import SluiceSocket
import SluiceWire
import Testing

/// The `sluice serve` command as a child process: it serves, a signal
/// ends it with 0 and its socket removed, and it leaves by itself when idle.
@Suite(.serialized) struct ServeCommandTests {
    /// Starts `sluice serve` with `arguments`; its stderr goes to `stderrPath`.
    /// The child starts with no signal blocked (the test runner blocks some).
    static func spawnServe(_ arguments: [String], stderrPath: String) throws -> pid_t {
        try spawn([sluiceExecutable, "serve"] + arguments, stderrPath: stderrPath)
    }

    /// Starts `argv` with no input or output but stderr into `stderrPath`,
    /// and `descriptor` (if any) as its descriptor 3 (dup2 clears
    /// close-on-exec there, as systemd passes a socket).
    static func spawn(_ argv: [String], stderrPath: String, descriptor3 descriptor: Int32? = nil) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        if let descriptor { posix_spawn_file_actions_adddup2(&actions, descriptor, 3) }
        var cArgv = cStrings(argv.map { Array($0.utf8) })
        defer { cArgv.forEach { $0?.deallocate() } }
        var pid = pid_t()
        let rc = withChildSpawnAttributes { attributes in
            withChildEnvironment { env in posix_spawn(&pid, cArgv[0]!, &actions, &attributes, &cArgv, env) }
        }
        guard rc == 0 else { throw TestFailure("posix_spawn failed: \(rc)") }
        return pid
    }

    /// The child's exit status once it ended within `seconds` (128 + N for signal N), else nil.
    static func wait(_ pid: pid_t, seconds: Int) -> Int32? {
        for _ in 0..<(seconds * 100) {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                return (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
            }
            usleep(10_000)
        }
        return nil
    }

    /// Connects until the server at `path` answers the handshake (its
    /// handlers are installed by then); the welcome, or nil after `seconds`.
    static func welcome(at path: String, seconds: Int = 60) -> Welcome? {
        for _ in 0..<(seconds * 20) {
            if let client = try? RawClient(FilePath(path)), case .welcome(let w)? = try? client.hello() { return w }
            usleep(50_000)
        }
        return nil
    }

    /// SIGTERM and SIGINT: the server stops accepting, removes its socket
    /// and exits 0; before that it answered a count like `wc`.
    @Test(arguments: [SIGTERM, SIGINT])
    func aSignalEndsTheServerWithZeroAndNoSocket(signal: Int32) throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let socket = dir.file("serve.sock")
        let err = dir.file("stderr")
        let file = dir.write("f", Array("one\ntwo\n".utf8))
        let pid = try Self.spawnServe(["--backend", "cpu", "--socket", socket, "--verbose"], stderrPath: err)
        guard let welcome = Self.welcome(at: socket) else {
            kill(pid, SIGKILL)
            _ = Self.wait(pid, seconds: 10)
            Issue.record("the server never answered: \(readFile(err))")
            return
        }
        #expect(welcome.server.contains("backend cpu"), "\(welcome.server)")
        var st = stat()
        #expect(lstat(socket, &st) == 0 && st.st_mode & 0o777 == 0o600)
        let client = try RawClient(FilePath(socket))
        _ = try client.hello()
        let count = try client.run(1, .count, paths: [file])
        #expect(count.counts.map { [$0.lines, $0.bytes] } == [[2, 8]])
        kill(pid, signal)
        let status = Self.wait(pid, seconds: 30)
        if status == nil { kill(pid, SIGKILL) }
        #expect(status == 0, "\(readFile(err))")
        #expect(access(socket, F_OK) != 0, "the socket is still there")
        let log = readFile(err)
        #expect(log.contains("count: 1 file, 8 bytes, ok") && log.contains("backend cpu"), "\(log)")
        #expect(try client.next() == nil)
    }

    /// `--idle-exit`: with no connection the server leaves by itself, exit 0, socket removed.
    @Test func idleExitLeavesCleanly() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let socket = dir.file("serve.sock")
        let err = dir.file("stderr")
        let pid = try Self.spawnServe(["--backend", "cpu", "--socket", socket, "--idle-exit", "1"], stderrPath: err)
        let status = Self.wait(pid, seconds: 60)
        if status == nil { kill(pid, SIGKILL) }
        #expect(status == 0, "\(readFile(err))")
        #expect(access(socket, F_OK) != 0)
        #expect(readFile(err).contains("--idle-exit"), "\(readFile(err))")
    }

    /// A second server at a live server's socket is refused (exit 2, named), and
    /// options that do not apply to a server are refused.
    @Test func aSecondServerAndForeignOptionsAreRefused() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let socket = dir.file("serve.sock")
        let err = dir.file("stderr")
        let pid = try Self.spawnServe(["--backend", "cpu", "--socket", socket], stderrPath: err)
        defer {
            kill(pid, SIGTERM)
            if Self.wait(pid, seconds: 30) == nil { kill(pid, SIGKILL) }
        }
        #expect(Self.welcome(at: socket) != nil, "\(readFile(err))")
        let second = run([sluiceExecutable, "serve", "--backend", "cpu", "--socket", socket])
        #expect(second.status == 2 && second.stderr.contains("a server is already running at \(socket)"), "\(second.stderr)")
        let shard = run([sluiceExecutable, "serve", "--backend", "cpu", "--socket", dir.file("other.sock"), "--shard", "0/2"])
        #expect(shard.status == 2 && shard.stderr.contains("--shard does not apply to serve"), "\(shard.stderr)")
    }
}
