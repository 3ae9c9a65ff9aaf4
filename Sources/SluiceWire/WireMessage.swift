import SluiceCore

/// The version of the protocol this build speaks (`hello` and `welcome` carry it).
public enum WireProtocol {
    /// Raised whenever a message's layout or meaning changes.
    public static let version: UInt32 = 1
}

/// The type field of a frame header. Client-to-server types are below
/// 0x0100, server-to-client types from 0x0100 on.
public enum WireMessageType: UInt16, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// `WireMessage.hello`.
    case hello = 0x0001
    /// `WireMessage.request` of a scan.
    case scan = 0x0002
    /// `WireMessage.request` of a count.
    case count = 0x0003
    /// `WireMessage.request` of a hash.
    case hash = 0x0004
    /// `WireMessage.files`.
    case files = 0x0005
    /// `WireMessage.cancel`.
    case cancel = 0x0006
    /// `WireMessage.welcome`.
    case welcome = 0x0101
    /// `WireMessage.refused`.
    case refused = 0x0102
    /// `WireMessage.matches`.
    case matches = 0x0103
    /// `WireMessage.fileCount`.
    case fileCount = 0x0104
    /// `WireMessage.fileHash`.
    case fileHash = 0x0105
    /// `WireMessage.fileError`.
    case fileError = 0x0106
    /// `WireMessage.done`.
    case done = 0x0107
    /// `WireMessage.requestFailed`.
    case requestFailed = 0x0108

    /// Whether a client sends this type (else a server does).
    public var isFromClient: Bool { rawValue < 0x0100 }

    /// The type's name, as messages show it.
    public var description: String {
        switch self {
        case .hello: return "hello"
        case .scan: return "scan"
        case .count: return "count"
        case .hash: return "hash"
        case .files: return "files"
        case .cancel: return "cancel"
        case .welcome: return "welcome"
        case .refused: return "refused"
        case .matches: return "matches"
        case .fileCount: return "file-count"
        case .fileHash: return "file-hash"
        case .fileError: return "file-error"
        case .done: return "done"
        case .requestFailed: return "request-failed"
        }
    }
}

/// One message between a client and `sluice serve`.
///
/// A connection starts with `hello` and its answer (`welcome` or `refused`).
/// A request is then `request` (declaring how many files it names) followed
/// by `files` batches until that many files were sent; the server answers
/// with per-file replies in file order and ends the request with `done` or
/// `requestFailed`. `cancel` asks the server to stop a request in flight,
/// which still ends with one of those two. docs/serve-protocol.md has the bytes.
public enum WireMessage: Hashable, Sendable {
    /// Client → server, first: the client's protocol version and build.
    case hello(Hello)
    /// Client → server: opens a request (scan, count or hash).
    case request(WireRequest)
    /// Client → server: files of an open request, their descriptors attached.
    case files(FileBatch)
    /// Client → server: stop the request with this identifier.
    case cancel(request: UInt32)
    /// Server → client: the handshake succeeded.
    case welcome(Welcome)
    /// Server → client: the handshake failed; the server closes the connection.
    case refused(Refusal)
    /// Server → client: a piece of one file's scan result.
    case matches(MatchPiece)
    /// Server → client: one file's bytes and lines.
    case fileCount(FileCountReply)
    /// Server → client: one file's CRC-32C.
    case fileHash(FileHashReply)
    /// Server → client: one file could not be processed (entirely or in part).
    case fileError(FileErrorReply)
    /// Server → client: the request ended; every file's replies were sent.
    case done(RequestDone)
    /// Server → client: the request failed as a whole.
    case requestFailed(RequestFailure)

    /// The frame type this message travels as.
    public var type: WireMessageType {
        switch self {
        case .hello: return .hello
        case .request(let r):
            switch r.operation {
            case .scan: return .scan
            case .count: return .count
            case .hash: return .hash
            }
        case .files: return .files
        case .cancel: return .cancel
        case .welcome: return .welcome
        case .refused: return .refused
        case .matches: return .matches
        case .fileCount: return .fileCount
        case .fileHash: return .fileHash
        case .fileError: return .fileError
        case .done: return .done
        case .requestFailed: return .requestFailed
        }
    }

    /// The request a message belongs to (nil for the handshake).
    public var request: UInt32? {
        switch self {
        case .hello, .welcome, .refused: return nil
        case .request(let r): return r.id
        case .files(let b): return b.request
        case .cancel(let id): return id
        case .matches(let m): return m.request
        case .fileCount(let c): return c.request
        case .fileHash(let h): return h.request
        case .fileError(let e): return e.request
        case .done(let d): return d.request
        case .requestFailed(let f): return f.request
        }
    }
}

/// `hello`: what the client speaks.
public struct Hello: Hashable, Sendable {
    /// The client's `WireProtocol.version`.
    public var protocolVersion: UInt32
    /// The client's build, for the server's log ("sluice 0.9 (pid 1234)").
    public var client: String

    /// A hello with each field given.
    public init(protocolVersion: UInt32 = WireProtocol.version, client: String) {
        self.protocolVersion = protocolVersion
        self.client = client
    }
}

/// `welcome`: the server accepted the connection.
public struct Welcome: Hashable, Sendable {
    /// The server's `WireProtocol.version` (equal to the client's).
    public var protocolVersion: UInt32
    /// What the server runs ("sluice 0.9, CUDA backend on 1 device"), for `--verbose` and `doctor`.
    public var server: String

    /// A welcome with each field given.
    public init(protocolVersion: UInt32 = WireProtocol.version, server: String) {
        self.protocolVersion = protocolVersion
        self.server = server
    }
}

/// `refused`: why the server will not serve this connection.
public struct Refusal: Hashable, Sendable {
    /// The reason, for a caller to switch on.
    public enum Reason: UInt16, Hashable, Sendable, CaseIterable {
        /// The versions differ (`WireError.versionMismatch` on the client).
        case versionMismatch = 1
        /// The peer's uid is not one the server serves.
        case uidNotAllowed = 2
        /// The server is shutting down.
        case shuttingDown = 3
        /// The server has as many connections as it takes.
        case busy = 4
    }

    /// Why.
    public var reason: Reason
    /// The server's `WireProtocol.version`, so a client can name both versions.
    public var serverProtocolVersion: UInt32
    /// The server's words, for the user.
    public var message: String

    /// A refusal with each field given.
    public init(reason: Reason, serverProtocolVersion: UInt32 = WireProtocol.version, message: String) {
        self.reason = reason
        self.serverProtocolVersion = serverProtocolVersion
        self.message = message
    }
}

/// What a scan reports per file, as `sluice scan` asks for it.
public enum ScanOutputMode: UInt8, Hashable, Sendable, CaseIterable {
    /// Every match (`PATH:OFFSET:LITERAL`, `--json`).
    case matches = 0
    /// How many matches each file has (`--count`).
    case count = 1
    /// Whether each file has a match (`--files-with-matches`): the server may
    /// stop reading a file at its first match.
    case filesWithMatches = 2
}

/// The options of `sluice scan` that change its results.
/// (`-Z`, `--json` and the like only change how the client prints them;
/// `--json` asks for line numbers.)
public struct ScanParameters: Hashable, Sendable {
    /// The literals, as bytes (any byte value), numbered by position.
    public var literals: [[UInt8]]
    /// ASCII case-insensitive matching (`-i`).
    public var caseInsensitive: Bool
    /// What to report per file.
    public var output: ScanOutputMode
    /// Each match's 1-based line (`-n`, `--json`).
    public var lineNumbers: Bool

    /// Parameters with each field given.
    public init(literals: [[UInt8]], caseInsensitive: Bool = false, output: ScanOutputMode = .matches, lineNumbers: Bool = false) {
        self.literals = literals
        self.caseInsensitive = caseInsensitive
        self.output = output
        self.lineNumbers = lineNumbers
    }
}

/// What a request asks the server to do.
public enum WireOperation: Hashable, Sendable {
    /// `sluice scan`.
    case scan(ScanParameters)
    /// `sluice count`: bytes and lines.
    case count
    /// `sluice hash`: CRC-32C.
    case hash
}

/// A request's opening message (`scan`, `count` or `hash`).
public struct WireRequest: Hashable, Sendable {
    /// The client's identifier for the request, unique on its connection;
    /// every reply and `cancel` names it.
    public var id: UInt32
    /// How many files the `files` batches that follow name in all.
    public var fileCount: UInt32
    /// What to do with them.
    public var operation: WireOperation

    /// A request with each field given.
    public init(id: UInt32, fileCount: UInt32, operation: WireOperation) {
        self.id = id
        self.fileCount = fileCount
        self.operation = operation
    }
}

/// One file a client opened itself and passes to the server.
public struct WireFile: Hashable, Sendable {
    /// The path as the client prints it: raw bytes, any but NUL (not
    /// necessarily UTF-8). The server never opens it; it only names the file.
    public var path: RawPath
    /// Which of the descriptors passed with this message reads the file (0-based).
    public var descriptor: UInt32

    /// A file entry with each field given.
    public init(path: RawPath, descriptor: UInt32) {
        self.path = path
        self.descriptor = descriptor
    }
}

/// `files`: the next files of an open request. Its descriptors travel with
/// the frame (SCM_RIGHTS); `descriptorCount` says how many, so the receiver
/// can take them from the descriptors the socket delivered, in order.
public struct FileBatch: Hashable, Sendable {
    /// The request these files belong to.
    public var request: UInt32
    /// Descriptors attached to this frame.
    public var descriptorCount: UInt32
    /// The files, continuing the request's file order (replies number files
    /// from 0 over all batches).
    public var files: [WireFile]

    /// A batch with each field given.
    public init(request: UInt32, descriptorCount: UInt32, files: [WireFile]) {
        self.request = request
        self.descriptorCount = descriptorCount
        self.files = files
    }

    /// A batch whose file `i` reads descriptor `i`.
    public init(request: UInt32, paths: [RawPath]) {
        self.init(
            request: request, descriptorCount: UInt32(paths.count),
            files: paths.enumerated().map { WireFile(path: $0.element, descriptor: UInt32($0.offset)) })
    }

    /// Payload bytes before the entries.
    static let fixedBytes = 12
    /// Payload bytes of an entry besides its path.
    static let bytesPerEntry = 8
}

/// One match in a `matches` reply.
public struct WireMatch: Hashable, Sendable {
    /// Byte offset of the match in the file.
    public var offset: UInt64
    /// Index of the literal in the request's list.
    public var pattern: UInt32
    /// The 1-based line of the match, or nil when not counted (sent as 0).
    public var line: UInt64?

    /// A match with each field given; a `line` of 0 is taken as nil (lines are 1-based).
    public init(offset: UInt64, pattern: UInt32, line: UInt64? = nil) {
        self.offset = offset
        self.pattern = pattern
        self.line = line == 0 ? nil : line
    }
}

/// `matches`: a piece of one file's scan result. A file's pieces come
/// consecutively in offset order; the last has `isComplete` set.
public struct MatchPiece: Hashable, Sendable {
    /// The request.
    public var request: UInt32
    /// The file's position in the request (0-based, over all batches).
    public var file: UInt32
    /// Whether this is the file's last piece.
    public var isComplete: Bool
    /// The matches this piece stands for (at least `matches.count`; in the
    /// count modes the matches are not listed).
    public var count: UInt64
    /// On a complete piece of a scan with line numbers: the file's newlines, when known.
    public var newlines: UInt64?
    /// The matches, in offset then pattern order.
    public var matches: [WireMatch]

    /// A piece with each field given.
    public init(
        request: UInt32, file: UInt32, isComplete: Bool, count: UInt64, newlines: UInt64? = nil, matches: [WireMatch]
    ) {
        self.request = request
        self.file = file
        self.isComplete = isComplete
        self.count = count
        self.newlines = newlines
        self.matches = matches
    }

    /// Payload bytes before the matches.
    static let fixedBytes = 32
    /// Payload bytes per match.
    static let bytesPerMatch = 20
}

/// `file-count`: one file's bytes and lines.
public struct FileCountReply: Hashable, Sendable {
    /// The request.
    public var request: UInt32
    /// The file's position in the request.
    public var file: UInt32
    /// Bytes counted.
    public var bytes: UInt64
    /// Newlines counted.
    public var lines: UInt64

    /// A reply with each field given.
    public init(request: UInt32, file: UInt32, bytes: UInt64, lines: UInt64) {
        self.request = request
        self.file = file
        self.bytes = bytes
        self.lines = lines
    }
}

/// `file-hash`: one file's CRC-32C.
public struct FileHashReply: Hashable, Sendable {
    /// The request.
    public var request: UInt32
    /// The file's position in the request.
    public var file: UInt32
    /// The finished CRC-32C (Castagnoli) of the whole file.
    public var crc32c: UInt32
    /// Bytes checksummed.
    public var bytes: UInt64

    /// A reply with each field given.
    public init(request: UInt32, file: UInt32, crc32c: UInt32, bytes: UInt64) {
        self.request = request
        self.file = file
        self.crc32c = crc32c
        self.bytes = bytes
    }
}

/// What kind of failure a `file-error` or `request-failed` reports: one case
/// per `SluiceError.Code`, with the same name (`name`), so a client maps it
/// back without this module depending on the library.
public enum WireErrorCode: UInt16, Hashable, Sendable, CaseIterable {
    /// `SluiceError.Code.invalidConfiguration`.
    case invalidConfiguration = 1
    /// `SluiceError.Code.invalidRequest`.
    case invalidRequest = 2
    /// `SluiceError.Code.malformed`.
    case malformed = 3
    /// `SluiceError.Code.illegalTransition`.
    case illegalTransition = 4
    /// `SluiceError.Code.io`.
    case io = 5
    /// `SluiceError.Code.slotFaulted`.
    case slotFaulted = 6
    /// `SluiceError.Code.backendUnavailable`.
    case backendUnavailable = 7
    /// `SluiceError.Code.gpu`.
    case gpu = 8
    /// `SluiceError.Code.stuck`.
    case stuck = 9
    /// `SluiceError.Code.readsStuck`.
    case readsStuck = 10
    /// `SluiceError.Code.fileChanged`.
    case fileChanged = 11
    /// `SluiceError.Code.unaccounted`.
    case unaccounted = 12
    /// `SluiceError.Code.interrupted`.
    case interrupted = 13
    /// `SluiceError.Code.cancelled`.
    case cancelled = 14
    /// `SluiceError.Code.contextLost`.
    case contextLost = 15
    /// `SluiceError.Code.recoveryFailed`.
    case recoveryFailed = 16
    /// `SluiceError.Code.insufficientMemory`.
    case insufficientMemory = 17
    /// `SluiceError.Code.sessionClosed`.
    case sessionClosed = 18
    /// `SluiceError.Code.serverUnavailable` (a client's own error; a server does not send it).
    case serverUnavailable = 19
    /// `SluiceError.Code.serverLost` (a client's own error; a server does not send it).
    case serverLost = 20
    /// `SluiceError.Code.operationDidNotCompile` (a session's own error; a server runs no user operations).
    case operationDidNotCompile = 21

    /// The name of the `SluiceError.Code` case this stands for (its raw value).
    public var name: String {
        switch self {
        case .invalidConfiguration: return "invalidConfiguration"
        case .invalidRequest: return "invalidRequest"
        case .malformed: return "malformed"
        case .illegalTransition: return "illegalTransition"
        case .io: return "io"
        case .slotFaulted: return "slotFaulted"
        case .backendUnavailable: return "backendUnavailable"
        case .gpu: return "gpu"
        case .stuck: return "stuck"
        case .readsStuck: return "readsStuck"
        case .fileChanged: return "fileChanged"
        case .unaccounted: return "unaccounted"
        case .interrupted: return "interrupted"
        case .cancelled: return "cancelled"
        case .contextLost: return "contextLost"
        case .recoveryFailed: return "recoveryFailed"
        case .insufficientMemory: return "insufficientMemory"
        case .sessionClosed: return "sessionClosed"
        case .serverUnavailable: return "serverUnavailable"
        case .serverLost: return "serverLost"
        case .operationDidNotCompile: return "operationDidNotCompile"
        }
    }

    /// The code of a pipeline error (the server's side of the mapping).
    public init(_ error: PipelineError) {
        switch error {
        case .invalidConfiguration: self = .invalidConfiguration
        case .malformed: self = .malformed
        case .illegalTransition: self = .illegalTransition
        case .invalidRequest: self = .invalidRequest
        case .io: self = .io
        case .slotFaulted: self = .slotFaulted
        case .backendUnavailable: self = .backendUnavailable
        case .gpu: self = .gpu
        case .stuck: self = .stuck
        case .readsStuck: self = .readsStuck
        case .fileChanged: self = .fileChanged
        case .unaccounted: self = .unaccounted
        case .interrupted: self = .interrupted
        case .contextLost: self = .contextLost
        case .recoveryFailed: self = .recoveryFailed
        case .insufficientMemory: self = .insufficientMemory
        case .cancelled: self = .cancelled
        case .operationDidNotCompile: self = .operationDidNotCompile
        }
    }
}

/// `file-error`: one file could not be processed, entirely or in part.
public struct FileErrorReply: Hashable, Sendable {
    /// The request.
    public var request: UInt32
    /// The file's position in the request.
    public var file: UInt32
    /// What kind of failure.
    public var code: WireErrorCode
    /// The system error behind an `.io` failure, 0 when none.
    public var errno: Int32
    /// The file's display path (raw bytes, no NUL).
    public var path: RawPath
    /// The error in one line, as the client prints it after `sluice: `.
    public var message: String

    /// A reply with each field given.
    public init(request: UInt32, file: UInt32, code: WireErrorCode, errno: Int32 = 0, path: RawPath, message: String) {
        self.request = request
        self.file = file
        self.code = code
        self.errno = errno
        self.path = path
        self.message = message
    }
}

/// `done`: the request ended; what it did, for the client's exit status and the server's log.
public struct RequestDone: Hashable, Sendable {
    /// The request.
    public var request: UInt32
    /// Files processed (with or without errors).
    public var files: UInt64
    /// Files with at least one `file-error`.
    public var failedFiles: UInt64
    /// Bytes read.
    public var bytes: UInt64
    /// Matches found (scans; 0 otherwise).
    public var matches: UInt64

    /// A summary with each field given.
    public init(request: UInt32, files: UInt64, failedFiles: UInt64, bytes: UInt64, matches: UInt64) {
        self.request = request
        self.files = files
        self.failedFiles = failedFiles
        self.bytes = bytes
        self.matches = matches
    }
}

/// `request-failed`: the request failed as a whole (an invalid literal set,
/// a backend that died, a limit); no `done` follows.
public struct RequestFailure: Hashable, Sendable {
    /// The request.
    public var request: UInt32
    /// What kind of failure.
    public var code: WireErrorCode
    /// The system error behind it, 0 when none.
    public var errno: Int32
    /// The error in one line, as the client prints it after `sluice: `.
    public var message: String
    /// What to do about it, as the client prints it after `hint: `; empty when none.
    public var hint: String

    /// A failure with each field given.
    public init(request: UInt32, code: WireErrorCode, errno: Int32 = 0, message: String, hint: String = "") {
        self.request = request
        self.code = code
        self.errno = errno
        self.message = message
        self.hint = hint
    }
}
