import SluiceCore
import Testing

@testable import SluiceIngest

/// Completions are matched to chunks by index, whatever order they arrive in.
@Suite struct CompletionOrderTests {
    static let chunkBytes = 16 << 10
    static let chunks = 6

    /// Submits chunk i for file offset `offsets[i]`, reaps everything, checks
    /// each buffer holds its own offset's bytes, and returns the chunk order.
    func run(
        _ stream: any ChunkReadStream, file: OpenFile, data: [UInt8], offsets: [Int]
    ) throws -> [Int] {
        for (chunk, offset) in offsets.enumerated() {
            try stream.submit(ReadRequest(
                fd: file.fd, path: file.path, fileOffset: UInt64(offset), length: Self.chunkBytes, chunkIndex: chunk))
        }
        var order: [Int] = []
        while stream.inflight > 0 {
            let completions = try stream.reap(waitingUpTo: .seconds(10))
            try #require(!completions.isEmpty)
            for completion in completions {
                let chunk = completion.chunkIndex
                #expect(completion.request.fileOffset == UInt64(offsets[chunk]))
                #expect(try completion.result.get() == Self.chunkBytes)
                let start = chunk * Self.chunkBytes
                let held = Array(stream.region[start..<(start + Self.chunkBytes)])
                #expect(held == Array(data[offsets[chunk]..<(offsets[chunk] + Self.chunkBytes)]), "chunk \(chunk)")
                order.append(chunk)
            }
        }
        return order
    }

    func withFile<R>(_ body: (OpenFile, [UInt8]) throws -> R) throws -> R {
        let directory = try ScratchDirectory()
        let data = randomBytes(Self.chunks * Self.chunkBytes, seed: 99)
        let file = try OpenFile(try directory.write("data", data))
        return try body(file, data)
    }

    /// Chunk i reads the file's block (5 - i): chunk and offset order disagree.
    static let scrambled = (0..<chunks).map { (chunks - 1 - $0) * chunkBytes }

    @Test(arguments: StreamKind.available)
    func buffersHoldTheirOwnOffsets(kind: StreamKind) throws {
        try withFile { file, data in
            try withRegion(chunkCount: Self.chunks, chunkBytes: Self.chunkBytes) { region in
                let stream = try kind.make(region: region, chunkBytes: Self.chunkBytes)
                let order = try run(stream, file: file, data: data, offsets: Self.scrambled)
                #expect(order.sorted() == Array(0..<Self.chunks))
            }
        }
    }

    @Test(arguments: [
        (ScriptedReadStream.Order.submission, [0, 1, 2, 3, 4, 5]),
        (.reverse, [5, 4, 3, 2, 1, 0]),
        (.chunks([2, 0, 5]), [2, 0, 5, 1, 3, 4]),
        (.custom { $0.count / 2 }, [3, 2, 4, 1, 5, 0]),
    ])
    func scriptedOrders(order: ScriptedReadStream.Order, expected: [Int]) throws {
        try withFile { file, data in
            try withRegion(chunkCount: Self.chunks, chunkBytes: Self.chunkBytes) { region in
                let stream = try ScriptedReadStream(region: region, chunkBytes: Self.chunkBytes, order: order)
                #expect(try run(stream, file: file, data: data, offsets: Self.scrambled) == expected)
            }
        }
    }

    /// A seed replays exactly, and some seed strays from submission order.
    @Test func seededOrderIsReproducible() throws {
        try withFile { file, data in
            try withRegion(chunkCount: Self.chunks, chunkBytes: Self.chunkBytes) { region in
                var orders: [UInt64: [Int]] = [:]
                for seed: UInt64 in [1, 1, 2, 3] {
                    let stream = try ScriptedReadStream(region: region, chunkBytes: Self.chunkBytes, order: .seeded(seed))
                    let order = try run(stream, file: file, data: data, offsets: Self.scrambled)
                    #expect(order.sorted() == Array(0..<Self.chunks))
                    if let earlier = orders[seed] { #expect(order == earlier) }
                    orders[seed] = order
                }
                #expect(orders.values.contains { $0 != Array(0..<Self.chunks) })
            }
        }
    }

    /// One step per reap: completions arrive one at a time.
    @Test func stepsPerReapLimitsProgress() throws {
        try withFile { file, _ in
            try withRegion(chunkCount: Self.chunks, chunkBytes: Self.chunkBytes) { region in
                let stream = try ScriptedReadStream(
                    region: region, chunkBytes: Self.chunkBytes, order: .reverse, stepsPerReap: 1)
                for chunk in 0..<3 {
                    try stream.submit(ReadRequest(
                        fd: file.fd, path: file.path, fileOffset: 0, length: 100, chunkIndex: chunk))
                }
                #expect(try stream.reap(waitingUpTo: nil).map(\.chunkIndex) == [2])
                #expect(stream.inflight == 2)
                #expect(try stream.reap(waitingUpTo: nil).map(\.chunkIndex) == [1])
                #expect(try stream.reap(waitingUpTo: nil).map(\.chunkIndex) == [0])
                #expect(try stream.reap(waitingUpTo: nil).isEmpty)
            }
        }
    }

    /// With nothing in flight there is nothing to wait for.
    @Test(arguments: StreamKind.available)
    func reapWithNothingInFlightReturnsAtOnce(kind: StreamKind) throws {
        try withRegion(chunkCount: 1, chunkBytes: 4096) { region in
            let stream = try kind.make(region: region, chunkBytes: 4096)
            let start = ContinuousClock.now
            #expect(try stream.reap(waitingUpTo: .seconds(5)).isEmpty)
            #expect(ContinuousClock.now - start < .seconds(1))
        }
    }
}
