import Glibc
import SluiceCore
import SystemPackage
import Testing

@testable import SluiceIngest

/// The state machine every stream shares: what each step's result means and
/// which read comes next.
@Suite struct ChunkReadProgressTests {
    static let chunkBytes = 64 << 10
    static let offset: UInt64 = 5 * 65536

    func progress(length: Int, firstStep: ChunkReadProgress.FirstStep = .requestLength) -> ChunkReadProgress {
        let request = ReadRequest(
            fd: FileDescriptor(rawValue: 7), path: "/data/file", fileOffset: Self.offset, length: length, chunkIndex: 3)
        return ChunkReadProgress(request: request, chunkBytes: Self.chunkBytes, firstStep: firstStep)
    }

    func bytes(_ outcome: ChunkReadProgress.Outcome) -> Int? {
        guard case .finished(let completion) = outcome, case .success(let count) = completion.result else { return nil }
        return count
    }

    func ioFailure(_ outcome: ChunkReadProgress.Outcome) -> IOFailure? {
        guard case .finished(let completion) = outcome, case .failure(.io(let failure)) = completion.result else {
            return nil
        }
        return failure
    }

    func nextStep(_ outcome: ChunkReadProgress.Outcome) -> ChunkReadProgress.Step? {
        guard case .next(let step) = outcome else { return nil }
        return step
    }

    @Test func firstStepShapes() {
        #expect(progress(length: 1, firstStep: .wholeBuffer).step.length == Self.chunkBytes)
        #expect(progress(length: 1).step.length == 4096)
        #expect(progress(length: 4097).step.length == 8192)
        #expect(progress(length: Self.chunkBytes - 1).step.length == Self.chunkBytes)
        #expect(progress(length: 100).step == .init(bufferOffset: 0, fileOffset: Self.offset, length: 4096))
    }

    /// READ_FIXED reads the whole buffer; the count reported is the request's.
    @Test func moreThanAskedIsClampedToTheRequest() {
        var read = progress(length: 1000, firstStep: .wholeBuffer)
        #expect(bytes(read.record(Self.chunkBytes, isDirect: { false })) == 1000)
    }

    @Test func bufferedShortReadContinuesWhereItStopped() throws {
        var read = progress(length: 10_000)
        let outcome = read.record(3000, isDirect: { false })
        let step = try #require(nextStep(outcome))
        #expect(step == .init(bufferOffset: 3000, fileOffset: Self.offset + 3000, length: 8192))
        #expect(bytes(read.record(7000, isDirect: { false })) == 10_000)
    }

    /// O_DIRECT refuses unaligned offsets: the remainder restarts at the last 4096 boundary.
    @Test func directShortReadRestartsAligned() throws {
        var read = progress(length: 10_000)
        let outcome = read.record(5000, isDirect: { true })
        let step = try #require(nextStep(outcome))
        #expect(step == .init(bufferOffset: 4096, fileOffset: Self.offset + 4096, length: 8192))
        // The re-read ends where the bytes already held end: end of file.
        #expect(bytes(read.record(5000 - 4096, isDirect: { true })) == 5000)
    }

    @Test func zeroBytesIsEndOfFileWithTheBytesSoFar() {
        var read = progress(length: 10_000)
        _ = read.record(3000, isDirect: { false })
        #expect(bytes(read.record(0, isDirect: { false })) == 3000)
        var empty = progress(length: 10_000)
        #expect(bytes(empty.record(0, isDirect: { false })) == 0)
    }

    @Test func remainderNeverRunsPastTheBuffer() throws {
        var read = progress(length: Self.chunkBytes)
        let outcome = read.record(Self.chunkBytes - 10, isDirect: { false })
        let step = try #require(nextStep(outcome))
        #expect(step.bufferOffset + step.length == Self.chunkBytes)
        #expect(step.length == 10)
    }

    @Test(arguments: [EINTR, EAGAIN])
    func interruptionsRetryTheSameStep(code: Int32) throws {
        var read = progress(length: 10_000)
        let first = read.step
        #expect(nextStep(read.record(-Int(code), isDirect: { false })) == first)
        #expect(bytes(read.record(10_000, isDirect: { false })) == 10_000)
    }

    @Test func endlessInterruptionsGiveUp() throws {
        var read = progress(length: 10_000)
        for _ in 0..<ChunkReadProgress.maxRetries {
            #expect(nextStep(read.record(-Int(EINTR), isDirect: { false })) != nil)
        }
        let outcome = read.record(-Int(EINTR), isDirect: { false })
        let failure = try #require(ioFailure(outcome))
        #expect(failure.errno == EINTR)
        #expect(failure.reason.contains("retries"))
    }

    @Test func errorsNameFileChunkOffsetAndErrno() throws {
        var read = progress(length: 10_000)
        let outcome = read.record(-Int(EIO), isDirect: { false })
        let failure = try #require(ioFailure(outcome))
        #expect(failure == IOFailure(
            operation: "read", path: "/data/file", fileOffset: Self.offset, length: 10_000, chunk: 3, errno: EIO,
            reason: String(cString: strerror(EIO))))
        let message = PipelineError.io(failure).message
        #expect(message.contains("/data/file") && message.contains("chunk 3") && message.contains("errno \(EIO)"))
    }

    @Test func invalidArgumentOnADirectFileSaysSo() throws {
        var read = progress(length: 10_000)
        let outcome = read.record(-Int(EINVAL), isDirect: { true })
        let failure = try #require(ioFailure(outcome))
        #expect(failure.operation == "direct read")
        // The CLI's hint keys on "direct" in the operation (ErrorHintTests).
        #expect(failure.operation.contains("direct"))
    }

    /// fcntl is only worth calling when the answer matters, and then once.
    @Test func directnessIsAskedAtMostOnce() {
        var asked = 0
        var whole = progress(length: 40_000)
        _ = whole.record(40_000, isDirect: { asked += 1; return false })
        #expect(asked == 0)
        var short = progress(length: 40_000)
        _ = short.record(1000, isDirect: { asked += 1; return false })
        _ = short.record(1000, isDirect: { asked += 1; return false })
        _ = short.record(-Int(EINVAL), isDirect: { asked += 1; return false })
        #expect(asked == 1)
    }
}
