#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SluiceSocket
import SystemPackage

/// The system calls the server makes besides those of `SluiceSocket`, each
/// wrapped once: retried on EINTR, a failure thrown as `SocketError.system`
/// naming the call.
enum ServerCalls {
    /// The size of the regular file open at `fd`, nil for anything else
    /// (the session refuses it by name when it reaches it).
    static func regularFileSize(_ fd: FileDescriptor) -> UInt64? {
        guard let st = try? fd.stat(), st.type == .regular else { return nil }
        return UInt64(max(0, st.size))
    }

    /// Raises the soft limit on open descriptors to the hard limit; returns the limit now in force.
    static func raiseDescriptorLimit() throws(SocketError) -> UInt64 {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else {
            throw .system(operation: "getrlimit(RLIMIT_NOFILE)", path: nil, errno: Errno(rawValue: errno))
        }
        guard limit.rlim_cur < limit.rlim_max else { return UInt64(limit.rlim_cur) }
        limit.rlim_cur = limit.rlim_max
        guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else {
            throw .system(operation: "setrlimit(RLIMIT_NOFILE)", path: nil, errno: Errno(rawValue: errno))
        }
        return UInt64(limit.rlim_cur)
    }

    /// This process's effective uid (what `SO_PEERCRED` reports for a client of the same user).
    static var effectiveUID: UInt32 { geteuid() }

    /// This process's id.
    static var processID: Int32 { getpid() }
}
