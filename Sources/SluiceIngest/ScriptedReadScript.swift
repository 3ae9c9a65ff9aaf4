#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension ScriptedReadStream {
    /// Something to go wrong in one read step of a chunk, injected with
    /// `inject(_:forChunk:)`.
    public enum Fault: Hashable, Sendable {
        /// The step fails with this errno without reading. The stream retries
        /// EINTR and EAGAIN; any other errno completes the chunk with
        /// `PipelineError.io`.
        case errno(Int32)
        /// The step really reads from the file but reports at most `bytes`
        /// bytes (0 reads as end of file), and the bytes past them in the
        /// buffer are overwritten, so the stream's remainder logic must fetch
        /// the rest. Works on O_DIRECT files: the read itself stays aligned.
        case shortRead(bytes: Int)
        /// The read never completes: it stays in flight, and `reap` returns
        /// nothing for it, until `releaseStuckReads()` (for watchdog tests).
        case neverCompletes

        /// One EINTR: the step is retried.
        public static var interrupted: Fault { .errno(EINTR) }
    }

    /// Which of the pending reads takes the next step. A read may need
    /// several steps (short reads, retries), each chosen afresh.
    public enum Order: Sendable {
        /// Oldest submission first: completions in submission order.
        case submission
        /// Newest submission first: completions in reverse submission order.
        case reverse
        /// Uniformly random, reproducible from the seed.
        case seeded(UInt64)
        /// Chunks earlier in the list first; chunks not listed after them, oldest first.
        case chunks([Int])
        /// The closure gets the runnable requests, oldest first, and returns
        /// the position (in that array) of the one to step next.
        case custom(@Sendable (_ runnable: [ReadRequest]) -> Int)
    }

    /// One read step the stream performed, as tests see it.
    public struct StepRecord: Hashable, Sendable {
        /// The chunk the step read for.
        public var chunk: Int
        /// Offset in the chunk buffer where the step read into.
        public var bufferOffset: Int
        /// Offset in the file the step read from.
        public var fileOffset: UInt64
        /// Bytes the step asked for.
        public var length: Int
        /// Bytes it read, or `-errno`.
        public var result: Int
    }
}
