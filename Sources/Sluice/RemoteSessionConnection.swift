#if canImport(Glibc)
import Glibc
#endif
import SluiceCore
import SluiceSocket
import SluiceWire
import Synchronization
import SystemPackage

/// One connection to `sluice serve`, past its handshake: the socket, the
/// decoder of what the server sent, and a lock that keeps two threads'
/// frames (the file batches and a `cancel`) from interleaving.
final class RemoteConnection: Sendable {
    /// The socket's path, for errors.
    let path: FilePath
    let socket: UnixSocket
    private let decoder: Mutex<WireFrameDecoder>
    private let sending = Mutex(())
    private let nextRequest = Atomic<UInt32>(1)
    let limits: WireLimits

    /// How long the server may take to answer `hello`.
    static let handshakeMilliseconds = 10_000

    private init(path: FilePath, socket: consuming UnixSocket, limits: WireLimits) {
        self.path = path
        self.socket = socket
        self.limits = limits
        decoder = Mutex(WireFrameDecoder(limits: limits))
    }

    /// Connects to the server at `path` and says hello; returns the
    /// connection and the server's welcome. A refusal, a version mismatch
    /// (naming both versions) or silence fails with the reason.
    static func open(
        _ path: FilePath, limits: WireLimits = WireLimits(), client: String
    ) throws(RemoteConnectFailure) -> (RemoteConnection, Welcome) {
        let socket: UnixSocket
        do {
            socket = try UnixSocket.connect(to: path)
        } catch {
            throw RemoteConnectFailure.connecting(path, error)
        }
        try checkServerOwner(socket, path: path)
        return try greet(path, socket: socket, limits: limits, client: client)
    }

    /// The handshake on a connected `socket` whose owner was checked:
    /// `hello`, then the server's answer within `handshakeMilliseconds`.
    static func greet(
        _ path: FilePath, socket: consuming UnixSocket, limits: WireLimits = WireLimits(), client: String
    ) throws(RemoteConnectFailure) -> (RemoteConnection, Welcome) {
        let connection = RemoteConnection(path: path, socket: socket, limits: limits)
        let deadline = ContinuousClock.now + .milliseconds(handshakeMilliseconds)
        let answer: WireMessage?
        do {
            do throws(RemoteReceiveFailure) {
                try connection.send(.hello(Hello(client: client)))
            } catch where error.errno == .brokenPipe || error.errno == .connectionReset {
                // A server that refuses this uid answers at once and closes,
                // maybe before hello went: its refusal is still here to read.
            }
            answer = try connection.receive(stop: { ContinuousClock.now >= deadline })
        } catch {
            throw RemoteConnectFailure(socket: path, reason: error.reason, errno: error.errno)
        }
        guard let answer else {
            throw RemoteConnectFailure(
                socket: path, reason: "no answer to the handshake within \(handshakeMilliseconds / 1000) s", errno: nil)
        }
        do {
            return (connection, try WireHandshake.check(answer))
        } catch {
            throw RemoteConnectFailure(socket: path, reason: error.message, errno: nil)
        }
    }

    /// Refuses a server run by another user: the client is about to hand it
    /// descriptors of every file it scans, and anyone could have bound a
    /// socket at a shared path such as /tmp/sluice-UID.sock first. The
    /// kernel's record of the listening process (SO_PEERCRED) must be this
    /// user or root.
    private static func checkServerOwner(_ socket: borrowing UnixSocket, path: FilePath) throws(RemoteConnectFailure) {
        let uid: UInt32
        do throws(SocketError) {
            uid = try socket.peerCredentials().uid
        } catch {
            throw RemoteConnectFailure(socket: path, reason: "its credentials cannot be read: \(error.message)", errno: error.errno)
        }
        let me = UInt32(getuid())
        guard uid == me || uid == 0 else {
            throw RemoteConnectFailure(
                socket: path, reason: "it is run by uid \(uid), not by this user (uid \(me)) or root; nothing was sent", errno: nil)
        }
    }

    /// A fresh identifier for a request on this connection.
    func requestID() -> UInt32 { nextRequest.add(1, ordering: .relaxed).oldValue }

    /// Sends one message (with `descriptors` attached), whole, while no
    /// other thread sends on this connection.
    func send(_ message: WireMessage, descriptors: [FileDescriptor] = []) throws(RemoteReceiveFailure) {
        let bytes: [UInt8]
        do {
            bytes = try WireCodec.encode(message, limits: limits)
        } catch {
            throw .refusedByEncoder(error)
        }
        do {
            try sending.withLock { _ throws(SocketError) in try socket.send(bytes, descriptors: descriptors) }
        } catch {
            throw .socket(error)
        }
    }

    /// The next message from the server; nil once `stop` says so (asked
    /// every 100 ms while the server is quiet).
    func receive(stop: () -> Bool) throws(RemoteReceiveFailure) -> WireMessage? {
        while true {
            do {
                if let message = try decoder.withLock({ d throws(WireError) in try d.next() }) { return message }
            } catch {
                throw .decoder(error)
            }
            let receipt: SocketReceipt
            do throws(SocketError) {
                while try !socket.waitForInput(milliseconds: 100) {
                    if stop() { return nil }
                }
                receipt = try socket.receive()
            } catch {
                throw .socket(error)
            }
            // A server passes no descriptors; any that came are closed.
            receipt.descriptors.closeAll()
            if receipt.isEndOfStream {
                throw .endOfStream(bufferedBytes: decoder.withLock { $0.bufferedByteCount })
            }
            decoder.withLock { $0.append(receipt.bytes) }
        }
    }

    /// Whether the connection can take another request: nothing is
    /// buffered and nothing (not even the end of the stream) waits to be
    /// received, as for an idle connection the server has not closed.
    var isIdle: Bool {
        guard decoder.withLock({ $0.bufferedByteCount }) == 0 else { return false }
        return (try? socket.waitForInput(milliseconds: 0)) == false
    }

    /// Ends the connection in both directions, waking a thread blocked on it.
    func shutdown() { try? socket.shutdown() }
}

/// Why a send or a receive on a server connection failed.
enum RemoteReceiveFailure: Error {
    /// The server closed the connection (`bufferedBytes` of an unfinished frame were left).
    case endOfStream(bufferedBytes: Int)
    /// A system call failed (a reset connection, a broken pipe).
    case socket(SocketError)
    /// The server's bytes are not a valid message.
    case decoder(WireError)
    /// A message this client was about to send breaks the limits.
    case refusedByEncoder(WireError)

    /// The errno of a failed system call.
    var errno: Errno? {
        if case .socket(let error) = self { return error.errno }
        return nil
    }

    /// The reason in a few words.
    var reason: String {
        switch self {
        case .endOfStream: return "the server closed the connection"
        case .socket(let error): return error.message
        case .decoder(let error), .refusedByEncoder(let error): return error.message
        }
    }
}
