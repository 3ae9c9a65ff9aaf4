#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SystemPackage

/// A listening Unix stream socket at a path that only its owner's uid can
/// connect to (mode 0600), removed again when the listener closes.
///
/// How the mode is 0600 from the first instant: bind(2) creates the socket
/// file with mode 0777 less the umask, and fchmod on a socket does not reach
/// the file, so a socket bound in place would be open to others until a
/// chmod, and changing the umask around bind would race with every other
/// thread creating files. Instead the socket is bound inside a new private
/// directory (mkdtemp: mode 0700, next to the path so that it is on the same
/// file system), chmod-ed to 0600 there, where no one else can reach it, and
/// only then given its real name with link(2). link never replaces an
/// existing name, so two servers starting at once cannot both take the
/// path: the second finds the first's socket, live, and refuses.
///
/// What is already at the path: nothing is fine; a socket nobody listens on
/// (connect gives ECONNREFUSED: a server that died) is removed and the path
/// taken; a live socket is refused (`serverRunning`); anything else is left
/// alone (`notASocket`).
public struct UnixListener: ~Copyable, Sendable {
    /// The listening socket.
    public let descriptor: FileDescriptor
    /// The path it is bound to; nil for an inherited socket (socket activation),
    /// which this listener does not unlink.
    public let path: FilePath?
    /// The socket file's identity, so that closing removes only our own file
    /// (not one a later server put at the path after ours was removed).
    private let identity: FileIdentity?

    /// Binds and listens at `path` with mode 0600, as described above; with
    /// `mode` 0o666 any local user may connect (a server that serves other
    /// uids, checking each peer's credentials itself).
    public init(binding path: FilePath, mode: UInt32 = 0o600, backlog: Int32 = 128) throws(SocketError) {
        let address = try UnixAddress(path)
        let privateDirectory = try SocketCalls.makeTemporaryDirectory(Self.template(for: path))
        let staging = privateDirectory.appending("s")
        defer {
            try? SocketCalls.unlink(staging)
            try? SocketCalls.rmdir(privateDirectory)
        }
        let socket = OwnedDescriptor(taking: try SocketCalls.socket())
        try SocketCalls.bind(socket.descriptor, try UnixAddress(staging))
        try SocketCalls.chmod(staging, mode_t(mode))
        try SocketCalls.listen(socket.descriptor, backlog: backlog, path: path)
        try Self.claim(path, from: staging, address: address)
        identity = try SocketCalls.lstat(path)
        self.path = path
        descriptor = socket.release()
    }

    /// Takes a listening socket this process inherited (systemd's
    /// LISTEN_FDS); closing it leaves its path alone.
    public init(adopting descriptor: FileDescriptor) {
        self.descriptor = descriptor
        path = nil
        identity = nil
    }

    deinit {
        if let path, let identity, let now = try? SocketCalls.lstat(path), now == identity {
            try? SocketCalls.unlink(path)
        }
        SocketCalls.close(descriptor)
    }

    /// Removes the socket file (when it is still ours) and closes the socket now.
    public consuming func close() {}

    /// Waits for the next connection.
    public func accept() throws(SocketError) -> UnixSocket {
        UnixSocket(taking: try SocketCalls.accept(descriptor, path: path))
    }

    /// `DIR/.NAME.XXXXXX` for mkdtemp, in the directory of `path`.
    /// A short prefix keeps `DIR/.NAME.XXXXXX/s` near the length of `path`.
    static func template(for path: FilePath) -> FilePath {
        let name = path.lastComponent?.string ?? "sock"
        let short = String(name.prefix(8))
        return path.removingLastComponent().appending(".\(short).XXXXXX")
    }

    /// Links `staging` to `path`, clearing a stale socket first; at most a
    /// few tries, since another process may be racing for the path.
    static func claim(_ path: FilePath, from staging: FilePath, address: UnixAddress) throws(SocketError) {
        var lastError: SocketError?
        for _ in 0..<3 {
            do {
                try SocketCalls.link(staging, path)
                return
            } catch where error.errno == .fileExists {
                lastError = error
            }
            guard let existing = try SocketCalls.lstat(path) else { continue }  // gone meanwhile: try again
            guard existing.isSocket else { throw .notASocket(path: path) }
            guard try isStale(address) else { throw .serverRunning(path: path) }
            // Remove it only if it is still the socket just probed.
            if try SocketCalls.lstat(path) == existing { try SocketCalls.unlink(path) }
        }
        throw lastError ?? .serverRunning(path: path)
    }

    /// Whether nothing listens on the socket at `address` (connect is refused).
    static func isStale(_ address: UnixAddress) throws(SocketError) -> Bool {
        do {
            _ = try UnixSocket.connect(to: address.path)
            return false
        } catch where error.errno == .connectionRefused {
            return true
        }
    }
}

/// Where `sluice serve` listens and its clients look by default.
public enum ServerSocketPath {
    /// `$XDG_RUNTIME_DIR/sluice.sock` when XDG_RUNTIME_DIR is set to an
    /// absolute path (the XDG spec says to ignore a relative one), else
    /// `/tmp/sluice-UID.sock`.
    public static func defaultPath(environment: [String: String], uid: UInt32) -> FilePath {
        if let runtime = environment["XDG_RUNTIME_DIR"], runtime.hasPrefix("/") {
            return FilePath(runtime).appending("sluice.sock")
        }
        return FilePath("/tmp/sluice-\(uid).sock")
    }

    /// What is at `path` (lstat(2), not following a link): nil when nothing
    /// is; else whether it is a socket and, in words, what it is ("a socket",
    /// "a regular file").
    public static func fileAt(_ path: FilePath) throws(SocketError) -> (isSocket: Bool, kind: String)? {
        guard let found = try SocketCalls.lstat(path) else { return nil }
        return (found.isSocket, FileKind(mode: found.mode).description)
    }

    /// `defaultPath` for this process's environment and real uid.
    public static func current() -> FilePath {
        var environment: [String: String] = [:]
        if let value = getenv("XDG_RUNTIME_DIR") { environment["XDG_RUNTIME_DIR"] = String(cString: value) }
        return defaultPath(environment: environment, uid: getuid())
    }
}
