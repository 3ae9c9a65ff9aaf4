import SluiceCore
import Testing

@testable import SluiceIngest

/// Every stream reads files of awkward sizes byte for byte, compared with the
/// data the test wrote (the oracle), through several chunk buffers at once.
@Suite struct WholeFileReadTests {
    static let chunkBytes = 64 << 10
    static let sizes = [0, 1, chunkBytes - 1, chunkBytes, chunkBytes + 1, 3 << 20 + 777]

    @Test(arguments: StreamKind.available, sizes)
    func exactLengths(kind: StreamKind, size: Int) throws {
        try check(kind: kind, size: size, fullChunks: false)
    }

    /// Asking for whole chunks makes the last one end early at end of file.
    @Test(arguments: StreamKind.available, sizes)
    func fullChunkRequestsEndAtEndOfFile(kind: StreamKind, size: Int) throws {
        try check(kind: kind, size: size, fullChunks: true)
    }

    private func check(kind: StreamKind, size: Int, fullChunks: Bool) throws {
        let directory = try ScratchDirectory()
        let data = randomBytes(size, seed: UInt64(size) &+ 17)
        let file = try OpenFile(try directory.write("data", data))
        try withRegion(chunkCount: 4, chunkBytes: Self.chunkBytes) { region in
            let stream = try kind.make(region: region, chunkBytes: Self.chunkBytes)
            #expect(stream.chunkCount == 4)
            let read = try readThrough(stream, file: file, size: size, fullChunks: fullChunks)
            #expect(read.bytes == data)
            #expect(stream.inflight == 0)
        }
    }
}
