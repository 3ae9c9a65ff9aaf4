#if canImport(Glibc)
import Glibc
#endif
import Testing

@testable import Sluice

/// Sessions over files opened already (what `sluice serve` runs for a
/// client): the names only name the files, the descriptors are what is read.
@Suite(.serialized) struct PassedFilesTests {
    /// The tree's files opened here, each under a name that does not exist,
    /// so that a run that opened a name instead of reading its descriptor fails.
    static func passed(_ tree: [(String, [UInt8])]) throws -> (PassedFiles, [String: [UInt8]]) {
        var names: [RawPath] = []
        var fds: [FileDescriptor] = []
        var bytes: [String: [UInt8]] = [:]
        for (i, (path, content)) in tree.enumerated() {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            try #require(fd >= 0)
            let name = "/nonexistent/client-\(i)"
            names.append(RawPath(name))
            fds.append(FileDescriptor(rawValue: fd))
            bytes[name] = content
        }
        return (try PassedFiles(paths: names, descriptors: fds), bytes)
    }

    @Test func scanCountAndHashReadThePassedDescriptors() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let tree = SessionTests.plantedTree(dir, files: 9, seed: 31)
        let session = try await Session(SessionTests.cpuConfiguration())

        let (forScan, bytes) = try Self.passed(tree)
        let scanned = try await session.scan(passing: forScan, literals: SessionTests.literals).collect()
        let (forCount, _) = try Self.passed(tree)
        let counts = try await session.count(passing: forCount).collect()
        let (forHash, _) = try Self.passed(tree)
        let hashes = try await session.crc32c(passing: forHash).collect()
        await session.close()

        let names = (0..<tree.count).map { "/nonexistent/client-\($0)" }
        // In the order passed, not sorted by name.
        #expect(scanned.filter(\.isComplete).map(\.path.description) == names)
        let byName = SessionTests.matchesByPath(scanned)
        for name in names {
            let content = try #require(bytes[name])
            expectSameMatches(byName[name] ?? [], naiveMatches(content, SessionTests.literals), name)
        }
        #expect(scanned.allSatisfy { $0.errors.isEmpty })
        #expect(counts.map(\.path.description) == names)
        for c in counts {
            let content = try #require(bytes[c.path.description])
            #expect(c.errors.isEmpty && c.result.bytes == UInt64(content.count)
                && c.result.newlines == UInt64(content.filter { $0 == 0x0A }.count))
        }
        #expect(hashes.map(\.path.description) == names)
        for h in hashes {
            let content = try #require(bytes[h.path.description])
            #expect(h.errors.isEmpty && h.crc32c == bitwiseCRC32C(content))
        }
    }

    /// A descriptor that is not a regular file fails its own file, naming
    /// it, and is closed; the others are read.
    @Test func aPipeIsRefusedByNameAndClosed() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let content = Array("one alpha two\n".utf8)
        let path = dir.write("plain", content)
        var ends: [Int32] = [0, 0]
        try #require(pipe(&ends) == 0)
        // Close-on-exec at once: a process another test spawns meanwhile must not hold the read end open.
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        let plain = open(path, O_RDONLY | O_CLOEXEC)
        let files = try PassedFiles(
            paths: [RawPath("/client/pipe"), RawPath("/client/plain")],
            descriptors: [FileDescriptor(rawValue: ends[0]), FileDescriptor(rawValue: plain)])
        let session = try await Session(SessionTests.cpuConfiguration())
        let results = try await session.count(passing: files).collect()
        await session.close()

        #expect(results.map(\.path.description) == ["/client/pipe", "/client/plain"])
        let refused = try #require(results.first?.errors.first)
        #expect(SluiceError(refused).path == "/client/pipe")
        #expect(SluiceError(refused).message.contains("not a regular file"))
        #expect(results[1].errors.isEmpty && results[1].result.bytes == UInt64(content.count))
        // The read end was closed: the write end now reports an error.
        var poller = pollfd(fd: ends[1], events: Int16(POLLOUT), revents: 0)
        #expect(poll(&poller, 1, 1000) == 1 && poller.revents & Int16(POLLERR) != 0)
        close(ends[1])
    }

    @Test func namesAndDescriptorsMustPair() throws {
        var ends: [Int32] = [0, 0]
        try #require(pipe(&ends) == 0)
        // Close-on-exec at once: a process another test spawns meanwhile must not hold the read end open.
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        #expect(throws: PipelineError.self) {
            _ = try PassedFiles(paths: [], descriptors: [FileDescriptor(rawValue: ends[0])])
        }
        // The descriptor was closed with the refusal.
        var poller = pollfd(fd: ends[1], events: Int16(POLLOUT), revents: 0)
        #expect(poll(&poller, 1, 1000) == 1 && poller.revents & Int16(POLLERR) != 0)
        close(ends[1])
    }

    /// The thread-side consumer gets what the async one gets.
    @Test func aThreadConsumerGetsTheSameResults() async throws {
        let dir = ScratchDirectory()
        defer { dir.remove() }
        let tree = SessionTests.plantedTree(dir, files: 6, seed: 37)
        let session = try await Session(SessionTests.cpuConfiguration())
        let paths = [FilePath(dir.path)]
        let expected = SessionTests.lines(try await session.scan(paths, literals: SessionTests.literals).collect(), literals: SessionTests.literals)
        let results = session.scan(paths, literals: SessionTests.literals)
        let got = try await Task.detached { () throws(SluiceError) -> [FileMatches] in
            var all: [FileMatches] = []
            while let piece = try results.nextWaiting() { all.append(piece) }
            return all
        }.value
        await session.close()
        #expect(SessionTests.lines(got, literals: SessionTests.literals) == expected)
        #expect(got.filter(\.isComplete).count == tree.count)
    }
}
