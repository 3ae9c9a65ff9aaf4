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

    /// A request waiting to run. On a pool of one engine it joins a shared
    /// run as a tenant (`job`, then `end`); on several engines it runs alone
    /// (`run`). `abandon` ends it unrun.
    struct Request: Sendable {
        /// Runs the request; false when it failed in a way that may leave
        /// the pool's rings or reads in a state the next request must not see.
        let run: @Sendable (DevicePool) -> Bool
        /// The request as a job of a shared run, in the place it was given
        /// (installing its table there); its results go out without waiting.
        let job: @Sendable (TenantPlace) throws(PipelineError) -> ChunkScheduler.Job
        /// Whether `job` needs an entry of the scan-table directory.
        let usesScanTable: Bool
        /// Whether its reader has fallen behind (its job is paused).
        let isPaused: @Sendable () -> Bool
        /// Ends its sequence: nil once every file was handed out.
        let end: @Sendable (SluiceError?) -> Void
        let abandon: @Sendable (SluiceError) -> Void
    }

    private struct State {
        var queue: [Request] = []
        var closing = false
        var exited = false
        var closers: [CheckedContinuation<Void, Never>] = []
        /// Polled by the running request's scanner: true stops it.
        var stopRunning: (@Sendable () -> Bool)?
        /// Ends the running request's sequence (the session closing), which
        /// also frees the thread should it wait for the consumer.
        var endRunning: (@Sendable () -> Void)?
        /// Whether some caller joined (or is joining) the thread.
        var joined = false
        /// Why every pool made from now on runs on the CPU backend: a GPU
        /// worker that never left (a user operation that spins) keeps its
        /// kernel, and so the device's context, busy for the process's life.
        var cpuOnly: String?
        /// Why requests are refused after the pool could not be made again.
        var broken: SluiceError?
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
        usesScanTable: Bool = false,
        _ body: @escaping @Sendable (DevicePool, ResultChannel<Element>) throws(PipelineError) -> Void,
        job: @escaping @Sendable (TenantPlace, ResultChannel<Element>) throws(PipelineError) -> ChunkScheduler.Job
    ) -> SluiceResults<Element> {
        let channel = ResultChannel<Element>()
        // Weak: the channel holds this start closure, and its reader holds
        // the channel; a request whose reader went before it ran does nothing.
        channel.setStart { [self, weak channel] in
            enqueue(Request(
                run: { [self, weak channel] pool in
                    guard let channel else { return true }
                    return run(body, on: pool, into: channel)
                },
                job: { [weak channel] place throws(PipelineError) in
                    guard let channel else { return SessionWorker.emptyJob(tenant: place.tenant) }
                    var made = try job(place, channel)
                    made.isCancelled = { [weak channel] in channel?.isStopped ?? true }
                    made.isPaused = { [weak channel] in channel?.isFull ?? false }
                    return made
                },
                usesScanTable: usesScanTable,
                isPaused: { [weak channel] in channel?.isFull ?? false },
                end: { [weak channel] error in
                    guard let channel else { return }
                    if let error { channel.finish(throwing: error) } else { channel.finish() }
                },
                abandon: { [weak channel] in channel?.finish(throwing: $0) }))
        }
        return SluiceResults(channel)
    }

    /// A job of no files, for a request whose reader went before it started.
    static func emptyJob(tenant: UInt32) -> ChunkScheduler.Job {
        ChunkScheduler.Job(tenant: tenant, paths: [], opcode: .count, onChunk: { _ in }, onFile: { _ in })
    }

    /// Queues `request`, or ends it when the session is closed or broken.
    private func enqueue(_ request: Request) {
        let refusal = state.withLock { s -> SluiceError? in
            if s.closing { return SessionWorker.closedError }
            if let broken = s.broken { return broken }
            s.queue.append(request)
            return nil
        }
        if let refusal {
            request.abandon(refusal)
        } else {
            wake.notifyAll()
        }
    }

    static let closedError = SluiceError(code: .sessionClosed, message: "the session was closed")

    /// Runs one request, stopping it when its consumer goes or the session closes.
    /// Returns false when the run failed after it may have used the rings.
    private func run<Element: Sendable>(
        _ body: (DevicePool, ResultChannel<Element>) throws(PipelineError) -> Void, on pool: DevicePool,
        into channel: ResultChannel<Element>
    ) -> Bool {
        state.withLock { s in
            s.stopRunning = { channel.isStopped }
            s.endRunning = { channel.finish(throwing: SessionWorker.closedError) }
        }
        defer { state.withLock { s in (s.stopRunning, s.endRunning) = (nil, nil) } }
        do throws(PipelineError) {
            try body(pool, channel)
            channel.finish()
            return true
        } catch {
            // A cancelled consumer hears nothing more; others get the error.
            channel.finish(throwing: closing ? SessionWorker.closedError : SluiceError(error))
            return SessionWorker.leavesPoolClean(error)
        }
    }

    /// Whether a request that threw `error` left the pool as it found it:
    /// refused before anything was read, or stopped the way Ctrl-C stops a
    /// run (every read drained, every slot reclaimed).
    static func leavesPoolClean(_ error: PipelineError) -> Bool {
        switch error {
        case .invalidConfiguration, .interrupted, .cancelled: return true
        case .invalidRequest(let chunk, let slot, _): return chunk == nil && slot == nil
        default: return false
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
        var current: DevicePool? = pool
        var shared: SharedRun?
        while let request = nextRequest() {
            guard let running = current else {
                request.abandon(state.withLock { $0.broken } ?? SessionWorker.closedError)
                continue
            }
            let clean: Bool
            if running.engines.count == 1 {
                clean = runShared(first: request, on: running, shared: &shared)
            } else {
                clean = request.run(running)
            }
            if !clean {
                current = remake(running)
                shared = nil
            }
        }
        try? current?.close()
        finishClosing()
    }

    /// Runs `first` and every request that comes while it runs together on
    /// the pool's one engine, each a tenant (`SharedRun`), until none is
    /// left. False when the run failed in a way that may leave the pool's
    /// rings or reads in a state the next request must not see.
    private func runShared(first: Request, on pool: DevicePool, shared: inout SharedRun?) -> Bool {
        let run: SharedRun
        do throws(PipelineError) {
            if let made = shared {
                run = made
            } else {
                run = try SharedRun(engine: pool.engines[0], slotsPerRequest: configuration.slotsPerRequest)
                shared = run
            }
        } catch {
            first.abandon(SluiceError(error))
            return SessionWorker.leavesPoolClean(error)
        }
        var arrived = [first]
        run.beginRun()
        do throws(PipelineError) {
            try run.scanner.run(jobs: [], admitting: { [self] () throws(PipelineError) -> [ChunkScheduler.Job] in
                defer { arrived = [] }
                return run.admit(arrived + takeQueued())
            })
            // Requests the run left waiting (its quota was spent) go first next time.
            requeue(run.takeWaiting())
            return !restartsForTables(run.scanner.backend)
        } catch {
            let reason = closing ? SessionWorker.closedError : SluiceError(error)
            requeue(run.fail(reason))
            return SessionWorker.leavesPoolClean(error)
        }
    }

    /// Scan-table bytes past which an idle session restarts its backend: a
    /// server that sees many distinct literal sets would otherwise keep
    /// every table's GPU memory for as long as it runs.
    static let retainedTableBudget = 1 << 30

    /// Whether the backend, between runs, keeps more table memory than
    /// `retainedTableBudget`: the pool is then made anew (a note says so).
    private func restartsForTables(_ backend: any MegakernelBackend) -> Bool {
        let bytes = backend.retainedTableBytes
        guard bytes > SessionWorker.retainedTableBudget else { return false }
        configuration.onNote?(
            "restarting the \(backend.name) backend between requests to free \(bytes >> 20) MiB of scan tables "
                + "(more than \(SessionWorker.retainedTableBudget >> 20) MiB kept)")
        return true
    }

    /// Every request queued now, in order (none when closing).
    private func takeQueued() -> [Request] {
        state.withLock { s in
            guard !s.closing else { return [] }
            defer { s.queue.removeAll() }
            return s.queue
        }
    }

    /// Puts requests a failed shared run had not started back at the head of the queue.
    private func requeue(_ requests: [Request]) {
        guard !requests.isEmpty else { return }
        state.withLock { $0.queue.insert(contentsOf: requests, at: 0) }
    }

    /// A failed run may leave reads in flight or slots claimed: the next
    /// request gets a fresh pool (backends, rings, streams). Nil, and the
    /// session refuses requests from then on, when one cannot be made.
    private func remake(_ pool: DevicePool) -> DevicePool? {
        let started = ContinuousClock.now
        configuration.onNote?("restarting the backend before the next request")
        do throws(PipelineError) {
            try pool.close()
        } catch {
            noteWorkersThatNeverLeft(error, pool: pool)
        }
        do throws(PipelineError) {
            let made = try makePool().0
            configuration.onNote?("backend restarted in \((ContinuousClock.now - started).inSeconds) s")
            return made
        } catch {
            let broken = SluiceError(
                code: SluiceError(error).code,
                message: "the session could not restart its backend after a failed request: \(error.message)",
                underlying: error)
            state.withLock { $0.broken = broken }
            return nil
        }
    }

    /// The pool the execution plan calls for: the session does not know
    /// its input, so the plan is made for scans of unknown size.
    /// A CUDA pool whose close timed out (`stuck`: a worker block that
    /// never left) cannot be followed by CUDA in this process: calls that
    /// wait for the device's context would wait for ever. Later pools run
    /// on the CPU backend, which runs the same operations, and a note says so.
    private func noteWorkersThatNeverLeft(_ error: PipelineError, pool: DevicePool) {
        guard case .stuck = error, pool.engines.contains(where: { $0.backend.name == "cuda" }) else { return }
        let why = "a GPU worker never left (\(error.message)), so CUDA cannot run again in this process; "
            + "the session goes on on the CPU backend"
        state.withLock { $0.cpuOnly = why }
        configuration.onNote?(why)
    }

    private func makePool() throws(PipelineError) -> (DevicePool, ExecutionPlan) {
        var c = configuration
        let cpuOnly = state.withLock { $0.cpuOnly }
        if cpuOnly != nil { c.backend = .cpu }
        var engine = EngineConfiguration(
            backend: c.backend, ingest: c.ingest, chunkBytes: c.chunkBytes, slots: c.slots, workers: c.workers,
            direct: c.direct, watchdog: c.watchdog, cpuScanEngine: c.cpuScanEngine)
        engine.ingestCopy = c.ingestCopy
        engine.backendReason = cpuOnly.map { "cpu: " + $0 }
        engine.onNote = c.onNote
        engine.operations = c.operations
        engine.shouldStop = { [weak self] in self?.shouldStop() ?? true }
        engine.stopsOnInterrupt = false
        // A CPU session needs no GPU probe (it would load the CUDA driver).
        let plan = try ExecutionPlan.make(
            configuration: engine, devices: c.devices, input: .unknown(.scan),
            machine: .probe(c.backend == .cpu ? .beforeWarmUp : .everything))
        let pool = try DevicePool(
            plan.configure(engine), devices: c.devices, resultWordsPerSlot: c.resultWordsPerSlot)
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
            let (done, end) = state.withLock { s in
                s.closing = true
                if s.exited { return (true, s.endRunning) }
                s.closers.append(c)
                return (false, s.endRunning)
            }
            end?()
            wake.notifyAll()
            if done { c.resume() }
        }
        joinOnce()
    }

    /// `close` for `deinit`, which cannot wait asynchronously.
    func closeAndWait() {
        let end = state.withLock { s in
            s.closing = true
            return s.endRunning
        }
        end?()
        wake.notifyAll()
        joinOnce()
    }

    /// Joins the thread from the first caller only (`pthread_join` twice is undefined).
    private func joinOnce() {
        let first = state.withLock { s in
            defer { s.joined = true }
            return !s.joined
        }
        if first { thread?.join() }
    }
}
