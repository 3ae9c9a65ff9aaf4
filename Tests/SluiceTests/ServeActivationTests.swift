#if canImport(Glibc)
import Glibc
#endif
import Sluice
import SluiceSocket
import SluiceWire
import Testing

/// `sluice serve` started as systemd starts it by socket activation (a
/// listening socket as descriptor 3, LISTEN_PID naming the server's own pid,
/// set by a `sh` that then execs it), and `sluice doctor`'s report on a
/// server, a stale socket and something else at the path.
@Suite(.serialized) struct ServeActivationTests {
    /// Starts `sluice serve ARGUMENTS` with `descriptor` as its descriptor 3
    /// and the activation variables (`environment`, LISTEN_PID=$$ unless
    /// given) set by `sh` just before it execs the server; stderr goes to `stderrPath`.
    static func spawnActivated(
        descriptor: Int32, _ arguments: [String], stderrPath: String,
        environment: String = "LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=sluice.socket"
    ) throws -> pid_t {
        let script = "\(environment) exec \"$0\" serve \"$@\""
        return try ServeCommandTests.spawn(
            ["/bin/sh", "-c", script, sluiceExecutable] + arguments, stderrPath: stderrPath, descriptor3: descriptor)
    }

    /// The socket file's device and inode, nil when none is there.
    static func identity(_ path: String) -> [UInt64]? {
        var st = stat()
        guard lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFSOCK else { return nil }
        return [UInt64(st.st_dev), UInt64(st.st_ino)]
    }

    /// Served through the activated socket, a scan equals the local run; the
    /// log names the activation; after SIGTERM (exit 0) the socket file is
    /// the same file, still there, and still listening (systemd's copy
    /// here is the test's), so a server started on it again serves a client
    /// that connected while none ran.
    @Test func anActivatedServerServesAndLeavesItsSocket() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let root = ServeEndToEndTests.randomTree(dir, seed: 47)
        let socket = dir.file("activated.sock")
        let listening = try Self.boundSocket(socket, listening: true)
        defer { close(listening) }
        let before = Self.identity(socket)
        let log = dir.file("serve.log")
        let pid = try Self.spawnActivated(
            descriptor: listening, ["--backend", "cpu", "--workers", "2", "--chunk-size", "64K"], stderrPath: log)
        guard let welcome = ServeCommandTests.welcome(at: socket) else {
            kill(pid, SIGKILL)
            _ = ServeCommandTests.wait(pid, seconds: 10)
            throw TestFailure("the activated server never answered: \(readFile(log))")
        }
        #expect(welcome.server.contains("pid \(pid),") && welcome.server.contains("socket activation"), "\(welcome.server)")
        let scan = ["scan", "-n", "-e", "alpha", "-e", "beta!", "-e", "sluice", root]
        let local = runBytes(([sluiceExecutable, scan[0], "--server", "never"] + scan.dropFirst()).map { Array($0.utf8) })
        let remote = runBytes(([sluiceExecutable, scan[0], "--server", socket] + scan.dropFirst()).map { Array($0.utf8) })
        #expect(remote.status == local.status && remote.stdout == local.stdout && remote.stderr == local.stderr, "\(remote.stderr)")
        #expect(!local.stdout.isEmpty)
        kill(pid, SIGTERM)
        let status = ServeCommandTests.wait(pid, seconds: 30)
        if status == nil { kill(pid, SIGKILL) }
        #expect(status == 0, "\(readFile(log))")
        let text = readFile(log)
        #expect(text.contains("serving at \(socket) (socket activation: descriptor 3, sluice.socket)"), "\(text)")
        #expect(text.contains(" scan: ") && text.contains("left to systemd"), "\(text)")
        #expect(Self.identity(socket) == before && before != nil, "the server removed or replaced the socket")

        // What systemd does on the next connection: a client connects to the
        // socket no server runs on (the backlog takes it), says hello, and
        // the server started now answers it.
        let waiting = try RawClient(FilePath(socket))
        try waiting.send(.hello(Hello(client: "sluice tests")))
        let again = try Self.spawnActivated(
            descriptor: listening, ["--backend", "cpu", "--idle-exit", "1"], stderrPath: dir.file("again.log"))
        guard case .welcome? = try waiting.next() else {
            kill(again, SIGKILL)
            _ = ServeCommandTests.wait(again, seconds: 10)
            throw TestFailure("the restarted server did not answer the waiting client: \(readFile(dir.file("again.log")))")
        }
        try waiting.socket.shutdown()
        // --idle-exit under activation: it leaves by itself, exit 0, socket still there.
        let idle = ServeCommandTests.wait(again, seconds: 60)
        if idle == nil { kill(again, SIGKILL) }
        #expect(idle == 0, "\(readFile(dir.file("again.log")))")
        #expect(readFile(dir.file("again.log")).contains("--idle-exit"))
        #expect(Self.identity(socket) == before)
    }

    /// A descriptor 3 that is not a listening Unix stream socket, or
    /// variables that do not pass exactly one, end the server at once with
    /// exit 2 and a line naming what was found; so does a --socket that is
    /// not the activated socket.
    @Test func aBadActivationIsExitTwoNamingWhatWasFound() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let file = open(dir.write("plain", Array("not a socket\n".utf8)), O_RDONLY | O_CLOEXEC)
        defer { close(file) }
        try #require(file >= 0)
        let listening = try Self.boundSocket(dir.file("l.sock"), listening: true)
        defer { close(listening) }
        let cases: [(descriptor: Int32, environment: String, arguments: [String], expected: String)] = [
            (file, "LISTEN_PID=$$ LISTEN_FDS=1", [],
             "sluice: descriptor 3 passed by socket activation is not a socket: a regular file"),
            (listening, "LISTEN_PID=$$ LISTEN_FDS=2", [],
             "sluice: LISTEN_FDS=2: sluice serve takes exactly one listening socket"),
            (listening, "LISTEN_PID=$$ LISTEN_FDS=0", [],
             "sluice: LISTEN_PID names this process but LISTEN_FDS passes no descriptor"),
            (listening, "LISTEN_PID=$$ LISTEN_FDS=one", [],
             "sluice: LISTEN_FDS=one is not a number of descriptors"),
            (listening, "LISTEN_PID=$$ LISTEN_FDS=1", ["--socket", dir.file("other.sock")],
             "sluice: --socket \(dir.file("other.sock")) is not the socket systemd passed, \(dir.file("l.sock"))"),
        ]
        for c in cases {
            let err = dir.file("stderr")
            let pid = try Self.spawnActivated(
                descriptor: c.descriptor, ["--backend", "cpu"] + c.arguments, stderrPath: err, environment: c.environment)
            let status = ServeCommandTests.wait(pid, seconds: 30)
            if status == nil { kill(pid, SIGKILL) }
            #expect(status == 2, "\(c.environment): \(readFile(err))")
            #expect(readFile(err).hasPrefix(c.expected), "\(c.environment): \(readFile(err))")
        }
        #expect(access(dir.file("other.sock"), F_OK) != 0)
    }

    /// `sluice doctor --server`: a live server (its welcome, protocol and pid,
    /// in text and JSON), a stale socket, a regular file and nothing.
    @Test func doctorReportsTheServer() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let served = try ServeEndToEndTests.Served(dir)
        let text = run([sluiceExecutable, "doctor", "--server", served.socket, "/var/tmp"])
        #expect(text.status == 0, "\(text.stderr)")
        let line = text.stdout.split(separator: "\n").first { $0.hasPrefix("ok server ") }
        #expect(line?.contains("\(served.socket): sluice serve (pid \(served.pid), up ") == true, "\(text.stdout)")
        #expect(line?.contains("backend cpu") == true && line?.hasSuffix("(protocol \(WireProtocol.version))") == true, "\(text.stdout)")
        let json = run([sluiceExecutable, "doctor", "--json", "--server", served.socket])
        #expect(json.status == 0)
        let fields = try Self.serverObject(json.stdout)
        #expect(fields["status"] as? String == "ok" && fields["socket"] as? String == served.socket, "\(fields)")
        #expect(fields["protocol"] as? Int == Int(WireProtocol.version) && fields["listener_pid"] as? Int == Int(served.pid), "\(fields)")
        #expect(fields["listener_uid"] as? Int == Int(getuid()), "\(fields)")
        #expect((fields["server"] as? String)?.hasPrefix("sluice serve (pid \(served.pid), up ") == true, "\(fields)")
        // The doctor's probe is only a handshake: the server goes on serving.
        #expect(ServeCommandTests.welcome(at: served.socket, seconds: 5) != nil)
        #expect(served.stop() == 0)

        // The same path now: nothing there.
        let none = run([sluiceExecutable, "doctor", "--server", served.socket])
        #expect(none.status == 0 && none.stdout.contains("-- server ") && none.stdout.contains("none at \(served.socket)"), "\(none.stdout)")

        // A socket file nobody listens on (a server that died): bound, never listened, closed.
        let stale = dir.file("stale.sock")
        try Self.bindAndClose(stale)
        let staleText = run([sluiceExecutable, "doctor", "--server", stale])
        #expect(staleText.status == 0, "\(staleText.stderr)")
        #expect(staleText.stdout.contains("-- server ") && staleText.stdout.contains("\(stale) is a stale socket"), "\(staleText.stdout)")
        let staleJSON = try Self.serverObject(run([sluiceExecutable, "doctor", "--json", "--server", stale]).stdout)
        #expect(staleJSON["status"] as? String == "stale" && staleJSON["listener_pid"] == nil, "\(staleJSON)")

        // A regular file at the path, through SLUICE_SERVER.
        let plain = dir.write("plain", [1, 2, 3])
        let file = runShell("SLUICE_SERVER=\"$1\" exec \"$0\" doctor --json", [plain])
        let fileJSON = try Self.serverObject(file.stdout)
        #expect(fileJSON["status"] as? String == "not_a_socket" && fileJSON["found"] as? String == "a regular file", "\(fileJSON)")
    }

    /// The `server` object of `sluice doctor --json`'s output, parsed by python3 (an independent reader).
    static func serverObject(_ output: String) throws -> [String: Any] {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let input = dir.write("doctor.json", Array(output.utf8))
        let py = run([
            "/usr/bin/env", "python3", "-c",
            "import json,sys; s=json.load(open(sys.argv[1]))['server']; print('\\n'.join(k+'\\t'+json.dumps(v) for k,v in s.items()))",
            input,
        ])
        try #require(py.status == 0, "python3 could not read the doctor's JSON: \(py.stderr) \(output)")
        var fields: [String: Any] = [:]
        for line in py.stdout.split(separator: "\n") {
            let parts = line.split(separator: "\t", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            if let n = Int(parts[1]) { fields[parts[0]] = n } else if parts[1].hasPrefix("\"") {
                fields[parts[0]] = String(parts[1].dropFirst().dropLast())
            }
        }
        return fields
    }

    /// A Unix socket file at `path` that nothing listens on.
    static func bindAndClose(_ path: String) throws {
        close(try boundSocket(path, listening: false))
    }

    /// A Unix stream socket bound in place at `path`, as systemd binds a
    /// socket unit's (so that its address is the path), listening if asked.
    static func boundSocket(_ path: String, listening: Bool) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        try #require(fd >= 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() { raw[i] = b }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, !listening || listen(fd, 16) == 0 else {
            close(fd)
            throw TestFailure("bind or listen \(path): errno \(errno)")
        }
        return fd
    }
}
