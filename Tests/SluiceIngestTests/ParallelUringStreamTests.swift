#if os(Linux) && compiler(>=6.2)
import Glibc
import SluiceCore
import SluiceThreads
import SystemPackage
import Testing

@testable import SluiceIngest

/// `ParallelUringStream`: chunks spread over several rings, each on its own
/// thread, with the same semantics as the single-ring stream. Every test runs
/// with 2 and 3 rings, so chunk counts that do not divide evenly are covered.
@Suite(.enabled(if: uringAvailability == nil))
struct ParallelUringStreamTests {
    static let rings = [2, 3]

    // MARK: Carving

    /// Every chunk belongs to exactly one ring, as slot `chunk / rings` of
    /// ring `chunk % rings`.
    @Test(arguments: rings, [1, 2, 3, 4, 7, 16])
    func chunksAreCarvedOverTheRings(rings: Int, chunkCount: Int) {
        guard rings <= chunkCount else { return }
        var owner = [Int?](repeating: nil, count: chunkCount)
        for ring in 0..<rings {
            for (slot, chunk) in ParallelUringStream.chunks(ofRing: ring, rings: rings, chunkCount: chunkCount).enumerated() {
                #expect(owner[chunk] == nil, "chunk \(chunk) registered twice")
                owner[chunk] = ring
                #expect(chunk % rings == ring)
                #expect(chunk / rings == slot)
            }
        }
        #expect(owner.allSatisfy { $0 != nil })
    }

    // MARK: Whole files

    static let chunkBytes = 64 << 10
    static let sizes = [0, 1, chunkBytes - 1, chunkBytes, chunkBytes + 1, 3 << 20 + 777, 9 << 20]

    /// Byte for byte against the data written, with exact and whole-chunk
    /// lengths, through 5 buffers (so rings hold 3+2 or 2+2+1 chunks).
    @Test(arguments: rings, sizes)
    func wholeFileReadsByteForByte(rings: Int, size: Int) throws {
        let directory = try ScratchDirectory()
        let data = randomBytes(size, seed: UInt64(size) &+ 41)
        let file = try OpenFile(try directory.write("data", data))
        try withRegion(chunkCount: 5, chunkBytes: Self.chunkBytes) { region in
            let stream = try ParallelUringStream(region: region, chunkBytes: Self.chunkBytes, rings: rings)
            #expect(stream.kind == "io_uring")
            #expect(stream.ringCount == rings)
            #expect(stream.chunkCount == 5)
            for fullChunks in [false, true] {
                let read = try readThrough(stream, file: file, size: size, fullChunks: fullChunks)
                #expect(read.bytes == data, "full chunks: \(fullChunks)")
                #expect(stream.inflight == 0)
            }
        }
    }

    /// O_DIRECT files (an unaligned tail included) read through every ring.
    @Test(arguments: rings, [false, true])
    func directFileReadsByteForByte(rings: Int, fullChunks: Bool) throws {
        let directory = try ScratchDirectory()
        let size = 7 * Self.chunkBytes + 1000
        let data = randomBytes(size, seed: 43)
        let path = try directory.write("direct", data)
        let file: OpenFile
        do {
            file = try OpenFile(path, direct: true)
        } catch let error as PipelineError {
            // The filesystem refuses O_DIRECT (tmpfs on older kernels): nothing to read directly.
            guard case .io(let failure) = error, failure.errno == EINVAL else { throw error }
            return
        }
        #expect(isDirectIO(file.fd.rawValue))
        try withRegion(chunkCount: 4, chunkBytes: Self.chunkBytes) { region in
            let stream = try ParallelUringStream(region: region, chunkBytes: Self.chunkBytes, rings: rings)
            let read = try readThrough(stream, file: file, size: size, fullChunks: fullChunks)
            #expect(read.bytes == data)
            #expect(stream.inflight == 0)
        }
    }

    // MARK: Many in flight

    /// 32 buffers over the rings, all busy at once with offsets that disagree
    /// with chunk order, over several rounds: every completion names its own
    /// chunk and offset, every buffer holds its own offset's bytes, and
    /// `inflight` counts exactly.
    @Test(arguments: rings)
    func manyChunksInFlightMatchByChunk(rings: Int) throws {
        let chunkBytes = 16 << 10
        let chunks = 32
        let blocks = 3 * chunks
        let directory = try ScratchDirectory()
        let data = randomBytes(blocks * chunkBytes, seed: 47)
        let file = try OpenFile(try directory.write("data", data))
        try withRegion(chunkCount: chunks, chunkBytes: chunkBytes) { region in
            let stream = try ParallelUringStream(region: region, chunkBytes: chunkBytes, rings: rings)
            for round in 0..<3 {
                // Chunk c reads block (7c + 5 round) mod blocks: scattered, distinct within a round.
                let offsets = (0..<chunks).map { ((7 * $0 + 5 * round) % blocks) * chunkBytes }
                for (chunk, offset) in offsets.enumerated() {
                    try stream.submit(ReadRequest(
                        fd: file.fd, path: file.path, fileOffset: UInt64(offset), length: chunkBytes, chunkIndex: chunk))
                    #expect(stream.inflight == chunk + 1)
                }
                var seen = Set<Int>()
                while stream.inflight > 0 {
                    let before = stream.inflight
                    let completions = try stream.reap(waitingUpTo: .seconds(10))
                    try #require(!completions.isEmpty, "no completion within 10 s, \(stream.inflight) in flight")
                    #expect(stream.inflight == before - completions.count)
                    for completion in completions {
                        let chunk = completion.chunkIndex
                        #expect(seen.insert(chunk).inserted, "chunk \(chunk) completed twice")
                        #expect(completion.request.fileOffset == UInt64(offsets[chunk]))
                        #expect(try completion.result.get() == chunkBytes)
                        let start = chunk * chunkBytes
                        #expect(
                            Array(region[start..<(start + chunkBytes)]) == Array(data[offsets[chunk]..<(offsets[chunk] + chunkBytes)]),
                            "chunk \(chunk), round \(round)")
                    }
                }
                #expect(seen == Set(0..<chunks))
                #expect(try stream.reap(waitingUpTo: .milliseconds(10)).isEmpty)
            }
        }
    }

    // MARK: Short reads and errors

    /// A pipe hands out only what was written so far: the ring thread keeps
    /// reading into the rest of the buffer until the request is met.
    @Test(arguments: rings)
    func shortReadIsFinishedOnItsRing(rings: Int) throws {
        let chunkBytes = 16 << 10
        let pipe = try Pipe()
        let data = randomBytes(3000, seed: 53)
        try withRegion(chunkCount: 4, chunkBytes: chunkBytes) { region in
            let stream = try ParallelUringStream(region: region, chunkBytes: chunkBytes, rings: rings)
            try pipe.write(Array(data[..<1000]))
            // Chunk 3: ring 1 of 2, ring 0 of 3 (slot 1 there).
            try stream.submit(ReadRequest(fd: pipe.reader, path: "pipe", fileOffset: 0, length: 3000, chunkIndex: 3))
            #expect(try stream.reap(waitingUpTo: .milliseconds(100)).isEmpty)
            #expect(stream.inflight == 1)
            try pipe.write(Array(data[1000...]))
            let completions = try stream.reap(waitingUpTo: .seconds(10))
            try #require(completions.count == 1)
            #expect(completions[0].chunkIndex == 3)
            #expect(try completions[0].result.get() == 3000)
            #expect(Array(region[(3 * chunkBytes)..<(3 * chunkBytes + 3000)]) == data)
            #expect(region[..<(3 * chunkBytes)].allSatisfy { $0 == 0xEE })
        }
    }

    /// read(2) on a directory fails with EISDIR on whichever ring: a
    /// completion naming path, offset, length and chunk, while a good read
    /// alongside succeeds.
    @Test(arguments: rings)
    func kernelErrorsAreCompletionsNamingTheChunk(rings: Int) throws {
        let chunkBytes = 16 << 10
        let directory = try ScratchDirectory()
        let data = randomBytes(chunkBytes, seed: 59)
        let file = try OpenFile(try directory.write("data", data))
        let fd = open(directory.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        try #require(fd >= 0)
        defer { close(fd) }
        try withRegion(chunkCount: 6, chunkBytes: chunkBytes) { region in
            let stream = try ParallelUringStream(region: region, chunkBytes: chunkBytes, rings: rings)
            let failing = [1, 2, 5]  // spread over the rings either way
            for chunk in failing {
                try stream.submit(ReadRequest(
                    fd: FileDescriptor(rawValue: fd), path: directory.path, fileOffset: UInt64(4096 * chunk),
                    length: 100 + chunk, chunkIndex: chunk))
            }
            try stream.submit(ReadRequest(fd: file.fd, path: file.path, fileOffset: 0, length: chunkBytes, chunkIndex: 0))
            var completions: [ReadCompletion] = []
            while stream.inflight > 0 {
                let more = try stream.reap(waitingUpTo: .seconds(10))
                try #require(!more.isEmpty)
                completions += more
            }
            #expect(completions.map(\.chunkIndex).sorted() == [0, 1, 2, 5])
            for completion in completions {
                let chunk = completion.chunkIndex
                if chunk == 0 {
                    #expect(try completion.result.get() == chunkBytes)
                    #expect(Array(region[..<chunkBytes]) == data)
                    continue
                }
                guard case .failure(.io(let failure)) = completion.result else {
                    Issue.record("chunk \(chunk): expected an I/O failure, got \(completion.result)")
                    continue
                }
                #expect(failure == IOFailure(
                    operation: "read", path: directory.path, fileOffset: UInt64(4096 * chunk), length: 100 + chunk,
                    chunk: chunk, errno: EISDIR, reason: String(cString: strerror(EISDIR))))
            }
        }
    }

    // MARK: Validation

    /// Requests breaking a rule are refused before anything reaches a ring,
    /// whichever ring the chunk belongs to, and leave `inflight` alone.
    @Test(arguments: rings)
    func invalidRequestsAreRefusedBeforeSubmission(rings: Int) throws {
        let chunkBytes = 16 << 10
        let directory = try ScratchDirectory()
        let data = randomBytes(4 * chunkBytes, seed: 61)
        let file = try OpenFile(try directory.write("data", data))
        try withRegion(chunkCount: 5, chunkBytes: chunkBytes) { region in
            let stream = try ParallelUringStream(region: region, chunkBytes: chunkBytes, rings: rings)
            func request(chunk: Int = 0, offset: UInt64 = 0, length: Int = 100, fd: FileDescriptor? = nil) -> ReadRequest {
                ReadRequest(fd: fd ?? file.fd, path: file.path, fileOffset: offset, length: length, chunkIndex: chunk)
            }
            func expectRejected(_ request: ReadRequest, because words: String, sourceLocation: SourceLocation = #_sourceLocation) {
                let before = stream.inflight
                do {
                    try stream.submit(request)
                    Issue.record("\(request) was accepted", sourceLocation: sourceLocation)
                } catch {
                    guard case .invalidRequest(let chunk, nil, let reason) = error else {
                        Issue.record("expected .invalidRequest, got \(error)", sourceLocation: sourceLocation)
                        return
                    }
                    #expect(chunk == request.chunkIndex, sourceLocation: sourceLocation)
                    #expect(reason.contains(words), "\(reason)", sourceLocation: sourceLocation)
                }
                #expect(stream.inflight == before, sourceLocation: sourceLocation)
            }
            expectRejected(request(chunk: -1), because: "outside 0..<5")
            expectRejected(request(chunk: 5), because: "outside 0..<5")
            expectRejected(request(chunk: 4, length: 0), because: "length 0")
            expectRejected(request(chunk: 3, length: chunkBytes + 1), because: "chunk size \(chunkBytes)")
            expectRejected(request(chunk: 2, fd: FileDescriptor(rawValue: -1)), because: "not open")
            expectRejected(request(chunk: 1, offset: UInt64(Int64.max)), because: "largest file offset")
            // A chunk is busy from submit until its completion is reaped, on every ring.
            for chunk in 0..<5 {
                try stream.submit(request(chunk: chunk, offset: UInt64(chunk % 4 * chunkBytes), length: chunkBytes))
            }
            #expect(stream.inflight == 5)
            for chunk in 0..<5 { expectRejected(request(chunk: chunk), because: "already being read") }
            var reused = Set<Int>()
            while stream.inflight > 0 {
                let completions = try stream.reap(waitingUpTo: .seconds(10))
                try #require(!completions.isEmpty)
                for completion in completions {
                    let chunk = completion.chunkIndex
                    let start = chunk * chunkBytes
                    if reused.contains(chunk) {
                        #expect(completion.request.length == 10)
                        #expect(try completion.result.get() == 10)
                        #expect(Array(region[start..<(start + 10)]) == Array(data[..<10]))
                        continue
                    }
                    // The refused requests did not disturb the reads in flight.
                    #expect(try completion.result.get() == chunkBytes)
                    let offset = chunk % 4 * chunkBytes
                    #expect(Array(region[start..<(start + chunkBytes)]) == Array(data[offset..<(offset + chunkBytes)]))
                    // Reaped: the buffer may be reused at once.
                    try stream.submit(request(chunk: chunk, length: 10))
                    reused.insert(chunk)
                }
            }
            #expect(reused == Set(0..<5))
            #expect(stream.inflight == 0)
        }
    }

    @Test func badRingCountsAreRefused() throws {
        try withRegion(chunkCount: 4, chunkBytes: 4096) { region throws in
            func expectInvalid(_ words: String, _ make: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) {
                do {
                    try make()
                    Issue.record("accepted; expected a refusal mentioning \(words)", sourceLocation: sourceLocation)
                } catch {
                    guard case .invalidConfiguration(let what)? = error as? PipelineError else {
                        Issue.record("expected .invalidConfiguration, got \(error)", sourceLocation: sourceLocation)
                        return
                    }
                    #expect(what.contains(words), "\(what)", sourceLocation: sourceLocation)
                }
            }
            expectInvalid("between 1 and 4") { _ = try ParallelUringStream(region: region, chunkBytes: 4096, rings: 0) }
            expectInvalid("between 1 and 4") { _ = try ParallelUringStream(region: region, chunkBytes: 4096, rings: 5) }
            expectInvalid("between 1 and 2") {
                _ = try ParallelUringStream(region: region, chunkBytes: 4096, chunkCount: 2, rings: 3)
            }
            expectInvalid("multiple of 4096") { _ = try ParallelUringStream(region: region, chunkBytes: 1000, rings: 2) }
            let shifted = UnsafeMutableRawBufferPointer(rebasing: region[512...])
            expectInvalid("4096-byte boundary") { _ = try ParallelUringStream(region: shifted, chunkBytes: 4096, rings: 2) }
            // The selection refuses them too, without falling back to pread.
            for choice in [IngestChoice.auto, .uring] {
                expectInvalid("between 1 and 4") {
                    _ = try IngestSelection.makeStream(choice, region: region, chunkBytes: 4096, uringRings: 5)
                }
                expectInvalid("between 1 and 4") {
                    _ = try IngestSelection.makeStream(choice, region: region, chunkBytes: 4096, uringRings: 0)
                }
            }
            // One ring per chunk is the most.
            #expect(try ParallelUringStream(region: region, chunkBytes: 4096, rings: 4).ringCount == 4)
        }
    }

    // MARK: Deinit

    /// Deinit must not return while a kernel could still write into the
    /// region: reads blocked on empty pipes, one on every ring, are cancelled
    /// and drained by their threads before deinit returns; they took nothing
    /// from the pipes and wrote nothing.
    @Test(arguments: rings)
    func deinitCancelsBlockedReadsOnEveryRing(rings: Int) throws {
        let chunkBytes = 16 << 10
        let pipes = try (0..<(2 * rings)).map { _ in try Pipe() }
        try withRegion(chunkCount: 2 * rings, chunkBytes: chunkBytes) { region in
            var stream: ParallelUringStream? = try ParallelUringStream(
                region: region, chunkBytes: chunkBytes, rings: rings)
            for (chunk, pipe) in pipes.enumerated() {
                try stream?.submit(ReadRequest(fd: pipe.reader, path: "pipe \(chunk)", fileOffset: 0, length: 10, chunkIndex: chunk))
            }
            #expect(try stream?.reap(waitingUpTo: .milliseconds(50)).isEmpty == true)
            #expect(stream?.inflight == 2 * rings)
            let start = ContinuousClock.now
            stream = nil
            #expect(ContinuousClock.now - start < .seconds(5))
            for (chunk, pipe) in pipes.enumerated() {
                let bytes: [UInt8] = [UInt8(chunk), 2, 3]
                try pipe.write(bytes)
                var back = [UInt8](repeating: 0, count: 3)
                #expect(read(pipe.reader.rawValue, &back, 3) == 3)
                #expect(back == bytes, "pipe \(chunk)")
            }
            #expect(region.allSatisfy { $0 == 0xEE })
        }
    }

    /// Dropping the stream with file reads in flight (some finished, some
    /// not, none reaped) returns promptly, and nothing writes into the
    /// region afterwards.
    @Test(arguments: rings)
    func deinitWithFileReadsInFlightLeavesTheRegionAlone(rings: Int) throws {
        let chunkBytes = 256 << 10
        let chunks = 12
        let directory = try ScratchDirectory()
        let data = randomBytes(chunks * chunkBytes, seed: 67)
        let file = try OpenFile(try directory.write("data", data))
        try withRegion(chunkCount: chunks, chunkBytes: chunkBytes) { region in
            let start = ContinuousClock.now
            do {
                let stream = try ParallelUringStream(region: region, chunkBytes: chunkBytes, rings: rings)
                for chunk in 0..<chunks {
                    try stream.submit(ReadRequest(
                        fd: file.fd, path: file.path, fileOffset: UInt64(chunk * chunkBytes), length: chunkBytes,
                        chunkIndex: chunk))
                }
                #expect(stream.inflight == chunks)
            }
            #expect(ContinuousClock.now - start < .seconds(5))
            // Every byte is its chunk's (the read ran, perhaps in part
            // before it was cancelled) or the fill (it never reached a ring)...
            let after = Array(region)
            let stray = after.indices.first { after[$0] != data[$0] && after[$0] != 0xEE }
            #expect(stray == nil, "byte \(stray ?? 0) holds neither the file's byte nor the fill")
            // ...and stays so.
            var pause = timespec(tv_sec: 0, tv_nsec: 50_000_000)
            nanosleep(&pause, nil)
            #expect(Array(region) == after)
        }
    }

    // MARK: Selection

    @Test(arguments: rings)
    func selectionUsesTheParallelStreamAndSaysSo(rings: Int) throws {
        let chunkBytes = 64 << 10
        try withRegion(chunkCount: 6, chunkBytes: chunkBytes) { region in
            for choice in [IngestChoice.uring, .auto] {
                let selection = try IngestSelection.makeStream(
                    choice, region: region, chunkBytes: chunkBytes, uringRings: rings)
                let stream = try #require(selection.stream as? ParallelUringStream)
                #expect(stream.ringCount == rings)
                #expect(stream.chunkCount == 6)
                #expect(selection.reason
                    == "io_uring (READ_FIXED, \(rings) rings on \(rings) threads, 6 registered buffers of 64 KiB)")
            }
            // The pread path ignores the ring count.
            let pread = try IngestSelection.makeStream(.pread, region: region, chunkBytes: chunkBytes, uringRings: rings)
            #expect(pread.stream is PreadStream)
        }
    }

    /// One ring is the plain stream, on the caller's thread, as before.
    @Test func oneRingIsThePlainStream() throws {
        try withRegion(chunkCount: 6, chunkBytes: 64 << 10) { region in
            let selection = try IngestSelection.makeStream(.uring, region: region, chunkBytes: 64 << 10, uringRings: 1)
            #expect(selection.stream is UringStream)
            #expect(selection.reason == "io_uring (READ_FIXED, 6 registered buffers of 64 KiB)")
        }
    }

    /// Without a forced count: one ring per core, at most 16, at most one per two chunks.
    @Test func defaultRingCount() throws {
        #expect(IngestSelection.defaultUringRings(chunkCount: 128, cores: 16) == 16)
        #expect(IngestSelection.defaultUringRings(chunkCount: 128, cores: 64) == 16)
        #expect(IngestSelection.defaultUringRings(chunkCount: 128, cores: 8) == 8)
        #expect(IngestSelection.defaultUringRings(chunkCount: 16, cores: 16) == 8)
        #expect(IngestSelection.defaultUringRings(chunkCount: 5, cores: 16) == 2)
        #expect(IngestSelection.defaultUringRings(chunkCount: 3, cores: 16) == 1)
        #expect(IngestSelection.defaultUringRings(chunkCount: 1, cores: 16) == 1)
        #expect(IngestSelection.defaultUringRings(chunkCount: 128, cores: 1) == 1)
        // And that is what the selection builds here.
        let cores = ProcessorCount.online
        try withRegion(chunkCount: 8, chunkBytes: 64 << 10) { region in
            let selection = try IngestSelection.makeStream(.uring, region: region, chunkBytes: 64 << 10)
            let rings = min(cores, 4)
            if rings > 1 {
                #expect((selection.stream as? ParallelUringStream)?.ringCount == rings)
                #expect(selection.reason
                    == "io_uring (READ_FIXED, \(rings) rings on \(rings) threads, 8 registered buffers of 64 KiB)")
            } else {
                #expect(selection.stream is UringStream)
            }
        }
    }
}
#endif
