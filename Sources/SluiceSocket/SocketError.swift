import SystemPackage

/// Why a socket operation failed: a case to switch on, naming the path,
/// the system call and its errno where there are ones.
public enum SocketError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A system call failed (`operation` is its name, `path` the socket path it was about, if any).
    case system(operation: String, path: FilePath?, errno: Errno)
    /// A live server answers at the path; the listener does not take it over.
    case serverRunning(path: FilePath)
    /// Something that is not a socket is at the path; the listener does not replace it.
    case notASocket(path: FilePath)
    /// The path does not fit `sockaddr_un` (`maximum` bytes, without the NUL).
    case pathTooLong(path: FilePath, bytes: Int, maximum: Int)
    /// More descriptors arrived than the receive had room for (MSG_CTRUNC); the
    /// `received` ones that did arrive were closed.
    case controlTruncated(received: Int)
    /// A send with more descriptors than one message may carry (the kernel's SCM_MAX_FD).
    case tooManyDescriptors(count: Int, maximum: Int)

    /// The errno of a `.system` failure.
    public var errno: Errno? {
        if case .system(_, _, let e) = self { return e }
        return nil
    }

    /// The error in one line.
    public var message: String {
        switch self {
        case .system(let operation, let path, let errno):
            return (path.map { "\($0): " } ?? "") + "\(operation) failed: \(errno.description) (errno \(errno.rawValue))"
        case .serverRunning(let path):
            return "a server is already running at \(path)"
        case .notASocket(let path):
            return "\(path) exists and is not a socket; not replacing it"
        case .pathTooLong(let path, let bytes, let maximum):
            return "\(path): a socket path may have at most \(maximum) bytes, this one needs \(bytes)"
        case .controlTruncated(let received):
            return "descriptors were lost in a receive (MSG_CTRUNC); the \(received) that arrived were closed"
        case .tooManyDescriptors(let count, let maximum):
            return "\(count) descriptors in one message; at most \(maximum) can be passed at once"
        }
    }

    /// The same text as `message`.
    public var description: String { message }
}
