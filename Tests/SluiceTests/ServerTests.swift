#if canImport(Glibc)
import Glibc
#endif
import Sluice
@testable import SluiceServer
import SluiceSocket
import SluiceWire
import Testing

/// `sluice serve`'s server in this process, driven by raw clients: every
/// reply checked against the local `Session` over the same paths and an
/// independent oracle; clients that cancel, vanish or break the protocol
/// leave the server serving with nothing leaked.
@Suite(.serialized) struct ServerTests {
    static let literals = SessionTests.literals

    /// The scan, count and hash of files passed by descriptor equal the
    /// local session's over the same paths and the oracles (naive matching
    /// with lines counted by hand, wc, a bitwise CRC-32C); `done` adds them up;
    /// one log line per request.
    @Test func scanCountAndHashEqualTheLocalSessionAndTheOracles() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let tree = SessionTests.plantedTree(dir, files: 9, seed: 31)
        let paths = tree.map(\.0).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        let content = Dictionary(uniqueKeysWithValues: tree)
        let total = UInt64(tree.reduce(0) { $0 + $1.1.count })

        let local = try await Session(SessionTests.cpuConfiguration())
        let localScan = try await local.scan(paths.map { FilePath($0) }, literals: Self.literals,
                                             options: ScanOptions(lineNumbers: true)).collect()
        let localCounts = try await local.count(paths.map { FilePath($0) }).collect()
        let localHashes = try await local.crc32c(paths.map { FilePath($0) }).collect()
        await local.close()

        let server = try await TestServer.start()
        let client = try server.client()
        let scan = try client.run(1, .scan(ScanParameters(literals: Self.literals, lineNumbers: true)), paths: paths)
        let count = try client.run(2, .count, paths: paths)
        let hash = try client.run(3, .hash, paths: paths)
        await server.stop()

        let wc = wcCounts(paths)
        var matches: UInt64 = 0
        for (i, path) in paths.enumerated() {
            let file = UInt32(i)
            let bytes = try #require(content[path])
            // Scan: the oracle's matches, with their lines, and the local session's.
            let expected = naiveMatches(bytes, Self.literals).map {
                ScanMatch(offset: $0.offset, pattern: $0.pattern, line: lineOf($0.offset, in: bytes))
            }
            expectSameMatches(scan.matches(file: file), expected, path)
            let localMatches = localScan.filter { $0.path.description == path }.flatMap(\.matches)
            #expect(scan.matches(file: file) == localMatches, "\(path)")
            let pieces = scan.pieces.filter { $0.file == file }
            #expect(pieces.last?.isComplete == true && pieces.dropLast().allSatisfy { !$0.isComplete }, "\(path)")
            matches += UInt64(expected.count)
            // Count: wc and the local session.
            let c = try #require(count.counts.first { $0.file == file })
            #expect(c.bytes == wc[path]?.bytes && c.lines == wc[path]?.lines, "\(path)")
            let lc = try #require(localCounts.first { $0.path.description == path })
            #expect(c.bytes == lc.result.bytes && c.lines == lc.result.newlines)
            // Hash: the bitwise CRC-32C and the local session.
            let h = try #require(hash.hashes.first { $0.file == file })
            #expect(h.crc32c == bitwiseCRC32C(bytes) && h.bytes == UInt64(bytes.count), "\(path)")
            #expect(h.crc32c == localHashes.first { $0.path.description == path }?.crc32c)
        }
        #expect(scan.errors.isEmpty && count.errors.isEmpty && hash.errors.isEmpty)
        #expect(scan.done == RequestDone(request: 1, files: UInt64(paths.count), failedFiles: 0, bytes: total, matches: matches))
        #expect(count.done == RequestDone(request: 2, files: UInt64(paths.count), failedFiles: 0, bytes: total, matches: 0))
        #expect(hash.done == RequestDone(request: 3, files: UInt64(paths.count), failedFiles: 0, bytes: total, matches: 0))
        let lines = server.log.all
        for command in ["scan", "count", "hash"] {
            let line = lines.filter { $0.contains(" \(command): ") }
            #expect(line.count == 1 && line[0].contains("uid \(geteuid()) \(command): 9 files, \(total) bytes, ok"), "\(lines)")
        }
    }

    /// A file with more matches than one frame holds comes in several
    /// pieces (only the last complete); count mode lists none and counts
    /// them all; a file that fails is reported by name, the others go on.
    @Test func largeResultsAreSplitAndCountModeCounts() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 5)
        let dense = (0..<300_000).map { _ in UInt8.random(in: 0...255, using: &rng) < 40 ? UInt8(ascii: "a") : UInt8(ascii: "b") }
        let densePath = dir.write("dense", dense)
        let empty = dir.write("empty", [])
        let literals = [Array("a".utf8), Array("ab".utf8)]
        let expected = naiveMatches(dense, literals)
        let server = try await TestServer.start { $0.limits = WireLimits(maxFrameBytes: 64 << 10) }
        let client = try server.client()

        let all = try client.run(4, .scan(ScanParameters(literals: literals)), paths: [densePath, empty])
        let denseReplies = all.pieces.filter { $0.file == 0 }
        #expect(denseReplies.count > 1, "\(expected.count) matches in \(denseReplies.count) pieces")
        #expect(denseReplies.allSatisfy { $0.matches.count <= WireLimits(maxFrameBytes: 64 << 10).maxMatchesPerPiece })
        #expect(denseReplies.map(\.isComplete) == Array(repeating: false, count: denseReplies.count - 1) + [true])
        expectSameMatches(all.matches(file: 0), expected, "dense")
        #expect(all.pieces.filter { $0.file == 1 }.map(\.count) == [0])
        #expect(all.done?.matches == UInt64(expected.count))

        let counted = try client.run(5, .scan(ScanParameters(literals: literals, output: .count)), paths: [densePath, empty])
        #expect(counted.pieces.allSatisfy { $0.matches.isEmpty })
        #expect(counted.count(file: 0) == UInt64(expected.count) && counted.count(file: 1) == 0)
        #expect(counted.done?.matches == UInt64(expected.count))
        await server.stop()
    }

    /// A descriptor that is not a regular file fails its own file, named by
    /// the client's display path, with the code and errno a local run has;
    /// the other files are answered and `done` counts one failed file.
    @Test func aFileThatFailsIsReportedByItsDisplayName() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let plain = dir.write("plain", Array("one alpha\n".utf8))
        let server = try await TestServer.start()
        let client = try server.client()
        var ends: [Int32] = [0, 0]
        try #require(pipe(&ends) == 0)
        defer { close(ends[0]); close(ends[1]) }
        let readable = try FileDescriptor.open(FilePath(plain), .readOnly, options: .closeOnExec)
        defer { try? readable.close() }
        try client.send(.request(WireRequest(id: 9, fileCount: 2, operation: .count)))
        try client.send(
            .files(FileBatch(request: 9, paths: [RawPath("/client/pipe"), RawPath("/client/plain")])),
            descriptors: [FileDescriptor(rawValue: ends[0]), readable])
        let r = try client.replies(9)
        await server.stop()
        let error = try #require(r.errors.first)
        #expect(r.errors.count == 1 && error.file == 0 && error.path == RawPath("/client/pipe") && error.code == .io)
        #expect(error.errno == EINVAL && error.message.contains("/client/pipe"), "\(error.message)")
        #expect(r.counts.first { $0.file == 1 }.map { [$0.bytes, $0.lines] } == [10, 1])
        #expect(r.done?.files == 2 && r.done?.failedFiles == 1)
        #expect(server.log.all.contains { $0.contains("count: 2 files") && $0.contains("1 failed") })
    }

    /// A request the session refuses as a whole (a literal longer than the
    /// session's chunks allow) ends with `request-failed`: its code, the
    /// session's message and the hint the configuration gives.
    @Test func aRefusedRequestFailsWithCodeMessageAndHint() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let file = dir.write("f", Array("text".utf8))
        let server = try await TestServer.start { $0.hint = { "hint for \($0.code.rawValue)" } }
        let client = try server.client()
        let long = [UInt8](repeating: 0x41, count: 40_000)
        let r = try client.run(1, .scan(ScanParameters(literals: [long])), paths: [file])
        // The connection goes on serving.
        let next = try client.run(1, .count, paths: [file])
        await server.stop()
        let failure = try #require(r.failure)
        #expect(failure.code == .invalidRequest && failure.hint == "hint for invalidRequest")
        #expect(failure.message.contains("40000 bytes"), "\(failure.message)")
        #expect(next.done?.bytes == 4)
        #expect(server.log.all.contains { $0.contains("scan: 1 file, ") && $0.contains("error invalidRequest") })
    }

    /// Two clients at once, each with its own literals and request id 1,
    /// each get exactly their own results.
    @Test func twoClientsAtOnceGetOnlyTheirOwnResults() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let tree = SessionTests.plantedTree(dir, files: 6, seed: 11)
        let paths = tree.map(\.0)
        let server = try await TestServer.start()
        let first = try server.client()
        let second = try server.client()
        let literalsA = [Array("alpha".utf8)]
        let literalsB = [Array("beta!".utf8), Array("gamma\n".utf8)]
        // Both requests are in flight before either is read.
        try first.submit(1, .scan(ScanParameters(literals: literalsA)), paths: paths)
        try second.submit(1, .scan(ScanParameters(literals: literalsB)), paths: paths.reversed())
        let a = try first.replies(1)
        let b = try second.replies(1)
        await server.stop()
        for (i, (path, bytes)) in tree.enumerated() {
            expectSameMatches(a.matches(file: UInt32(i)), naiveMatches(bytes, literalsA), "first \(path)")
            expectSameMatches(b.matches(file: UInt32(paths.count - 1 - i)), naiveMatches(bytes, literalsB), "second \(path)")
        }
        #expect(a.done?.files == UInt64(paths.count) && b.done?.files == UInt64(paths.count))
    }

    /// Sixteen clients at once, each scanning its own file for its own
    /// literal: each gets exactly the oracle's matches for it.
    @Test func sixteenClientsAtOnce() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(state: 16)
        let server = try await TestServer.start()
        var clients: [(RawClient, [UInt8], [[UInt8]])] = []
        for i in 0..<16 {
            let text = textLikeBytes(20_000 + i * 7_919, &rng)
            let literal = Array(text[(i * 97)..<(i * 97 + 3)])
            let client = try server.client()
            try client.submit(UInt32(i), .scan(ScanParameters(literals: [literal], lineNumbers: i % 2 == 0)),
                              paths: [dir.write("f\(i)", text)])
            clients.append((client, text, [literal]))
        }
        for (i, (client, text, literals)) in clients.enumerated() {
            let r = try client.replies(UInt32(i))
            let expected = naiveMatches(text, literals).map {
                ScanMatch(offset: $0.offset, pattern: $0.pattern, line: i % 2 == 0 ? lineOf($0.offset, in: text) : nil)
            }
            expectSameMatches(r.matches(file: 0), expected, "client \(i)")
            #expect(r.done?.matches == UInt64(expected.count))
        }
        await server.stop()
    }

    /// The files of a huge sparse file (minutes to scan): a request over a
    /// small file and it is still running once the small file's reply came.
    static func slowRequestFiles(_ dir: ScratchDirectory) -> [String] {
        let small = dir.write("small", Array("one alpha two\n".utf8))
        let big = dir.file("sparse")
        close(open(big, O_CREAT | O_WRONLY, 0o600))
        _ = truncate(big, 1 << 36)  // 64 GiB of holes, no disk used
        return [small, big]
    }

    /// A client that disconnects mid-request: the server cancels the
    /// request, closes its descriptors (those of the request's files come
    /// back to what they were; the process's total would count other tests'
    /// descriptors, which run beside this one) and serves the next client correctly.
    @Test func aClientThatVanishesMidRequestLeavesNothingBehind() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let files = Self.slowRequestFiles(dir)
        let server = try await TestServer.start()
        // A first request sets up what the session keeps (its read stream).
        let warm = try server.client()
        _ = try warm.run(1, .scan(ScanParameters(literals: Self.literals)), paths: [files[0]])
        try warm.send(.cancel(request: 77))  // not open: ignored
        let baseline = openDescriptorCount(under: dir.path)

        var leaving: RawClient? = try server.client()
        try leaving?.submit(1, .scan(ScanParameters(literals: Self.literals)), paths: files)
        let firstReply = try leaving?.next()
        guard case .matches(let piece)? = firstReply else { throw TestFailure("expected the small file's matches, got \(String(describing: firstReply))") }
        #expect(piece.file == 0 && piece.count == 1, "\(piece)")
        // The big file is open while its request runs: a leak would keep it so.
        #expect(eventually { openDescriptorCount(under: dir.path) > baseline })
        leaving = nil  // closes the connection with the big file in flight

        #expect(eventually { server.log.all.contains { $0.contains("client gone") } }, "\(server.log.all)")
        #expect(
            eventually { openDescriptorCount(under: dir.path) == baseline },
            "\(openDescriptorCount(under: dir.path)) descriptors of the request's files open, \(baseline) before")
        let dirty = try server.client()
        let count = try dirty.run(1, .count, paths: [files[0]])
        #expect(count.counts.map(\.bytes) == [14] && count.done?.failedFiles == 0)
        // The first client's connection was untouched throughout.
        let again = try warm.run(1, .hash, paths: [files[0]])
        #expect(again.hashes.map(\.crc32c) == [bitwiseCRC32C(Array("one alpha two\n".utf8))])
        await server.stop()
    }

    /// `cancel` stops a running request: it ends with `request-failed`
    /// (cancelled), the connection stays up and the identifier is free again.
    @Test func cancelStopsARequestAndTheConnectionGoesOn() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let files = Self.slowRequestFiles(dir)
        let server = try await TestServer.start()
        let client = try server.client()
        try client.submit(3, .scan(ScanParameters(literals: Self.literals)), paths: files)
        guard case .matches? = try client.next() else { throw TestFailure("expected the small file's matches first") }
        try client.send(.cancel(request: 3))
        let rest = try client.replies(3)
        #expect(rest.failure?.code == .cancelled, "\(String(describing: rest.end))")
        // Cancelled while its files were still arriving: answered at once.
        try client.send(.request(WireRequest(id: 4, fileCount: 2, operation: .count)))
        try client.send(.cancel(request: 4))
        #expect(try client.replies(4).failure?.code == .cancelled)
        let next = try client.run(3, .count, paths: [files[0]])
        #expect(next.done?.bytes == 14)
        await server.stop()
        #expect(server.log.all.contains { $0.contains("scan: ") && $0.contains("cancelled") })
    }

    /// A client of another protocol version is refused, with both versions
    /// named, and the connection closed.
    @Test func aWrongVersionIsRefusedNamingBoth() async throws {
        let server = try await TestServer.start()
        let client = try RawClient(server.socketPath)
        let answer = try client.hello(version: 7)
        guard case .refused(let refusal) = answer else { throw TestFailure("not refused: \(answer)") }
        #expect(refusal.reason == .versionMismatch && refusal.serverProtocolVersion == WireProtocol.version)
        #expect(refusal.message == "protocol version mismatch: the client speaks version 7, the server version \(WireProtocol.version)")
        #expect(throws: WireError.versionMismatch(client: 7, server: WireProtocol.version)) {
            try WireHandshake.check(answer, clientVersion: 7)
        }
        #expect(try client.next() == nil)
        await server.stop()
    }

    /// Malformed, oversized and out-of-sequence frames, and a limit
    /// exceeded: a `request-failed` for the request being sent (where there
    /// is one), the connection closed, and the server still serves.
    @Test func badFramesCloseTheConnectionAndTheServerServesOn() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let file = dir.write("f", Array("alpha\n".utf8))
        let server = try await TestServer.start {
            $0.limits.maxFilesPerRequest = 4
            $0.limits.maxLiterals = 2
        }

        // A bad magic before any request: closed.
        let garbage = try server.client()
        try garbage.sendRaw(Array("GET / HTTP/1.1\r\n\r\n".utf8))
        #expect(try garbage.next() == nil)

        // An oversized frame header while a request is open: request-failed, closed.
        let oversized = try server.client()
        try oversized.send(.request(WireRequest(id: 5, fileCount: 1, operation: .count)))
        try oversized.sendRaw([0x53, 0x4C, 0x55, 0x57, 0x05, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0x7F])
        let failed = try oversized.replies(5).failure
        #expect(failed?.code == .malformed && failed?.message.contains("exceeds the limit") == true, "\(String(describing: failed))")
        #expect(try oversized.next() == nil)

        // A truncated payload: a files frame whose entry ends early.
        let truncated = try server.client()
        try truncated.send(.request(WireRequest(id: 6, fileCount: 1, operation: .hash)))
        try truncated.sendRaw([0x53, 0x4C, 0x55, 0x57, 0x05, 0x00, 0x00, 0x00, 0x0E, 0x00, 0x00, 0x00,
                               6, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0])
        #expect(try truncated.replies(6).failure?.code == .malformed)

        // Fewer descriptors than the files message declares.
        let short = try server.client()
        try short.send(.request(WireRequest(id: 7, fileCount: 1, operation: .count)))
        try short.send(.files(FileBatch(request: 7, paths: [RawPath(file)])))
        #expect(try short.replies(7).failure?.code == .invalidRequest)

        // More files, or literals, than the server takes in one request.
        let unlimited = WireLimits(maxLiterals: .max, maxFilesPerRequest: .max)
        let many = try server.client()
        try many.send(.request(WireRequest(id: 8, fileCount: 5, operation: .count)), limits: unlimited)
        let limit = try many.replies(8).failure
        #expect(limit?.code == .invalidRequest && limit?.message == "request 8: files in one request 5 exceeds the limit of 4",
                "\(String(describing: limit))")
        #expect(try many.next() == nil)
        let literals = try server.client()
        let three = ScanParameters(literals: [[1], [2], [3]])
        try literals.send(.request(WireRequest(id: 9, fileCount: 1, operation: .scan(three))), limits: unlimited)
        let tooMany = try literals.replies(9).failure
        #expect(tooMany?.message == "request 9: literal count 3 exceeds the limit of 2", "\(String(describing: tooMany))")

        // A server's message sent by a client, and files for a request never opened.
        let confused = try server.client()
        try confused.send(.welcome(Welcome(server: "me")))
        #expect(try confused.next() == nil)
        let stray = try server.client()
        try stray.send(.files(FileBatch(request: 3, paths: [])))
        #expect(try stray.replies(3).failure?.code == .invalidRequest)

        // A connection that ends inside a frame.
        var cut: RawClient? = try server.client()
        try cut?.sendRaw([0x53, 0x4C, 0x55])
        cut = nil  // closes it
        _ = cut

        let fine = try server.client()
        let count = try fine.run(1, .count, paths: [file])
        #expect(count.counts.map(\.lines) == [1] && count.done?.failedFiles == 0)
        await server.stop()
    }

    /// The uid allow-list as the pure decision it is (another uid cannot
    /// connect here): the server's own uid is always served, others only
    /// when allowed, and a stranger is refused before its version is looked at.
    @Test func theUIDAllowListDecides() {
        let access = PeerAccess(allowing: [2000], serverUID: 1000)
        #expect(access.allows(1000) && access.allows(2000) && !access.allows(0) && !access.allows(3000))
        #expect(PeerAccess(allowing: [], serverUID: 1000).allowedUIDs == [1000])
        let hello = Hello(client: "t")
        func answer(_ uid: UInt32, _ h: Hello = hello, stopping: Bool = false, full: Bool = false) -> WireMessage {
            Admission.answer(h, peerUID: uid, access: access, isStopping: stopping, isFull: full, server: "s")
        }
        #expect(answer(1000) == .welcome(Welcome(server: "s")))
        #expect(answer(2000) == .welcome(Welcome(server: "s")))
        guard case .refused(let stranger) = answer(3000, Hello(protocolVersion: 9, client: "t")) else {
            Issue.record("uid 3000 was not refused")
            return
        }
        #expect(stranger.reason == .uidNotAllowed && stranger.message.contains("uid 3000"))
        if case .refused(let r) = answer(1000, Hello(protocolVersion: 9, client: "t")) {
            #expect(r.reason == .versionMismatch)
        } else {
            Issue.record("a version mismatch was not refused")
        }
        if case .refused(let r) = answer(1000, stopping: true) { #expect(r.reason == .shuttingDown) } else { Issue.record("not refused") }
        if case .refused(let r) = answer(1000, full: true) { #expect(r.reason == .busy) } else { Issue.record("not refused") }
    }

    /// The socket is a socket of mode 0600 while the server runs, and gone once it stopped.
    @Test func theSocketIs0600AndRemovedOnStop() async throws {
        let server = try await TestServer.start()
        let path = server.socketPath.string
        var st = stat()
        try #require(lstat(path, &st) == 0)
        #expect(st.st_mode & S_IFMT == S_IFSOCK)
        #expect(st.st_mode & 0o7777 == 0o600)
        await server.stop()
        #expect(lstat(path, &st) != 0 && errno == ENOENT)
    }

    /// Stopping with a request in flight: the socket goes at once (new
    /// clients find no server), the request runs to its `done`, one made
    /// meanwhile is received and refused (`sessionClosed`), and the
    /// connection is closed once idle.
    @Test func stoppingLetsTheRequestInFlightFinish() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let small = dir.write("small", Array("one alpha two\n".utf8))
        let big = dir.file("sparse")
        close(open(big, O_CREAT | O_WRONLY, 0o600))
        _ = truncate(big, 256 << 20)  // holes: long enough to be in flight, short enough to finish
        let server = try await TestServer.start()
        let client = try server.client()
        try client.submit(1, .scan(ScanParameters(literals: Self.literals)), paths: [small, big])
        guard case .matches? = try client.next() else { throw TestFailure("expected a first reply") }
        server.server.stop()
        #expect(eventually { access(server.socketPath.string, F_OK) != 0 })
        try client.submit(2, .count, paths: [small])
        var ends: [UInt32: WireMessage] = [:]
        while ends.count < 2, let message = try client.next() {
            if case .done = message { ends[message.request!] = message }
            if case .requestFailed = message { ends[message.request!] = message }
        }
        guard case .done(let done)? = ends[1] else { throw TestFailure("request 1 ended with \(String(describing: ends[1]))") }
        #expect(done.files == 2 && done.failedFiles == 0 && done.bytes == 14 + (256 << 20))
        guard case .requestFailed(let refused)? = ends[2] else { throw TestFailure("request 2 ended with \(String(describing: ends[2]))") }
        #expect(refused.code == .sessionClosed && refused.message.contains("shutting down"))
        #expect(try client.next() == nil)  // closed once idle
        await server.stop()
    }

    /// A stop always ends: a client that announced two files but sent one
    /// batch of one, and then went silent, is given up on once the stop's
    /// grace is over (its request never started, its descriptor is closed).
    @Test(.timeLimit(.minutes(1))) func aStopEndsPastItsGraceWhateverTheClientsDo() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let small = dir.write("small", Array("one alpha two\n".utf8))
        let server = try await TestServer.start { $0.stopGrace = .milliseconds(300) }
        let client = try server.client()
        try client.send(.request(WireRequest(id: 1, fileCount: 2, operation: .count)))
        let fd = try FileDescriptor.open(FilePath(small), .readOnly, options: .closeOnExec)
        try client.send(.files(FileBatch(request: 1, paths: [RawPath(small)])), descriptors: [fd])
        try? fd.close()
        usleep(100_000)  // the server reads the header and the batch
        let began = ContinuousClock.now
        await server.stop()
        // The stop waited for the grace, then closed the connection.
        #expect(ContinuousClock.now - began >= .milliseconds(300))
        #expect(server.log.all.contains { $0.contains("still busy") }, "\(server.log.all)")
    }

    /// The log line's fields and its words for each result.
    @Test func theLogLineNamesEveryField() {
        let peer = PeerCredentials(pid: 42, uid: 1000, gid: 1000)
        #expect(RequestLog.line(peer: peer, command: "scan", files: 3, bytes: 4096, result: .ok, seconds: 0.0123)
            == "pid 42 uid 1000 scan: 3 files, 4096 bytes, ok, 12 ms")
        #expect(RequestLog.line(peer: peer, command: "hash", files: 1, bytes: 0, result: .error(.io), seconds: 2.345)
            == "pid 42 uid 1000 hash: 1 file, 0 bytes, error io, 2.35 s")
        let words: [RequestResult: String] = [
            .failedFiles(2): "2 failed", .cancelled: "cancelled", .clientGone: "client gone",
        ]
        for (result, text) in words { #expect(result.text == text) }
    }
}
