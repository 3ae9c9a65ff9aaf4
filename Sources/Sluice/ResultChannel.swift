import SluiceIngest
import Synchronization

/// A bounded hand-over from the session's thread (which blocks while the
/// consumer is behind, so memory stays bounded) to one async consumer.
/// Written by hand because `AsyncThrowingStream` can neither throw a typed
/// error nor make its producer wait for room.
final class ResultChannel<Element: Sendable>: Sendable {
    private struct State: ~Copyable {
        var buffer: [Element] = []
        var head = 0
        var finished = false
        var failure: SluiceError?
        var cancelled = false
        var consumer: CheckedContinuation<Result<Element?, SluiceError>, Never>?

        var queued: Int { buffer.count - head }

        /// The next outcome for the consumer, or nil when it must wait.
        mutating func take() -> Result<Element?, SluiceError>? {
            if head < buffer.count {
                let element = buffer[head]
                head += 1
                if head >= 64, head * 2 >= buffer.count {
                    buffer.removeFirst(head)
                    head = 0
                }
                return .success(element)
            }
            guard finished || cancelled else { return nil }
            if let failure, !cancelled {
                self.failure = nil
                return .failure(failure)
            }
            return .success(nil)
        }
    }

    private let state = Mutex(State())
    private let room = WakeSignal()
    /// Rung whenever an element is queued or the channel ends, for a
    /// consumer that waits on a thread (`nextWaiting`).
    private let produced = WakeSignal()
    /// Elements the producer may get ahead of the consumer.
    let capacity: Int
    /// Queues the request; called once, at the consumer's first `next`, so a
    /// sequence that is never read never takes the session's thread.
    private let start: Mutex<(@Sendable () -> Void)?>

    init(capacity: Int = 16, start: @escaping @Sendable () -> Void = {}) {
        self.capacity = max(1, capacity)
        self.start = Mutex(start)
    }

    /// Sets what the first `next` calls (the channel is made before the
    /// request that refers to it).
    func setStart(_ begin: @escaping @Sendable () -> Void) { start.withLock { $0 = begin } }

    /// Whether the producer should stop: the consumer went away, its task
    /// was cancelled, or the channel was ended (the session closing).
    var isStopped: Bool { state.withLock { $0.cancelled || $0.finished } }

    /// Hands `element` over, waiting while `capacity` elements are queued.
    /// Returns false, dropping it, once the consumer is gone.
    @discardableResult
    func send(_ element: Element) -> Bool {
        while true {
            let seen = room.sequence
            let outcome: (accepted: Bool?, wake: CheckedContinuation<Result<Element?, SluiceError>, Never>?) =
                state.withLock { s in
                    if s.cancelled || s.finished { return (false, nil) }
                    guard s.queued < capacity else { return (nil, nil) }
                    if let waiting = s.consumer {
                        s.consumer = nil
                        return (true, waiting)
                    }
                    s.buffer.append(element)
                    return (true, nil)
                }
            if let wake = outcome.wake { wake.resume(returning: .success(element)) }
            if let accepted = outcome.accepted {
                produced.notifyAll()
                return accepted
            }
            _ = room.wait(after: seen, until: ContinuousClock.now + .milliseconds(100))
        }
    }

    /// Ends the sequence: after what is queued, the consumer gets `failure`
    /// (thrown) or the end.
    /// Queues `element` without waiting for room, for a producer that must
    /// not block (a run shared with other requests); it holds its next work
    /// back while `isFull` instead. False when the channel ended.
    @discardableResult
    func push(_ element: Element) -> Bool {
        let outcome: (accepted: Bool, wake: CheckedContinuation<Result<Element?, SluiceError>, Never>?) =
            state.withLock { s in
                if s.cancelled || s.finished { return (false, nil) }
                if let waiting = s.consumer {
                    s.consumer = nil
                    return (true, waiting)
                }
                s.buffer.append(element)
                return (true, nil)
            }
        outcome.wake?.resume(returning: .success(element))
        produced.notifyAll()
        return outcome.accepted
    }

    /// Whether `capacity` elements or more wait for the consumer.
    var isFull: Bool { state.withLock { $0.queued >= capacity } }

    func finish(throwing failure: SluiceError? = nil) {
        let waiting = state.withLock { s -> (CheckedContinuation<Result<Element?, SluiceError>, Never>, Result<Element?, SluiceError>)? in
            guard !s.finished else { return nil }
            s.finished = true
            s.failure = failure
            guard let c = s.consumer, let outcome = s.take() else { return nil }
            s.consumer = nil
            return (c, outcome)
        }
        if let (c, outcome) = waiting { c.resume(returning: outcome) }
        // A producer waiting for room gives up on a finished channel.
        room.notifyAll()
        produced.notifyAll()
    }

    /// `next()` for a consumer on a thread of its own (a server's
    /// connection): starts the request on the first call, then blocks the
    /// thread until an element comes or the channel ends.
    func nextWaiting() throws(SluiceError) -> Element? {
        if let begin = start.withLock({ s in defer { s = nil }; return s }) { begin() }
        while true {
            let seen = produced.sequence
            if let outcome = state.withLock({ $0.take() }) {
                room.notifyAll()
                return try outcome.get()
            }
            _ = produced.wait(after: seen, until: nil)
        }
    }

    /// The consumer is gone: the producer's next `send` returns false and a
    /// waiting `next` returns nil.
    func cancel() {
        let waiting = state.withLock { s -> CheckedContinuation<Result<Element?, SluiceError>, Never>? in
            s.cancelled = true
            s.buffer.removeAll()
            s.head = 0
            defer { s.consumer = nil }
            return s.consumer
        }
        waiting?.resume(returning: .success(nil))
        room.notifyAll()
        produced.notifyAll()
    }

    /// The next element, nil at the end or once cancelled.
    func next() async throws(SluiceError) -> Element? {
        if let begin = start.withLock({ s in defer { s = nil }; return s }) { begin() }
        let outcome = await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Result<Element?, SluiceError>, Never>) in
                let ready = state.withLock { s -> Result<Element?, SluiceError>? in
                    if let outcome = s.take() { return outcome }
                    // One consumer at a time: a second would strand the first.
                    guard s.consumer == nil else {
                        return .failure(SluiceError(
                            code: .invalidRequest, message: "two tasks iterate one result sequence at the same time"))
                    }
                    s.consumer = c
                    return nil
                }
                if let ready { c.resume(returning: ready) }
                room.notifyAll()
            }
        } onCancel: {
            cancel()
        }
        return try outcome.get()
    }
}

/// The results of one session request, in order: an `AsyncSequence` that
/// throws `SluiceError`. The request starts when the sequence is first
/// read, so a sequence never read costs nothing; iterate it once, from one
/// task. Leaving the loop (by `break` too) or cancelling the consuming task
/// cancels the request: reads stop, work not yet claimed is cancelled, and
/// the session serves the next request.
public struct SluiceResults<Element: Sendable>: AsyncSequence, Sendable {
    /// Errors this sequence throws.
    public typealias Failure = SluiceError

    /// An iterator's hold on the request: cancels it when the iterator goes.
    final class Consumer: Sendable {
        let channel: ResultChannel<Element>
        init(_ channel: ResultChannel<Element>) { self.channel = channel }
        deinit { channel.cancel() }
    }

    let channel: ResultChannel<Element>

    init(_ channel: ResultChannel<Element>) { self.channel = channel }

    /// A sequence that ends at once with `error`.
    static func failed(_ error: SluiceError) -> SluiceResults<Element> {
        let channel = ResultChannel<Element>()
        channel.finish(throwing: error)
        return SluiceResults(channel)
    }

    /// Reads the request's results one by one. When the iterator goes (a
    /// `for try await` loop ends, by `break` too), the request is cancelled.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let consumer: Consumer

        /// The next result; nil at the end, or once the consuming task was cancelled.
        public mutating func next(isolation actor: isolated (any Actor)? = #isolation) async throws(SluiceError) -> Element? {
            try await consumer.channel.next()
        }

        /// The next result; nil at the end, or once the consuming task was cancelled.
        public mutating func next() async throws(SluiceError) -> Element? {
            try await consumer.channel.next()
        }
    }

    /// An iterator over the results; the request starts at its first `next`.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(consumer: Consumer(channel)) }

    /// The next element for a consumer on a thread of its own rather than a
    /// task (`sluice serve`'s connections): blocks the thread until one
    /// comes; nil at the end. One consumer at a time, as with the iterator.
    package func nextWaiting() throws(SluiceError) -> Element? { try channel.nextWaiting() }

    /// Stops the request, as a cancelled task does; `nextWaiting` then returns nil.
    package func cancel() { channel.cancel() }

    /// Collects every result (for small inputs and tests; a large scan
    /// should be consumed as it streams).
    public func collect() async throws(SluiceError) -> [Element] {
        var all: [Element] = []
        var iterator = makeAsyncIterator()
        while let element = try await iterator.next() { all.append(element) }
        return all
    }
}
