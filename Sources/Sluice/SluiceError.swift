import SluiceCore
import SystemPackage

/// An error from the Sluice library: a code to switch on, where it happened
/// (file, chunk, slot), the system or CUDA result behind it, and the
/// underlying `PipelineError` with every detail.
///
/// ```swift
/// do { for try await piece in session.scan(paths, literals: literals) { ... } }
/// catch let error as SluiceError where error.code == .backendUnavailable { ... }
/// ```
public struct SluiceError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure this is.
    public enum Code: String, Hashable, Sendable, CaseIterable {
        /// A size, count or option that cannot work.
        case invalidConfiguration
        /// A request that breaks a rule (a literal longer than the session's
        /// chunks allow, an empty literal set); nothing ran.
        case invalidRequest
        /// Bytes that do not decode as what they claim to be (a ring image, a result).
        case malformed
        /// A slot moved along an edge the ring protocol does not have.
        case illegalTransition
        /// A system call on a file or the io_uring instance failed (`errno` says which).
        case io
        /// A worker faulted a slot (`fault` says why).
        case slotFaulted
        /// A backend could not be started here.
        case backendUnavailable
        /// A CUDA driver, NVRTC or cuFile call failed (`cudaResult` holds its result).
        case gpu
        /// Slots made no progress for longer than the watchdog allows.
        case stuck
        /// Reads did not complete in time.
        case readsStuck
        /// A file changed while it was read.
        case fileChanged
        /// Chunks of a file never completed.
        case unaccounted
        /// The run was interrupted before it finished.
        case interrupted
        /// The request was cancelled by its caller.
        case cancelled
        /// The backend lost its device state.
        case contextLost
        /// Recreating a lost backend did not get every chunk done.
        case recoveryFailed
        /// The ring does not fit the host's memory.
        case insufficientMemory
        /// The session was closed before or while the request ran.
        case sessionClosed
        /// A session connecting to `sluice serve` found no server to serve
        /// it: nothing listens at the socket, the handshake failed, or the
        /// server refused the connection (a protocol version mismatch names
        /// both versions). The message names the socket.
        case serverUnavailable
        /// The server's connection ended (the server died, or reset it)
        /// before the request ended. The message names the socket.
        case serverLost
        /// A user operation's CUDA source did not compile (`operation` and
        /// `line` say where; the message holds NVRTC's log); no kernel started.
        case operationDidNotCompile
    }

    /// What kind of failure this is.
    public var code: Code
    /// The file the error is about, where there is one.
    public var path: FilePath?
    /// The chunk (its number in the file, or the ingest buffer) involved, where there is one.
    public var chunk: Int?
    /// The ring slot involved, where there is one.
    public var slot: Int?
    /// The system error behind an `.io` failure.
    public var errno: Errno?
    /// The CUDA driver, NVRTC or cuFile result behind a `.gpu` failure.
    public var cudaResult: Int32?
    /// Why a worker faulted the slot, for `.slotFaulted`.
    public var fault: FaultCode?
    /// The underlying error with all its details; nil for errors of the
    /// session itself (`.sessionClosed`).
    public var underlying: PipelineError?
    /// The user operation involved, for `.operationDidNotCompile`.
    public var operation: String?
    /// The line of the operation's own CUDA source that NVRTC's log names
    /// first, for `.operationDidNotCompile` (nil when it names none).
    public var line: Int?
    /// One line saying what failed, without advice on command-line flags.
    public var message: String

    /// The same text as `message`.
    public var description: String { message }

    /// Wraps `error`, filling in the code and the places it names.
    public init(_ error: PipelineError) {
        self.init(code: Self.code(of: error), message: error.message, underlying: error)
        fillPlace(from: error)
    }

    /// An error of the session itself.
    public init(code: Code, message: String, underlying: PipelineError? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    private static func code(of error: PipelineError) -> Code {
        switch error {
        case .invalidConfiguration: return .invalidConfiguration
        case .malformed: return .malformed
        case .illegalTransition: return .illegalTransition
        case .invalidRequest: return .invalidRequest
        case .io: return .io
        case .slotFaulted: return .slotFaulted
        case .backendUnavailable: return .backendUnavailable
        case .gpu: return .gpu
        case .stuck: return .stuck
        case .readsStuck: return .readsStuck
        case .fileChanged: return .fileChanged
        case .unaccounted: return .unaccounted
        case .interrupted: return .interrupted
        case .contextLost: return .contextLost
        case .recoveryFailed: return .recoveryFailed
        case .insufficientMemory: return .insufficientMemory
        case .cancelled: return .cancelled
        case .operationDidNotCompile: return .operationDidNotCompile
        }
    }

    private mutating func fillPlace(from error: PipelineError) {
        switch error {
        case .io(let f):
            path = f.path.isEmpty ? nil : FilePath(f.path)
            chunk = f.chunk
            errno = f.errno == 0 ? nil : Errno(rawValue: f.errno)
        case .slotFaulted(let slot, let chunk, let path, let code):
            (self.slot, self.chunk, self.fault) = (slot, chunk, code)
            self.path = path.map { FilePath($0) }
        case .invalidRequest(let chunk, let slot, _):
            (self.chunk, self.slot) = (chunk, slot)
        case .illegalTransition(let slot, _, _, _):
            self.slot = slot
        case .gpu(_, let code, _):
            cudaResult = code
        case .stuck(let slots, _, _):
            slot = slots.first
        case .readsStuck(let path, let chunks, _), .unaccounted(let path, let chunks):
            self.path = FilePath(path)
            chunk = chunks.first
        case .fileChanged(let path, _), .cancelled(let path):
            self.path = FilePath(path)
        case .operationDidNotCompile(let operation, let line, _):
            (self.operation, self.line) = (operation, line)
        case .recoveryFailed(_, _, let unfinished):
            path = unfinished.first.map { FilePath($0.path) }
            slot = unfinished.first?.slot
        default:
            break
        }
    }
}
