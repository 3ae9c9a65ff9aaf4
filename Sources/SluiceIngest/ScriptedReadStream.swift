#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore

/// The deterministic twin of the real streams, for testing the layers above
/// (in the spirit of SwiftNIO's embedded channel).
///
/// Nothing happens in the background: each `reap` performs read steps, with
/// real pread(2) calls into the chunk buffers, in the order the test chose
/// (`Order`), and applies the faults the test injected (`Fault`). Reads go
/// through the same `ChunkReadProgress` as `UringStream` and `PreadStream`,
/// so short reads, retries, end of file and errors behave exactly as they do.
///
/// ```
/// let stream = try ScriptedReadStream(region: region, chunkBytes: 65536, order: .reverse)
/// stream.inject(.errno(EIO), forChunk: 3)
/// stream.inject(.shortRead(bytes: 100), forChunk: 1)
/// ```
public final class ScriptedReadStream: ChunkReadStream {
    /// "scripted": the deterministic twin for tests.
    public let kind = "scripted"
    /// Bytes per chunk buffer, a multiple of 4096.
    public var chunkBytes: Int { layout.chunkBytes }
    /// Chunk buffers carved from `region`.
    public var chunkCount: Int { layout.chunkCount }
    /// The memory the chunk buffers are carved from; not owned, it must outlive the stream.
    public var region: UnsafeMutableRawBufferPointer { layout.region }
    /// Reads submitted and not yet reaped.
    public var inflight: Int { pending.count }

    /// Which pending read steps next; setting it restarts a seeded order's sequence.
    public var order: Order {
        didSet { resetRandom() }
    }
    /// Most read steps one `reap` performs; lower it to watch reads finish a
    /// few at a time. Every step that finishes a chunk is returned by that `reap`.
    public var stepsPerReap: Int
    /// Every step performed so far, oldest first.
    public private(set) var steps: [StepRecord] = []

    /// Chunks whose read hit `.neverCompletes` and is still held.
    public var stuckChunks: [Int] {
        pending.filter(\.stuck).map(\.progress.request.chunkIndex)
    }

    private let layout: ChunkLayout
    private struct Pending {
        var progress: ChunkReadProgress
        var stuck = false
    }
    /// Reads in flight, oldest submission first.
    private var pending: [Pending] = []
    /// Faults waiting per chunk, applied one per step, first injected first.
    private var faults: [Int: [Fault]] = [:]
    private var random = SplitMix64(seed: 0)

    /// - Parameters:
    ///   - region: page-aligned memory the chunks are carved from; not owned.
    ///   - chunkBytes: bytes per chunk, a multiple of 4096.
    ///   - chunkCount: chunks to carve; nil carves as many as fit.
    ///   - order: which pending read takes each step.
    ///   - stepsPerReap: most steps one `reap` performs.
    public init(
        region: UnsafeMutableRawBufferPointer, chunkBytes: Int, chunkCount: Int? = nil,
        order: Order = .submission, stepsPerReap: Int = .max
    ) throws(PipelineError) {
        layout = try ChunkLayout(region: region, chunkBytes: chunkBytes, chunkCount: chunkCount)
        guard stepsPerReap > 0 else {
            throw .invalidConfiguration("steps per reap \(stepsPerReap) must be at least 1")
        }
        self.order = order
        self.stepsPerReap = stepsPerReap
        resetRandom()
    }

    /// Makes the next step of `chunk`'s reads go wrong as `fault` says.
    /// Several faults for one chunk apply to its following steps in turn
    /// (a fault waits for the chunk's next submission if none is in flight).
    public func inject(_ fault: Fault, forChunk chunk: Int) {
        faults[chunk, default: []].append(fault)
    }

    /// Lets reads held by `.neverCompletes` go on at the next `reap`.
    public func releaseStuckReads() {
        for index in pending.indices { pending[index].stuck = false }
    }

    /// Queues a read of `request`, to be stepped in the scripted order; throws, queuing nothing, when the request breaks a rule (chunk out of range or in flight, length above `chunkBytes`).
    public func submit(_ request: ReadRequest) throws(PipelineError) {
        try layout.check(request) { chunk in pending.contains { $0.progress.request.chunkIndex == chunk } }
        pending.append(Pending(
            progress: ChunkReadProgress(request: request, chunkBytes: chunkBytes, firstStep: .requestLength)))
    }

    /// Performs up to `stepsPerReap` steps and returns the chunks they
    /// finished. When none finished, `timeout` is given and only stuck reads
    /// remain, sleeps for `timeout` (as a real stream would wait in vain).
    public func reap(waitingUpTo timeout: Duration?) throws(PipelineError) -> [ReadCompletion] {
        var done: [ReadCompletion] = []
        var budget = stepsPerReap
        while budget > 0, let index = nextRunnable() {
            budget -= 1
            if let completion = performStep(ofPending: index) { done.append(completion) }
        }
        if done.isEmpty, let timeout, !pending.isEmpty, nextRunnable() == nil {
            ScriptedReadStream.sleep(timeout)
        }
        return done
    }

    /// Runs the next step of `pending[index]`; returns its completion if the chunk finished.
    private func performStep(ofPending index: Int) -> ReadCompletion? {
        var progress = pending[index].progress
        let chunk = progress.request.chunkIndex
        let step = progress.step
        let fd = progress.request.fd.rawValue
        let result: Int
        switch takeFault(forChunk: chunk) {
        case .neverCompletes:
            pending[index].stuck = true
            return nil
        case .errno(let code):
            result = -Int(code)
        case .shortRead(let bytes):
            // Read the whole step (an O_DIRECT file refuses an unaligned
            // length), report fewer bytes, and spoil the rest, so only a
            // correct remainder read puts them back.
            let buffer = layout.buffer(ofChunk: chunk)
            let full = step.pread(fd: fd, into: buffer)
            result = min(full, max(bytes, 0))
            if full > result {
                let spoiled = (step.bufferOffset + result)..<(step.bufferOffset + full)
                UnsafeMutableRawBufferPointer(rebasing: buffer[spoiled]).initializeMemory(as: UInt8.self, repeating: 0xA5)
            }
        case nil:
            result = step.pread(fd: fd, into: layout.buffer(ofChunk: chunk))
        }
        steps.append(StepRecord(
            chunk: chunk, bufferOffset: step.bufferOffset, fileOffset: step.fileOffset, length: step.length,
            result: result))
        switch progress.record(result, isDirect: { isDirectIO(fd) }) {
        case .finished(let completion):
            pending.remove(at: index)
            return completion
        case .next:
            pending[index].progress = progress
            return nil
        }
    }

    private func takeFault(forChunk chunk: Int) -> Fault? {
        guard var queued = faults[chunk], !queued.isEmpty else { return nil }
        let fault = queued.removeFirst()
        faults[chunk] = queued.isEmpty ? nil : queued
        return fault
    }

    /// The position in `pending` of the read that steps next, per `order`.
    private func nextRunnable() -> Int? {
        let runnable = pending.indices.filter { !pending[$0].stuck }
        guard !runnable.isEmpty else { return nil }
        switch order {
        case .submission:
            return runnable.first
        case .reverse:
            return runnable.last
        case .seeded:
            return runnable[Int(random.next() % UInt64(runnable.count))]
        case .chunks(let list):
            return runnable.min { a, b in
                let chunkA = pending[a].progress.request.chunkIndex, chunkB = pending[b].progress.request.chunkIndex
                return (list.firstIndex(of: chunkA) ?? Int.max, a) < (list.firstIndex(of: chunkB) ?? Int.max, b)
            }
        case .custom(let choose):
            let position = choose(runnable.map { pending[$0].progress.request })
            precondition(runnable.indices.contains(position), "custom order chose \(position) of \(runnable.count)")
            return runnable[position]
        }
    }

    private func resetRandom() {
        if case .seeded(let seed) = order { random = SplitMix64(seed: seed) }
    }

    private static func sleep(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        var request = timespec(tv_sec: Int(clamping: seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }
}
