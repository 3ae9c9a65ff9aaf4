import SluiceCore
import SluiceThreads

/// The part `PreadStream` and `ChunkReaderStream` share: a pool of threads
/// that runs each submitted read to its end (`perform`), which chunks are
/// being read, and the reads in flight. The two streams differ only in what
/// one read does (pread(2), or a `ChunkReader` such as cuFile).
///
/// Like the streams, `check`, `start` and `reap` belong to one thread (the
/// owner). `stop` (or deinit) drops the reads not started and joins the
/// threads once their current read is done.
final class ReadThreadPool {
    let layout: ChunkLayout
    let threadCount: Int
    private(set) var inflight = 0
    private let queue: PreadWorkQueue
    private var threads: [PosixThread] = []
    /// Chunks submitted and not yet reaped.
    private var busy: [Bool]

    /// Starts `threads` threads named `name-0`, `name-1`, ...; `what` names
    /// the thread count in its error ("pread threads").
    init(
        layout: ChunkLayout, threads: Int, what: String, name: String,
        perform: @escaping @Sendable (ChunkReadProgress) -> ReadCompletion
    ) throws(PipelineError) {
        guard threads >= 1, threads <= 64 else {
            throw .invalidConfiguration("\(what) \(threads) must be between 1 and 64")
        }
        self.layout = layout
        self.threadCount = threads
        self.busy = Array(repeating: false, count: layout.chunkCount)
        self.queue = PreadWorkQueue(perform: perform)
        for index in 0..<threads {
            let queue = self.queue
            do {
                self.threads.append(try PosixThread.start(name: "\(name)-\(index)") { queue.work() })
            } catch {
                stop()
                throw error
            }
        }
    }

    deinit { stop() }

    /// Stops and joins the threads. Calling it again does nothing more.
    func stop() {
        queue.stop()
        for thread in threads { thread.join() }
        threads = []
    }

    /// Whether a read of `chunk` is submitted and not yet reaped.
    func isBusy(_ chunk: Int) -> Bool { busy[chunk] }

    /// Checks `request` against the layout and the chunks in flight.
    func check(_ request: ReadRequest) throws(PipelineError) {
        try layout.check(request) { busy[$0] }
    }

    /// Queues a checked request.
    func start(_ request: ReadRequest) {
        busy[request.chunkIndex] = true
        inflight += 1
        queue.post(ChunkReadProgress(request: request, chunkBytes: layout.chunkBytes, firstStep: .requestLength))
    }

    func reap(waitingUpTo timeout: Duration?) -> [ReadCompletion] {
        // With nothing in flight nothing can arrive: return rather than sleep.
        let deadline = inflight > 0 ? timeout.map { ContinuousClock.now + $0 } : nil
        let done = queue.takeFinished(waitingUntil: deadline)
        for completion in done { busy[completion.chunkIndex] = false }
        inflight -= done.count
        return done
    }
}
