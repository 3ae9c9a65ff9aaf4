#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage

/// errno values as text: the one place Sluice turns an errno into words,
/// for every `IOFailure`'s reason and every message that names one.
package enum SystemErrors {
    /// The C library's message for `code` ("Input/output error"), through
    /// swift-system's `Errno`, which wraps strerror(3).
    package static func text(_ code: Int32) -> String {
        Errno(rawValue: code).description
    }

    /// The symbolic name ("EPERM") of the errno values Sluice reports on
    /// their own; others print as "errno N".
    package static func name(_ code: Int32) -> String {
        switch code {
        case EPERM: return "EPERM"
        case ENOENT: return "ENOENT"
        case EINTR: return "EINTR"
        case EIO: return "EIO"
        case EBADF: return "EBADF"
        case EAGAIN: return "EAGAIN"
        case ENOMEM: return "ENOMEM"
        case EACCES: return "EACCES"
        case EFAULT: return "EFAULT"
        case EBUSY: return "EBUSY"
        case EISDIR: return "EISDIR"
        case EINVAL: return "EINVAL"
        case ENFILE: return "ENFILE"
        case EMFILE: return "EMFILE"
        case ESPIPE: return "ESPIPE"
        case ENOSYS: return "ENOSYS"
        case EOPNOTSUPP: return "EOPNOTSUPP"
        case ECANCELED: return "ECANCELED"
        default: return "errno \(code)"
        }
    }
}

