#if canImport(Glibc)
import Glibc
#endif
import SluiceSocket
import SluiceWire
import SystemPackage

/// What answers at a `sluice serve` socket, for `sluice doctor`: nothing, a
/// stale socket, another user's server, or a server and what it runs. A
/// probe connects and says hello as a client does, and sends nothing more
/// (to another user's server, not even that).
package struct ServerProbe: Sendable {
    /// What was found.
    package enum State: Sendable, Equatable {
        /// Nothing is at the path.
        case none
        /// Something that is not a socket is at the path (what it is, in words).
        case notASocket(String)
        /// A socket nobody listens on: a server that died without removing it.
        case stale
        /// connect(2) failed otherwise (permission denied, a path too long).
        case unreachable(String)
        /// The listening process is another user's (not this user's, not
        /// root's): clients send it nothing, and neither does the probe.
        case otherUser
        /// It accepted the connection but did not complete the handshake (a
        /// refusal, a version mismatch, silence), and why.
        case noHandshake(String)
        /// A server answered with this welcome.
        case answers(Welcome)
    }

    /// The socket probed.
    package var socket: FilePath
    /// What was found there.
    package var state: State
    /// The pid of the process that listens on the socket (`SO_PEERCRED`):
    /// the server, or systemd for a socket it passed to the server.
    package var listenerPID: Int32?
    /// That process's uid.
    package var listenerUID: UInt32?

    /// One word for scripts: none, not_a_socket, stale, unreachable, other_user, no_handshake or ok.
    package var status: String {
        switch state {
        case .none: return "none"
        case .notASocket: return "not_a_socket"
        case .stale: return "stale"
        case .unreachable: return "unreachable"
        case .otherUser: return "other_user"
        case .noHandshake: return "no_handshake"
        case .answers: return "ok"
        }
    }

    /// Probes the socket at `path` (blocking: connect, credentials, the
    /// handshake, which a server started by socket activation answers once
    /// it started).
    package static func probe(_ path: FilePath) -> ServerProbe {
        var probe = ServerProbe(socket: path, state: .none)
        let socket: UnixSocket
        do {
            socket = try UnixSocket.connect(to: path)
        } catch {
            probe.state = refusedConnection(path, error)
            return probe
        }
        do throws(SocketError) {
            let peer = try socket.peerCredentials()
            probe.listenerPID = peer.pid
            probe.listenerUID = peer.uid
        } catch {
            probe.state = .unreachable("its credentials cannot be read: \(error.message)")
            return probe
        }
        guard probe.listenerUID == UInt32(getuid()) || probe.listenerUID == 0 else {
            probe.state = .otherUser
            return probe
        }
        do throws(RemoteConnectFailure) {
            let (connection, welcome) = try RemoteConnection.greet(path, socket: socket, client: "sluice doctor (pid \(getpid()))")
            _ = connection
            probe.state = .answers(welcome)
        } catch {
            probe.state = .noHandshake(error.reason)
        }
        return probe
    }

    /// What a failed connect means: nothing there, a stale socket (refused,
    /// and a socket is there), something else there, or another failure.
    private static func refusedConnection(_ path: FilePath, _ error: SocketError) -> State {
        switch error.errno {
        case .noSuchFileOrDirectory?:
            return .none
        case .connectionRefused?:
            // Gone meanwhile (or unreadable): nothing to report there.
            guard let found = try? ServerSocketPath.fileAt(path) else { return .none }
            return found.isSocket ? .stale : .notASocket(found.kind)
        default:
            return .unreachable(error.message)
        }
    }
}
