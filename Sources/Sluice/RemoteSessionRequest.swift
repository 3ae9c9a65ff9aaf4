import SluiceCore
import SluiceIngest
import SluiceOps
import SluiceThreads
import SluiceWire
import Synchronization
import SystemPackage

/// One request to `sluice serve`, run on its own thread over a connection
/// of its own: the request's header, then (from a second thread, so that
/// the server may answer while files are still being sent) its files in
/// batches with their descriptors, and the replies turned into the
/// elements a local run gives, in file order.
///
/// A file the client cannot open still needs a place in the request (its
/// header declared how many files follow, before any was opened, so that
/// at most one batch of descriptors is open here at a time): it travels as
/// a stand-in, one empty unnamed file, and the client reports the error its
/// own open gave, as a local run would, in place of the server's reply.
final class RemoteRequest<Assembler: RemoteAssembler>: Sendable {
    private let engine: RemoteEngine
    private let connection: RemoteConnection
    private let files: RemoteFiles
    private let channel: ResultChannel<Assembler.Element>
    private let id: UInt32
    /// Files the sender could not open, and why: the client's own error for them.
    private let openFailures = Mutex<[Int: PipelineError]>([:])
    /// Why the sender stopped early, if it did.
    private let senderFailure = Mutex<SluiceError?>(nil)
    /// Every batch was sent.
    private let senderDone = Atomic<Bool>(false)
    /// Tells the sender to stop between batches.
    private let stopSending = Atomic<Bool>(false)

    private init(
        engine: RemoteEngine, connection: RemoteConnection, files: RemoteFiles, channel: ResultChannel<Assembler.Element>
    ) {
        self.engine = engine
        self.connection = connection
        self.files = files
        self.channel = channel
        id = connection.requestID()
    }

    /// Runs `operation` over `files` on a connection of `engine`'s, ending `channel`.
    static func run(
        engine: RemoteEngine, operation: WireOperation, files: RemoteFiles, assembler: Assembler,
        channel: ResultChannel<Assembler.Element>
    ) {
        let limit = WireLimits().maxFilesPerRequest
        guard files.paths.count <= limit else {
            channel.finish(throwing: SluiceError(
                code: .invalidRequest,
                message: "\(files.paths.count) files in one request; a sluice server takes at most \(limit)"))
            return
        }
        let connection: RemoteConnection
        do throws(SluiceError) {
            connection = try engine.checkOut()
        } catch {
            channel.finish(throwing: error)
            return
        }
        let request = RemoteRequest(engine: engine, connection: connection, files: files, channel: channel)
        let reusable = request.run(operation, assembler: assembler)
        engine.checkIn(connection, reusable: reusable)
    }

    /// The whole exchange; true when it ended cleanly and the connection may serve another request.
    private func run(_ operation: WireOperation, assembler: Assembler) -> Bool {
        do throws(RemoteReceiveFailure) {
            try connection.send(.request(WireRequest(id: id, fileCount: UInt32(files.paths.count), operation: operation)))
        } catch {
            channel.finish(throwing: failure(error, answered: 0))
            return false
        }
        var sender: PosixThread?
        if !files.paths.isEmpty {
            do throws(ThreadStartFailure) {
                sender = try PosixThread(name: "sluice remote files") { [self] in sendBatches() }
            } catch {
                connection.shutdown()
                channel.finish(throwing: SluiceError(code: .serverUnavailable, message: error.message))
                return false
            }
        }
        let clean = receiveReplies(assembler: assembler)
        if !clean {
            stopSending.store(true, ordering: .releasing)
            connection.shutdown()
        }
        sender?.join()
        return clean
    }

    // MARK: Replies

    /// Reads replies until the request ends, handing out elements; true
    /// when it ended with `done` or `request-failed` after every batch was sent.
    private func receiveReplies(assembler: Assembler) -> Bool {
        var next = 0
        var errors: [PipelineError] = []
        while true {
            let received: WireMessage?
            do throws(RemoteReceiveFailure) {
                received = try connection.receive(stop: { [self] in
                    channel.isStopped || engine.shouldStop() || senderFailure.withLock { $0 != nil }
                })
            } catch {
                channel.finish(throwing: failure(error, answered: next))
                return false
            }
            guard let message = received else { return stop(answered: next) }
            guard message.request == id else {
                return violation("a \(message.type) message for request \(message.request ?? 0) while request \(id) is open")
            }
            switch message {
            case .fileError(let e):
                guard Int(e.file) == next, next < files.paths.count else {
                    return violation("a file-error for file \(e.file) while file \(next) is answered")
                }
                errors.append(RemoteErrors.fileError(e))
            case .done:
                guard next == files.paths.count else {
                    return violation("done after \(next) of \(files.paths.count) files were answered")
                }
                channel.finish()
                return senderDone.load(ordering: .acquiring)
            case .requestFailed(let f):
                channel.finish(throwing: RemoteErrors.requestFailed(f))
                return senderDone.load(ordering: .acquiring)
            default:
                guard let file = RemoteRequest.file(of: message) else {
                    return violation("a \(message.type) message in the middle of a request")
                }
                guard file == next, next < files.paths.count else {
                    return violation("a reply for file \(file) while file \(next) is answered")
                }
                let path = files.paths[next]
                let reply: (element: Assembler.Element, completes: Bool)
                do throws(RemoteViolation) {
                    guard let made = try assembler.reply(message, path: path, errors: errors) else {
                        return violation("a \(message.type) reply to this kind of request")
                    }
                    reply = made
                } catch {
                    return violation(error.detail)
                }
                if reply.completes {
                    errors = []
                    next += 1
                }
                // A stand-in's replies give way to the client's own error, on the file's last reply.
                let ownError = openFailures.withLock { $0[file] }
                let element = ownError.map { Assembler.failed(path, $0) } ?? reply.element
                if ownError == nil || reply.completes, !channel.send(element) { return stop(answered: next) }
            }
        }
    }

    /// The file a per-file reply is about.
    private static func file(of message: WireMessage) -> Int? {
        switch message {
        case .matches(let m): return Int(m.file)
        case .fileCount(let c): return Int(c.file)
        case .fileHash(let h): return Int(h.file)
        default: return nil
        }
    }

    /// The request stopped before its end: its consumer went, the session
    /// closed, Ctrl-C (`engine.shouldStop`), or the sender failed.
    private func stop(answered: Int) -> Bool {
        stopSending.store(true, ordering: .releasing)
        if let failed = senderFailure.withLock({ $0 }) {
            connection.shutdown()
            channel.finish(throwing: failed.code == .serverLost
                ? RemoteErrors.lost(connection.path, answered: answered, of: files.paths.count, errno: failed.errno)
                : failed)
            return false
        }
        // A cancel queued behind batches still unsent could wait for
        // ever; the end of the connection cancels the request as well.
        if senderDone.load(ordering: .acquiring) { try? connection.send(.cancel(request: id)) }
        connection.shutdown()
        if engine.isClosed {
            channel.finish(throwing: SessionWorker.closedError)
        } else if engine.shouldStop() {
            channel.finish(throwing: SluiceError(.interrupted(
                finishedChunks: answered, pendingChunks: files.paths.count - answered)))
        } else {
            channel.finish()
        }
        return false
    }

    /// Ends the request for a reply that breaks the protocol.
    private func violation(_ detail: String) -> Bool {
        channel.finish(throwing: RemoteErrors.violation(connection.path, detail))
        return false
    }

    /// The error for a failed send or receive.
    private func failure(_ failure: RemoteReceiveFailure, answered: Int) -> SluiceError {
        if let failed = senderFailure.withLock({ $0 }), failed.code != .serverLost { return failed }
        if engine.isClosed { return SessionWorker.closedError }
        switch failure {
        case .endOfStream, .socket:
            return RemoteErrors.lost(connection.path, answered: answered, of: files.paths.count, errno: failure.errno)
        case .decoder(let error):
            if case .endOfStreamInFrame = error {
                return RemoteErrors.lost(connection.path, answered: answered, of: files.paths.count)
            }
            return RemoteErrors.violation(connection.path, error.message)
        case .refusedByEncoder(let error):
            return SluiceError(code: .invalidRequest, message: "the request cannot be sent to a sluice server: \(error.message)")
        }
    }

    // MARK: Files

    /// The sender thread: opens each batch's files, passes them, closes them here.
    private func sendBatches() {
        let batches = connection.limits.fileBatches(pathLengths: files.paths.map(\.bytes.count))
        var standIn: FileDescriptor?
        defer { try? standIn?.close() }
        for range in batches {
            if stopSending.load(ordering: .acquiring) { return }
            var descriptors: [FileDescriptor] = []
            var opened: [FileDescriptor] = []
            defer { for fd in opened { try? fd.close() } }
            for i in range {
                do throws(PipelineError) {
                    let fd = try files.open(i)
                    opened.append(fd)
                    descriptors.append(fd)
                } catch {
                    openFailures.withLock { $0[i] = error }
                    do throws(PipelineError) {
                        if standIn == nil { standIn = try StreamSpool.temporaryFile(for: files.paths[i].description) }
                    } catch {
                        senderFailure.withLock { $0 = SluiceError(error) }
                        return
                    }
                    descriptors.append(standIn!)
                }
            }
            do throws(RemoteReceiveFailure) {
                try connection.send(.files(FileBatch(request: id, paths: Array(files.paths[range]))), descriptors: descriptors)
            } catch {
                let reported = failure(error, answered: 0)
                senderFailure.withLock { $0 = reported }
                return
            }
        }
        senderDone.store(true, ordering: .releasing)
    }
}

/// A reply that breaks the protocol, in words.
struct RemoteViolation: Error {
    /// What is wrong with it.
    var detail: String
}

/// Turns one kind of request's per-file replies into the elements a local
/// session gives for them.
protocol RemoteAssembler: Sendable {
    /// What the request's sequence gives.
    associatedtype Element: Sendable
    /// The element of a file that failed here (the walk, or its open), as a local run gives it.
    static func failed(_ path: RawPath, _ error: PipelineError) -> Element
    /// The element of a per-file reply for `path`; `errors` came before it
    /// (for the file's last reply). Nil: not a reply this request gets.
    func reply(_ message: WireMessage, path: RawPath, errors: [PipelineError]) throws(RemoteViolation)
        -> (element: Element, completes: Bool)?
}

/// A scan's `matches` pieces as `FileMatches`.
struct RemoteScanReplies: RemoteAssembler {
    /// Literals in the request: every match's pattern must index one.
    let literalCount: Int

    static func failed(_ path: RawPath, _ error: PipelineError) -> FileMatches {
        FileMatches(path: path, matches: [], count: 0, errors: [error])
    }

    func reply(_ message: WireMessage, path: RawPath, errors: [PipelineError]) throws(RemoteViolation)
        -> (element: FileMatches, completes: Bool)? {
        guard case .matches(let piece) = message else { return nil }
        var matches: [ScanMatch] = []
        matches.reserveCapacity(piece.matches.count)
        for m in piece.matches {
            guard Int(m.pattern) < literalCount else {
                throw RemoteViolation(detail: "a match of pattern \(m.pattern) in a scan of \(literalCount) literals")
            }
            matches.append(ScanMatch(offset: m.offset, pattern: Int(m.pattern), line: m.line))
        }
        guard piece.count >= UInt64(matches.count) else {
            throw RemoteViolation(detail: "a piece of \(matches.count) matches that counts \(piece.count)")
        }
        let element = FileMatches(
            path: path, matches: matches, count: piece.count, errors: piece.isComplete ? errors : [],
            isComplete: piece.isComplete, newlines: piece.newlines)
        return (element, piece.isComplete)
    }
}

/// A count's `file-count` replies as `FileCount` (bytes and lines; the
/// byte histogram does not travel, so it is all zeros).
struct RemoteCountReplies: RemoteAssembler {
    static func failed(_ path: RawPath, _ error: PipelineError) -> FileCount {
        FileCount(path: path, result: CountResult(), errors: [error])
    }

    func reply(_ message: WireMessage, path: RawPath, errors: [PipelineError]) throws(RemoteViolation)
        -> (element: FileCount, completes: Bool)? {
        guard case .fileCount(let c) = message else { return nil }
        return (FileCount(path: path, result: CountResult(bytes: c.bytes, newlines: c.lines), errors: errors), true)
    }
}

/// A hash's `file-hash` replies as `FileHash`.
struct RemoteHashReplies: RemoteAssembler {
    static func failed(_ path: RawPath, _ error: PipelineError) -> FileHash {
        FileHash(path: path, crc32c: 0, bytes: 0, errors: [error])
    }

    func reply(_ message: WireMessage, path: RawPath, errors: [PipelineError]) throws(RemoteViolation)
        -> (element: FileHash, completes: Bool)? {
        guard case .fileHash(let h) = message else { return nil }
        return (FileHash(path: path, crc32c: h.crc32c, bytes: h.bytes, errors: errors), true)
    }
}
