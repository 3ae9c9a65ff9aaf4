#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceSystem

/// One chunk's read from submission to completion: which read(2)-shaped step
/// to issue next, and what each step's result means.
///
/// Every stream drives its reads through this one state machine, so short
/// reads, EINTR/EAGAIN retries, end of file and errors behave the same whether
/// io_uring, a pread thread or the scripted twin performs the steps.
///
/// Rules:
/// - The chunk is done once `request.length` bytes are in the buffer. A step
///   may bring in more (io_uring `READ_FIXED` always reads the whole buffer,
///   and lengths are rounded up to 4096 for O_DIRECT); the reported count is
///   clamped to `request.length`.
/// - A short read (fewer bytes than wanted, more than 0) is continued with a
///   step for the remainder, into the rest of the same buffer at the advanced
///   file offset. For an O_DIRECT file the remainder restarts at the last
///   4096-byte boundary (re-reading at most 4095 bytes already there), because
///   O_DIRECT refuses unaligned offsets and addresses; its length is rounded up
///   to 4096 within the buffer in every case.
/// - 0 bytes is end of file, and so is a realigned O_DIRECT step that ends no
///   further than the bytes already held: the chunk completes with the bytes so far.
/// - `-EINTR` and `-EAGAIN` repeat the same step, at most `maxRetries` times in a row.
/// - Any other negative result completes the chunk with `PipelineError.io`.
struct ChunkReadProgress: Sendable {
    /// One read: `length` bytes at `fileOffset` into the chunk buffer at `bufferOffset`.
    struct Step: Hashable, Sendable {
        var bufferOffset: Int
        var fileOffset: UInt64
        var length: Int
        /// Whether the step covers the whole chunk buffer (what `READ_FIXED` reads).
        func isWholeBuffer(chunkBytes: Int) -> Bool { bufferOffset == 0 && length == chunkBytes }
    }

    /// What to do after a step's result.
    enum Outcome: Sendable {
        /// Issue `step` next (the remainder, or the same step again).
        case next(Step)
        /// The chunk is finished; hand this to the caller.
        case finished(ReadCompletion)
    }

    /// How the first step is shaped.
    enum FirstStep: Sendable {
        /// The whole chunk buffer: io_uring `READ_FIXED` cannot read less.
        case wholeBuffer
        /// `request.length` rounded up to 4096 (so O_DIRECT accepts it), within the buffer.
        case requestLength
    }

    /// Consecutive EINTR/EAGAIN results tolerated before the read is reported failed.
    static let maxRetries = 100

    let request: ReadRequest
    let chunkBytes: Int
    /// The step in flight (or to issue).
    private(set) var step: Step
    /// Bytes from the start of the buffer that hold file data.
    private(set) var bytesHeld = 0
    private var retries = 0
    /// Whether the file is O_DIRECT, asked the first time a short read needs to know.
    private var direct: Bool?

    init(request: ReadRequest, chunkBytes: Int, firstStep: FirstStep) {
        self.request = request
        self.chunkBytes = chunkBytes
        let length: Int
        switch firstStep {
        case .wholeBuffer: length = chunkBytes
        case .requestLength: length = min(request.length.roundedUp(toMultipleOf: ChunkLayout.alignment), chunkBytes)
        }
        self.step = Step(bufferOffset: 0, fileOffset: request.fileOffset, length: length)
    }

    /// Takes the result of `step` in kernel form: bytes read, or `-errno`.
    ///
    /// - Parameter isDirect: whether the file is O_DIRECT; called at most once,
    ///   and only when the answer matters (a short read or an EINVAL).
    mutating func record(_ result: Int, isDirect: () -> Bool) -> Outcome {
        if result < 0 {
            let code = Int32(clamping: -result)
            if code == EINTR || code == EAGAIN {
                retries += 1
                if retries <= ChunkReadProgress.maxRetries { return .next(step) }
                return .finished(failure(code, note: " (still failing after \(ChunkReadProgress.maxRetries) retries)", isDirect: isDirect))
            }
            return .finished(failure(code, note: "", isDirect: isDirect))
        }
        retries = 0
        let end = step.bufferOffset + min(result, step.length)
        if end >= request.length {
            return .finished(ReadCompletion(request: request, result: .success(request.length)))
        }
        if result == 0 || end <= bytesHeld {
            // End of file. `end` is the file's latest word on where it ends.
            return .finished(ReadCompletion(request: request, result: .success(end)))
        }
        bytesHeld = end
        let directIO = direct ?? isDirect()
        direct = directIO
        let resume = directIO ? bytesHeld.roundedDown(toMultipleOf: ChunkLayout.alignment) : bytesHeld
        let length = min((request.length - resume).roundedUp(toMultipleOf: ChunkLayout.alignment), chunkBytes - resume)
        step = Step(bufferOffset: resume, fileOffset: request.fileOffset + UInt64(resume), length: length)
        return .next(step)
    }

    private mutating func failure(_ code: Int32, note: String, isDirect: () -> Bool) -> ReadCompletion {
        // EINVAL on an O_DIRECT file is almost always alignment or a filesystem
        // without direct I/O; naming it "direct read" selects the hint that says so.
        var operation = "read"
        if code == EINVAL {
            let directIO = direct ?? isDirect()
            direct = directIO
            if directIO { operation = "direct read" }
        }
        let failure = IOFailure(
            operation: operation, path: request.path, fileOffset: request.fileOffset, length: request.length,
            chunk: request.chunkIndex, errno: code, reason: SystemErrors.text(code) + note)
        return ReadCompletion(request: request, result: .failure(.io(failure)))
    }
}
