#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// errno values as text, for the `reason` and the one-line selection reason.
package enum SystemErrors {
    /// The C library's message for `code` ("Input/output error").
    package static func text(_ code: Int32) -> String {
        guard let message = strerror(code) else { return "errno \(code)" }
        return String(cString: message)
    }

    /// The symbolic name ("EPERM") of the errno values ingest reports on its
    /// own; others print as "errno N".
    static func name(_ code: Int32) -> String {
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

/// The open(2) flag for direct I/O. Glibc's Swift module leaves `O_DIRECT`
/// out (it is a `_GNU_SOURCE` macro), and its value differs by architecture.
#if os(Linux)
#if arch(arm64) || arch(arm)
let openDirectFlag: Int32 = 0o200000
#elseif arch(powerpc64) || arch(powerpc64le)
let openDirectFlag: Int32 = 0o400000
#else
let openDirectFlag: Int32 = 0o40000  // x86_64, i386, riscv64, s390x
#endif
#endif

/// Whether `fd` was opened with O_DIRECT. Asked only on rare paths (a short
/// read, an EINVAL), where one fcntl(2) costs nothing that matters.
func isDirectIO(_ fd: Int32) -> Bool {
    #if os(Linux)
    let flags = fcntl(fd, F_GETFL)
    return flags >= 0 && flags & openDirectFlag != 0
    #else
    return false
    #endif
}
