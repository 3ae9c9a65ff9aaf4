/// The version handshake: the client's `hello`, the server's `welcome` or
/// `refused`. The `hello` and `refused` layouts never change, so peers of
/// different versions still read each other's and can name both versions.
public enum WireHandshake {
    /// The server's first check: the connection's first message must be `hello`.
    public static func expectHello(_ message: WireMessage) throws(WireError) -> Hello {
        guard case .hello(let hello) = message else { throw .unexpectedMessage(message.type, expected: "hello") }
        return hello
    }

    /// The server's answer to `hello`: `welcome` when the versions agree,
    /// else `refused` with `versionMismatch` naming both.
    public static func answer(
        _ hello: Hello, server: String, serverVersion: UInt32 = WireProtocol.version
    ) -> WireMessage {
        guard hello.protocolVersion == serverVersion else {
            let mismatch = WireError.versionMismatch(client: hello.protocolVersion, server: serverVersion)
            return .refused(Refusal(reason: .versionMismatch, serverProtocolVersion: serverVersion, message: mismatch.message))
        }
        return .welcome(Welcome(protocolVersion: serverVersion, server: server))
    }

    /// The client's check of the server's answer: the welcome, or
    /// `versionMismatch` (both versions), `refused` for another refusal, or
    /// `unexpectedMessage`.
    public static func check(_ answer: WireMessage, clientVersion: UInt32 = WireProtocol.version) throws(WireError) -> Welcome {
        switch answer {
        case .welcome(let welcome):
            guard welcome.protocolVersion == clientVersion else {
                throw .versionMismatch(client: clientVersion, server: welcome.protocolVersion)
            }
            return welcome
        case .refused(let refusal) where refusal.reason == .versionMismatch:
            throw .versionMismatch(client: clientVersion, server: refusal.serverProtocolVersion)
        case .refused(let refusal):
            throw .refused(refusal)
        default:
            throw .unexpectedMessage(answer.type, expected: "welcome or refused")
        }
    }
}

/// The server's bookkeeping of a connection's open requests: a request
/// opens with its header, its `files` batches add up to the file count it
/// declared, and nothing else is accepted. Pure: descriptors stay with the
/// caller, who takes `batch.descriptorCount` of them per batch.
public struct WireRequestAssembly: Sendable {
    /// Where a request stands after a message.
    public struct Progress: Hashable, Sendable {
        /// The request.
        public var request: UInt32
        /// The position in the request of the batch's first file (0 for a header).
        public var firstFile: Int
        /// Whether every file the request declared has now arrived.
        public var isComplete: Bool

        /// Progress with each field given.
        public init(request: UInt32, firstFile: Int, isComplete: Bool) {
            self.request = request
            self.firstFile = firstFile
            self.isComplete = isComplete
        }
    }

    /// The limits (`maxFilesPerRequest`).
    public let limits: WireLimits
    /// The most requests a connection may have open at once.
    public let maxOpenRequests: Int
    /// Per open request: files declared and files received.
    private var open: [UInt32: (declared: Int, received: Int)] = [:]

    /// Bookkeeping for a new connection.
    public init(limits: WireLimits = WireLimits(), maxOpenRequests: Int = 64) {
        self.limits = limits
        self.maxOpenRequests = maxOpenRequests
    }

    /// Requests opened and not yet finished.
    public var openRequests: Int { open.count }

    /// Opens `request`; refuses an identifier in use, a file count over the
    /// limit and one request too many.
    public mutating func open(_ request: WireRequest) throws(WireError) -> Progress {
        guard open[request.id] == nil else { throw .requestSequence(request: request.id, detail: "the identifier is already in use") }
        guard Int(request.fileCount) <= limits.maxFilesPerRequest else {
            throw .limitExceeded(.filesPerRequest, value: Int(request.fileCount), maximum: limits.maxFilesPerRequest)
        }
        guard open.count < maxOpenRequests else {
            throw .requestSequence(request: request.id, detail: "\(open.count) requests are already open (at most \(maxOpenRequests))")
        }
        open[request.id] = (Int(request.fileCount), 0)
        return Progress(request: request.id, firstFile: 0, isComplete: request.fileCount == 0)
    }

    /// Adds a batch to its open request; refuses one for a request not open
    /// and one that would exceed the files it declared.
    public mutating func add(_ batch: FileBatch) throws(WireError) -> Progress {
        guard let state = open[batch.request] else {
            throw .requestSequence(request: batch.request, detail: "files for a request that is not open")
        }
        let received = state.received + batch.files.count
        guard received <= state.declared else {
            throw .requestSequence(
                request: batch.request, detail: "\(received) files sent but the request declared \(state.declared)")
        }
        open[batch.request] = (state.declared, received)
        return Progress(request: batch.request, firstFile: state.received, isComplete: received == state.declared)
    }

    /// Forgets a request once its `done` or `requestFailed` was sent; its identifier may be used again.
    public mutating func finish(_ request: UInt32) {
        open[request] = nil
    }
}
