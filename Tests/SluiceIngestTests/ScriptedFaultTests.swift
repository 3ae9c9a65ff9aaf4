import Glibc
import SluiceCore
import Testing

@testable import SluiceIngest

/// Injected faults drive the streams' shared short-read, retry and error
/// logic, through real reads of a real file.
@Suite struct ScriptedFaultTests {
    static let chunkBytes = 16 << 10
    static let size = 5 * chunkBytes + 300

    /// A scripted stream over a random file, with the oracle bytes.
    struct Fixture {
        let directory: ScratchDirectory
        let data: [UInt8]
        let file: OpenFile

        init(size: Int = ScriptedFaultTests.size) throws {
            directory = try ScratchDirectory()
            data = randomBytes(size, seed: 7)
            file = try OpenFile(try directory.write("data", data))
        }

        func request(chunk: Int, offset: Int, length: Int = ScriptedFaultTests.chunkBytes) -> ReadRequest {
            ReadRequest(fd: file.fd, path: file.path, fileOffset: UInt64(offset), length: length, chunkIndex: chunk)
        }

        func expectHolds(_ stream: any ChunkReadStream, chunk: Int, offset: Int, count: Int) {
            let start = chunk * ScriptedFaultTests.chunkBytes
            #expect(Array(stream.region[start..<(start + count)]) == Array(data[offset..<(offset + count)]))
        }
    }

    func completions(_ stream: ScriptedReadStream) throws -> [Int: ReadCompletion] {
        var byChunk: [Int: ReadCompletion] = [:]
        for completion in try stream.reap(waitingUpTo: nil) { byChunk[completion.chunkIndex] = completion }
        return byChunk
    }

    @Test func shortReadIsFinishedWithARemainderRead() throws {
        let fixture = try Fixture()
        try withRegion(chunkCount: 4, chunkBytes: Self.chunkBytes) { region in
            let stream = try ScriptedReadStream(region: region, chunkBytes: Self.chunkBytes)
            stream.inject(.shortRead(bytes: 100), forChunk: 1)
            stream.inject(.shortRead(bytes: 5000), forChunk: 1)
            try stream.submit(fixture.request(chunk: 1, offset: Self.chunkBytes))
            let done = try completions(stream)
            #expect(try done[1]?.result.get() == Self.chunkBytes)
            fixture.expectHolds(stream, chunk: 1, offset: Self.chunkBytes, count: Self.chunkBytes)
            let offset = UInt64(Self.chunkBytes)
            #expect(stream.steps == [
                .init(chunk: 1, bufferOffset: 0, fileOffset: offset, length: Self.chunkBytes, result: 100),
                .init(chunk: 1, bufferOffset: 100, fileOffset: offset + 100, length: Self.chunkBytes - 100, result: 5000),
                .init(chunk: 1, bufferOffset: 5100, fileOffset: offset + 5100, length: Self.chunkBytes - 5100,
                      result: Self.chunkBytes - 5100),
            ])
        }
    }

    /// The remainder's length is rounded up to 4096 (the buffer has room), not
    /// trimmed to the bytes still wanted.
    @Test func remainderLengthIsRoundedUpTo4096() throws {
        let fixture = try Fixture()
        try withRegion(chunkCount: 4, chunkBytes: Self.chunkBytes) { region in
            let stream = try ScriptedReadStream(region: region, chunkBytes: Self.chunkBytes)
            stream.inject(.shortRead(bytes: 10), forChunk: 0)
            try stream.submit(fixture.request(chunk: 0, offset: 0, length: 1000))
            #expect(try completions(stream)[0]?.result.get() == 1000)
            #expect(stream.steps.map(\.length) == [4096, 4096])
            fixture.expectHolds(stream, chunk: 0, offset: 0, count: 1000)
        }
    }

    @Test func interruptedStepIsRetried() throws {
        let fixture = try Fixture()
        try withRegion(chunkCount: 4, chunkBytes: Self.chunkBytes) { region in
            let stream = try ScriptedReadStream(region: region, chunkBytes: Self.chunkBytes)
            stream.inject(.interrupted, forChunk: 2)
            stream.inject(.errno(EAGAIN), forChunk: 2)
            try stream.submit(fixture.request(chunk: 2, offset: 0))
            #expect(try completions(stream)[2]?.result.get() == Self.chunkBytes)
            fixture.expectHolds(stream, chunk: 2, offset: 0, count: Self.chunkBytes)
            #expect(stream.steps.map(\.result) == [-Int(EINTR), -Int(EAGAIN), Self.chunkBytes])
            #expect(Set(stream.steps.map(\.fileOffset)).count == 1)
        }
    }

    @Test func errnoFailureNamesPathChunkAndErrno() throws {
        let fixture = try Fixture()
        try withRegion(chunkCount: 4, chunkBytes: Self.chunkBytes) { region in
            let stream = try ScriptedReadStream(region: region, chunkBytes: Self.chunkBytes, order: .reverse)
            stream.inject(.errno(EIO), forChunk: 3)
            for chunk in 0..<4 { try stream.submit(fixture.request(chunk: chunk, offset: chunk * Self.chunkBytes)) }
            let done = try completions(stream)
            #expect(done.count == 4)
            for chunk in 0..<3 {
                #expect(try done[chunk]?.result.get() == Self.chunkBytes)
                fixture.expectHolds(stream, chunk: chunk, offset: chunk * Self.chunkBytes, count: Self.chunkBytes)
            }
            guard case .failure(.io(let failure))? = done[3]?.result else {
                Issue.record("chunk 3 should fail, got \(String(describing: done[3]?.result))")
                return
            }
            #expect(failure.path == fixture.file.path)
            #expect(failure.chunk == 3)
            #expect(failure.errno == EIO)
            #expect(failure.fileOffset == UInt64(3 * Self.chunkBytes))
            #expect(failure.operation == "read")
            #expect(PipelineError.io(failure).message.contains(fixture.file.path))
            #expect(stream.inflight == 0)
        }
    }

    /// The final chunk asks for a whole chunk and gets what the file has left.
    @Test func endOfFileShortensTheFinalChunk() throws {
        let fixture = try Fixture()
        try withRegion(chunkCount: 4, chunkBytes: Self.chunkBytes) { region in
            let stream = try ScriptedReadStream(region: region, chunkBytes: Self.chunkBytes)
            stream.inject(.shortRead(bytes: 100), forChunk: 0)
            try stream.submit(fixture.request(chunk: 0, offset: 5 * Self.chunkBytes))
            #expect(try completions(stream)[0]?.result.get() == 300)
            fixture.expectHolds(stream, chunk: 0, offset: 5 * Self.chunkBytes, count: 300)
            // The read after the short one found the end of the file: 200 bytes, then 0.
            #expect(stream.steps.map(\.result) == [100, 200, 0])
        }
    }

    @Test func neverCompletingReadHoldsUntilReleased() throws {
        let fixture = try Fixture()
        try withRegion(chunkCount: 4, chunkBytes: Self.chunkBytes) { region in
            let stream = try ScriptedReadStream(region: region, chunkBytes: Self.chunkBytes)
            stream.inject(.neverCompletes, forChunk: 2)
            for chunk in 0..<3 { try stream.submit(fixture.request(chunk: chunk, offset: chunk * Self.chunkBytes)) }
            #expect(Set(try stream.reap(waitingUpTo: .seconds(1)).map(\.chunkIndex)) == [0, 1])
            #expect(stream.stuckChunks == [2])
            let start = ContinuousClock.now
            #expect(try stream.reap(waitingUpTo: .milliseconds(50)).isEmpty)
            #expect(ContinuousClock.now - start >= .milliseconds(50))
            #expect(stream.inflight == 1)
            // Still in flight: the buffer may not be reused yet.
            #expect(throws: PipelineError.self) { try stream.submit(fixture.request(chunk: 2, offset: 0)) }
            stream.releaseStuckReads()
            #expect(try stream.reap(waitingUpTo: nil).map(\.chunkIndex) == [2])
            fixture.expectHolds(stream, chunk: 2, offset: 2 * Self.chunkBytes, count: Self.chunkBytes)
            #expect(stream.inflight == 0)
        }
    }

    /// Faults wait for the chunk's next read and apply one per step.
    @Test func faultsApplyToLaterSubmissions() throws {
        let fixture = try Fixture()
        try withRegion(chunkCount: 4, chunkBytes: Self.chunkBytes) { region in
            let stream = try ScriptedReadStream(region: region, chunkBytes: Self.chunkBytes)
            stream.inject(.errno(ENOSPC), forChunk: 1)
            stream.inject(.errno(EIO), forChunk: 1)
            try stream.submit(fixture.request(chunk: 1, offset: 0))
            guard case .failure(.io(let first))? = try completions(stream)[1]?.result else {
                Issue.record("first read of chunk 1 should fail")
                return
            }
            #expect(first.errno == ENOSPC)
            try stream.submit(fixture.request(chunk: 1, offset: 0))
            guard case .failure(.io(let second))? = try completions(stream)[1]?.result else {
                Issue.record("second read of chunk 1 should fail")
                return
            }
            #expect(second.errno == EIO)
            try stream.submit(fixture.request(chunk: 1, offset: 0))
            #expect(try completions(stream)[1]?.result.get() == Self.chunkBytes)
        }
    }
}
