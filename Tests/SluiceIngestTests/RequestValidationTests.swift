import SluiceCore
import SystemPackage
import Testing

@testable import SluiceIngest

/// Requests that break a rule are refused before anything is submitted, the
/// same way by every stream; bad layouts are refused at construction.
@Suite struct RequestValidationTests {
    static let chunkBytes = 16 << 10

    func expectRejected(
        _ stream: any ChunkReadStream, _ request: ReadRequest, because words: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let before = stream.inflight
        do {
            try stream.submit(request)
            Issue.record("\(request) was accepted", sourceLocation: sourceLocation)
        } catch {
            guard case .invalidRequest(let chunk, let slot, let reason) = error else {
                Issue.record("expected .invalidRequest, got \(error)", sourceLocation: sourceLocation)
                return
            }
            #expect(chunk == request.chunkIndex, sourceLocation: sourceLocation)
            #expect(slot == nil, sourceLocation: sourceLocation)
            #expect(reason.contains(words), "\(reason)", sourceLocation: sourceLocation)
        }
        #expect(stream.inflight == before, sourceLocation: sourceLocation)
    }

    @Test(arguments: StreamKind.available)
    func badRequestsAreRefused(kind: StreamKind) throws {
        let directory = try ScratchDirectory()
        let data = randomBytes(4 * Self.chunkBytes, seed: 21)
        let file = try OpenFile(try directory.write("data", data))
        func request(chunk: Int = 0, offset: UInt64 = 0, length: Int = 100, fd: FileDescriptor? = nil) -> ReadRequest {
            ReadRequest(fd: fd ?? file.fd, path: file.path, fileOffset: offset, length: length, chunkIndex: chunk)
        }
        try withRegion(chunkCount: 3, chunkBytes: Self.chunkBytes) { region in
            let stream = try kind.make(region: region, chunkBytes: Self.chunkBytes)
            expectRejected(stream, request(chunk: -1), because: "outside 0..<3")
            expectRejected(stream, request(chunk: 3), because: "outside 0..<3")
            expectRejected(stream, request(length: 0), because: "length 0")
            expectRejected(stream, request(length: -5), because: "length -5")
            expectRejected(stream, request(length: Self.chunkBytes + 1), because: "chunk size \(Self.chunkBytes)")
            expectRejected(stream, request(fd: FileDescriptor(rawValue: -1)), because: "not open")
            expectRejected(stream, request(offset: UInt64(Int64.max)), because: "largest file offset")
            expectRejected(stream, request(offset: .max), because: "largest file offset")

            // A chunk is busy from submit until its completion is reaped.
            try stream.submit(request(chunk: 1, offset: UInt64(Self.chunkBytes), length: Self.chunkBytes))
            expectRejected(stream, request(chunk: 1), because: "already being read")
            var completions: [ReadCompletion] = []
            while completions.isEmpty { completions = try stream.reap(waitingUpTo: .seconds(10)) }
            #expect(completions.map(\.chunkIndex) == [1])
            // The refused request did not disturb the read in flight.
            #expect(try completions[0].result.get() == Self.chunkBytes)
            let held = Array(region[Self.chunkBytes..<(2 * Self.chunkBytes)])
            #expect(held == Array(data[Self.chunkBytes..<(2 * Self.chunkBytes)]))
            // Reaped: the buffer may be reused.
            try stream.submit(request(chunk: 1))
            while stream.inflight > 0 { _ = try stream.reap(waitingUpTo: .seconds(10)) }
        }
    }

    @Test func badLayoutsAreRefused() throws {
        try withRegion(chunkCount: 4, chunkBytes: 4096) { region throws in
            func expectInvalid(_ words: String, _ make: () throws -> Void) {
                do {
                    try make()
                    Issue.record("accepted; expected a refusal mentioning \(words)")
                } catch {
                    guard case .invalidConfiguration(let what)? = error as? PipelineError else {
                        Issue.record("expected .invalidConfiguration, got \(error)")
                        return
                    }
                    #expect(what.contains(words), "\(what)")
                }
            }
            expectInvalid("multiple of 4096") { _ = try PreadStream(region: region, chunkBytes: 1000) }
            expectInvalid("multiple of 4096") { _ = try ScriptedReadStream(region: region, chunkBytes: 0) }
            expectInvalid("do not fit") { _ = try PreadStream(region: region, chunkBytes: 4096, chunkCount: 5) }
            expectInvalid("do not fit") { _ = try ScriptedReadStream(region: region, chunkBytes: 5 * 4096) }
            let shifted = UnsafeMutableRawBufferPointer(rebasing: region[512...])
            expectInvalid("4096-byte boundary") { _ = try PreadStream(region: shifted, chunkBytes: 4096) }
            expectInvalid("between 1 and 64") { _ = try PreadStream(region: region, chunkBytes: 4096, threads: 0) }
            #if os(Linux) && compiler(>=6.2)
            expectInvalid("4096-byte boundary") { _ = try UringStream(region: shifted, chunkBytes: 4096) }
            #endif
            // Without a count, a stream takes as many chunks as fit.
            #expect(try PreadStream(region: region, chunkBytes: 8192).chunkCount == 2)
        }
    }
}
