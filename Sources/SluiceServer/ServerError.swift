import Sluice
import SluiceSocket

/// Why a server could not start or keep serving: a case to switch on.
public enum ServerError: Error, Sendable, CustomStringConvertible {
    /// The listening socket could not be made or used (a live server at the
    /// path, something else there, a path too long, a failed system call).
    case socket(SocketError)
    /// The session (its backend, its ring) could not start.
    case session(SluiceError)
    /// `run()` was called on a server that already ran.
    case alreadyRan

    /// The error in one line.
    public var message: String {
        switch self {
        case .socket(let error): return error.message
        case .session(let error): return error.message
        case .alreadyRan: return "this server already ran; make a new one"
        }
    }

    /// The same text as `message`.
    public var description: String { message }
}
