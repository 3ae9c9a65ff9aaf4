import Sluice
import SluiceSocket
import SystemPackage

/// Why a server could not start or keep serving: a case to switch on.
public enum ServerError: Error, Sendable, CustomStringConvertible {
    /// The listening socket could not be made or used (a live server at the
    /// path, something else there, a path too long, a failed system call).
    case socket(SocketError)
    /// The session (its backend, its ring) could not start.
    case session(SluiceError)
    /// `run()` was called on a server that already ran.
    case alreadyRan
    /// systemd passed a listening socket that cannot be served (socket activation).
    case activation(SocketActivationError)
    /// The socket named on the command line is not the one systemd passed.
    case activatedElsewhere(named: FilePath, passed: String)

    /// The error in one line.
    public var message: String {
        switch self {
        case .socket(let error): return error.message
        case .session(let error): return error.message
        case .alreadyRan: return "this server already ran; make a new one"
        case .activation(let error): return error.message
        case .activatedElsewhere(let named, let passed):
            return "\(named) is not the socket systemd passed, \(passed); name that socket or none"
        }
    }

    /// The same text as `message`.
    public var description: String { message }
}
