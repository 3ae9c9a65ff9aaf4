import Logging
import Sluice
import SluiceSocket
import SluiceThreads
import SluiceWire
import Synchronization
import SystemPackage

/// `sluice serve`: one `Session` (its backend, ring and compiled kernel kept
/// warm) shared by every client that connects to a Unix socket.
///
/// ```swift
/// let server = try await Server(Server.Configuration(socketPath: "/run/user/1000/sluice.sock"))
/// try server.run()          // blocks until stop(), shouldStop or the idle exit
/// await server.close()
/// ```
///
/// The accept loop polls the listening socket with `pollInterval` as its
/// timeout, so a `stop()`, the `shouldStop` hook (SIGTERM and SIGINT in the
/// CLI) or the idle exit is noticed within that time. Each connection gets a
/// thread that checks the peer's uid (`SO_PEERCRED`), answers the version
/// handshake, assembles requests from their `files` batches with the passed
/// descriptors and submits them to the session; each request's results are
/// consumed on a thread of its own and sent as they come, while the
/// connection's thread goes on reading, so a `cancel` or a disconnect stops
/// the request at once (its slots are cancelled and reclaimed by the
/// session, its descriptors closed) and other clients go on.
///
/// Stopping: the socket is unlinked at once (new clients find no server;
/// a socket systemd passed stays, and its new clients wait for the server
/// systemd starts next),
/// requests in flight run to their end and are answered, idle connections
/// are closed, a request that arrives meanwhile gets `request-failed` with
/// `sessionClosed`, and `run()` returns once every connection has ended.
public final class Server: Sendable {
    /// What the server was started with.
    public let configuration: Configuration
    /// The session every request runs on.
    public let session: Session
    /// The path of the listening socket (an activated socket's own path,
    /// else `configuration.socketPath`).
    public var socketPath: FilePath { configuration.activatedSocket?.path ?? configuration.socketPath }
    /// How the log names the listening socket: its path, or the activated
    /// socket with its descriptor and name.
    public var listeningAt: String { configuration.activatedSocket?.description ?? "\(configuration.socketPath)" }
    /// Whom the server serves.
    public let access: PeerAccess
    /// What the server runs: each device's backend ("device 0: backend cpu ...").
    public let summary: String
    /// When the server started (its session included), for the uptime `welcome` reports.
    public let startedAt: ContinuousClock.Instant

    private let listener: Mutex<UnixListener?>
    private let connections = Mutex(Connections())
    private let stopRequested = Atomic<Bool>(false)
    private let stoppingNow = Atomic<Bool>(false)
    /// When the server began to stop (set once, with `stoppingNow`).
    private let stoppingSince = Mutex<ContinuousClock.Instant?>(nil)

    /// How many connections are open, which ended, and since when none has been open.
    private struct Connections {
        var active = 0
        var nextID: UInt64 = 0
        /// Connections whose thread returned and is not joined yet.
        var ended: Set<UInt64> = []
        var idleSince: ContinuousClock.Instant = .now
    }

    /// Binds the socket (mode 0600; a live server at the path is refused
    /// before anything else starts), then starts the session.
    public init(_ configuration: Configuration) async throws(ServerError) {
        let bound: UnixListener
        do throws(SocketError) {
            // Other uids can reach the socket only when the server was told to
            // serve them; each peer's uid (SO_PEERCRED) is still checked.
            if let activated = configuration.activatedSocket {
                // systemd made it (its SocketMode= is the mode) and keeps it.
                bound = UnixListener(adopting: activated.descriptor)
            } else {
                bound = try UnixListener(
                    binding: configuration.socketPath, mode: configuration.allowedUIDs.isEmpty ? 0o600 : 0o666)
            }
        } catch {
            throw .socket(error)
        }
        let session: Session
        do throws(SluiceError) {
            session = try await Session(configuration.session)
        } catch {
            throw .session(error)  // `bound` goes, and unlinks the socket
        }
        self.configuration = configuration
        self.session = session
        access = PeerAccess(allowing: configuration.allowedUIDs, serverUID: ServerCalls.effectiveUID)
        summary = Server.summary(of: session)
        startedAt = .now
        listener = Mutex(consume bound)
    }

    /// Serves until `stop()`, `shouldStop` or the idle exit; then stops as the
    /// type's description says and returns. Throws only when the listening
    /// socket fails (or `run` is called twice).
    public func run() throws(ServerError) {
        let taken = listener.withLock { $0.take() }
        guard let listening = consume taken else { throw .alreadyRan }
        connections.withLock { $0.idleSince = .now }
        configuration.logger.info("serving at \(listeningAt): \(summary)")
        // The connection threads, known to this thread only.
        var threads: [UInt64: PosixThread] = [:]
        let failure = acceptLoop(listening, threads: &threads)
        stoppingSince.withLock { $0 = .now }
        stoppingNow.store(true, ordering: .releasing)
        listening.close()
        let waiting = connections.withLock { $0.active }
        if waiting > 0 {
            configuration.logger.info("stopping: waiting for \(waiting) connection(s) to finish their requests")
        }
        for thread in threads.values { thread.join() }
        if configuration.activatedSocket != nil {
            configuration.logger.info("stopped; \(listeningAt) is left to systemd, which starts a server again on the next connection")
        } else {
            configuration.logger.info("stopped; \(socketPath) removed")
        }
        if let failure { throw .socket(failure) }
    }

    /// Asks `run()` to stop (from any thread); it notices within `pollInterval`.
    public func stop() { stopRequested.store(true, ordering: .releasing) }

    /// Closes the session (after `run()` returned), releasing its backend.
    public func close() async { await session.close() }

    /// Whether the server is stopping: connections answer no new request.
    var isStopping: Bool { stoppingNow.load(ordering: .acquiring) }

    /// Whether the server has been stopping for longer than `stopGrace`:
    /// connections then give up on their clients.
    var graceIsOver: Bool {
        guard isStopping, let since = stoppingSince.withLock({ $0 }) else { return false }
        return ContinuousClock.now - since >= configuration.stopGrace
    }

    /// Whether more connections are open than the server takes.
    var isFull: Bool { connections.withLock { $0.active } > configuration.maxConnections }

    /// Raises this process's limit on open descriptors to its hard limit (a
    /// request holds one per file until the session reaches it); returns the limit now in force.
    public static func raiseDescriptorLimit() throws(SocketError) -> UInt64 { try ServerCalls.raiseDescriptorLimit() }

    /// Accepts connections until told to stop; returns the listening
    /// socket's failure, if that is what ended it.
    private func acceptLoop(_ listening: borrowing UnixListener, threads: inout [UInt64: PosixThread]) -> SocketError? {
        while !shouldLeave() {
            reapConnections(&threads)
            do throws(SocketError) {
                guard try SocketPoll.readable(listening.descriptor, timeout: configuration.pollInterval) else { continue }
                start(try listening.accept(), threads: &threads)
            } catch {
                switch error.errno {
                case .connectionAbort?, .interrupted?:
                    continue
                case .tooManyOpenFiles?, .tooManyOpenFilesInSystem?, .noMemory?, .noBufferSpace?:
                    // Out of descriptors or memory for now: log, wait a tick, go on.
                    configuration.logger.warning("accept: \(error.message)")
                    sleepNanoseconds(Int(configuration.pollInterval.components.attoseconds / 1_000_000_000)
                        + Int(configuration.pollInterval.components.seconds) * 1_000_000_000)
                default:
                    configuration.logger.error("the listening socket failed: \(error.message)")
                    return error
                }
            }
        }
        return nil
    }

    /// Whether to stop: asked to, or idle for longer than `idleExit`.
    private func shouldLeave() -> Bool {
        if stopRequested.load(ordering: .acquiring) || configuration.shouldStop() { return true }
        guard let idle = configuration.idleExit else { return false }
        let since = connections.withLock { $0.active == 0 ? $0.idleSince : nil }
        guard let since, ContinuousClock.now - since >= idle else { return false }
        configuration.logger.info("no connection for \(idle); leaving (--idle-exit)")
        return true
    }

    /// Gives `socket` a thread of its own.
    private func start(_ socket: consuming UnixSocket, threads: inout [UInt64: PosixThread]) {
        let connection = Connection(socket: ConnectionSocket(socket, limits: configuration.limits), server: self)
        let id = connections.withLock { c in
            c.nextID += 1
            c.active += 1
            return c.nextID
        }
        do throws(ThreadStartFailure) {
            threads[id] = try PosixThread(name: "sluice serve connection") { [self] in
                connection.serve()
                connectionEnded(id)
            }
        } catch {
            configuration.logger.error("a connection was dropped: \(error.message)")
            connectionEnded(id)
        }
    }

    private func connectionEnded(_ id: UInt64) {
        connections.withLock { c in
            c.active -= 1
            c.ended.insert(id)
            if c.active == 0 { c.idleSince = .now }
        }
    }

    /// Joins the threads of connections that ended.
    private func reapConnections(_ threads: inout [UInt64: PosixThread]) {
        let ended = connections.withLock { c in
            defer { c.ended.removeAll() }
            return c.ended
        }
        for id in ended { threads.removeValue(forKey: id)?.join() }
    }

    /// What each device's backend is.
    private static func summary(of session: Session) -> String {
        let backends = session.reasons.filter { $0.contains(": backend ") }
        return backends.isEmpty ? "running" : backends.joined(separator: "; ")
    }

    /// What `welcome` tells a client (and `sluice doctor` shows): "sluice
    /// serve (pid N, up 2 min 5 s, socket activation, idle exit 300 s): "
    /// and each device's backend. Text, so that the handshake's layout stays.
    public var welcomeText: String {
        var facts = ["pid \(ServerCalls.processID)", "up " + Server.duration(ContinuousClock.now - startedAt)]
        if configuration.activatedSocket != nil { facts.append("socket activation") }
        if let idle = configuration.idleExit { facts.append("idle exit " + Server.duration(idle)) }
        if !configuration.allowedUIDs.isEmpty { facts.append("also serves uid " + configuration.allowedUIDs.map(String.init).joined(separator: ", ")) }
        return "sluice serve (\(facts.joined(separator: ", "))): \(summary)"
    }

    /// Whole seconds, minutes and hours in words: "5 s", "2 min 5 s", "3 h 0 min".
    static func duration(_ d: Duration) -> String {
        let s = max(0, d.components.seconds)
        if s < 60 { return "\(s) s" }
        if s < 3600 { return "\(s / 60) min \(s % 60) s" }
        return "\(s / 3600) h \(s % 3600 / 60) min"
    }
}
