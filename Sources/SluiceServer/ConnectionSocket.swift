import SluiceSocket
import SluiceWire
import Synchronization
import SystemPackage

/// A client's socket as the server shares it between the connection's
/// reading thread and its requests' threads: sends are whole frames, one at
/// a time, and the first failed send marks the connection gone.
final class ConnectionSocket: Sendable {
    let socket: UnixSocket
    let limits: WireLimits
    private let sending = Mutex(())
    private let gone = Atomic<Bool>(false)

    init(_ socket: consuming UnixSocket, limits: WireLimits) {
        self.socket = socket
        self.limits = limits
    }

    /// Whether a send failed (the peer closed or reset the connection).
    var isGone: Bool { gone.load(ordering: .acquiring) }

    /// Sends `message` as one frame; false when it could not be (the peer is
    /// gone, or the message broke a limit, which ends the connection too).
    @discardableResult
    func send(_ message: WireMessage) -> Bool {
        guard !isGone else { return false }
        let frame: [UInt8]
        do throws(WireError) {
            frame = try WireCodec.encode(message, limits: limits)
        } catch {
            hangUp()
            return false
        }
        let sent: Bool = sending.withLock { _ in
            do throws(SocketError) {
                try socket.send(frame)
                return true
            } catch {
                return false
            }
        }
        if !sent { hangUp() }
        return sent
    }

    /// Ends both directions now: a thread blocked in a send or a receive on
    /// the socket returns. The descriptor stays open until the owner goes.
    func hangUp() {
        gone.store(true, ordering: .releasing)
        // ENOTCONN (the peer went first) leaves nothing to do.
        try? socket.shutdown()
    }
}

/// Descriptors a client passed, in arrival order, until a `files` batch
/// takes them; those never taken are closed.
final class DescriptorQueue {
    private var queue: [FileDescriptor] = []
    private var head = 0

    var count: Int { queue.count - head }

    /// Takes over every descriptor of `batch`.
    func append(_ batch: DescriptorBatch) {
        for i in 0..<batch.count {
            if let owned = batch.take(i) { queue.append(owned.release()) }
        }
    }

    /// The next `n`, nil (taking none) when fewer arrived.
    func take(_ n: Int) -> [FileDescriptor]? {
        guard n <= count else { return nil }
        defer {
            head += n
            if head == queue.count {
                queue.removeAll(keepingCapacity: true)
                head = 0
            }
        }
        return Array(queue[head..<(head + n)])
    }

    deinit {
        for fd in queue[head...] { try? fd.close() }
    }
}

/// What the connection's reader found next.
enum ReadEvent {
    /// A whole message.
    case message(WireMessage)
    /// Nothing within the poll interval.
    case idle
    /// The peer closed the connection (or reset it) between frames.
    case ended
    /// The bytes can never be a message (or the stream ended inside one); the
    /// connection cannot go on.
    case refused(WireError)
    /// The socket failed (descriptors lost to a full descriptor table, a
    /// failed receive): `message` says how.
    case broken(String)
}

/// Reads frames and the descriptors passed with them from a connection.
struct MessageReader {
    private var decoder: WireFrameDecoder
    /// Descriptors received and not yet taken by a `files` batch.
    let descriptors = DescriptorQueue()

    init(limits: WireLimits) { decoder = WireFrameDecoder(limits: limits) }

    /// The next message, or what stopped it, waiting at most `timeout` for bytes.
    mutating func next(from socket: borrowing UnixSocket, timeout: Duration) -> ReadEvent {
        while true {
            do throws(WireError) {
                if let message = try decoder.next() { return .message(message) }
            } catch {
                return .refused(error)
            }
            let receipt: SocketReceipt
            do throws(SocketError) {
                guard try SocketPoll.readable(socket.descriptor, timeout: timeout) else { return .idle }
                receipt = try socket.receive()
            } catch {
                switch error.errno {
                case .connectionReset?, .brokenPipe?, .socketNotConnected?: return .ended
                default: return .broken(error.message)
                }
            }
            descriptors.append(receipt.descriptors)
            if receipt.isEndOfStream {
                do throws(WireError) {
                    try decoder.finish()
                    return .ended
                } catch {
                    return .refused(error)
                }
            }
            decoder.append(receipt.bytes)
        }
    }
}
