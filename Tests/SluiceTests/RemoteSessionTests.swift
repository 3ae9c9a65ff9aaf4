#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing

@testable import Sluice
import SluiceWire

/// `Session(connectingTo:)` against a scripted server (`ScriptedServer`):
/// the same results as a local session and an independent oracle, the
/// descriptors passed (the server never opens a path), and the errors of
/// a missing server, a version mismatch and a server that goes away.
@Suite(.serialized) struct RemoteSessionTests {
    /// A fresh socket path short enough for `sockaddr_un`.
    static func socketPath() -> String { "/tmp/sluice-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock" }

    @Test(.timeLimit(.minutes(1))) func resultsEqualTheLocalSessionAndTheOracles() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let tree = SessionTests.plantedTree(dir, files: 10, seed: 41)
        let server = try await ScriptedServer.start(at: Self.socketPath())
        let remote = try await Session(connectingTo: FilePath(server.path))
        let local = try await Session(SessionTests.cpuConfiguration())
        let paths = [FilePath(dir.path), FilePath(dir.file("missing"))]
        let literals = SessionTests.literals

        let scanned = try await remote.scan(paths, literals: literals, options: ScanOptions(lineNumbers: true)).collect()
        let counts = try await remote.count(paths).collect()
        let hashes = try await remote.crc32c(paths).collect()
        let localScan = try await local.scan(paths, literals: literals, options: ScanOptions(lineNumbers: true)).collect()
        let localCounts = try await local.count(paths).collect()
        let localHashes = try await local.crc32c(paths).collect()
        await remote.close()
        await local.close()
        await server.stop()

        // The same elements in the same order, the missing path's error first, as locally.
        #expect(SessionTests.lines(scanned, literals: literals) == SessionTests.lines(localScan, literals: literals))
        #expect(scanned.flatMap(\.matches) == localScan.flatMap(\.matches))  // line numbers too
        #expect(scanned.filter(\.isComplete).map(\.path) == localScan.filter(\.isComplete).map(\.path))
        #expect(scanned.first?.errors.map(\.message) == localScan.first?.errors.map(\.message))
        #expect(scanned.first?.errors.first.map { SluiceError($0).code } == .io)
        #expect(counts.map(\.path) == localCounts.map(\.path))
        #expect(counts.map(\.result.bytes) == localCounts.map(\.result.bytes))
        #expect(counts.map(\.errors) == localCounts.map(\.errors))
        #expect(hashes.map(\.path) == localHashes.map(\.path))
        #expect(hashes.map(\.crc32c) == localHashes.map(\.crc32c))
        #expect(hashes.map(\.errors) == localHashes.map(\.errors))

        // And the oracles.
        let byPath = SessionTests.matchesByPath(scanned)
        let oracle = wcCounts(tree.map(\.0))
        for (path, content) in tree {
            expectSameMatches((byPath[path] ?? []).map { ScanMatch(offset: $0.offset, pattern: $0.pattern) },
                              naiveMatches(content, literals), path)
            let count = try #require(counts.first { $0.path.description == path })
            #expect(count.result.bytes == oracle[path]?.bytes && count.result.newlines == oracle[path]?.lines)
            let hash = try #require(hashes.first { $0.path.description == path })
            #expect(hash.crc32c == bitwiseCRC32C(content) && hash.bytes == UInt64(content.count))
        }
    }

    /// The server got descriptors of exactly the files (by device and inode),
    /// and a stream the client copied (no path the server could open).
    @Test(.timeLimit(.minutes(1))) func theDescriptorsTravelAndThePathsAreNeverOpened() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let tree = SessionTests.plantedTree(dir, files: 5, seed: 43)
        let server = try await ScriptedServer.start(at: Self.socketPath())
        let engine = try RemoteEngine.connect(to: FilePath(server.path))
        // Names the server could not open if it tried: only the descriptors read them.
        let names = tree.indices.map { RawPath("/nonexistent/remote-\($0)") }
        let real = tree.map(\.0)
        let files = RemoteFiles(paths: names, open: { i throws(PipelineError) in
            try openForIngest(path: RawPath(real[i]), direct: false)
        })
        let hashes = try await engine.crc32c(files: files).collect()
        engine.close()
        await server.stop()

        #expect(hashes.map(\.path) == names)
        for (hash, (_, content)) in zip(hashes, tree) {
            #expect(hash.errors.isEmpty && hash.crc32c == bitwiseCRC32C(content))
        }
        var expected: [(UInt64, UInt64)] = []
        for path in real {
            var st = stat()
            try #require(stat(path, &st) == 0)
            expected.append((UInt64(st.st_dev), UInt64(st.st_ino)))
        }
        let received = server.received.withLock { $0 }
        #expect(received.map(\.0) == expected.map(\.0) && received.map(\.1) == expected.map(\.1))
    }

    /// A file the client cannot open gets the error a local run gives, in
    /// its place; the server gets an empty stand-in, not the file.
    @Test(.timeLimit(.minutes(1))) func aFileTheClientCannotOpenFailsHereInOrder() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let a = dir.write("a", Array("one alpha\n".utf8))
        let c = dir.write("c", Array("gamma alpha alpha\n".utf8))
        let server = try await ScriptedServer.start(at: Self.socketPath())
        let engine = try RemoteEngine.connect(to: FilePath(server.path))
        let missing = dir.file("b-gone")
        let pieces = try await engine.scan(
            files: .opening([RawPath(a), RawPath(missing), RawPath(c)]), literals: [Array("alpha".utf8)],
            options: ScanOptions()).collect()
        var joiner = FileMatchesJoiner()
        let results = pieces.compactMap { joiner.add($0) }
        engine.close()
        await server.stop()

        #expect(results.map(\.path.description) == [a, missing, c])
        #expect(results.map(\.count) == [1, 0, 2])
        let expected = PipelineError.io(IOFailure(
            operation: "open", path: missing, errno: ENOENT, reason: String(cString: strerror(ENOENT))))
        #expect(results[1].errors == [expected])
        #expect(results[0].errors.isEmpty && results[2].errors.isEmpty)
        // Three descriptors went: a, an empty stand-in (not the missing file), c.
        let received = server.received.withLock { $0 }
        #expect(received.count == 3)
    }

    @Test func noServerIsServerUnavailableNamingTheSocket() async {
        let path = Self.socketPath()
        do {
            _ = try await Session(connectingTo: FilePath(path))
            Issue.record("connected to nothing")
        } catch {
            #expect(error.code == .serverUnavailable)
            #expect(error.path == FilePath(path) && error.errno == .noSuchFileOrDirectory)
            #expect(error.message.contains(path) && error.message.contains("no such file"))
        }
    }

    @Test(.timeLimit(.minutes(1))) func aVersionMismatchNamesBothVersions() async throws {
        let server = try await ScriptedServer.start(at: Self.socketPath(), script: .version(WireProtocol.version + 6))
        do {
            _ = try await Session(connectingTo: FilePath(server.path))
            Issue.record("a mismatched server was accepted")
        } catch {
            #expect(error.code == .serverUnavailable)
            #expect(error.message.contains("the client speaks version \(WireProtocol.version)"))
            #expect(error.message.contains("the server version \(WireProtocol.version + 6)"))
            #expect(error.message.contains(server.path))
        }
        await server.stop()
    }

    /// A server that closes the connection mid-request: `serverLost`, naming the socket.
    @Test(.timeLimit(.minutes(1))) func aServerThatGoesAwayMidRequestIsServerLost() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        _ = SessionTests.plantedTree(dir, files: 6, seed: 47)
        let server = try await ScriptedServer.start(at: Self.socketPath(), script: .dieAfterReplies(2))
        let session = try await Session(connectingTo: FilePath(server.path))
        var got = 0
        do {
            for try await _ in session.count([FilePath(dir.path)]) { got += 1 }
            Issue.record("the request ended without the server")
        } catch {
            #expect(error.code == .serverLost)
            #expect(error.path == FilePath(server.path) && error.message.contains(server.path))
            #expect(error.message.contains("2 of 6 files"))
        }
        #expect(got == 2)
        await session.close()
        await server.stop()
    }

    /// A consumer that stops early cancels the request; the session serves the next one.
    @Test(.timeLimit(.minutes(1))) func cancellingTheConsumerLeavesTheSessionUsable() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let tree = SessionTests.plantedTree(dir, files: 8, seed: 53)
        let server = try await ScriptedServer.start(at: Self.socketPath())
        let session = try await Session(connectingTo: FilePath(server.path))
        for try await _ in session.count([FilePath(dir.path)]) { break }
        let hashes = try await session.crc32c([FilePath(dir.path)]).collect()
        await session.close()
        await server.stop()
        #expect(hashes.count == tree.count)
        for (path, content) in tree {
            #expect(hashes.first { $0.path.description == path }?.crc32c == bitwiseCRC32C(content))
        }
        // After close, requests are refused.
        await #expect(throws: SluiceError.self) { _ = try await session.count([FilePath(dir.path)]).collect() }
    }

    /// Every kind of error a server reports comes back as the value a local
    /// run makes (same message, same code), so it prints and hints the same.
    @Test func serverErrorsAreRebuiltAsTheirValues() {
        let samples: [PipelineError] = [
            .invalidConfiguration("slot count 0 must be between 1 and 1048576"),
            .malformed(what: "count result", detail: "expected 258 words, got 3"),
            .invalidRequest(chunk: nil, slot: nil, reason: "a literal of 9000 bytes needs chunks of at least 20480 bytes"),
            .invalidRequest(chunk: 7, slot: 2, reason: "buffer still in use"),
            .io(IOFailure(operation: "open", path: "/data/a b: c.log", errno: 13, reason: "Permission denied")),
            .io(IOFailure(operation: "read", path: "/data/x", fileOffset: 4096, length: 1024, chunk: 3, errno: 5, reason: "Input/output error")),
            .io(IOFailure(operation: "open (direct I/O)", path: "/d/y", errno: 22, reason: "the filesystem refused O_DIRECT (Invalid argument); open it with direct: false for a buffered read")),
            .io(IOFailure(operation: "read", path: "/d/z", errno: 22, reason: "the descriptor passed for it is not a regular file")),
            .slotFaulted(slot: 4, chunk: 9, path: "/data/b.log", code: .resultOverflow),
            .backendUnavailable(backend: "cuda", reason: "driver library missing"),
            .gpu(call: "cuModuleLoadData", code: 218, message: "CUDA_ERROR_INVALID_PTX"),
            .readsStuck(path: "/data/e.log", chunks: [4, 5], seconds: 1.5),
            .fileChanged(path: "/data/c.log", detail: "size 10 -> 20"),
            .unaccounted(path: "/data/d.log", chunks: [3, 8]),
            .interrupted(finishedChunks: 12, pendingChunks: 30),
            .contextLost(backend: "cuda", reason: "CUDA_ERROR_ILLEGAL_ADDRESS"),
            .cancelled(path: "/data/g.log"),
        ]
        for sample in samples {
            let s = SluiceError(sample)
            let reply = FileErrorReply(
                request: 1, file: 0, code: WireErrorCode(sample), errno: s.errno?.rawValue ?? 0,
                path: RawPath(s.path?.string ?? "/data/x"), message: sample.message)
            #expect(RemoteErrors.fileError(reply) == sample, "\(sample)")
            let failure = RequestFailure(request: 1, code: WireErrorCode(sample), errno: s.errno?.rawValue ?? 0, message: sample.message)
            let rebuilt = RemoteErrors.requestFailed(failure)
            #expect(rebuilt.underlying == sample && rebuilt.message == sample.message && rebuilt.code == s.code, "\(sample)")
        }
        // A message this build does not make keeps its code and words.
        let odd = RemoteErrors.requestFailed(RequestFailure(request: 1, code: .stuck, errno: 0, message: "a future message"))
        #expect(odd.code == .stuck && odd.message == "a future message")
    }
}
