import SluiceCore
import SluiceIngest
import SluiceThreads
import Synchronization

/// The thread behind a `Session`: the only owner of its `DevicePool` (the
/// backends, rings, streams and tables), which it makes, runs requests on
/// one at a time, and closes. Nothing else touches the pool, so the pool
/// needs no lock and CUDA contexts stay on one thread.
final class SessionWorker: @unchecked Sendable {
    // @unchecked: `thread` is set once before anyone else can see the worker;
    // everything else shared is behind `state`.

    /// A request waiting to run: `run` runs it on the pool, `abandon` ends
    /// it unrun.
    struct Request: Sendable {
        let run: @Sendable (DevicePool) -> Void
        let abandon: @Sendable (SluiceError) -> Void
    }

    private struct State {
        var queue: [Request] = []
        var closing = false
        var exited = false
        var closers: [CheckedContinuation<Void, Never>] = []
        /// Polled by the running request's scanner: true stops it.
        var stopRunning: (@Sendable () -> Bool)?
    }

    let configuration: Session.Configuration
    private(set) var reasons: [String] = []
    private let state = Mutex(State())
    private let wake = WakeSignal()
    private var thread: PosixThread?

    private init(_ configuration: Session.Configuration) { self.configuration = configuration }

    /// Starts the thread and waits until it made the pool (or failed to).
    static func start(_ configuration: Session.Configuration) async throws(SluiceError) -> SessionWorker {
        let worker = SessionWorker(configuration)
        let started: Result<[String], SluiceError> = await withCheckedContinuation { c in
            do throws(ThreadStartFailure) {
                worker.thread = try PosixThread(name: "sluice session") { worker.main(started: c) }
            } catch {
                c.resume(returning: .failure(SluiceError(code: .backendUnavailable, message: error.message)))
            }
        }
        switch started {
        case .success(let reasons): worker.reasons = reasons
        case .failure(let error):
            worker.thread?.join()
            throw error
        }
        return worker
    }

    /// Queues a request whose results `body` sends into a channel, and
    /// returns the channel's sequence.
    func submit<Element: Sendable>(
        _ body: @escaping @Sendable (DevicePool, ResultChannel<Element>) throws(PipelineError) -> Void
    ) -> SluiceResults<Element> {
        let channel = ResultChannel<Element>()
        let request = Request(
            run: { [self] pool in run(body, on: pool, into: channel) },
            abandon: { channel.finish(throwing: $0) })
        let accepted = state.withLock { s in
            guard !s.closing else { return false }
            s.queue.append(request)
            return true
        }
        if accepted {
            wake.notifyAll()
        } else {
            request.abandon(SessionWorker.closedError)
        }
        return SluiceResults(channel)
    }

    static let closedError = SluiceError(code: .sessionClosed, message: "the session was closed")

    /// Runs one request, stopping it when its consumer goes or the session closes.
    private func run<Element: Sendable>(
        _ body: (DevicePool, ResultChannel<Element>) throws(PipelineError) -> Void, on pool: DevicePool,
        into channel: ResultChannel<Element>
    ) {
        state.withLock { $0.stopRunning = { channel.isCancelled } }
        defer { state.withLock { $0.stopRunning = nil } }
        do throws(PipelineError) {
            try body(pool, channel)
            channel.finish()
        } catch {
            if closing {
                channel.finish(throwing: SessionWorker.closedError)
            } else {
                // A cancelled consumer hears nothing more; others get the error.
                channel.finish(throwing: SluiceError(error))
            }
        }
    }

    private var closing: Bool { state.withLock { $0.closing } }

    /// Whether the running request must stop.
    private func shouldStop() -> Bool {
        state.withLock { s in s.closing || (s.stopRunning?() ?? false) }
    }

    /// The thread: make the pool, serve requests until closed, close the pool.
    private func main(started: CheckedContinuation<Result<[String], SluiceError>, Never>) {
        let pool: DevicePool
        let plan: ExecutionPlan
        do throws(PipelineError) {
            (pool, plan) = try makePool()
        } catch {
            state.withLock { $0.exited = true }
            started.resume(returning: .failure(SluiceError(error)))
            return
        }
        started.resume(returning: .success(SessionWorker.reasons(of: pool, plan: plan)))
        while let request = nextRequest() { request.run(pool) }
        try? pool.close()
        finishClosing()
    }

    /// The pool the execution plan calls for: the session does not know
    /// its input, so the plan is made for scans of unknown size.
    private func makePool() throws(PipelineError) -> (DevicePool, ExecutionPlan) {
        let c = configuration
        var engine = EngineConfiguration(
            backend: c.backend, ingest: c.ingest, chunkBytes: c.chunkBytes, slots: c.slots, workers: c.workers,
            direct: c.direct, watchdog: c.watchdog, cpuScanEngine: c.cpuScanEngine)
        engine.onNote = c.onNote
        engine.shouldStop = { [weak self] in self?.shouldStop() ?? true }
        let plan = try ExecutionPlan.make(
            configuration: engine, devices: c.devices, input: .unknown(.scan), machine: .probe())
        let pool = try DevicePool(
            plan.configure(engine), devices: c.devices, resultWordsPerSlot: ScanJob.resultWords(records: c.records))
        return (pool, plan)
    }

    /// The plan's reasons, then what each device started with.
    private static func reasons(of pool: DevicePool, plan: ExecutionPlan) -> [String] {
        plan.lines.map { "\($0.name): \($0.text)" }
            + pool.engines.flatMap { e in
                ["device \(e.device): backend \(e.backend.summary)", "device \(e.device): ingest \(e.ingestReason)"]
                    + e.notes.map { "device \(e.device): \($0)" }
            }
    }

    /// The next request, waiting for one; nil once the session closes.
    private func nextRequest() -> Request? {
        while true {
            let seen = wake.sequence
            let (request, closing) = state.withLock { s -> (Request?, Bool) in
                if s.closing { return (nil, true) }
                return s.queue.isEmpty ? (nil, false) : (s.queue.removeFirst(), false)
            }
            if let request { return request }
            if closing { return nil }
            _ = wake.wait(after: seen, until: nil)
        }
    }

    private func finishClosing() {
        let (abandoned, closers) = state.withLock { s in
            s.exited = true
            defer { s.queue.removeAll(); s.closers.removeAll() }
            return (s.queue, s.closers)
        }
        for request in abandoned { request.abandon(SessionWorker.closedError) }
        for closer in closers { closer.resume() }
    }

    /// Asks the thread to stop; returns once it has released everything.
    func close() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let done = state.withLock { s in
                s.closing = true
                if s.exited { return true }
                s.closers.append(c)
                return false
            }
            wake.notifyAll()
            if done { c.resume() }
        }
        thread?.join()
    }

    /// `close` for `deinit`, which cannot wait asynchronously.
    func closeAndWait() {
        state.withLock { $0.closing = true }
        wake.notifyAll()
        thread?.join()
    }
}
