#if canImport(Glibc)
import Glibc
#endif
import Logging
import Sluice
import SluiceServer
import SluiceSocket
import SluiceThreads
import SluiceWire
import Synchronization
import Testing

/// Log lines a test server wrote, kept for the test to read.
final class LogLines: Sendable {
    private let lines = Mutex<[String]>([])

    func append(_ line: String) { lines.withLock { $0.append(line) } }

    var all: [String] { lines.withLock { $0 } }

    /// A logger writing here.
    var logger: Logger {
        Logger(label: "test.serve") { _ in CapturingLogHandler(sink: self) }
    }
}

/// A swift-log handler that keeps each message in a `LogLines`.
struct CapturingLogHandler: LogHandler {
    let sink: LogLines
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    func log(event: LogEvent) { sink.append(event.message.description) }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
}

/// A `Server` on the CPU backend, in this process, its socket in a scratch
/// directory, its `run()` on a thread of its own.
final class TestServer: @unchecked Sendable {
    // @unchecked: `thread` is only joined, by the test that owns the server.
    let directory: ScratchDirectory
    let server: Server
    let log: LogLines
    private let thread: PosixThread

    var socketPath: FilePath { server.socketPath }

    private init(directory: ScratchDirectory, server: Server, log: LogLines, thread: PosixThread) {
        self.directory = directory
        self.server = server
        self.log = log
        self.thread = thread
    }

    /// Starts a server; `configure` changes its configuration first.
    static func start(_ configure: (inout Server.Configuration) -> Void = { _ in }) async throws -> TestServer {
        let directory = ScratchDirectory("sluice-serve")
        let log = LogLines()
        var c = Server.Configuration(
            socketPath: FilePath(directory.file("s.sock")), session: SessionTests.cpuConfiguration(chunkBytes: 64 << 10))
        c.pollInterval = .milliseconds(20)
        c.logger = log.logger
        configure(&c)
        let server = try await Server(c)
        let thread = try PosixThread(name: "test server") {
            do throws(ServerError) { try server.run() } catch { Issue.record("the server failed: \(error.message)") }
        }
        return TestServer(directory: directory, server: server, log: log, thread: thread)
    }

    /// Stops the server, waits for `run()` to return, closes the session and removes the directory.
    func stop() async {
        server.stop()
        thread.join()
        await server.close()
        directory.remove()
    }

    /// A client connected to it, past the handshake.
    func client() throws -> RawClient {
        let client = try RawClient(socketPath)
        let answer = try client.hello()
        guard case .welcome = answer else { throw TestFailure("no welcome: \(answer)") }
        return client
    }
}

/// A test's error with a message.
struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// What a server answered to one request.
struct Replies {
    var pieces: [MatchPiece] = []
    var counts: [FileCountReply] = []
    var hashes: [FileHashReply] = []
    var errors: [FileErrorReply] = []
    /// `done` or `request-failed`; nil when the connection ended first.
    var end: WireMessage?

    var done: RequestDone? {
        if case .done(let d)? = end { return d }
        return nil
    }

    var failure: RequestFailure? {
        if case .requestFailed(let f)? = end { return f }
        return nil
    }

    /// File `file`'s matches, its pieces joined.
    func matches(file: UInt32) -> [ScanMatch] {
        pieces.filter { $0.file == file }.flatMap(\.matches).map {
            ScanMatch(offset: $0.offset, pattern: Int($0.pattern), line: $0.line)
        }
    }

    /// File `file`'s match count, over its pieces.
    func count(file: UInt32) -> UInt64 { pieces.filter { $0.file == file }.reduce(0) { $0 + $1.count } }
}

/// A client speaking the protocol by hand, from SluiceWire and SluiceSocket:
/// what the tests use to drive a server, malformed frames included.
final class RawClient {
    let socket: UnixSocket
    private var decoder = WireFrameDecoder()

    init(_ path: FilePath) throws { socket = try UnixSocket.connect(to: path) }

    /// Sends `hello` and returns the answer.
    func hello(version: UInt32 = WireProtocol.version) throws -> WireMessage {
        try send(.hello(Hello(protocolVersion: version, client: "sluice tests")))
        guard let answer = try next() else { throw TestFailure("the server closed before answering hello") }
        return answer
    }

    /// Sends `message` with `descriptors` attached, encoded under `limits`.
    func send(_ message: WireMessage, descriptors: [FileDescriptor] = [], limits: WireLimits = WireLimits()) throws {
        try socket.send(try WireCodec.encode(message, limits: limits), descriptors: descriptors)
    }

    /// Sends bytes as they are.
    func sendRaw(_ bytes: [UInt8]) throws { try socket.send(bytes) }

    /// The next message; nil once the server closed (or reset) the connection.
    func next() throws -> WireMessage? {
        while true {
            if let message = try decoder.next() { return message }
            guard let bytes = try receiveBytes() else { return nil }
            decoder.append(bytes)
        }
    }

    /// The next bytes; nil at the end of the stream or a reset.
    private func receiveBytes() throws(SocketError) -> [UInt8]? {
        let receipt: SocketReceipt
        do throws(SocketError) {
            receipt = try socket.receive()
        } catch {
            if error.errno == .connectionReset { return nil }
            throw error
        }
        return receipt.isEndOfStream ? nil : receipt.bytes
    }

    /// Opens `paths` here and sends request `id` for them, in batches of
    /// at most `batch` files; `names` are the display paths (the paths by default).
    func submit(
        _ id: UInt32, _ operation: WireOperation, paths: [String], names: [String]? = nil, batch: Int = 253
    ) throws {
        try send(.request(WireRequest(id: id, fileCount: UInt32(paths.count), operation: operation)))
        let names = names ?? paths
        var start = 0
        while start < paths.count {
            let end = min(paths.count, start + batch)
            let fds = try paths[start..<end].map { try FileDescriptor.open(FilePath($0), .readOnly, options: .closeOnExec) }
            defer { for fd in fds { try? fd.close() } }
            let files = FileBatch(request: id, paths: names[start..<end].map { RawPath($0) })
            try send(.files(files), descriptors: fds)
            start = end
        }
    }

    /// Reads request `id`'s replies up to its `done` or `request-failed`
    /// (or the end of the connection); replies to other requests are an error.
    func replies(_ id: UInt32) throws -> Replies {
        var r = Replies()
        while let message = try next() {
            guard message.request == id else { throw TestFailure("a reply for request \(String(describing: message.request)), not \(id): \(message)") }
            switch message {
            case .matches(let piece): r.pieces.append(piece)
            case .fileCount(let c): r.counts.append(c)
            case .fileHash(let h): r.hashes.append(h)
            case .fileError(let e): r.errors.append(e)
            case .done, .requestFailed:
                r.end = message
                return r
            default: throw TestFailure("unexpected \(message)")
            }
        }
        return r
    }

    /// `submit` then `replies`.
    func run(_ id: UInt32, _ operation: WireOperation, paths: [String], names: [String]? = nil) throws -> Replies {
        try submit(id, operation, paths: paths, names: names)
        return try replies(id)
    }
}

/// How many of this process's descriptors name a file under `directory`
/// (their /proc/self/fd links): the files of one test's scratch directory,
/// which no test running beside it opens, unlike the process's total.
func openDescriptorCount(under directory: String) -> Int {
    guard let dir = opendir("/proc/self/fd") else { return -1 }
    defer { closedir(dir) }
    var n = 0
    var target = [CChar](repeating: 0, count: 4096)
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard name != "." && name != ".." else { continue }
        let length = readlink("/proc/self/fd/" + name, &target, target.count - 1)
        guard length > 0 else { continue }
        let path = String(decoding: target[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if path.hasPrefix(directory + "/") { n += 1 }
    }
    return n
}

/// Waits (a bounded number of short sleeps) until `condition` holds; returns whether it did.
func eventually(seconds: Int = 20, _ condition: () -> Bool) -> Bool {
    for _ in 0..<(seconds * 100) {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

/// The 1-based line of each byte offset in `text`.
func lineOf(_ offset: UInt64, in text: [UInt8]) -> UInt64 {
    1 + UInt64(text[..<Int(offset)].count { $0 == 0x0A })
}
