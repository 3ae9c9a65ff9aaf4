import Glibc
import SluiceCore
import Testing

@testable import SluiceIngest

/// O_DIRECT files read correctly through every stream, including a tail that
/// is not a multiple of the block size; where the filesystem refuses O_DIRECT
/// the open fails with an error that says what to do.
@Suite struct DirectIOTests {
    static let chunkBytes = 64 << 10
    /// Three whole chunks and an unaligned tail.
    static let size = 3 * chunkBytes + 1000

    @Test(arguments: StreamKind.available, [false, true])
    func directFileReadsByteForByte(kind: StreamKind, fullChunks: Bool) throws {
        let directory = try ScratchDirectory()
        let data = randomBytes(Self.size, seed: 11)
        let path = try directory.write("direct", data)
        guard let file = try openDirect(path) else { return }
        #expect(isDirectIO(file.fd.rawValue))
        try withRegion(chunkCount: 2, chunkBytes: Self.chunkBytes) { region in
            let stream = try kind.make(region: region, chunkBytes: Self.chunkBytes)
            let read = try readThrough(stream, file: file, size: Self.size, fullChunks: fullChunks)
            #expect(read.bytes == data)
        }
    }

    /// A short read on an O_DIRECT file resumes at a 4096 boundary (O_DIRECT
    /// refuses the unaligned offset where the short read stopped).
    @Test func shortReadOnADirectFileResumesAligned() throws {
        let directory = try ScratchDirectory()
        let data = randomBytes(Self.size, seed: 12)
        let path = try directory.write("direct", data)
        guard let file = try openDirect(path) else { return }
        try withRegion(chunkCount: 2, chunkBytes: Self.chunkBytes) { region in
            let stream = try ScriptedReadStream(region: region, chunkBytes: Self.chunkBytes)
            stream.inject(.shortRead(bytes: 5000), forChunk: 1)
            try stream.submit(ReadRequest(
                fd: file.fd, path: path, fileOffset: UInt64(Self.chunkBytes), length: Self.chunkBytes, chunkIndex: 1))
            let completions = try stream.reap(waitingUpTo: nil)
            #expect(try completions.first?.result.get() == Self.chunkBytes)
            let start = Self.chunkBytes
            #expect(Array(region[start..<(2 * start)]) == Array(data[start..<(2 * start)]))
            // pread of 5000 on O_DIRECT reads whole blocks or fails; either way
            // the second step must start on a 4096 boundary.
            try #require(stream.steps.count >= 2)
            #expect(stream.steps[1].bufferOffset % 4096 == 0)
            #expect(stream.steps[1].fileOffset % 4096 == 0)
            #expect(stream.steps[1].length % 4096 == 0)
        }
    }

    /// Opens `path` with O_DIRECT; nil when the filesystem refuses it (tmpfs
    /// on older kernels), after checking the refusal is the clear error.
    func openDirect(_ path: String) throws -> OpenFile? {
        do {
            return try OpenFile(path, direct: true)
        } catch let error as PipelineError {
            guard case .io(let failure) = error, failure.errno == EINVAL else { throw error }
            #expect(failure.path == path)
            #expect(error.message.contains("O_DIRECT"))
            return nil
        }
    }

    @Test func refusedDirectOpenNamesTheFileAndSuggestsBuffered() {
        let error = openFailure(path: "/mnt/odd/file", direct: true, errno: EINVAL)
        guard case .io(let failure) = error else {
            Issue.record("expected .io, got \(error)")
            return
        }
        #expect(failure.path == "/mnt/odd/file")
        #expect(failure.errno == EINVAL)
        #expect(failure.operation.contains("direct"))
        #expect(error.message.contains("/mnt/odd/file"))
        #expect(error.message.contains("O_DIRECT"))
        #expect(error.message.contains("buffered"))
    }

    @Test func missingFileIsAnOpenError() {
        #expect {
            _ = try openForIngest(path: "/nonexistent/sluice-test", direct: false)
        } throws: { error in
            guard case .io(let failure) = error as? PipelineError else { return false }
            return failure.operation == "open" && failure.errno == ENOENT && failure.path == "/nonexistent/sluice-test"
        }
    }

    @Test func bufferedOpenIsNotDirect() throws {
        let directory = try ScratchDirectory()
        let file = try OpenFile(try directory.write("plain", [1, 2, 3]))
        #expect(!isDirectIO(file.fd.rawValue))
        #expect(fcntl(file.fd.rawValue, F_GETFD) & FD_CLOEXEC != 0)
    }
}
