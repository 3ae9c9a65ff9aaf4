#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SluiceCore
import SluiceIngest
import SluiceSocket
import SluiceThreads
import SluiceWire
import Synchronization
import SystemPackage

/// The engine of a session connected to `sluice serve`: the server's
/// socket, what it said in its welcome, and the connection it keeps for
/// the next request.
///
/// Each request runs on a thread of its own over a connection of its own
/// (the one the handshake made, while it is idle, else a new one), so that
/// one slow consumer never holds up another request's replies: the thread
/// reads the server's replies only as fast as its consumer takes results,
/// and the server, which then cannot write, holds off. The thread walks
/// the paths as a local session does, opens every file itself and passes
/// the descriptors (`RemoteRequest`).
package final class RemoteEngine: Sendable {
    /// The server's socket.
    package let socketPath: FilePath
    /// The server's welcome: its protocol version and what it runs.
    package let welcome: Welcome
    /// Receives the walk's notes (a skipped special file).
    let onNote: (@Sendable (String) -> Void)?
    /// Polled while a request waits for the server: true stops the request
    /// as Ctrl-C stops a local run (the CLI passes `Interrupt.isRequested`).
    let shouldStop: @Sendable () -> Bool

    private struct State {
        var idle: RemoteConnection?
        var busy: [ObjectIdentifier: RemoteConnection] = [:]
        var closed = false
    }

    private let state: Mutex<State>

    private init(
        socketPath: FilePath, welcome: Welcome, idle: RemoteConnection, onNote: (@Sendable (String) -> Void)?,
        shouldStop: @escaping @Sendable () -> Bool
    ) {
        self.socketPath = socketPath
        self.welcome = welcome
        self.onNote = onNote
        self.shouldStop = shouldStop
        state = Mutex(State(idle: idle))
    }

    /// Connects to the server at `socket` and checks the protocol version
    /// (a blocking call: connect, `hello`, and the server's answer).
    package static func connect(
        to socket: FilePath, onNote: (@Sendable (String) -> Void)? = nil,
        shouldStop: @escaping @Sendable () -> Bool = { false }
    ) throws(RemoteConnectFailure) -> RemoteEngine {
        let (connection, welcome) = try RemoteConnection.open(socket, client: clientName)
        return RemoteEngine(socketPath: socket, welcome: welcome, idle: connection, onNote: onNote, shouldStop: shouldStop)
    }

    /// `connect` on a thread of its own, for an async caller.
    static func connectAsync(
        to socket: FilePath, onNote: (@Sendable (String) -> Void)?
    ) async throws(SluiceError) -> RemoteEngine {
        let outcome: Result<RemoteEngine, SluiceError> = await withCheckedContinuation { c in
            do throws(ThreadStartFailure) {
                try PosixThread.detach(name: "sluice connect") {
                    do throws(RemoteConnectFailure) {
                        c.resume(returning: .success(try connect(to: socket, onNote: onNote)))
                    } catch {
                        c.resume(returning: .failure(error.sluiceError))
                    }
                }
            } catch {
                c.resume(returning: .failure(SluiceError(code: .serverUnavailable, message: error.message)))
            }
        }
        return try outcome.get()
    }

    /// Where a server listens by default: `$XDG_RUNTIME_DIR/sluice.sock`,
    /// else `/tmp/sluice-UID.sock` (`ServerSocketPath.current()`).
    package static var defaultSocketPath: FilePath { ServerSocketPath.current() }

    /// How this client introduces itself in `hello` (the server logs it).
    static var clientName: String { "sluice client (pid \(getpid()))" }

    /// What `Session.reasons` says of a connected session.
    var reasons: [String] {
        ["server: \(socketPath) (protocol \(welcome.protocolVersion)): \(welcome.server)"]
    }

    // MARK: Requests

    /// Scans `files` (opened here, in this order, nothing walked) on the
    /// server. `filesWithMatches` lets the server stop reading a file at its
    /// first match (`sluice scan -l`; the counts are then at least 1, not exact).
    package func scan(
        files: RemoteFiles, literals: [[UInt8]], options: ScanOptions, filesWithMatches: Bool = false
    ) -> SluiceResults<FileMatches> {
        let parameters = ScanParameters(
            literals: literals, caseInsensitive: options.caseInsensitive,
            output: options.mode == .matches ? .matches : filesWithMatches ? .filesWithMatches : .count,
            lineNumbers: options.mode == .matches && options.lineNumbers)
        return submit(.scan(parameters), assembler: RemoteScanReplies(literalCount: literals.count)) { _ in files }
    }

    /// Counts bytes and lines of `files` on the server.
    package func count(files: RemoteFiles) -> SluiceResults<FileCount> {
        submit(.count, assembler: RemoteCountReplies()) { _ in files }
    }

    /// The CRC-32C of each of `files`, computed on the server.
    package func crc32c(files: RemoteFiles) -> SluiceResults<FileHash> {
        submit(.hash, assembler: RemoteHashReplies()) { _ in files }
    }

    /// `Session.scan(_:literals:options:)`: the paths walked here first.
    func scan(_ paths: [FilePath], literals: [[UInt8]], options: ScanOptions) -> SluiceResults<FileMatches> {
        let parameters = ScanParameters(
            literals: literals, caseInsensitive: options.caseInsensitive, output: options.mode == .matches ? .matches : .count,
            lineNumbers: options.mode == .matches && options.lineNumbers)
        return submit(.scan(parameters), assembler: RemoteScanReplies(literalCount: literals.count)) { [self] channel in
            walk(paths, channel: channel, failed: RemoteScanReplies.failed)
        }
    }

    /// `Session.count(_:)`: the paths walked here first.
    func count(_ paths: [FilePath]) -> SluiceResults<FileCount> {
        submit(.count, assembler: RemoteCountReplies()) { [self] channel in
            walk(paths, channel: channel, failed: RemoteCountReplies.failed)
        }
    }

    /// `Session.crc32c(_:)`: the paths walked here first.
    func crc32c(_ paths: [FilePath]) -> SluiceResults<FileHash> {
        submit(.hash, assembler: RemoteHashReplies()) { [self] channel in
            walk(paths, channel: channel, failed: RemoteHashReplies.failed)
        }
    }

    /// Walks `paths` as a local session does (sorted by path bytes), sends
    /// each path the walk could not read into `channel`, and returns the
    /// files, opened here when their batch is sent.
    private func walk<Element: Sendable>(
        _ paths: [FilePath], channel: ResultChannel<Element>, failed: (RawPath, PipelineError) -> Element
    ) -> RemoteFiles {
        let (files, walk) = SessionRequests.walk(paths, onNote: onNote, channel: channel, failed: failed)
        var remote = RemoteFiles.opening(files)
        remote.onFinish = { walk.closeStreamCopies() }
        return remote
    }

    /// Runs a request on a thread of its own when its sequence is first
    /// read; `files` runs there first (a walk) and says what to send.
    private func submit<Assembler: RemoteAssembler>(
        _ operation: WireOperation, assembler: Assembler,
        files: @escaping @Sendable (ResultChannel<Assembler.Element>) -> RemoteFiles
    ) -> SluiceResults<Assembler.Element> {
        let channel = ResultChannel<Assembler.Element>()
        channel.setStart { [self, weak channel] in
            guard let channel else { return }
            do throws(ThreadStartFailure) {
                try PosixThread.detach(name: "sluice remote request") { [self] in
                    let chosen = files(channel)
                    defer { chosen.onFinish() }
                    guard !channel.isStopped else { return }
                    RemoteRequest.run(
                        engine: self, operation: operation, files: chosen, assembler: assembler, channel: channel)
                }
            } catch {
                channel.finish(throwing: SluiceError(code: .serverUnavailable, message: error.message))
            }
        }
        return SluiceResults(channel)
    }

    // MARK: Connections

    /// A connection for one request: the idle one while the server keeps
    /// it open, else a new one.
    func checkOut() throws(SluiceError) -> RemoteConnection {
        let (idle, closed) = state.withLock { s in
            defer { s.idle = nil }
            return (s.idle, s.closed)
        }
        if closed { throw SessionWorker.closedError }
        let connection: RemoteConnection
        if let idle, idle.isIdle {
            connection = idle
        } else {
            do throws(RemoteConnectFailure) {
                connection = try RemoteConnection.open(socketPath, client: RemoteEngine.clientName).0
            } catch {
                throw error.sluiceError
            }
        }
        let refused = state.withLock { s in
            if s.closed { return true }
            s.busy[ObjectIdentifier(connection)] = connection
            return false
        }
        if refused { throw SessionWorker.closedError }
        return connection
    }

    /// Takes a connection back after its request; one that ended cleanly
    /// is kept for the next request.
    func checkIn(_ connection: RemoteConnection, reusable: Bool) {
        state.withLock { s in
            s.busy[ObjectIdentifier(connection)] = nil
            if reusable, !s.closed, s.idle == nil { s.idle = connection }
        }
    }

    /// Whether `close` was called.
    var isClosed: Bool { state.withLock { $0.closed } }

    /// Ends every connection: running requests end with
    /// `SluiceError.Code.sessionClosed`, later ones are refused.
    func close() {
        let busy = state.withLock { s in
            s.closed = true
            s.idle = nil
            return Array(s.busy.values)
        }
        for connection in busy { connection.shutdown() }
    }
}

/// The files of a request to a server, in the order they are sent, and
/// how each is opened (here, by the client: the server reads only the
/// descriptors passed).
package struct RemoteFiles: Sendable {
    /// The names the files are reported under.
    package var paths: [RawPath]
    /// Opens file `i`; the caller closes what it returns.
    var open: @Sendable (Int) throws(PipelineError) -> FileDescriptor
    /// Runs once the request ended (closes a walk's stream copies).
    var onFinish: @Sendable () -> Void = {}

    /// `paths`, each opened as a local run opens it (`openForIngest`: a
    /// named stream's spooled copy, else the file, read-only).
    package static func opening(_ paths: [RawPath]) -> RemoteFiles {
        RemoteFiles(paths: paths, open: { i throws(PipelineError) in try openForIngest(path: paths[i], direct: false) })
    }

    /// Files opened already: their descriptors are passed on.
    static func passed(_ files: PassedFiles) -> RemoteFiles {
        RemoteFiles(paths: files.paths, open: { i throws(PipelineError) in try files.take(i) })
    }
}
