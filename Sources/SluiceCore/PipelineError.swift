/// An I/O failure with everything needed to find and fix it.
public struct IOFailure: Hashable, Sendable {
    /// What was attempted: "open", "read", "io_uring setup", ...
    public var operation: String
    /// The file, or "" when the failure is not about one file.
    public var path: String
    /// Offset in the file where the failed operation started; 0 when none applies.
    public var fileOffset: UInt64
    /// Bytes the failed operation asked for; 0 when none applies.
    public var length: Int
    /// The ingest chunk (buffer) involved, or nil.
    public var chunk: Int?
    /// The errno value, 0 when none applies.
    public var errno: Int32
    /// The errno's text, or another reason.
    public var reason: String
    /// The call maps, locks or registers memory (mmap, mlock, a buffer
    /// registration): ENOMEM or EAGAIN from it is memory refused, which a
    /// smaller ring may get.
    public var allocatesMemory: Bool

    /// A failure with each field given.
    public init(
        operation: String, path: String, fileOffset: UInt64 = 0, length: Int = 0, chunk: Int? = nil,
        errno: Int32, reason: String, allocatesMemory: Bool = false
    ) {
        self.operation = operation
        self.path = path
        self.fileOffset = fileOffset
        self.length = length
        self.chunk = chunk
        self.errno = errno
        self.reason = reason
        self.allocatesMemory = allocatesMemory
    }
}

/// A chunk that was submitted but never finished, as recovery reports it.
public struct UnfinishedChunk: Hashable, Sendable, CustomStringConvertible {
    /// The chunk's file.
    public var path: String
    /// The chunk's start in its file.
    public var fileOffset: UInt64
    /// Bytes the chunk covers (its share of the file, overlap not counted).
    public var length: Int
    /// The ring slot it was in (the ingest buffer has the same index).
    public var slot: Int

    /// A chunk with each field given.
    public init(path: String, fileOffset: UInt64, length: Int, slot: Int) {
        self.path = path
        self.fileOffset = fileOffset
        self.length = length
        self.slot = slot
    }

    /// "PATH at offset O (N bytes, slot S)", as recovery notes show it.
    public var description: String { "\(path) at offset \(fileOffset) (\(length) bytes, slot \(slot))" }
}

/// What runs the slots a watchdog waits on, as its messages name it.
public enum SlotRunner: String, Hashable, Sendable {
    /// The CPU backend's worker threads.
    case cpu = "CPU backend"
    /// The persistent kernel on the GPU.
    case gpu = "GPU kernel"
}

/// Every error Sluice reports: each case names what failed (file, chunk,
/// slot, errno or GPU result) and `hint` says what to do about it.
public enum PipelineError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A size, count or option that cannot work.
    case invalidConfiguration(String)
    /// Bytes that do not decode as what they claim to be.
    case malformed(what: String, detail: String)
    /// A slot moved along an edge the protocol does not have.
    case illegalTransition(slot: Int, from: SlotStatus, to: SlotStatus, by: SlotStatus.Actor)
    /// A request broke a rule of the pump; nothing was submitted.
    case invalidRequest(chunk: Int?, slot: Int?, reason: String)
    /// A system call on a file or on the io_uring instance failed.
    case io(IOFailure)
    /// A worker faulted a slot.
    case slotFaulted(slot: Int, chunk: Int, path: String?, code: FaultCode)
    /// A backend could not be started here.
    case backendUnavailable(backend: String, reason: String)
    /// A CUDA driver, NVRTC or cuFile call failed.
    case gpu(call: String, code: Int32, message: String)
    /// Slots stayed CLAIMED with no progress by `runner` for longer than the watchdog allows.
    case stuck(slots: [Int], seconds: Double, runner: SlotRunner)
    /// Reads submitted to the kernel did not complete in time.
    case readsStuck(path: String, chunks: [Int], seconds: Double)
    /// A file changed size or modification time while it was read.
    case fileChanged(path: String, detail: String)
    /// Chunks of a file that never completed.
    case unaccounted(path: String, chunks: [Int])
    /// The run was interrupted (Ctrl-C) before it finished.
    case interrupted(finishedChunks: Int, pendingChunks: Int)
    /// The backend's workers died and took their device state with them (a
    /// sticky CUDA error such as an illegal address, or the CPU backend's
    /// test twin of one): nothing more runs on it; it must be torn down.
    case contextLost(backend: String, reason: String)
    /// The backend was lost and recreating it did not get these chunks done
    /// within `attempts` recoveries.
    case recoveryFailed(attempts: Int, cause: String, unfinished: [UnfinishedChunk])
    /// A ring that cannot fit the host's memory, found before allocating it.
    case insufficientMemory(MemoryShortfall)
    /// The file's job was cancelled before all of it was processed; any
    /// results it had were not handed out.
    case cancelled(path: String)
    /// A user operation's CUDA source did not compile: the operation's name
    /// (every installed one's, comma-separated, when the log names none),
    /// the first line of its own source that NVRTC's log names (nil when the
    /// log names none of its lines), and the log. No kernel was started.
    case operationDidNotCompile(operation: String, line: Int?, log: String)

    /// The error in one line for a user: what failed, where, and the errno or GPU result.
    public var message: String {
        switch self {
        case .invalidConfiguration(let what):
            return "invalid configuration: \(what)"
        case .malformed(let what, let detail):
            return "malformed \(what): \(detail)"
        case .illegalTransition(let slot, let from, let to, let actor):
            return "slot \(slot): illegal transition \(from) -> \(to) by the \(actor)"
        case .invalidRequest(let chunk, let slot, let reason):
            var place: [String] = []
            if let chunk { place.append("chunk \(chunk)") }
            if let slot { place.append("slot \(slot)") }
            return (place.isEmpty ? "" : place.joined(separator: ", ") + ": ") + "request rejected: \(reason)"
        case .io(let f):
            var s = f.path.isEmpty ? "" : "\(f.path): "
            s += "\(f.operation) failed"
            if let chunk = f.chunk { s += " (chunk \(chunk), offset \(f.fileOffset), \(f.length) bytes)" }
            s += ": \(f.reason)"
            if f.errno != 0 { s += " (errno \(f.errno))" }
            return s
        case .slotFaulted(let slot, let chunk, let path, let code):
            return (path.map { "\($0): " } ?? "") + "chunk \(chunk) in slot \(slot) faulted: \(code)"
        case .backendUnavailable(let backend, let reason):
            return "\(backend) backend unavailable: \(reason)"
        case .gpu(let call, let code, let message):
            return "\(call) failed with \(code): \(message)"
        case .stuck(let slots, let seconds, let runner):
            if slots.isEmpty { return "the \(runner.rawValue)'s workers did not stop within \(seconds) s" }
            return "the \(runner.rawValue) made no progress for \(seconds) s while slots "
                + "\(slots.map(String.init).joined(separator: ", ")) were claimed"
        case .readsStuck(let path, let chunks, let seconds):
            return "\(path): reads of chunks \(chunks.map(String.init).joined(separator: ", ")) did not complete within \(seconds) s"
        case .fileChanged(let path, let detail):
            return "\(path): file changed while it was read (\(detail))"
        case .unaccounted(let path, let chunks):
            return "\(path): chunks \(chunks.map(String.init).joined(separator: ", ")) were never completed"
        case .interrupted(let finished, let pending):
            return "interrupted: \(finished) chunks finished, \(pending) not processed"
        case .contextLost(let backend, let reason):
            return "the \(backend) backend lost its context: \(reason)"
        case .recoveryFailed(let attempts, let cause, let unfinished):
            let shown = unfinished.prefix(16).map(\.description).joined(separator: "; ")
            let more = unfinished.count > 16 ? "; and \(unfinished.count - 16) more" : ""
            return "\(unfinished.count) chunks not finished after \(attempts) backend recoveries (\(cause)): \(shown)\(more)"
        case .insufficientMemory(let shortfall):
            return shortfall.message
        case .cancelled(let path):
            return "\(path): not processed, its job was cancelled"
        case .operationDidNotCompile(let operation, let line, let log):
            let place = line.map { " (\(operation).cu line \($0))" } ?? ""
            return "user operation \(operation) did not compile\(place); NVRTC's log:\n\(log)"
        }
    }

    /// The message (the CLI adds a hint naming its flags).
    public var description: String { message }
}
