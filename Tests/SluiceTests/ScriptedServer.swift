#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing

@testable import Sluice
import SluiceSocket
import SluiceThreads
import SluiceWire

/// A stand-in for `sluice serve` in tests, until the real one is merged:
/// it accepts connections at a socket path, answers the handshake, takes
/// each request's files by descriptor only (it never opens a path) and
/// answers with what a local `Session` computes over those descriptors
/// (`Session.scan(passing:)` and friends). Test code only, kept small; a
/// test that needs a server asks `ScriptedServer.start` for a socket path,
/// so the real server can take its place.
final class ScriptedServer: Sendable {
    /// How the server misbehaves, if at all.
    enum Script: Sendable {
        /// Serves every request.
        case serve
        /// Answers the handshake as a server of this protocol version.
        case version(UInt32)
        /// Closes the connection after sending this many replies of a request.
        case dieAfterReplies(Int)
    }

    /// The socket path.
    let path: String
    private let script: Script
    private let session: Session
    private let stopping = Atomic<Bool>(false)
    private let listener: Mutex<UnixListener?>
    // Set once in `start`, joined once in `stop`, both by the test's task.
    private nonisolated(unsafe) var acceptor: PosixThread?
    /// (device, inode) of every descriptor passed to it, in arrival order.
    let received = Mutex<[(UInt64, UInt64)]>([])
    /// Requests it started.
    let requests = Atomic<Int>(0)

    private init(path: String, script: Script, session: Session, listener: consuming UnixListener) {
        self.path = path
        self.script = script
        self.session = session
        self.listener = Mutex(listener)
    }

    /// Listens at `path` (a new socket) and serves on threads of its own.
    static func start(at path: String, script: Script = .serve) async throws -> ScriptedServer {
        let session = try await Session(SessionTests.cpuConfiguration())
        let server = ScriptedServer(
            path: path, script: script, session: session, listener: try UnixListener(binding: FilePath(path)))
        let thread = try PosixThread(name: "scripted server") { server.acceptLoop() }
        server.acceptor = thread
        return server
    }

    /// Stops accepting (connections in progress finish) and removes the socket.
    func stop() async {
        stopping.store(true, ordering: .releasing)
        // Wakes the blocked accept.
        _ = try? UnixSocket.connect(to: FilePath(path))
        acceptor?.join()
        listener.withLock { $0 = nil }
        await session.close()
    }

    private func acceptLoop() {
        while !stopping.load(ordering: .acquiring) {
            guard let socket = try? listener.withLock({ l throws(SocketError) -> UnixSocket? in try l?.accept() }) else { return }
            if stopping.load(ordering: .acquiring) { return }
            let connection = ScriptedConnection(socket: socket, server: self)
            _ = try? PosixThread.detach(name: "scripted connection") { connection.serve() }
        }
    }

    /// One connection: its socket, decoder, and the descriptors received but not yet given to a batch.
    final class ScriptedConnection: @unchecked Sendable {
        // @unchecked: used by its one thread only.
        let socket: UnixSocket
        let server: ScriptedServer
        var decoder = WireFrameDecoder()
        var descriptors: [FileDescriptor] = []
        var replies = 0

        init(socket: consuming UnixSocket, server: ScriptedServer) {
            self.socket = socket
            self.server = server
        }

        /// Serves until the client goes or the script says to die.
        func serve() {
            defer { for fd in descriptors { close(fd.rawValue) } }
            var request: WireRequest?
            var files: [(RawPath, FileDescriptor)] = []
            while let message = next() {
                switch message {
                case .hello(let hello):
                    var version = WireProtocol.version
                    if case .version(let v) = server.script { version = v }
                    let answer = WireHandshake.answer(hello, server: "scripted test server", serverVersion: version)
                    guard send(answer), case .welcome = answer else { return }
                case .request(let r):
                    request = r
                    files = []
                    if r.fileCount == 0, !run(r, files: []) { return }
                case .files(let batch):
                    let taken = Array(descriptors.prefix(Int(batch.descriptorCount)))
                    descriptors.removeFirst(taken.count)
                    for (i, fd) in taken.enumerated() where !batch.files.contains(where: { $0.descriptor == UInt32(i) }) {
                        close(fd.rawValue)
                    }
                    for file in batch.files { files.append((file.path, taken[Int(file.descriptor)])) }
                    if let r = request, files.count == Int(r.fileCount) {
                        guard run(r, files: files) else { return }
                        request = nil
                    }
                case .cancel:
                    continue
                default:
                    return
                }
            }
        }

        /// The next message; nil at the end of the stream or on any error.
        func next() -> WireMessage? {
            while true {
                if let message = try? decoder.next() { return message }
                guard let receipt = try? socket.receive(), !receipt.isEndOfStream else { return nil }
                for i in 0..<receipt.descriptors.count {
                    if let fd = receipt.descriptors.take(i)?.release() {
                        var st = stat()
                        if fstat(fd.rawValue, &st) == 0 {
                            server.received.withLock { $0.append((UInt64(st.st_dev), UInt64(st.st_ino))) }
                        }
                        descriptors.append(fd)
                    }
                }
                decoder.append(receipt.bytes)
            }
        }

        /// Sends one reply; false once the script says to die (or the send failed).
        func send(_ message: WireMessage) -> Bool {
            if case .dieAfterReplies(let n) = server.script, message.request != nil, replies >= n { return false }
            replies += message.request != nil ? 1 : 0
            guard let bytes = try? WireCodec.encode(message) else { return false }
            return (try? socket.send(bytes)) != nil
        }

        /// Runs request `r` over `files` on the server's local session and sends every reply.
        func run(_ r: WireRequest, files: [(RawPath, FileDescriptor)]) -> Bool {
            server.requests.add(1, ordering: .relaxed)
            let passed: PassedFiles
            do {
                passed = try PassedFiles(paths: files.map(\.0), descriptors: files.map(\.1))
            } catch {
                return false
            }
            var done = RequestDone(request: r.id, files: UInt64(files.count), failedFiles: 0, bytes: 0, matches: 0)
            do throws(SluiceError) {
                switch r.operation {
                case .scan(let p):
                    let options = ScanOptions(
                        caseInsensitive: p.caseInsensitive, mode: p.output == .matches ? .matches : .count,
                        lineNumbers: p.lineNumbers)
                    let results = server.session.scan(passing: passed, literals: p.literals, options: options)
                    var file: UInt32 = 0
                    while let piece = try results.nextWaiting() {
                        guard sendErrors(piece.errors, request: r.id, file: file, path: files[Int(file)].0, done: &done) else { return false }
                        let matches = piece.matches.map { WireMatch(offset: $0.offset, pattern: UInt32($0.pattern), line: $0.line) }
                        done.matches += piece.count
                        let reply = MatchPiece(
                            request: r.id, file: file, isComplete: piece.isComplete, count: piece.count,
                            newlines: piece.newlines, matches: matches)
                        guard send(.matches(reply)) else { return false }
                        if piece.isComplete { file += 1 }
                    }
                case .count:
                    let results = server.session.count(passing: passed)
                    var file: UInt32 = 0
                    while let c = try results.nextWaiting() {
                        guard sendErrors(c.errors, request: r.id, file: file, path: files[Int(file)].0, done: &done),
                              send(.fileCount(FileCountReply(request: r.id, file: file, bytes: c.result.bytes, lines: c.result.newlines)))
                        else { return false }
                        done.bytes += c.result.bytes
                        file += 1
                    }
                case .hash:
                    let results = server.session.crc32c(passing: passed)
                    var file: UInt32 = 0
                    while let h = try results.nextWaiting() {
                        guard sendErrors(h.errors, request: r.id, file: file, path: files[Int(file)].0, done: &done),
                              send(.fileHash(FileHashReply(request: r.id, file: file, crc32c: h.crc32c, bytes: h.bytes)))
                        else { return false }
                        done.bytes += h.bytes
                        file += 1
                    }
                }
            } catch {
                let code = error.underlying.map { WireErrorCode($0) } ?? .sessionClosed
                return send(.requestFailed(RequestFailure(
                    request: r.id, code: code, errno: error.errno?.rawValue ?? 0, message: error.message)))
            }
            return send(.done(done))
        }

        /// One `file-error` per error, as the real server sends them.
        func sendErrors(
            _ errors: [PipelineError], request: UInt32, file: UInt32, path: RawPath, done: inout RequestDone
        ) -> Bool {
            if !errors.isEmpty { done.failedFiles += 1 }
            for e in errors {
                let s = SluiceError(e)
                let reply = FileErrorReply(
                    request: request, file: file, code: WireErrorCode(e), errno: s.errno?.rawValue ?? 0,
                    path: path, message: e.message)
                guard send(.fileError(reply)) else { return false }
            }
            return true
        }
    }
}
