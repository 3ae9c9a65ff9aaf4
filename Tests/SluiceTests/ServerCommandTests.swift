#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing

@testable import Sluice

/// `scan`, `count` and `hash` with `--server`: byte-for-byte the local
/// output, status and errors through a (scripted) server; `auto`, `never`
/// and `SLUICE_SERVER`; a server that goes away mid-request.
@Suite(.serialized) struct ServerCommandTests {
    /// Runs `sluice` with `args`, `environment` replacing this process's
    /// SLUICE_SERVER and XDG_RUNTIME_DIR (unset unless given), standard
    /// input from `stdin`.
    static func sluice(_ args: [String], environment: [String: String] = [:], stdin: String = "/dev/null") -> ProcessResult {
        let outPath = "/var/tmp/sluice-test-out-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let errPath = outPath + ".err"
        defer { unlink(outPath); unlink(errPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 0, stdin, O_RDONLY, 0)
        let variables = childEnvironment(environment.map { "\($0.key)=\($0.value)" }) {
            $0 == "SLUICE_SERVER" || $0 == "XDG_RUNTIME_DIR"
        }
        var argv = cStrings(([sluiceExecutable] + args).map { Array($0.utf8) })
        var envp = cStrings(variables.map { Array($0.utf8) })
        defer { (argv + envp).forEach { $0?.deallocate() } }
        var pid = pid_t()
        guard posix_spawn(&pid, argv[0]!, &actions, nil, &argv, &envp) == 0 else {
            return ProcessResult(status: -1, stdout: "", stderr: "posix_spawn failed")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        return ProcessResult(status: code, stdout: readFile(outPath), stderr: readFile(errPath))
    }

    /// A scratch tree (planted literals, a subdirectory) and the inputs named:
    /// the tree, a file that cannot be read (/proc/self/mem, EIO even for
    /// root) and a path that does not exist.
    static func inputs(_ dir: ScratchDirectory) -> [String] {
        _ = SessionTests.plantedTree(dir, files: 7, seed: 59)
        return [dir.path, "/proc/self/mem", dir.file("missing")]
    }

    static let literals = ["-e", "alpha", "-e", "beta!", "-e", "gamma", "-e", "a"]

    /// Each command line the tests compare, without `--server`.
    static func commands(_ inputs: [String]) -> [[String]] {
        let scans: [[String]] = [[], ["-n"], ["--json"], ["-c"], ["-l"], ["-l", "-Z"], ["-i", "-c"]]
        return scans.map { ["scan", "--quiet"] + $0 + literals + inputs }
            + [["count", "--quiet"] + inputs, ["hash", "--quiet"] + inputs, ["hash", "--quiet", "--json", "--format", "base64"] + inputs]
    }

    /// Expects `got` to be `expected` in every byte of output, error and status.
    static func expectSame(_ got: ProcessResult, _ expected: ProcessResult, _ context: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(got.status == expected.status, "\(context)", sourceLocation: sourceLocation)
        #expect(got.stdout == expected.stdout, "\(context)", sourceLocation: sourceLocation)
        #expect(got.stderr == expected.stderr, "\(context)", sourceLocation: sourceLocation)
    }

    @Test(.timeLimit(.minutes(2))) func everyOutputThroughAServerEqualsTheLocalOne() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let inputs = Self.inputs(dir)
        let server = try await ScriptedServer.start(at: RemoteSessionTests.socketPath())
        for command in Self.commands(inputs) {
            let local = Self.sluice(command + ["--server", "never"])
            #expect(local.status == 2 && local.stderr.contains("/proc/self/mem: read failed"), "\(command): \(local.stderr)")
            #expect(!local.stdout.isEmpty, "\(command)")
            let remote = Self.sluice(command + ["--server", server.path])
            Self.expectSame(remote, local, command)
        }
        #expect(server.requests.load(ordering: .relaxed) == Self.commands(inputs).count)
        await server.stop()
    }

    /// Standard input travels as the descriptor of the client's copy: the
    /// server has no path to open for `<stdin>`.
    @Test(.timeLimit(.minutes(1))) func standardInputTravelsAsADescriptor() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let input = dir.write("stdin", Array("x alpha\nbeta! alpha\n".utf8))
        let server = try await ScriptedServer.start(at: RemoteSessionTests.socketPath())
        let remote = Self.sluice(["scan", "-n", "-e", "alpha", "--server", server.path], stdin: input)
        await server.stop()
        #expect(remote.status == 0, "\(remote.stderr)")
        #expect(remote.stdout == "<stdin>:1:2:alpha\n<stdin>:2:14:alpha\n")
        #expect(server.requests.load(ordering: .relaxed) == 1)
    }

    /// `auto` finds the server at $XDG_RUNTIME_DIR/sluice.sock and -v says
    /// so; an engine option, `--server never` and SLUICE_SERVER=never run here.
    @Test(.timeLimit(.minutes(1))) func autoNeverAndTheEnvironment() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let runtime = ScratchDirectory("sluice-rt")
        defer { runtime.remove() }
        let inputs = Self.inputs(dir)
        let socket = runtime.file("sluice.sock")
        let server = try await ScriptedServer.start(at: socket)
        let environment = ["XDG_RUNTIME_DIR": runtime.path]
        let local = Self.sluice(["count", "--quiet", "--server", "never"] + inputs)

        let auto = Self.sluice(["count", "--quiet", "-v"] + inputs, environment: environment)
        #expect(auto.stderr.hasPrefix("sluice: server: \(socket) (protocol 1): scripted test server\n"), "\(auto.stderr)")
        #expect(auto.stdout == local.stdout && auto.status == local.status)
        #expect(server.requests.load(ordering: .relaxed) == 1)

        let byEngineOption = Self.sluice(["count", "--quiet", "-v", "--backend", "cpu"] + inputs, environment: environment)
        #expect(byEngineOption.stderr.hasPrefix("sluice: server: not used (--backend asks for a local engine); running locally\n"))
        let never = Self.sluice(["count", "--quiet", "-v", "--server", "never"] + inputs, environment: environment)
        #expect(never.stderr.hasPrefix("sluice: server: not used (--server never); running locally\n"))
        let byVariable = Self.sluice(
            ["count", "--quiet", "-v"] + inputs, environment: environment.merging(["SLUICE_SERVER": "never"]) { $1 })
        #expect(byVariable.stderr.hasPrefix("sluice: server: not used (SLUICE_SERVER=never); running locally\n"))
        for result in [byEngineOption, never, byVariable] {
            #expect(result.stdout == local.stdout && result.status == local.status)
        }
        // SLUICE_SERVER=PATH picks the server; --server auto overrides it.
        let byPath = Self.sluice(["count", "--quiet", "-v"] + inputs, environment: ["SLUICE_SERVER": socket])
        #expect(byPath.stderr.hasPrefix("sluice: server: \(socket) (protocol 1)"), "\(byPath.stderr)")
        #expect(byPath.stdout == local.stdout)
        #expect(server.requests.load(ordering: .relaxed) == 2)
        // An engine option with a server path is a usage error naming both.
        let conflict = Self.sluice(["count", "--chunk-size", "64K", "--server", socket] + inputs)
        #expect(conflict.status == 2 && conflict.stderr.contains("--chunk-size") && conflict.stderr.contains(socket))
        await server.stop()
    }

    @Test func autoWithNoSocketRunsHereAndSaysWhy() {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let runtime = ScratchDirectory("sluice-rt")
        defer { runtime.remove() }
        let inputs = Self.inputs(dir)
        let local = Self.sluice(["count", "--quiet", "--server", "never"] + inputs)
        let auto = Self.sluice(["count", "--quiet", "-v"] + inputs, environment: ["XDG_RUNTIME_DIR": runtime.path])
        #expect(auto.stderr.hasPrefix(
            "sluice: server: none at \(runtime.path)/sluice.sock (no such file); running locally\n"), "\(auto.stderr)")
        #expect(auto.stdout == local.stdout && auto.status == local.status)
        // Checksums stay here under auto where the CPU has CRC-32C
        // instructions (as fast as the bytes arrive), and -v says why.
        let hashLocal = Self.sluice(["hash", "--quiet", "--server", "never"] + inputs)
        let hashAuto = Self.sluice(["hash", "--quiet", "-v"] + inputs, environment: ["XDG_RUNTIME_DIR": runtime.path])
        if let why = ChecksumBackends.cpuReason(ingest: .auto) {
            #expect(hashAuto.stderr.hasPrefix("sluice: server: not used under auto (\(why)); running locally\n"), "\(hashAuto.stderr)")
        }
        #expect(hashAuto.stdout == hashLocal.stdout && hashAuto.status == hashLocal.status)
        // Without -v, not a word more than a local run.
        let quiet = Self.sluice(["hash", "--quiet"] + inputs, environment: ["XDG_RUNTIME_DIR": runtime.path])
        Self.expectSame(quiet, hashLocal, ["hash"])
        // A path that does not answer: exit 2, naming it.
        let named = Self.sluice(["hash", "--server", runtime.file("sluice.sock")] + inputs)
        #expect(named.status == 2 && named.stdout.isEmpty)
        #expect(named.stderr.hasPrefix("sluice: cannot use the sluice server at \(runtime.path)/sluice.sock: no such file\n"))
    }

    /// A server that closes the connection mid-request: under auto the
    /// rest runs here and stdout is the local run's exactly (nothing twice,
    /// a file scanned in part included); under a path, exit 2 naming it.
    @Test(.timeLimit(.minutes(2)), arguments: [1, 4, 9])
    func aServerThatGoesAwayIsFinishedHereUnderAuto(replies: Int) async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let runtime = ScratchDirectory("sluice-rt")
        defer { runtime.remove() }
        let inputs = Self.inputs(dir)
        let socket = runtime.file("sluice.sock")
        let server = try await ScriptedServer.start(at: socket, script: .dieAfterReplies(replies))
        // Checksums run here under auto where the CPU has CRC-32C instructions.
        let served = Self.commands(inputs).filter { $0[0] != "hash" || ChecksumBackends.cpuReason(ingest: .auto) == nil }
        for command in served {
            let local = Self.sluice(command + ["--server", "never"])
            let auto = Self.sluice(command, environment: ["XDG_RUNTIME_DIR": runtime.path])
            #expect(auto.stdout == local.stdout && auto.status == local.status, "\(command)")
            #expect(auto.stderr.contains("sluice: the sluice server at \(socket) went away mid-request"), "\(auto.stderr)")
            #expect(auto.stderr.contains("; running the rest locally\n"))
            // The local run's errors are all there too, once each.
            for line in local.stderr.split(separator: "\n") {
                #expect(auto.stderr.split(separator: "\n").filter { $0 == line }.count == 1, "\(command): \(line)")
            }
        }
        let named = Self.sluice(["count", "--server", socket] + inputs)
        #expect(named.status == 2)
        #expect(named.stderr.contains("sluice: the sluice server at \(socket) went away mid-request"), "\(named.stderr)")
        #expect(named.stderr.contains("hint: "))
        await server.stop()
    }
}
