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
    /// Elements the producer may get ahead of the consumer.
    let capacity: Int

    init(capacity: Int = 16) { self.capacity = max(1, capacity) }

    /// Whether the consumer went away or its task was cancelled.
    var isCancelled: Bool { state.withLock { $0.cancelled } }

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
            if let accepted = outcome.accepted { return accepted }
            _ = room.wait(after: seen, until: ContinuousClock.now + .milliseconds(100))
        }
    }

    /// Ends the sequence: after what is queued, the consumer gets `failure`
    /// (thrown) or the end.
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
    }

    /// The next element, nil at the end or once cancelled.
    func next() async throws(SluiceError) -> Element? {
        let outcome = await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Result<Element?, SluiceError>, Never>) in
                let ready = state.withLock { s -> Result<Element?, SluiceError>? in
                    if let outcome = s.take() { return outcome }
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
/// throws `SluiceError`. Iterate it once. Breaking out of the loop, dropping
/// the sequence or cancelling the consuming task cancels the request: reads
/// stop, work not yet claimed is cancelled, and the session serves the next request.
public struct SluiceResults<Element: Sendable>: AsyncSequence, Sendable {
    /// Errors this sequence throws.
    public typealias Failure = SluiceError

    /// Cancels the request when the last copy of the sequence and its iterator are gone.
    final class Consumer: Sendable {
        let channel: ResultChannel<Element>
        init(_ channel: ResultChannel<Element>) { self.channel = channel }
        deinit { channel.cancel() }
    }

    let consumer: Consumer

    init(_ channel: ResultChannel<Element>) { consumer = Consumer(channel) }

    /// Reads the request's results one by one.
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

    /// An iterator over the results.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(consumer: consumer) }

    /// Collects every result (for small inputs and tests; a large scan
    /// should be consumed as it streams).
    public func collect() async throws(SluiceError) -> [Element] {
        var all: [Element] = []
        var iterator = makeAsyncIterator()
        while let element = try await iterator.next() { all.append(element) }
        return all
    }
}
