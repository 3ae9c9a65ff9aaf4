#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SystemPackage

/// The process at the other end of a Unix socket, as the kernel recorded it
/// when the connection was made (`SO_PEERCRED`).
public struct PeerCredentials: Hashable, Sendable {
    /// Its process id.
    public var pid: Int32
    /// Its effective user id.
    public var uid: UInt32
    /// Its effective group id.
    public var gid: UInt32

    /// Credentials with each field given.
    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }
}

/// What one receive delivered: bytes (none at the end of the stream) and
/// the descriptors that came with them.
public struct SocketReceipt: Sendable {
    /// The bytes, in stream order.
    public var bytes: [UInt8]
    /// Descriptors passed with them (SCM_RIGHTS), owned until taken.
    public var descriptors: DescriptorBatch

    /// The peer closed its end (or shut down writing): no bytes and no
    /// descriptors will come any more.
    public var isEndOfStream: Bool { bytes.isEmpty && descriptors.count == 0 }
}

/// Both ends of a connected socket pair (socketpair(2)). Frozen, so that a
/// caller can take one end out (`let a = pair.first`) and close it alone.
@frozen
public struct SocketPair: ~Copyable {
    /// One end.
    public var first: UnixSocket
    /// The other end.
    public var second: UnixSocket
}

/// A connected Unix stream socket, closed with its owner. Sends frames with
/// descriptors attached and receives bytes with the descriptors that came
/// with them. Blocking.
public struct UnixSocket: ~Copyable, Sendable {
    /// The socket's descriptor, valid while this owner lives.
    public let descriptor: FileDescriptor

    /// Takes ownership of a connected socket.
    public init(taking descriptor: FileDescriptor) { self.descriptor = descriptor }

    deinit { SocketCalls.close(descriptor) }

    /// Closes the socket now.
    public consuming func close() {}

    /// Connects to the listener at `path` (ECONNREFUSED when nothing listens
    /// on a socket there, ENOENT when there is none).
    public static func connect(to path: FilePath) throws(SocketError) -> UnixSocket {
        let address = try UnixAddress(path)
        let socket = UnixSocket(taking: try SocketCalls.socket())
        try SocketCalls.connect(socket.descriptor, address)
        return socket
    }

    /// Two connected sockets (for tests, and a server's internal wake-ups).
    public static func pair() throws(SocketError) -> SocketPair {
        let (a, b) = try SocketCalls.socketPair()
        return SocketPair(first: UnixSocket(taking: a), second: UnixSocket(taking: b))
    }

    /// The largest number of descriptors one message carries: the kernel's SCM_MAX_FD.
    public static let maxDescriptorsPerMessage = 253

    /// Sends all of `bytes`, with `descriptors` attached to the first byte
    /// (the receiver gets them with the receive that returns that byte, or an
    /// earlier one). The descriptors stay open here: the peer gets copies.
    public func send(_ bytes: [UInt8], descriptors: [FileDescriptor] = []) throws(SocketError) {
        guard descriptors.count <= Self.maxDescriptorsPerMessage else {
            throw .tooManyDescriptors(count: descriptors.count, maximum: Self.maxDescriptorsPerMessage)
        }
        precondition(!bytes.isEmpty || descriptors.isEmpty, "descriptors need at least one byte to travel with")
        var sent = try sendFirst(bytes, descriptors: descriptors)
        while sent < bytes.count {
            sent += try sendFirst(Array(bytes[sent...]), descriptors: [])
        }
    }

    /// One sendmsg(2): bytes from the start of `bytes`, and the descriptors.
    private func sendFirst(_ bytes: [UInt8], descriptors: [FileDescriptor]) throws(SocketError) -> Int {
        let data = Buffer(copying: bytes)
        let control = Buffer(copying: ControlMessage.rights(descriptors))
        var vector = iovec(iov_base: data.bytes.baseAddress, iov_len: bytes.count)
        var header = msghdr()
        return try withUnsafeMutablePointer(to: &vector) { (v) throws(SocketError) -> Int in
            header.msg_iov = v
            header.msg_iovlen = 1
            if !descriptors.isEmpty {
                header.msg_control = control.bytes.baseAddress
                header.msg_controllen = control.bytes.count
            }
            return try SocketCalls.sendmsg(descriptor, &header)
        }
    }

    /// Receives up to `maxBytes` bytes and the descriptors sent with them
    /// (MSG_CMSG_CLOEXEC: none leaks into a child process). Room is made for
    /// `maxDescriptors`; when more arrived the kernel drops the rest and sets
    /// MSG_CTRUNC, and this closes the ones that did arrive and throws
    /// `controlTruncated`. Empty bytes and no descriptors: end of stream.
    public func receive(
        maxBytes: Int = 1 << 16, maxDescriptors: Int = UnixSocket.maxDescriptorsPerMessage
    ) throws(SocketError) -> SocketReceipt {
        let data = Buffer(zeroed: max(1, maxBytes))
        let control = Buffer(zeroed: ControlMessage.space(descriptors: max(1, maxDescriptors)))
        var vector = iovec(iov_base: data.bytes.baseAddress, iov_len: data.bytes.count)
        var header = msghdr()
        let count = try withUnsafeMutablePointer(to: &vector) { (v) throws(SocketError) -> Int in
            header.msg_iov = v
            header.msg_iovlen = 1
            header.msg_control = control.bytes.baseAddress
            header.msg_controllen = control.bytes.count
            return try SocketCalls.recvmsg(descriptor, &header)
        }
        let controlLength = min(Int(header.msg_controllen), control.bytes.count)
        let received = DescriptorBatch(taking: ControlMessage.descriptors(in: UnsafeRawBufferPointer(rebasing: control.bytes[..<controlLength])))
        if header.msg_flags & Int32(MSG_CTRUNC) != 0 {
            let n = received.count
            received.closeAll()
            throw .controlTruncated(received: n)
        }
        return SocketReceipt(bytes: Array(data.bytes[..<count]), descriptors: received)
    }

    /// The connected peer's pid, uid and gid (SO_PEERCRED).
    public func peerCredentials() throws(SocketError) -> PeerCredentials {
        // struct ucred: pid_t, uid_t, gid_t (three 32-bit fields). Glibc's
        // Swift module leaves it out (it needs _GNU_SOURCE).
        let buffer = Buffer(zeroed: 12)
        let length = try SocketCalls.getsockopt(descriptor, level: SOL_SOCKET, option: SO_PEERCRED, into: buffer.bytes)
        guard length == 12 else {
            throw .system(operation: "getsockopt(SO_PEERCRED) returned \(length) bytes", path: nil, errno: .invalidArgument)
        }
        let word = { (i: Int) in buffer.bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self) }
        return PeerCredentials(pid: Int32(bitPattern: word(0)), uid: word(1), gid: word(2))
    }
}

/// SCM_RIGHTS control messages, laid out as the CMSG_* macros do (which
/// Swift cannot call): a `cmsghdr`, then the data, each padded to the
/// alignment of `size_t`.
enum ControlMessage {
    static let alignment = MemoryLayout<Int>.size
    static func align(_ n: Int) -> Int { (n + alignment - 1) & ~(alignment - 1) }
    static let headerBytes = align(MemoryLayout<cmsghdr>.size)
    static let descriptorBytes = MemoryLayout<Int32>.size

    /// CMSG_SPACE for `descriptors` descriptors.
    static func space(descriptors: Int) -> Int { headerBytes + align(descriptors * descriptorBytes) }

    /// One SCM_RIGHTS message carrying `descriptors` (empty: no control data).
    static func rights(_ descriptors: [FileDescriptor]) -> [UInt8] {
        guard !descriptors.isEmpty else { return [] }
        var bytes = [UInt8](repeating: 0, count: space(descriptors: descriptors.count))
        bytes.withUnsafeMutableBytes { raw in
            var header = cmsghdr()
            header.cmsg_len = headerBytes + descriptors.count * descriptorBytes  // CMSG_LEN
            header.cmsg_level = SOL_SOCKET
            header.cmsg_type = Int32(SCM_RIGHTS)
            raw.storeBytes(of: header, as: cmsghdr.self)
            for (i, fd) in descriptors.enumerated() {
                raw.storeBytes(of: fd.rawValue, toByteOffset: headerBytes + i * descriptorBytes, as: Int32.self)
            }
        }
        return bytes
    }

    /// Every descriptor in the SCM_RIGHTS messages of `control`, walking it
    /// as CMSG_FIRSTHDR / CMSG_NXTHDR do and never reading past its end.
    static func descriptors(in raw: UnsafeRawBufferPointer) -> [FileDescriptor] {
        var found: [FileDescriptor] = []
        do {
            var offset = 0
            while offset + headerBytes <= raw.count {
                let header = raw.loadUnaligned(fromByteOffset: offset, as: cmsghdr.self)
                let length = Int(header.cmsg_len)
                guard length >= headerBytes, length <= raw.count - offset else { break }
                if header.cmsg_level == SOL_SOCKET && header.cmsg_type == Int32(SCM_RIGHTS) {
                    let n = (length - headerBytes) / descriptorBytes
                    for i in 0..<n {
                        let fd = raw.loadUnaligned(fromByteOffset: offset + headerBytes + i * descriptorBytes, as: Int32.self)
                        found.append(FileDescriptor(rawValue: fd))
                    }
                }
                offset += align(length)
            }
        }
        return found
    }
}

/// Heap memory for one system call's buffers, aligned for `cmsghdr`, freed with its owner.
struct Buffer: ~Copyable {
    let bytes: UnsafeMutableRawBufferPointer

    init(zeroed count: Int) {
        bytes = .allocate(byteCount: count, alignment: MemoryLayout<Int>.alignment)
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
    }

    init(copying source: [UInt8]) {
        bytes = .allocate(byteCount: max(1, source.count), alignment: MemoryLayout<Int>.alignment)
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
        source.withUnsafeBytes { bytes.copyMemory(from: $0) }
    }

    deinit { bytes.deallocate() }
}
