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
    /// Waits up to `timeout` for `fd` to be readable. True also for a hang-up
    /// or an error on it: the receive that follows says which.
    static func waitReadable(_ fd: FileDescriptor, timeout: Duration) throws(SocketError) -> Bool {
        var entry = pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        while true {
            let ready = poll(&entry, 1, milliseconds)
            if ready >= 0 { return ready > 0 && entry.revents != 0 }
            let code = errno
            if code == EINTR { return false }  // a signal: the caller's loop looks at its stop flags
            throw .system(operation: "poll", path: nil, errno: Errno(rawValue: code))
        }
    }

    /// shutdown(2) of both directions: a thread blocked in a send or a
    /// receive on the socket returns, while the descriptor stays open for its owner.
    static func shutdownBoth(_ fd: FileDescriptor) {
        // ENOTCONN (the peer went first) leaves nothing to do.
        _ = shutdown(fd.rawValue, Int32(SHUT_RDWR))
    }

    /// The size of the regular file open at `fd`, nil for anything else
    /// (the session refuses it by name when it reaches it).
    static func regularFileSize(_ fd: FileDescriptor) -> UInt64? {
        var st = stat()
        while fstat(fd.rawValue, &st) != 0 {
            if errno != EINTR { return nil }
        }
        guard st.st_mode & S_IFMT == S_IFREG else { return nil }
        return UInt64(max(0, st.st_size))
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
