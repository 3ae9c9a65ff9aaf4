import SluiceCore
import SluiceIngest
import Synchronization
import Testing

/// `DeferredReadStream` sets its stream up at the first read and not before,
/// and reads through it exactly like the stream it wraps.
@Suite struct DeferredReadStreamTests {
    /// Counts how often the stream was built; the next build may be told to fail.
    final class Maker: Sendable {
        let built = Mutex(0)
        let failNext = Mutex(false)

        func make(_ choice: IngestChoice, region: UnsafeMutableRawBufferPointer, chunkBytes: Int, chunkCount: Int)
            throws(PipelineError) -> IngestSelection
        {
            if failNext.withLock({ let f = $0; $0 = false; return f }) {
                throw .io(IOFailure(operation: "io_uring_setup", path: "", errno: 1, reason: "Operation not permitted"))
            }
            built.withLock { $0 += 1 }
            return try IngestSelection.makeStream(
                choice, region: region, chunkBytes: chunkBytes, chunkCount: chunkCount, preadThreads: 2)
        }
    }

    @Test(arguments: [IngestChoice.pread, .auto])
    func nothingIsSetUpBeforeTheFirstReadAndThenTheBytesAreTheFiles(choice: IngestChoice) throws {
        let dir = try ScratchDirectory()
        let chunk = 64 << 10
        // Sizes around the chunk: the last chunk of each file ends early.
        for (index, size) in [0, 1, chunk - 1, chunk, 3 * chunk + 17].enumerated() {
            let expected = randomBytes(size, seed: UInt64(40 + index))
            let file = try OpenFile(try dir.write("f\(index)", expected))
            try withRegion(chunkCount: 4, chunkBytes: chunk) { region in
                let maker = Maker()
                let stream = try DeferredReadStream(region: region, chunkBytes: chunk, chunkCount: 4) {
                    () throws(PipelineError) in try maker.make(choice, region: region, chunkBytes: chunk, chunkCount: 4)
                }
                #expect(stream.chunkCount == 4 && stream.chunkBytes == chunk)
                #expect(!stream.isSetUp && stream.setUpReason == nil && stream.kind == "deferred")
                // Reaping with nothing submitted neither waits nor sets anything up.
                #expect(try stream.reap(waitingUpTo: .seconds(5)).isEmpty)
                #expect(stream.inflight == 0)
                #expect(maker.built.withLock { $0 } == 0)
                #expect(throws: PipelineError.self) { try stream.hostBytes(ofChunk: 0, count: 1) }

                let read = try readThrough(stream, file: file, size: size, fullChunks: false)
                #expect(read.bytes == expected, "\(size) bytes")
                #expect(maker.built.withLock { $0 } == 1, "built once however many reads")
                #expect(stream.isSetUp)
                let reason = try #require(stream.setUpReason)
                #expect(choice == .pread ? reason.hasPrefix("pread thread pool") : !reason.isEmpty, "\(reason)")
                #expect(stream.kind != "deferred")
            }
        }
    }

    /// A failed set-up fails the read that asked for it, naming that read's
    /// file and chunk; the next read tries again.
    @Test func aFailedSetUpNamesTheFileAndIsTriedAgain() throws {
        let dir = try ScratchDirectory()
        let chunk = 16 << 10
        let expected = randomBytes(2 * chunk + 5, seed: 7)
        let file = try OpenFile(try dir.write("named.bin", expected))
        try withRegion(chunkCount: 2, chunkBytes: chunk) { region in
            let maker = Maker()
            maker.failNext.withLock { $0 = true }
            let stream = try DeferredReadStream(region: region, chunkBytes: chunk, chunkCount: 2) {
                () throws(PipelineError) in try maker.make(.pread, region: region, chunkBytes: chunk, chunkCount: 2)
            }
            let request = ReadRequest(fd: file.fd, path: file.path, fileOffset: 4096, length: 100, chunkIndex: 1)
            do throws(PipelineError) {
                try stream.submit(request)
                Issue.record("the submit should have failed")
            } catch {
                guard case .io(let failure) = error else {
                    Issue.record("expected an I/O error, got \(error)")
                    return
                }
                #expect(failure.path == file.path)
                #expect(failure.chunk == 1 && failure.fileOffset == 4096 && failure.operation == "io_uring_setup")
                #expect(error.message.contains("named.bin"), "\(error.message)")
            }
            #expect(!stream.isSetUp && stream.inflight == 0)
            let read = try readThrough(stream, file: file, size: expected.count, fullChunks: true)
            #expect(read.bytes == expected)
            #expect(maker.built.withLock { $0 } == 1)
        }
    }

    /// A stream built over other chunks than the layout promised is refused, not used.
    @Test func aStreamOfAnotherLayoutIsRefused() throws {
        let dir = try ScratchDirectory()
        let file = try OpenFile(try dir.write("f", randomBytes(100, seed: 3)))
        try withRegion(chunkCount: 4, chunkBytes: 8192) { region in
            let stream = try DeferredReadStream(region: region, chunkBytes: 8192, chunkCount: 4) {
                () throws(PipelineError) in
                try IngestSelection.makeStream(.pread, region: region, chunkBytes: 4096, chunkCount: 4, preadThreads: 1)
            }
            #expect(throws: PipelineError.self) {
                try stream.submit(ReadRequest(fd: file.fd, path: file.path, fileOffset: 0, length: 100, chunkIndex: 0))
            }
            #expect(!stream.isSetUp)
        }
        // A layout that cannot work fails at once, not at the first read.
        withRegion(chunkCount: 1, chunkBytes: 4096) { region -> Void in
            #expect(throws: PipelineError.self) {
                _ = try DeferredReadStream(region: region, chunkBytes: 4096, chunkCount: 2) { () throws(PipelineError) in
                    Issue.record("never built")
                    return try IngestSelection.makeStream(.pread, region: region, chunkBytes: 4096, preadThreads: 1)
                }
            }
        }
    }
}
