#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SystemPackage

extension SocketCalls {
    /// poll(2) for input on one descriptor; true when there is some (bytes,
    /// descriptors, the end of the stream or an error to collect).
    static func pollInput(_ fd: FileDescriptor, milliseconds: Int32) throws(SocketError) -> Bool {
        var entry = pollfd(fd: fd.rawValue, events: Int16(POLLIN), revents: 0)
        return try retrying("poll") { Glibc.poll(&entry, 1, milliseconds) } > 0
    }

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
        try SocketCalls.pollInput(descriptor, milliseconds: milliseconds)
    }

    /// Ends both directions of the connection at once, without closing the
    /// descriptor: another thread blocked in `send` or `receive` on it wakes
    /// (EPIPE, or the end of the stream), and the peer sees the end.
    public func shutdown() throws(SocketError) {
        try SocketCalls.shutdown(descriptor)
    }
}
