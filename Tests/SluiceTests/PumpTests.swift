#if canImport(Glibc)
import Glibc
#endif
import SluiceCore
import SluiceCPU
import SluiceIngest
import SluiceOps
import SystemPackage
import Testing

@testable import Sluice

/// A ring in plain memory, a scripted stream over a region, and a file.
/// Each test makes its pump (not copyable) with `makePump()` and holds it.
final class PumpFixture {
    static let chunk = 4096
    let ringMemory: HostMemory
    let dataMemory: HostMemory
    let ring: RingView
    /// Kept here too, so tests can inject faults and look at reads in flight.
    let stream: ScriptedReadStream
    let dir = ScratchDirectory()
    let path: String
    let bytes: [UInt8]
    let fd: FileDescriptor

    init(fileBytes: Int, chunks: Int = 4, slots: Int = 4, order: ScriptedReadStream.Order = .submission) throws {
        let geometry = try RingGeometry(slotCount: slots, resultWordsPerSlot: 8)
        ringMemory = try HostMemory(byteCount: geometry.byteCount, purpose: "test ring")
        dataMemory = try HostMemory(byteCount: chunks * Self.chunk, purpose: "test data")
        ring = try RingView(bytes: ringMemory.bytes, geometry: geometry)
        ring.initialize()
        stream = try ScriptedReadStream(region: dataMemory.bytes, chunkBytes: Self.chunk, chunkCount: chunks, order: order)
        var rng = SeededRandom(state: UInt64(fileBytes))
        bytes = textLikeBytes(fileBytes, &rng)
        path = dir.write("data", bytes)
        fd = try FileDescriptor.open(FilePath(path), .readOnly)
    }

    /// The pump over the fixture's stream; one per test.
    func makePump() throws -> Pump {
        try Pump(stream: stream, chunkBytes: Self.chunk)
    }

    func submit(_ pump: inout Pump, chunk: Int, fileChunk: Int, slot: Int, length: Int? = nil) throws(PipelineError) {
        let offset = fileChunk * Self.chunk
        try pump.submitFileScan(
            fd: fd, path: path, fileOffset: UInt64(offset),
            length: length ?? min(Self.chunk, bytes.count - offset),
            chunkIndex: chunk, slotIndex: slot, tenant: 3, priority: 5, opcode: .count, args: (11, 12), ring: ring)
    }

    func buffer(_ chunk: Int, _ length: Int) -> [UInt8] {
        Array(UnsafeRawBufferPointer(rebasing: dataMemory.bytes[(chunk * Self.chunk)..<(chunk * Self.chunk + length)]))
    }

    /// File chunk `i`'s bytes (the last one may be shorter).
    func fileChunk(_ i: Int) -> [UInt8] {
        Array(bytes[(i * Self.chunk)..<min(bytes.count, (i + 1) * Self.chunk)])
    }

    deinit {
        try? fd.close()
        dir.remove()
    }
}

func expectRejected(_ body: () throws -> Void, mentioning words: String) {
    do {
        try body()
        Issue.record("expected a rejection mentioning \(words)")
    } catch {
        guard let error = error as? PipelineError, case .invalidRequest = error else {
            Issue.record("expected invalidRequest, got \(error)")
            return
        }
        #expect(error.message.contains(words), "\(error.message)")
    }
}

@Suite struct PumpTests {
    @Test func rulesAreCheckedBeforeAnythingIsSubmitted() throws {
        let f = try PumpFixture(fileBytes: 3 * PumpFixture.chunk + 100)
        var pump = try f.makePump()
        expectRejected({ try f.submit(&pump, chunk: 9, fileChunk: 0, slot: 0) }, mentioning: "chunk index")
        expectRejected({ try f.submit(&pump, chunk: 0, fileChunk: 0, slot: 7) }, mentioning: "slot index")
        expectRejected({ try f.submit(&pump, chunk: 0, fileChunk: 0, slot: 0, length: 0) }, mentioning: "length")
        expectRejected({ try f.submit(&pump, chunk: 0, fileChunk: 0, slot: 0, length: PumpFixture.chunk + 1) }, mentioning: "length")
        expectRejected({ try f.submit(&pump, chunk: 0, fileChunk: 1, slot: 0, length: 100) }, mentioning: "end of the file")
        try f.ring.publish(slot: 2, SlotPayload(opcode: .count, bufferOffset: 0, length: 0))
        expectRejected({ try f.submit(&pump, chunk: 0, fileChunk: 0, slot: 2) }, mentioning: "PUBLISHED")
        #expect(f.stream.inflight == 0 && pump.inflight == 0)

        try f.submit(&pump, chunk: 0, fileChunk: 0, slot: 0)
        expectRejected({ try f.submit(&pump, chunk: 0, fileChunk: 1, slot: 1) }, mentioning: "in flight")
        expectRejected({ try f.submit(&pump, chunk: 1, fileChunk: 1, slot: 0) }, mentioning: "staged")
        #expect(f.stream.inflight == 1 && pump.inflight == 1)
        // The last, shorter chunk of the file is allowed.
        try f.submit(&pump, chunk: 1, fileChunk: 3, slot: 1)
        #expect(pump.inflight == 2)
    }

    /// Completions in reverse order publish each slot with its own chunk's payload and bytes.
    @Test(arguments: [ScriptedReadStream.Order.reverse, .seeded(7), .chunks([2, 0, 3, 1])])
    func outOfOrderCompletionsPublishTheRightChunk(order: ScriptedReadStream.Order) throws {
        let c = PumpFixture.chunk
        let f = try PumpFixture(fileBytes: 3 * c + 5, order: order)
        var pump = try f.makePump()
        // Chunk i reads file chunk i into buffer i, published in slot 3 - i.
        for i in 0..<4 { try f.submit(&pump, chunk: i, fileChunk: i, slot: 3 - i) }
        var published: [Int: Int] = [:]
        while pump.inflight > 0 {
            for event in try pump.drainIntoRing(f.ring, waitingUpTo: .seconds(1)) {
                guard case .published(let chunk, let slot, let bytes) = event else {
                    Issue.record("unexpected \(event)")
                    continue
                }
                published[chunk] = slot
                #expect(bytes == (chunk == 3 ? 5 : c))
            }
        }
        #expect(published == [0: 3, 1: 2, 2: 1, 3: 0])
        for i in 0..<4 {
            let record = try f.ring.record(ofSlot: 3 - i)
            #expect(record.status == .published)
            #expect(record.payload.bufferOffset == UInt64(i * c))
            #expect(record.payload.fileOffset == UInt64(i * c))
            #expect(record.payload.chunkIndex == UInt32(i))
            #expect(record.payload.tenant == 3 && record.payload.priority == 5)
            #expect(record.payload.arguments == (11, 12))
            #expect(record.payload.resultOffset == UInt32(f.ring.geometry.resultOffset(ofSlot: 3 - i)))
            let length = Int(record.payload.length)
            #expect(f.buffer(i, length) == Array(f.bytes[(i * c)..<(i * c + length)]))
        }
        #expect(pump.observeEpoch(f.ring) == 0)
    }

    @Test func failedReadsAreReportedAndNeverPublished() throws {
        let f = try PumpFixture(fileBytes: 4 * PumpFixture.chunk)
        var pump = try f.makePump()
        f.stream.inject(.errno(EIO), forChunk: 1)
        f.stream.inject(.shortRead(bytes: 100), forChunk: 2)
        f.stream.inject(.interrupted, forChunk: 3)
        for i in 0..<4 { try f.submit(&pump, chunk: i, fileChunk: i, slot: i) }
        var failures: [Int: PipelineError] = [:]
        var published: Set<Int> = []
        while pump.inflight > 0 {
            for event in try pump.drainIntoRing(f.ring, waitingUpTo: .seconds(1)) {
                switch event {
                case .published(let chunk, _, _): published.insert(chunk)
                case .failed(let chunk, _, let error): failures[chunk] = error
                }
            }
        }
        #expect(published == [0, 2, 3])
        #expect(try f.ring.status(ofSlot: 1) == .empty)
        guard case .io(let failure) = failures[1] else {
            Issue.record("chunk 1 should fail with an I/O error, got \(String(describing: failures[1]))")
            return
        }
        #expect(failure.errno == EIO && failure.chunk == 1 && failure.path == f.path)
        // The short read was completed by the stream: the buffer holds the whole chunk.
        let c = PumpFixture.chunk
        #expect(f.buffer(2, c) == Array(f.bytes[(2 * c)..<(3 * c)]))
    }

    @Test func aFileThatShrankIsAFailureNotAShortChunk() throws {
        let f = try PumpFixture(fileBytes: 2 * PumpFixture.chunk)
        var pump = try f.makePump()
        try f.submit(&pump, chunk: 0, fileChunk: 1, slot: 0)
        #expect(truncate(f.path, off_t(PumpFixture.chunk + 10)) == 0)
        let events = try pump.drainIntoRing(f.ring, waitingUpTo: .seconds(1))
        guard events.count == 1, case .failed(0, 0, .fileChanged(let path, _)) = events[0] else {
            Issue.record("expected fileChanged for chunk 0, got \(events)")
            return
        }
        #expect(path == f.path)
        #expect(try f.ring.status(ofSlot: 0) == .empty)
    }

    /// `takeStream()` consumes the pump (any later use of it no longer
    /// compiles) and hands the stream over with the read still in flight:
    /// the caller reaps it from the stream, and its slot is never published.
    @Test func takingTheStreamHandsOverAReadStillInFlight() throws {
        let c = PumpFixture.chunk
        let f = try PumpFixture(fileBytes: 2 * c - 100, order: .chunks([0, 1]))
        f.stream.stepsPerReap = 1
        var pump = try f.makePump()
        try f.submit(&pump, chunk: 0, fileChunk: 0, slot: 2)
        try f.submit(&pump, chunk: 1, fileChunk: 1, slot: 3)
        let events = try pump.drainIntoRing(f.ring, waitingUpTo: .seconds(1))
        guard events.count == 1, case .published(0, 2, c) = events[0] else {
            Issue.record("expected chunk 0 published in slot 2, got \(events)")
            return
        }
        #expect(pump.inflight == 1 && pump.isStaged(slot: 3))

        let stream = pump.takeStream()
        #expect(stream === f.stream)
        #expect(stream.inflight == 1)
        var completions: [ReadCompletion] = []
        while stream.inflight > 0 { completions += try stream.reap(waitingUpTo: .seconds(1)) }
        guard completions.count == 1, case .success(let bytes) = completions[0].result else {
            Issue.record("expected one completed read, got \(completions)")
            return
        }
        #expect(completions[0].chunkIndex == 1 && bytes == c - 100)
        #expect(f.buffer(1, c - 100) == f.fileChunk(1))
        #expect(try f.ring.status(ofSlot: 2) == .published)
        #expect(try f.ring.status(ofSlot: 3) == .empty)
        // The stream goes on without a pump: the same chunk buffer is read again.
        try stream.submit(ReadRequest(fd: f.fd, path: f.path, fileOffset: 0, length: c, chunkIndex: 1))
        let again = try stream.reap(waitingUpTo: .seconds(1))
        #expect(again.count == 1 && again.first?.chunkIndex == 1)
        #expect(f.buffer(1, c) == f.fileChunk(0))
    }

    /// A pump dropped with reads in flight publishes none of them and lets
    /// its stream go (no leak): the reads go with the stream and never land.
    @Test func aPumpDroppedWithReadsInFlightPublishesNothingAndReleasesItsStream() throws {
        let c = PumpFixture.chunk
        let f = try PumpFixture(fileBytes: 3 * c)
        let region = f.dataMemory.bytes
        region.initializeMemory(as: UInt8.self, repeating: 0xEE)
        weak var released: ScriptedReadStream?
        let stream = try ScriptedReadStream(region: region, chunkBytes: c, chunkCount: 4, stepsPerReap: 1)
        released = stream
        var pump = try Pump(stream: consume stream, chunkBytes: c)
        for i in 0..<3 { try f.submit(&pump, chunk: i, fileChunk: i, slot: i) }
        let events = try pump.drainIntoRing(f.ring, waitingUpTo: .seconds(1))
        #expect(events.count == 1 && pump.inflight == 2)
        #expect(released?.inflight == 2)

        _ = consume pump
        #expect(released == nil, "the pump kept its stream alive")
        #expect(try f.ring.status(ofSlot: 0) == .published)
        for slot in 1..<3 { #expect(try f.ring.status(ofSlot: slot) == .empty) }
        #expect(f.buffer(0, c) == f.fileChunk(0))
        for chunk in 1..<4 { #expect(f.buffer(chunk, c) == [UInt8](repeating: 0xEE, count: c)) }
    }
}
