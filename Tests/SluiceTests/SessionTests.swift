#if canImport(Glibc)
import Glibc
#endif
import Testing

@testable import Sluice

/// The library's `Session`: results against the naive oracle and the CLI,
/// cancellation, concurrent requests, errors.
@Suite(.serialized) struct SessionTests {
    static func cpuConfiguration(chunkBytes: Int = 64 << 10) -> Session.Configuration {
        var c = Session.Configuration()
        c.backend = .cpu
        c.devices = .list([0])
        c.chunkBytes = chunkBytes
        c.workers = 2
        return c
    }

    /// A tree of text files with the three literals planted, some across
    /// 64 KiB chunk boundaries; returns the files' paths and bytes.
    static func plantedTree(_ dir: ScratchDirectory, files: Int = 12, seed: UInt64 = 7) -> [(String, [UInt8])] {
        var rng = SeededRandom(state: seed)
        let needles = ["alpha", "beta!", "gamma\n"].map { Array($0.utf8) }
        var out: [(String, [UInt8])] = []
        for i in 0..<files {
            var text = textLikeBytes(i == 0 ? 0 : 1000 + i * 37_001, &rng)
            for k in 0..<(text.count / 9000) {
                let needle = needles[k % 3]
                let p = k % 4 == 0 ? max(0, (k / 4 + 1) * 65_536 - 3) : (k * 8_999) % (text.count - needle.count)
                guard p + needle.count <= text.count else { continue }
                text.replaceSubrange(p..<(p + needle.count), with: needle)
            }
            out.append((dir.write(i % 3 == 0 ? "sub/f\(i)" : "f\(i)", text), text))
        }
        return out
    }

    static let literals = ["alpha", "beta!", "gamma\n"].map { Array($0.utf8) }

    /// `PATH:OFFSET:LITERAL` lines, as `sluice scan` prints them.
    static func lines(_ results: [FileMatches], literals: [[UInt8]]) -> [String] {
        results.flatMap { piece in
            piece.matches.map { "\(piece.path):\($0.offset):\(String(decoding: literals[$0.pattern], as: UTF8.self))" }
        }
    }

    @Test func scanEqualsTheCommandAndTheOracle() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let tree = Self.plantedTree(dir)
        let session = try await Session(Self.cpuConfiguration())
        let results = try await session.scan([FilePath(dir.path)], literals: Self.literals).collect()
        await session.close()

        let printed = Self.lines(results, literals: Self.literals)
        let cli = run([sluiceExecutable, "scan", "--backend", "cpu", "--chunk-size", "64K", "--quiet",
                       "-e", "alpha", "-e", "beta!", "-e", #"gamma\x0a"#, dir.path])
        #expect(cli.status == 0, "\(cli.stderr)")
        // The CLI prints the literal's raw bytes, so gamma's line spans two lines there.
        #expect(printed.joined(separator: "\n") + "\n" == cli.stdout)
        // Every file comes once as complete, and its matches are the oracle's.
        let complete = results.filter(\.isComplete).map(\.path.description)
        #expect(complete.count == tree.count && Set(complete) == Set(tree.map(\.0)))
        for (path, bytes) in tree {
            let got = results.filter { $0.path.description == path }.flatMap(\.matches)
            expectSameMatches(got, naiveMatches(bytes, Self.literals), path)
        }
        #expect(results.allSatisfy { $0.errors.isEmpty })
    }

    @Test func countAndChecksumMatchIndependentOracles() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let tree = Self.plantedTree(dir, files: 6, seed: 3)
        let session = try await Session(Self.cpuConfiguration())
        let counts = try await session.count([FilePath(dir.path)]).collect()
        let hashes = try await session.crc32c(tree.map { FilePath($0.0) }).collect()
        await session.close()

        let wc = wcCounts(tree.map(\.0))
        #expect(counts.count == tree.count)
        for c in counts {
            let expected = try #require(wc[c.path.description])
            #expect(c.errors.isEmpty && c.result.bytes == expected.bytes && c.result.newlines == expected.lines)
        }
        let byPath = Dictionary(uniqueKeysWithValues: tree)
        #expect(hashes.count == tree.count)
        for h in hashes {
            let bytes = try #require(byPath[h.path.description])
            #expect(h.errors.isEmpty && h.bytes == UInt64(bytes.count) && h.crc32c == bitwiseCRC32C(bytes))
        }
    }

    /// Breaking out after the first file stops the request; the session
    /// then serves the next one with full, correct results.
    @Test func cancelAfterTheFirstFileLeavesTheSessionUsable() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let tree = Self.plantedTree(dir, files: 30, seed: 11)
        let session = try await Session(Self.cpuConfiguration())
        var firstFile: String?
        for try await piece in session.scan([FilePath(dir.path)], literals: Self.literals) where piece.isComplete {
            firstFile = piece.path.description
            break
        }
        #expect(firstFile != nil)

        // Cancelling the consuming task works the same way.
        let task = Task {
            var seen = 0
            for try await _ in session.scan([FilePath(dir.path)], literals: Self.literals) {
                seen += 1
                withUnsafeCurrentTask { $0?.cancel() }
            }
            return seen
        }
        let seen = try await task.value
        #expect(seen >= 1 && seen < tree.count)

        let again = try await session.scan([FilePath(dir.path)], literals: Self.literals).collect()
        await session.close()
        let cli = run([sluiceExecutable, "scan", "--backend", "cpu", "--quiet",
                       "-e", "alpha", "-e", "beta!", "-e", #"gamma\x0a"#, dir.path])
        #expect(Self.lines(again, literals: Self.literals).joined(separator: "\n") + "\n" == cli.stdout)
        #expect(Set(again.filter(\.isComplete).map(\.path.description)) == Set(tree.map(\.0)))
    }

    /// Two scans started at the same time give what two sequential ones give.
    @Test func concurrentScansEqualSequentialOnes() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        _ = Self.plantedTree(dir, files: 10, seed: 5)
        let other = [Array("the".utf8), Array("e".utf8)]
        let session = try await Session(Self.cpuConfiguration())
        let paths = [FilePath(dir.path)]
        let first = try await Self.lines(session.scan(paths, literals: Self.literals).collect(), literals: Self.literals)
        let second = try await Self.lines(session.scan(paths, literals: other).collect(), literals: other)
        async let a = session.scan(paths, literals: Self.literals).collect()
        async let b = session.scan(paths, literals: other).collect()
        let (ca, cb) = try await (a, b)
        #expect(Self.lines(ca, literals: Self.literals) == first)
        #expect(Self.lines(cb, literals: other) == second)
        #expect(!first.isEmpty && second.count > first.count)
        await session.close()
    }

    /// Each file's matches from `results`, by path.
    static func matchesByPath(_ results: [FileMatches]) -> [String: [ScanMatch]] {
        var byPath: [String: [ScanMatch]] = [:]
        for piece in results { byPath[piece.path.description, default: []] += piece.matches }
        return byPath
    }

    /// Requests share the ring as tenants: while one request's reader has
    /// stopped reading (its job paused with matches waiting), a scan with
    /// another literal set (its own directory entry) and a count start,
    /// run and finish; then the stalled one finishes. Each equals its
    /// independent oracle. With requests queued one after another, the
    /// second would wait for the stalled reader for ever.
    @Test(.timeLimit(.minutes(1))) func aStalledReaderDoesNotHoldUpOtherRequests() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let tree = Self.plantedTree(dir, files: 12, seed: 21)
        let dense = [Array("the ".utf8), Array("th".utf8)]
        let session = try await Session(Self.cpuConfiguration())
        let paths = [FilePath(dir.path)]

        var stalled = session.scan(paths, literals: dense).makeAsyncIterator()
        var stalledPieces = [try #require(try await stalled.next())]
        let other = try await session.scan(paths, literals: Self.literals).collect()
        let counts = try await session.count(paths).collect()
        while let piece = try await stalled.next() { stalledPieces.append(piece) }
        await session.close()

        let otherMatches = Self.matchesByPath(other)
        let denseMatches = Self.matchesByPath(stalledPieces)
        let wc = wcCounts(tree.map(\.0))
        for (path, bytes) in tree {
            expectSameMatches(otherMatches[path] ?? [], naiveMatches(bytes, Self.literals), path)
            expectSameMatches(denseMatches[path] ?? [], naiveMatches(bytes, dense), path)
        }
        #expect(Set(other.filter(\.isComplete).map(\.path.description)) == Set(tree.map(\.0)))
        #expect(Set(stalledPieces.filter(\.isComplete).map(\.path.description)) == Set(tree.map(\.0)))
        #expect(counts.count == tree.count)
        for c in counts {
            let expected = try #require(wc[c.path.description])
            #expect(c.errors.isEmpty && c.result.bytes == expected.bytes && c.result.newlines == expected.lines)
        }
    }

    /// Cancelling one of two requests running together leaves the other's
    /// results whole and right, and the session serves the next request.
    @Test(.timeLimit(.minutes(1))) func cancellingOneTenantLeavesTheOtherIntact() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let tree = Self.plantedTree(dir, files: 16, seed: 23)
        let dense = [Array("th".utf8)]
        let session = try await Session(Self.cpuConfiguration())
        let paths = [FilePath(dir.path)]

        var doomed = session.scan(paths, literals: dense).makeAsyncIterator()
        _ = try #require(try await doomed.next())
        let survivor = Task { try await session.scan(paths, literals: Self.literals).collect() }
        let cancelled = Task {
            var seen = 0
            for try await _ in session.scan(paths, literals: dense) {
                seen += 1
                withUnsafeCurrentTask { $0?.cancel() }
            }
            return seen
        }
        _ = try await cancelled.value
        doomed = session.scan([], literals: dense).makeAsyncIterator()   // the first one's reader goes
        let results = try await survivor.value
        let again = try await session.crc32c(tree.map { FilePath($0.0) }).collect()
        await session.close()

        let byPath = Self.matchesByPath(results)
        for (path, bytes) in tree { expectSameMatches(byPath[path] ?? [], naiveMatches(bytes, Self.literals), path) }
        #expect(results.allSatisfy { $0.errors.isEmpty })
        let bytesByPath = Dictionary(uniqueKeysWithValues: tree)
        #expect(again.count == tree.count)
        for h in again {
            let bytes = try #require(bytesByPath[h.path.description])
            #expect(h.errors.isEmpty && h.crc32c == bitwiseCRC32C(bytes))
        }
    }

    /// A sequence kept after its loop ended, one never read, and a close
    /// while the session's thread waits for a consumer that stopped reading:
    /// none of them holds the session up.
    @Test(.timeLimit(.minutes(1))) func heldAndUnreadSequencesDoNotBlockTheSession() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        _ = Self.plantedTree(dir, files: 40, seed: 13)
        let session = try await Session(Self.cpuConfiguration())
        let paths = [FilePath(dir.path)]
        let expected = Self.lines(try await session.scan(paths, literals: Self.literals).collect(), literals: Self.literals)

        let kept = session.scan(paths, literals: Self.literals)
        for try await _ in kept { break }
        let neverRead = session.scan(paths, literals: Self.literals)
        #expect(Self.lines(try await session.scan(paths, literals: Self.literals).collect(), literals: Self.literals) == expected)
        // Read later, the sequence made first runs in full.
        #expect(Self.lines(try await neverRead.collect(), literals: Self.literals) == expected)

        // One element read, then the consumer stops reading and the session closes.
        var stalled = session.scan(paths, literals: Self.literals).makeAsyncIterator()
        #expect(try await stalled.next() != nil)
        await session.close()
        var ended = false
        do {
            while try await stalled.next() != nil {}
            ended = true
        } catch {
            #expect(error.code == .sessionClosed)
            ended = true
        }
        #expect(ended)
        _ = kept
    }

    /// A sequence dropped unread, or whose reader went, leaves nothing behind.
    @Test func droppedSequencesAreReleased() async throws {
        let session = try await Session(Self.cpuConfiguration())
        weak var unread: ResultChannel<FileCount>?
        weak var abandoned: ResultChannel<FileCount>?
        do {
            let sequence = session.count([FilePath("/etc/hostname")])
            unread = sequence.channel
        }
        do {
            let sequence = session.count([FilePath("/etc/hostname")])
            abandoned = sequence.channel
            for try await _ in sequence { break }
        }
        // The session's thread may still hold the abandoned request for a moment.
        #expect(try await session.count([FilePath("/etc/hostname")]).collect().count == 1)
        #expect(unread == nil)
        #expect(abandoned == nil)
        await session.close()
    }

    @Test func onlyErrorsRaisedBeforeAnyReadKeepThePool() {
        #expect(SessionWorker.leavesPoolClean(.invalidConfiguration("x")))
        #expect(SessionWorker.leavesPoolClean(.invalidRequest(chunk: nil, slot: nil, reason: "r")))
        #expect(SessionWorker.leavesPoolClean(.interrupted(finishedChunks: 1, pendingChunks: 2)))
        #expect(!SessionWorker.leavesPoolClean(.invalidRequest(chunk: 3, slot: nil, reason: "r")))
        #expect(!SessionWorker.leavesPoolClean(.stuck(slots: [1], seconds: 1, runner: .cpu)))
        #expect(!SessionWorker.leavesPoolClean(.readsStuck(path: "/p", chunks: [1], seconds: 1)))
        #expect(!SessionWorker.leavesPoolClean(.recoveryFailed(attempts: 2, cause: "c", unfinished: [])))
    }

    @Test func errorsAreValuesWithCodes() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let file = dir.write("a", Array("abc".utf8))
        let session = try await Session(Self.cpuConfiguration())

        // A missing path is a failed element naming it, with its errno.
        let missing = try await session.scan([FilePath(dir.file("absent")), FilePath(file)], literals: [Array("b".utf8)])
            .collect()
        let failure = try #require(missing.first { !$0.errors.isEmpty })
        let error = SluiceError(failure.errors[0])
        #expect(error.code == .io && error.errno == .noSuchFileOrDirectory)
        #expect(error.path == FilePath(dir.file("absent")))
        #expect(missing.flatMap(\.matches).map(\.offset) == [1])

        // A literal too long for the session's chunks is refused before any read.
        await #expect {
            _ = try await session.scan([FilePath(file)], literals: [[UInt8](repeating: 65, count: 40_000)]).collect()
        } throws: { ($0 as? SluiceError)?.code == .invalidRequest }
        await #expect {
            _ = try await session.scan([FilePath(file)], literals: []).collect()
        } throws: { ($0 as? SluiceError)?.code == .invalidConfiguration }

        await session.close()
        await #expect {
            _ = try await session.count([FilePath(file)]).collect()
        } throws: { ($0 as? SluiceError)?.code == .sessionClosed }
    }

    @Test func aSessionThatCannotStartThrows() async {
        var c = Self.cpuConfiguration()
        c.chunkBytes = 1000
        await #expect {
            _ = try await Session(c)
        } throws: { ($0 as? SluiceError)?.code == .invalidConfiguration }
    }
}

/// CRC-32C one bit at a time (polynomial 0x82F63B78), independent of SluiceOps.
func bitwiseCRC32C(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
    }
    return ~crc
}
