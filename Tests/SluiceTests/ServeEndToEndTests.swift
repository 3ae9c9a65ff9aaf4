#if canImport(Glibc)
import Glibc
#endif
import Sluice
import Testing

/// The real `sluice serve` and real clients (issue 18's "Done when"): every
/// command's output through the server equals the local run on random
/// trees; 16 clients at once; a client killed mid-scan; the server killed
/// mid-request; another uid refused, then served once allowed.
@Suite(.serialized) struct ServeEndToEndTests {
    /// A `sluice serve --backend cpu` child on a socket in `dir`; stopped by `stop()`.
    struct Served {
        let pid: pid_t
        let socket: String
        let log: String

        init(_ dir: ScratchDirectory, socketName: String = "serve.sock", extra: [String] = []) throws {
            socket = dir.file(socketName)
            log = dir.file("serve.log")
            pid = try ServeCommandTests.spawnServe(
                ["--backend", "cpu", "--workers", "2", "--chunk-size", "64K", "--socket", socket] + extra, stderrPath: log)
            guard ServeCommandTests.welcome(at: socket) != nil else {
                kill(pid, SIGKILL)
                _ = ServeCommandTests.wait(pid, seconds: 10)
                throw TestFailure("sluice serve never answered: \(readFile(log))")
            }
        }

        func stop() -> Int32? {
            kill(pid, SIGTERM)
            return ServeCommandTests.wait(pid, seconds: 30)
        }
    }

    /// A random tree: text files of random sizes with planted literals, an
    /// empty file, a binary one, a nested directory and a name that is not UTF-8.
    static func randomTree(_ dir: ScratchDirectory, seed: UInt64) -> String {
        var rng = SeededRandom(state: seed)
        let root = dir.file("tree")
        for i in 0..<14 {
            var text = textLikeBytes(Int(rng.next() % 300_000), &rng)
            for _ in 0..<(text.count / 7000) {
                let needle = Array(["alpha", "beta!", "sluice"][Int(rng.next() % 3)].utf8)
                guard text.count > needle.count else { break }
                let at = Int(rng.next() % UInt64(text.count - needle.count))
                text.replaceSubrange(at..<(at + needle.count), with: needle)
            }
            dir.write("tree/\(i % 4 == 0 ? "deep/er/" : "")f\(i).txt", text)
        }
        dir.write("tree/empty", [])
        dir.write("tree/binary.bin", (0..<70_000).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
        writeRawPath(Array(root.utf8) + [0x2F, 0x62, 0xFF, 0x2E, 0x74], Array("alpha in a bad name\n".utf8))
        return root
    }

    @Test func everyCommandThroughTheServerEqualsTheLocalRun() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let root = Self.randomTree(dir, seed: 41)
        let served = try Served(dir)
        let literals = ["-e", "alpha", "-e", "beta!", "-e", "sluice", "-e", "th"]
        let commands: [[String]] = [
            ["scan"] + literals + [root],
            ["scan", "-n"] + literals + [root],
            ["scan", "--json"] + literals + [root],
            ["scan", "-c"] + literals + [root],
            ["scan", "-l", "-Z"] + literals + [root],
            ["scan", "-i", "-e", "ALPHA", root, dir.file("tree/missing")],
            ["count", root],
            ["hash", root],
        ]
        for command in commands {
            let local = runBytes(([sluiceExecutable, command[0], "--server", "never"] + command.dropFirst()).map { Array($0.utf8) })
            let remote = runBytes(([sluiceExecutable, command[0], "--server", served.socket] + command.dropFirst()).map { Array($0.utf8) })
            #expect(remote.status == local.status, "\(command): \(remote.stderr)")
            #expect(remote.stdout == local.stdout, "\(command)")
            #expect(remote.stderr == local.stderr, "\(command)")
            #expect(!local.stdout.isEmpty, "\(command)")
        }
        #expect(served.stop() == 0)
        // One log line per request, naming the command.
        #expect(readFile(served.log).components(separatedBy: " scan: ").count - 1 == 6)
    }

    /// Sixteen clients at once, each scanning its own file, each get exactly
    /// their own file's matches (the local run's).
    @Test func sixteenClientsAtOnceEachGetTheirOwnResults() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 43)
        let files = (0..<16).map { i in dir.write("c\(i).txt", textLikeBytes(200_000 + i * 9_000, &rng)) }
        let served = try Served(dir)
        let results = UnsafeMutableBufferPointer<(Int32, [UInt8])>.allocate(capacity: 16)
        results.initialize(repeating: (-1, []))
        defer {
            results.deinitialize()
            results.deallocate()
        }
        let threads = (0..<16).map { i in
            Thread16 {
                let r = runBytes([sluiceExecutable, "scan", "--server", served.socket, "-n", "-e", "the", "-e", "q", files[i]].map { Array($0.utf8) })
                results[i] = (r.status, r.stdout)
            }
        }
        threads.forEach { $0.join() }
        for i in 0..<16 {
            let local = runBytes([sluiceExecutable, "scan", "--server", "never", "-n", "-e", "the", "-e", "q", files[i]].map { Array($0.utf8) })
            #expect(results[i].0 == local.status && results[i].1 == local.stdout, "client \(i)")
        }
        #expect(served.stop() == 0)
        #expect(readFile(served.log).components(separatedBy: " scan: ").count - 1 == 16)
    }

    /// A client killed while its dense scan streams leaves the server serving
    /// the next client correctly, with no descriptor left open in the server.
    @Test func aKilledClientLeavesTheServerServing() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let big = dir.write("big", [UInt8](repeating: 0x61, count: 24 << 20))
        let small = dir.write("small", Array("a sluice\n".utf8))
        let served = try Served(dir)
        // Warm: what the first request makes once (the read pool) stays.
        #expect(run([sluiceExecutable, "scan", "--server", served.socket, "-e", "sluice", small]).status == 0)
        // The baseline once the warm-up's connection is closed on the server's side too.
        let before = Self.settledDescriptors(of: served.pid)
        let client = try ServeCommandTests.spawnClient(["scan", "--server", served.socket, "-e", "a", big])
        usleep(300_000)
        kill(client, SIGKILL)
        _ = ServeCommandTests.wait(client, seconds: 10)
        let next = run([sluiceExecutable, "scan", "--server", served.socket, "-e", "sluice", small])
        #expect(next.status == 0 && next.stdout == "\(small):2:sluice\n", "\(next.stderr)")
        #expect(eventually { Self.descriptors(of: served.pid) == before }, "server descriptors \(Self.descriptors(of: served.pid)) vs \(before)")
        #expect(served.stop() == 0)
        #expect(readFile(served.log).contains("client gone"), "\(readFile(served.log))")
    }

    /// The server killed mid-request: with `--server PATH` the client exits 2
    /// naming it; under `auto` (the default; the server at
    /// `$XDG_RUNTIME_DIR/sluice.sock`) the run is finished locally with the
    /// local run's output.
    @Test func aKilledServerGivesTheDocumentedClientBehaviour() throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 47)
        // Dense full output: the client is still printing when the server dies.
        let files = (0..<8).map { i in dir.write("k\(i).txt", textLikeBytes(2_000_000, &rng)) }
        let local = run([sluiceExecutable, "scan", "--server", "never", "-e", "e"] + files)
        for mode in ["path", "auto"] {
            let served = try Served(dir, socketName: mode == "path" ? "serve.sock" : "sluice.sock")
            let out = dir.file("client-\(mode).out")
            let err = dir.file("client-\(mode).err")
            let client = try ServeCommandTests.spawnClient(
                (mode == "path" ? ["scan", "--server", served.socket] : ["scan"]) + ["-e", "e"] + files,
                stdout: out, stderr: err, environment: mode == "auto" ? ["XDG_RUNTIME_DIR=\(dir.path)", "SLUICE_SERVER=auto"] : [])
            // Kill the server once the client has its first answers.
            _ = eventually(seconds: 20) { !readBytes(out).isEmpty }
            kill(served.pid, SIGKILL)
            _ = ServeCommandTests.wait(served.pid, seconds: 10)
            let status = ServeCommandTests.wait(client, seconds: 60)
            if mode == "path" {
                #expect(status == 2, "\(readFile(err))")
                #expect(readFile(err).contains(served.socket), "\(readFile(err))")
            } else {
                #expect(status == local.status, "\(readFile(err))")
                #expect(readFile(out) == local.stdout)
                #expect(readFile(err).contains("locally"), "\(readFile(err))")
            }
            unlink(served.socket)
        }
    }

    /// A client of another uid is refused by its credentials, and served
    /// once the server allows that uid.
    @Test func anotherUidIsRefusedUnlessAllowed() throws {
        guard getuid() == 0, access("/usr/bin/setpriv", X_OK) == 0 else {
            Issue.record("needs root and setpriv (util-linux) to run a client as another uid")
            return
        }
        let dir = ScratchDirectory()
        defer { dir.remove() }
        chmod(dir.path, 0o755)
        let file = dir.write("shared.txt", Array("one sluice line\n".utf8))
        chmod(file, 0o644)
        let asNobody = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sluiceExecutable, "scan"]
        for allowed in [false, true] {
            let served = try Served(dir, extra: allowed ? ["--allow-uid", "65534"] : ["--allow-uid", "12345"])
            let r = run(asNobody + ["--server", served.socket, "-e", "sluice", file])
            if allowed {
                #expect(r.status == 0 && r.stdout == "\(file):4:sluice\n", "\(r.stderr)")
            } else {
                #expect(r.status == 2, "\(r.stdout) \(r.stderr)")
                #expect(r.stderr.contains("65534"), "\(r.stderr)")
            }
            #expect(served.stop() == 0)
        }
    }

    /// A server run by another user is never sent anything: with its path
    /// the client exits 2 naming the uid; under auto it runs here. (Anyone
    /// could bind /tmp/sluice-UID.sock before the user's own server.)
    @Test func aServerOfAnotherUserIsNotUsed() throws {
        guard getuid() == 0, access("/usr/bin/setpriv", X_OK) == 0 else {
            Issue.record("needs root and setpriv (util-linux) to run a server as another uid")
            return
        }
        let dir = ScratchDirectory()
        defer { dir.remove() }
        chmod(dir.path, 0o777)
        let file = dir.write("mine.txt", Array("a sluice line\n".utf8))
        let socket = dir.file("sluice.sock")
        let log = dir.file("serve.log")
        let pid = try ServeCommandTests.spawnClient(
            ["serve", "--backend", "cpu", "--workers", "1", "--socket", socket], stderr: log,
            asUser: 65534)
        defer {
            kill(pid, SIGTERM)
            if ServeCommandTests.wait(pid, seconds: 20) == nil {
                kill(pid, SIGKILL)
                _ = ServeCommandTests.wait(pid, seconds: 5)
            }
        }
        #expect(eventually { access(socket, F_OK) == 0 }, "\(readFile(log))")
        let named = run([sluiceExecutable, "scan", "--server", socket, "-e", "sluice", file])
        #expect(named.status == 2 && named.stdout.isEmpty, "\(named.stderr)")
        #expect(named.stderr.contains("run by uid 65534"), "\(named.stderr)")
        let out = dir.file("auto.out"), err = dir.file("auto.err")
        let client = try ServeCommandTests.spawnClient(
            ["scan", "-v", "-e", "sluice", file], stdout: out, stderr: err,
            environment: ["XDG_RUNTIME_DIR=\(dir.path)", "SLUICE_SERVER=auto"])
        #expect(ServeCommandTests.wait(client, seconds: 30) == 0, "\(readFile(err))")
        #expect(readFile(out) == "\(file):2:sluice\n")
        #expect(readFile(err).contains("run by uid 65534"), "\(readFile(err))")
        #expect(!readFile(log).contains(" scan: "), "the server got a request: \(readFile(log))")
    }

    /// Open descriptors of process `pid` once the count stayed the same for 300 ms (at most 10 s).
    static func settledDescriptors(of pid: pid_t) -> Int {
        var last = descriptors(of: pid)
        for _ in 0..<33 {
            usleep(300_000)
            let now = descriptors(of: pid)
            if now == last { return now }
            last = now
        }
        return last
    }

    /// Open descriptors of process `pid`.
    static func descriptors(of pid: pid_t) -> Int {
        guard let d = opendir("/proc/\(pid)/fd") else { return -1 }
        defer { closedir(d) }
        var n = 0
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { n += 1 }
        }
        return n - 1   // the directory stream itself
    }
}

/// A thread running `body` once, joined by `join()`.
final class Thread16: @unchecked Sendable {
    private var thread = pthread_t()
    private let body: () -> Void

    init(_ body: @escaping () -> Void) {
        self.body = body
        let box = Unmanaged.passRetained(self)
        pthread_create(&thread, nil, { raw in
            let me = Unmanaged<Thread16>.fromOpaque(raw!).takeRetainedValue()
            me.body()
            return nil
        }, box.toOpaque())
    }

    func join() { pthread_join(thread, nil) }
}

extension ServeCommandTests {
    /// Starts `sluice ARGUMENTS` (a client) with its output in files (or
    /// /dev/null) and `environment` added to this process's.
    static func spawnClient(
        _ arguments: [String], stdout: String = "/dev/null", stderr: String = "/dev/null", environment: [String] = [],
        asUser uid: Int? = nil
    ) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let user = uid.map { ["/usr/bin/setpriv", "--reuid=\($0)", "--regid=\($0)", "--clear-groups"] } ?? []
        var argv = cStrings((user + [sluiceExecutable] + arguments).map { Array($0.utf8) })
        defer { argv.forEach { $0?.deallocate() } }
        // The given variables replace inherited ones of the same name.
        var env = cStrings(childEnvironment(environment).map { Array($0.utf8) })
        defer { env.forEach { $0?.deallocate() } }
        var pid = pid_t()
        let rc = withChildSpawnAttributes { attributes in posix_spawn(&pid, argv[0]!, &actions, &attributes, &argv, &env) }
        guard rc == 0 else { throw TestFailure("posix_spawn failed: \(rc)") }
        return pid
    }
}
