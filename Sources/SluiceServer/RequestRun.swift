import Sluice
import SluiceSocket
import SluiceWire
import Synchronization

/// One assembled request, run on the session and answered on a thread of
/// its own: it consumes the results with `nextWaiting()` and sends each
/// file's replies as they come, then `done` or `request-failed`. The
/// connection's reading thread calls `cancel()` on the client's `cancel` or
/// when the client goes away.
final class RequestRun: Sendable {
    /// How the request ended.
    enum Outcome: Sendable {
        case done(RequestTally)
        case failed(SluiceError, RequestTally)
        case cancelled(RequestTally)
        case clientGone(RequestTally)
    }

    let request: WireRequest
    /// Handed to the session at the start; the run keeps no hold on the
    /// descriptors after that (the session closes each as it is done with it).
    private let files: Mutex<PassedFiles?>
    /// Each file's size when it arrived (what a scan's `done` counts as read).
    private let sizes: [UInt64]
    private let socket: ConnectionSocket
    private let server: Server
    private let peer: PeerCredentials
    /// Called (once) when the run ended, before its last reply is sent, so
    /// the client may reuse the identifier as soon as it reads that reply.
    private let onEnd: @Sendable (UInt32) -> Void
    private let control = Mutex(Control())
    private let finished = Atomic<Bool>(false)

    /// Why the reading thread stopped the request.
    enum StopReason: Sendable {
        /// The client sent `cancel`.
        case cancelled
        /// The client closed or reset the connection, or broke the protocol.
        case clientGone
    }

    /// Whether and why the request was stopped, and how to stop the results once they exist.
    private struct Control {
        var reason: StopReason?
        var stop: (@Sendable () -> Void)?
    }

    init(
        request: WireRequest, files: PassedFiles, sizes: [UInt64], socket: ConnectionSocket, server: Server,
        peer: PeerCredentials, onEnd: @escaping @Sendable (UInt32) -> Void
    ) {
        self.request = request
        self.files = Mutex(files)
        self.sizes = sizes
        self.socket = socket
        self.server = server
        self.peer = peer
        self.onEnd = onEnd
    }

    /// Whether `execute` returned.
    var isFinished: Bool { finished.load(ordering: .acquiring) }

    /// Stops the request (from the reading thread): its results stop, the
    /// session cancels its slots and closes its descriptors. The first reason given stands.
    func cancel(_ reason: StopReason) {
        let stop = control.withLock { c in
            if c.reason == nil { c.reason = reason }
            return c.stop
        }
        stop?()
    }

    /// Runs the request to its end and answers it (on the request's thread).
    func execute() {
        let started = ContinuousClock.now
        let outcome = submitAndStream()
        onEnd(request.id)
        let result = answer(outcome)
        log(result, outcome: outcome, seconds: (ContinuousClock.now - started).inSeconds)
        finished.store(true, ordering: .releasing)
    }

    private var limits: WireLimits { server.configuration.limits }

    /// Submits the request to the session and streams its replies.
    private func submitAndStream() -> Outcome {
        let id = request.id
        let limits = self.limits
        guard let files = files.withLock({ $0.take() }) else { return .failed(Self.noFiles, RequestTally()) }
        switch request.operation {
        case .scan(let parameters):
            let options = ScanOptions(
                caseInsensitive: parameters.caseInsensitive, mode: parameters.output == .matches ? .matches : .count,
                lineNumbers: parameters.lineNumbers)
            let sizes = self.sizes
            return stream(server.session.scan(passing: files, literals: parameters.literals, options: options)) { piece, tally in
                let size = Int(tally.nextFile) < sizes.count ? sizes[Int(tally.nextFile)] : 0
                return WireReplies.scan(piece, request: id, fileSize: size, limits: limits, tally: &tally)
            }
        case .count:
            return stream(server.session.count(passing: files)) { file, tally in
                WireReplies.count(file, request: id, limits: limits, tally: &tally)
            }
        case .hash:
            return stream(server.session.crc32c(passing: files)) { file, tally in
                WireReplies.hash(file, request: id, limits: limits, tally: &tally)
            }
        }
    }

    /// What a run that was executed twice reports (it cannot happen: each run has one thread).
    private static let noFiles = SluiceError(code: .invalidRequest, message: "the request's files were handed to the session already")

    /// Consumes `results` on this thread, sending each element's replies.
    private func stream<Element: Sendable>(
        _ results: SluiceResults<Element>, replies: (Element, inout RequestTally) -> [WireMessage]
    ) -> Outcome {
        var tally = RequestTally()
        let stoppedBefore = control.withLock { c in
            c.stop = { results.cancel() }
            return c.reason
        }
        // Never started: the request is dropped unread, and its descriptors with it.
        if let stoppedBefore { return stopped(stoppedBefore, tally) }
        do throws(SluiceError) {
            while let element = try results.nextWaiting() {
                for reply in replies(element, &tally) where !socket.send(reply) {
                    results.cancel()
                    return .clientGone(tally)
                }
            }
        } catch {
            return stopReason.map { stopped($0, tally) } ?? .failed(error, tally)
        }
        if socket.isGone { return .clientGone(tally) }
        return stopReason.map { stopped($0, tally) } ?? .done(tally)
    }

    private var stopReason: StopReason? { control.withLock { $0.reason } }

    private func stopped(_ reason: StopReason, _ tally: RequestTally) -> Outcome {
        switch reason {
        case .cancelled: return .cancelled(tally)
        case .clientGone: return .clientGone(tally)
        }
    }

    /// Sends the request's last reply; returns what the log says of it.
    private func answer(_ outcome: Outcome) -> RequestResult {
        let id = request.id
        switch outcome {
        case .done(let t):
            socket.send(.done(RequestDone(request: id, files: t.files, failedFiles: t.failedFiles, bytes: t.bytes, matches: t.matches)))
            return t.failedFiles == 0 ? .ok : .failedFiles(t.failedFiles)
        case .failed(let error, _):
            socket.send(WireReplies.failure(error, request: id, hint: server.configuration.hint(error), limits: limits))
            return .error(WireErrorCode(error.code))
        case .cancelled:
            socket.send(WireReplies.failure(.cancelled, request: id, message: "request \(id) was cancelled by the client", limits: limits))
            return .cancelled
        case .clientGone:
            return .clientGone
        }
    }

    private func log(_ result: RequestResult, outcome: Outcome, seconds: Double) {
        let tally: RequestTally
        switch outcome {
        case .done(let t), .failed(_, let t), .cancelled(let t), .clientGone(let t): tally = t
        }
        // A request that failed as a whole may report no file: the files it named, then.
        let files = tally.files > 0 ? tally.files : UInt64(request.fileCount)
        let line = RequestLog.line(
            peer: peer, command: request.operation.command, files: files, bytes: tally.bytes, result: result, seconds: seconds)
        server.configuration.logger.info("\(line)")
    }
}

extension WireOperation {
    /// The command's name: scan, count or hash.
    var command: String {
        switch self {
        case .scan: return "scan"
        case .count: return "count"
        case .hash: return "hash"
        }
    }
}
