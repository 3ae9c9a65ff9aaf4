import Logging
import Sluice
import SluiceSocket
import SluiceThreads
import SluiceWire
import Synchronization
import SystemPackage

/// One client's connection, served by its own thread (`serve`): the peer's
/// uid and the handshake, then requests assembled from their `files`
/// batches and the descriptors that came with them. Each complete request
/// runs on a thread of its own (`RequestRun`), while this thread goes on
/// reading, so that it sees a `cancel`, a disconnect or a malformed frame at
/// once and stops the requests it concerns.
final class Connection: Sendable {
    private let socket: ConnectionSocket
    private let server: Server
    /// What the reading thread and the requests' threads share.
    private let shared: Mutex<Shared>

    private struct Shared {
        /// The protocol's account of the open requests (assembling or running).
        var assembly: WireRequestAssembly
        /// The requests running, by identifier.
        var runs: [UInt32: RequestRun] = [:]
    }

    init(socket: ConnectionSocket, server: Server) {
        self.socket = socket
        self.server = server
        shared = Mutex(Shared(assembly: WireRequestAssembly(
            limits: server.configuration.limits, maxOpenRequests: server.configuration.maxOpenRequestsPerConnection)))
    }

    private var logger: Logger { server.configuration.logger }
    private var limits: WireLimits { server.configuration.limits }
    private var pollInterval: Duration { server.configuration.pollInterval }
    /// How long a new connection may take to say hello.
    static let helloTimeout: Duration = .seconds(10)

    /// Serves the connection until the client leaves, breaks the protocol,
    /// or the server stops while the connection is idle; then stops what the
    /// client left running, waits for its requests' threads and closes.
    func serve() {
        let peer: PeerCredentials
        do throws(SocketError) {
            peer = try socket.socket.peerCredentials()
        } catch {
            logger.warning("a connection without credentials was closed: \(error.message)")
            return
        }
        // A uid not served is refused before anything it sends is read.
        guard server.access.allows(peer.uid) else {
            _ = socket.send(Admission.refusal(uid: peer.uid))
            logger.notice("pid \(peer.pid) uid \(peer.uid): refused: uid not served")
            return
        }
        var reader = MessageReader(limits: Connection.decoderLimits(limits))
        guard let hello = readHello(&reader, peer: peer) else { return }
        let answer = Admission.answer(
            hello, peerUID: peer.uid, access: server.access, isStopping: server.isStopping, isFull: server.isFull,
            server: server.welcomeText)
        guard socket.send(answer), case .welcome = answer else {
            if case .refused(let refusal) = answer {
                logger.notice("pid \(peer.pid) uid \(peer.uid): refused: \(refusal.message)")
            }
            return
        }
        var requests = RequestThreads()
        serveRequests(&reader, peer: peer, threads: &requests)
        stopAll(.clientGone)
        // A run blocked sending to a client that stopped reading returns now.
        socket.hangUp()
        requests.joinAll()
    }

    /// The connection's first message, which must be `hello`; nil when the
    /// client left, sent something else, or the server stopped first.
    private func readHello(_ reader: inout MessageReader, peer: PeerCredentials) -> Hello? {
        // A peer that never says hello does not hold a thread for long.
        let deadline = ContinuousClock.now + Connection.helloTimeout
        while true {
            switch reader.next(from: socket.socket, timeout: pollInterval) {
            case .idle:
                if server.isStopping { return nil }
                if ContinuousClock.now >= deadline {
                    logger.warning("pid \(peer.pid) uid \(peer.uid): closed: no hello within \(Connection.helloTimeout)")
                    return nil
                }
            case .ended:
                return nil
            case .broken(let why):
                logger.warning("pid \(peer.pid) uid \(peer.uid): \(why)")
                return nil
            case .refused(let error):
                logger.warning("pid \(peer.pid) uid \(peer.uid): closed: \(error.message)")
                return nil
            case .message(let message):
                do throws(WireError) {
                    return try WireHandshake.expectHello(message)
                } catch {
                    logger.warning("pid \(peer.pid) uid \(peer.uid): closed: \(error.message)")
                    return nil
                }
            }
        }
    }

    /// Reads and handles messages until the connection must close.
    private func serveRequests(_ reader: inout MessageReader, peer: PeerCredentials, threads: inout RequestThreads) {
        var assembling = Assembling()
        while true {
            threads.reapFinished()
            switch reader.next(from: socket.socket, timeout: pollInterval) {
            case .idle:
                // Idle only once every request's thread sent its last reply,
                // or once a stopping server has waited long enough for them.
                if server.isStopping && assembling.isEmpty && threads.isEmpty { return }
                if server.graceIsOver {
                    logger.warning("pid \(peer.pid) uid \(peer.uid): closed: still busy \(server.configuration.stopGrace) after the stop")
                    return
                }
            case .ended:
                return
            case .broken(let why):
                refuse(assembling.lastOpened, code: .io, message: why, peer: peer)
                return
            case .refused(let error):
                refuse(assembling.lastOpened, code: WireReplies.code(for: error), message: error.message, peer: peer)
                return
            case .message(let message):
                let handled = handle(message, reader: reader, assembling: &assembling, peer: peer, threads: &threads)
                guard handled else { return }
            }
        }
    }

    /// Handles one message; false when the connection must close (the
    /// client broke the protocol, and was told so where a request was open).
    private func handle(
        _ message: WireMessage, reader: MessageReader, assembling: inout Assembling, peer: PeerCredentials,
        threads: inout RequestThreads
    ) -> Bool {
        switch message {
        case .request(let request):
            return open(request, assembling: &assembling, peer: peer, threads: &threads)
        case .files(let batch):
            guard let descriptors = reader.descriptors.take(Int(batch.descriptorCount)) else {
                refuse(batch.request, code: .invalidRequest,
                       message: "request \(batch.request): a files message declares \(batch.descriptorCount) descriptors but \(reader.descriptors.count) arrived",
                       peer: peer)
                return false
            }
            return add(batch, descriptors: PassedDescriptors(descriptors), assembling: &assembling, peer: peer, threads: &threads)
        case .cancel(let id):
            cancel(id, assembling: &assembling)
            return true
        default:
            let error = WireError.unexpectedMessage(message.type, expected: "scan, count, hash, files or cancel")
            refuse(assembling.lastOpened, code: .invalidRequest, message: error.message, peer: peer)
            return false
        }
    }

    /// Opens `request`; it runs at once when it names no file.
    private func open(
        _ request: WireRequest, assembling: inout Assembling, peer: PeerCredentials, threads: inout RequestThreads
    ) -> Bool {
        let progress: WireRequestAssembly.Progress
        do throws(WireError) {
            try Connection.checkLiterals(request, limits: limits)
            progress = try shared.withLock { (s) throws(WireError) in try s.assembly.open(request) }
        } catch {
            refuse(request.id, code: WireReplies.code(for: error), message: "request \(request.id): \(error.message)", peer: peer)
            return false
        }
        // While stopping, a new request is still received in full (its
        // descriptors closed), so that the stream stays in step, then refused.
        assembling.open(request, refusedAs: server.isStopping ? "the server at \(server.socketPath) is shutting down" : nil)
        if progress.isComplete { start(request.id, assembling: &assembling, peer: peer, threads: &threads) }
        return true
    }

    /// The decoder's limits: those of the configuration, except the ones a
    /// request's header is checked against once decoded (literals, files),
    /// so that their refusal names the request. The frame limit still
    /// bounds what decoding such a header allocates.
    static func decoderLimits(_ limits: WireLimits) -> WireLimits {
        var relaxed = limits
        relaxed.maxLiterals = .max
        relaxed.maxLiteralBytes = .max
        relaxed.maxFilesPerRequest = .max
        return relaxed
    }

    /// Throws when a scan's literals exceed the limits (in the decoder's order: count, then bytes).
    static func checkLiterals(_ request: WireRequest, limits: WireLimits) throws(WireError) {
        guard case .scan(let parameters) = request.operation else { return }
        guard parameters.literals.count <= limits.maxLiterals else {
            throw .limitExceeded(.literals, value: parameters.literals.count, maximum: limits.maxLiterals)
        }
        let bytes = parameters.literals.reduce(0) { $0 + $1.count }
        guard bytes <= limits.maxLiteralBytes else {
            throw .limitExceeded(.literalBytes, value: bytes, maximum: limits.maxLiteralBytes)
        }
    }

    /// Adds a batch to its request; the request runs once every file arrived.
    private func add(
        _ batch: FileBatch, descriptors: PassedDescriptors, assembling: inout Assembling, peer: PeerCredentials,
        threads: inout RequestThreads
    ) -> Bool {
        let progress: WireRequestAssembly.Progress
        do throws(WireError) {
            progress = try shared.withLock { (s) throws(WireError) in try s.assembly.add(batch) }
        } catch {
            refuse(batch.request, code: WireReplies.code(for: error), message: error.message, peer: peer)
            return false
        }
        guard let pending = assembling.pending[batch.request] else {
            // Open in the account but not assembling: it runs already, and every file came.
            refuse(batch.request, code: .invalidRequest, message: "request \(batch.request): files after the last one", peer: peer)
            return false
        }
        for file in batch.files {
            guard let fd = descriptors.take(Int(file.descriptor)) else {
                refuse(batch.request, code: .invalidRequest,
                       message: "request \(batch.request): descriptor \(file.descriptor) of a files message is named twice",
                       peer: peer)
                return false
            }
            pending.add(path: file.path, descriptor: fd)
        }
        if progress.isComplete { start(batch.request, assembling: &assembling, peer: peer, threads: &threads) }
        return true
    }

    /// Stops request `id`: one assembling is dropped (its descriptors
    /// closed) and answered; one running is cancelled and answers itself.
    /// An identifier not open (a request that just ended) is ignored.
    private func cancel(_ id: UInt32, assembling: inout Assembling) {
        if assembling.remove(id) != nil {
            shared.withLock { $0.assembly.finish(id) }
            socket.send(WireReplies.failure(.cancelled, request: id, message: "request \(id) was cancelled by the client", limits: limits))
            return
        }
        let run = shared.withLock { $0.runs[id] }
        run?.cancel(.cancelled)
    }

    /// Starts assembled request `id` on a thread of its own.
    private func start(_ id: UInt32, assembling: inout Assembling, peer: PeerCredentials, threads: inout RequestThreads) {
        guard let pending = assembling.remove(id) else { return }
        if let refusal = pending.refusal {
            ended(id)
            socket.send(WireReplies.failure(.sessionClosed, request: id, message: refusal, limits: limits))
            return
        }
        let (paths, descriptors, sizes) = pending.takeAll()
        let files: PassedFiles
        do throws(PipelineError) {
            files = try PassedFiles(paths: paths, descriptors: descriptors)
        } catch {
            ended(id)
            socket.send(WireReplies.failure(SluiceError(error), request: id, hint: "", limits: limits))
            return
        }
        let run = RequestRun(
            request: pending.request, files: files, sizes: sizes, socket: socket, server: server, peer: peer,
            onEnd: { [self] in ended($0) })
        shared.withLock { $0.runs[id] = run }
        do throws(ThreadStartFailure) {
            threads.add(run, try PosixThread(name: "sluice serve request") { run.execute() })
        } catch {
            ended(id)
            socket.send(WireReplies.failure(.backendUnavailable, request: id, message: error.message, limits: limits))
        }
    }

    /// Forgets request `id` (its identifier may be used again).
    private func ended(_ id: UInt32) {
        shared.withLock { s in
            s.assembly.finish(id)
            s.runs[id] = nil
        }
    }

    /// Stops every running request.
    private func stopAll(_ reason: RequestRun.StopReason) {
        for run in shared.withLock({ Array($0.runs.values) }) { run.cancel(reason) }
    }

    /// Tells the client why the connection closes, as a `request-failed`
    /// for the request it was sending (when there is one), and logs it.
    private func refuse(_ request: UInt32?, code: WireErrorCode, message: String, peer: PeerCredentials) {
        logger.warning("pid \(peer.pid) uid \(peer.uid): closing the connection: \(message)")
        guard let request else { return }
        socket.send(WireReplies.failure(code, request: request, message: message, limits: limits))
    }
}

/// The requests of a connection still receiving their files, in the order opened.
private struct Assembling {
    var pending: [UInt32: PendingRequest] = [:]
    private var order: [UInt32] = []

    var isEmpty: Bool { pending.isEmpty }

    /// The request most recently opened and still assembling: the one a
    /// malformed frame most likely belonged to.
    var lastOpened: UInt32? { order.last }

    mutating func open(_ request: WireRequest, refusedAs refusal: String?) {
        pending[request.id] = PendingRequest(request, refusal: refusal)
        order.append(request.id)
    }

    mutating func remove(_ id: UInt32) -> PendingRequest? {
        order.removeAll { $0 == id }
        return pending.removeValue(forKey: id)
    }
}

/// A request whose files are still arriving: it owns their descriptors
/// until it runs (those of a request dropped unrun are closed).
private final class PendingRequest {
    let request: WireRequest
    /// Why the request will be refused once its files arrived; nil: it runs.
    let refusal: String?
    private var paths: [RawPath] = []
    private var descriptors: [FileDescriptor] = []
    private var sizes: [UInt64] = []

    init(_ request: WireRequest, refusal: String?) {
        self.request = request
        self.refusal = refusal
    }

    func add(path: RawPath, descriptor: FileDescriptor) {
        paths.append(path)
        descriptors.append(descriptor)
        sizes.append(ServerCalls.regularFileSize(descriptor) ?? 0)
    }

    /// Hands the files over (the descriptors are the caller's now).
    func takeAll() -> (paths: [RawPath], descriptors: [FileDescriptor], sizes: [UInt64]) {
        defer { (paths, descriptors, sizes) = ([], [], []) }
        return (paths, descriptors, sizes)
    }

    deinit {
        for fd in descriptors { try? fd.close() }
    }
}

/// The descriptors attached to one `files` message, each taken by the file
/// naming it; those no file names are closed.
private final class PassedDescriptors {
    private var slots: [FileDescriptor?]

    init(_ descriptors: [FileDescriptor]) { slots = descriptors }

    /// Descriptor `index`; nil when out of range or taken already.
    func take(_ index: Int) -> FileDescriptor? {
        guard slots.indices.contains(index), let fd = slots[index] else { return nil }
        slots[index] = nil
        return fd
    }

    deinit {
        for case let fd? in slots { try? fd.close() }
    }
}

/// The threads of a connection's requests, joined as they finish and at the end.
private struct RequestThreads {
    private var threads: [(run: RequestRun, thread: PosixThread)] = []

    /// Whether no request thread is left unjoined.
    var isEmpty: Bool { threads.isEmpty }

    mutating func add(_ run: RequestRun, _ thread: PosixThread) { threads.append((run, thread)) }

    mutating func reapFinished() {
        threads.removeAll { entry in
            guard entry.run.isFinished else { return false }
            entry.thread.join()
            return true
        }
    }

    func joinAll() {
        for entry in threads { entry.thread.join() }
    }
}
