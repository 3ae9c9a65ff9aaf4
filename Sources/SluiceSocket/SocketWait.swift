#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SystemPackage

/// Waiting for a socket (or a listening socket) to have something to read.
public enum SocketPoll {
    /// poll(2) for input on `fd` for up to `timeout`; true when there is
    /// some (bytes, descriptors, a connection, the end of the stream or an
    /// error to collect). A signal ends the wait with false, so that a
    /// caller's loop looks at its stop flags (SIGTERM, SIGINT) at once.
    public static func readable(_ fd: FileDescriptor, timeout: Duration) throws(SocketError) -> Bool {
        var entry = pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        let ready = Glibc.poll(&entry, 1, milliseconds)
        if ready >= 0 { return ready > 0 && entry.revents != 0 }
        let code = Glibc.errno
        if code == EINTR { return false }
        throw .system(operation: "poll", path: nil, errno: Errno(rawValue: code))
    }
}

extension SocketCalls {
    /// shutdown(2) of both directions: a thread blocked in a send or receive
    /// on the socket returns (EPIPE, or the end of the stream).
    static func shutdown(_ fd: FileDescriptor) throws(SocketError) {
        _ = try retrying("shutdown") { Glibc.shutdown(fd.rawValue, Int32(SHUT_RDWR)) }
    }
}

extension UnixSocket {
    /// Waits up to `milliseconds` for something to receive; true when a
    /// `receive` would not block. A client polls with a short timeout so
    /// that it notices its own cancellation while the peer is quiet.
    public func waitForInput(milliseconds: Int32) throws(SocketError) -> Bool {
        try SocketPoll.readable(descriptor, timeout: .milliseconds(milliseconds))
    }

    /// Ends both directions of the connection at once, without closing the
    /// descriptor: another thread blocked in `send` or `receive` on it wakes
    /// (EPIPE, or the end of the stream), and the peer sees the end.
    public func shutdown() throws(SocketError) {
        try SocketCalls.shutdown(descriptor)
    }
}
