#if canImport(Glibc)
import Glibc
#endif
import SluiceCore
import SluiceSocket
import SluiceWire
import SystemPackage
import Testing

/// A new private directory under /tmp, removed with what the test names in it.
struct ScratchDirectory: ~Copyable {
    let path: FilePath

    init() {
        var template = Array("/tmp/sluice-socket-test.XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) != nil }
        precondition(made, "mkdtemp failed")
        path = template.withUnsafeBufferPointer { FilePath(platformString: $0.baseAddress!) }
    }

    /// The entries in the directory, sorted.
    func entries() -> [String] {
        guard let dir = opendir(path.string) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    deinit {
        for name in entries() { _ = unlink(path.appending(name).string) }
        _ = rmdir(path.string)
    }
}

/// lstat's mode of `path`, or nil when nothing is there.
func mode(_ path: FilePath) -> mode_t? {
    var st = stat()
    return lstat(path.string, &st) == 0 ? st.st_mode : nil
}

/// Whether every write end of the pipe whose read end is `read` is closed:
/// a non-blocking read then gives end of file (0) rather than EAGAIN. The
/// oracle for "no received descriptor leaked", whatever numbers they had.
func allWritersClosed(_ read: FileDescriptor) -> Bool {
    _ = fcntl(read.rawValue, F_SETFL, fcntl(read.rawValue, F_GETFL) | O_NONBLOCK)
    var byte: UInt8 = 0
    while true {
        let n = Glibc.read(read.rawValue, &byte, 1)
        if n == 0 { return true }
        if n < 0 { return false }
    }
}

/// A socket bound at `path` and closed without unlinking: what a server that died leaves.
func leaveStaleSocket(at path: FilePath) {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.string.utf8)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        for (i, b) in bytes.enumerated() { raw[i] = b }
    }
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    precondition(bound == 0 && listen(fd, 1) == 0)
    close(fd)
}

@Suite("SluiceSocket: descriptors, credentials, frames")
struct SocketTests {
    @Test("a pipe's read end and a temporary file pass through a socket and read as the originals")
    func passDescriptors() throws {
        let scratch = ScratchDirectory()
        let file = try FileDescriptor.open(
            scratch.path.appending("data"), .readWrite, options: [.create, .truncate], permissions: .ownerReadWrite)
        defer { try? file.close() }
        _ = try file.writeAll(Array("file contents".utf8))
        let pipe = try FileDescriptor.pipe()
        defer {
            try? pipe.readEnd.close()
            try? pipe.writeEnd.close()
        }

        let pair = try UnixSocket.pair()
        let frame = try WireCodec.encode(.files(FileBatch(request: 1, paths: ["<pipe>", "data"])))
        try pair.first.send(frame, descriptors: [pipe.readEnd, file])
        let receipt = try pair.second.receive()
        #expect(receipt.bytes == frame)
        #expect(receipt.descriptors.count == 2)
        guard case .message(.files(let batch), _) = try WireCodec.decode(receipt.bytes) else {
            Issue.record("not a files batch")
            return
        }
        // Each entry's descriptor index names its descriptor in the receipt.
        let pipeCopy = receipt.descriptors.take(Int(batch.files[0].descriptor))!
        let fileCopy = receipt.descriptors.take(Int(batch.files[1].descriptor))!
        #expect(receipt.descriptors.take(0) == nil && receipt.descriptors.remaining == 0)
        #expect(pipeCopy.descriptor != pipe.readEnd && fileCopy.descriptor != file)
        // Received with MSG_CMSG_CLOEXEC.
        #expect(fcntl(pipeCopy.descriptor.rawValue, F_GETFD) & FD_CLOEXEC != 0)

        _ = try pipe.writeEnd.writeAll(Array("through the pipe".utf8))
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = try buffer.withUnsafeMutableBytes { try pipeCopy.descriptor.read(into: $0) }
        #expect(Array(buffer[..<n]) == Array("through the pipe".utf8))
        let m = try buffer.withUnsafeMutableBytes { try fileCopy.descriptor.read(fromAbsoluteOffset: 5, into: $0) }
        #expect(Array(buffer[..<m]) == Array("contents".utf8))
    }

    @Test("253 descriptors in one message arrive and are closed with their batch; 254 are refused before sending")
    func maximumDescriptors() throws {
        let pipe = try FileDescriptor.pipe()
        defer { try? pipe.readEnd.close() }
        let pair = try UnixSocket.pair()
        #expect(throws: SocketError.tooManyDescriptors(count: 254, maximum: 253)) {
            try pair.first.send([1], descriptors: Array(repeating: pipe.writeEnd, count: 254))
        }
        try pair.first.send(Array(repeating: 7, count: 100), descriptors: Array(repeating: pipe.writeEnd, count: 253))
        try pipe.writeEnd.close()
        do {
            let receipt = try pair.second.receive()
            #expect(receipt.bytes == Array(repeating: 7, count: 100))
            #expect(receipt.descriptors.count == 253)
            for i in [0, 126, 252] {
                let copy = receipt.descriptors.take(i)!
                _ = try copy.descriptor.writeAll([UInt8(i % 250)])
            }
            #expect(receipt.descriptors.remaining == 250)
            var three = [UInt8](repeating: 0, count: 3)
            _ = try three.withUnsafeMutableBytes { try pipe.readEnd.read(into: $0) }
            #expect(three == [0, 126, 2])
            #expect(!allWritersClosed(pipe.readEnd))
        }
        // The batch is gone: end of file, so all 253 copies were closed.
        #expect(allWritersClosed(pipe.readEnd))
    }

    @Test("more descriptors than the receive has room for: MSG_CTRUNC is an error and the ones that arrived are closed")
    func truncatedControl() throws {
        let pipe = try FileDescriptor.pipe()
        defer { try? pipe.readEnd.close() }
        let pair = try UnixSocket.pair()
        try pair.first.send([1, 2, 3], descriptors: Array(repeating: pipe.writeEnd, count: 5))
        try pipe.writeEnd.close()
        #expect(throws: SocketError.controlTruncated(received: 2)) { try pair.second.receive(maxDescriptors: 2) }
        #expect(allWritersClosed(pipe.readEnd))
    }

    @Test("peer credentials are this process's pid, uid and gid, on a pair and on an accepted connection")
    func credentials() throws {
        let me = PeerCredentials(pid: getpid(), uid: getuid(), gid: getgid())
        let pair = try UnixSocket.pair()
        #expect(try pair.first.peerCredentials() == me)
        #expect(try pair.second.peerCredentials() == me)
        let scratch = ScratchDirectory()
        let listener = try UnixListener(binding: scratch.path.appending("s.sock"))
        let client = try UnixSocket.connect(to: scratch.path.appending("s.sock"))
        let server = try listener.accept()
        #expect(try server.peerCredentials() == me)
        #expect(try client.peerCredentials() == me)
        #expect(fcntl(server.descriptor.rawValue, F_GETFD) & FD_CLOEXEC != 0)
        // And a frame goes both ways.
        let hello = try WireCodec.encode(.hello(Hello(client: "test")))
        try client.send(hello)
        #expect(try server.receive().bytes == hello)
    }

    @Test("the peer closing mid-frame reads as end of stream, which the decoder reports as a cut frame")
    func closeMidFrame() throws {
        let pair = try UnixSocket.pair()
        let frame = try WireCodec.encode(.hello(Hello(client: "a client that stops half way")))
        try pair.first.send(Array(frame[..<20]))
        pair.first.close()
        var decoder = WireFrameDecoder()
        var sawEnd = false
        while !sawEnd {
            let receipt = try pair.second.receive()
            sawEnd = receipt.isEndOfStream
            decoder.append(receipt.bytes)
            #expect(try decoder.next() == nil)
        }
        #expect(throws: WireError.endOfStreamInFrame(bufferedBytes: 20)) { try decoder.finish() }
        // Once ended, it stays ended.
        #expect(try pair.second.receive().isEndOfStream)
    }

    @Test("a frame larger than one receive is reassembled from small receives")
    func largeFrame() throws {
        let pair = try UnixSocket.pair()
        let literals = (0..<2000).map { i in Array("literal-\(i)".utf8) }
        let message = WireMessage.request(WireRequest(id: 3, fileCount: 0, operation: .scan(ScanParameters(literals: literals))))
        let frame = try WireCodec.encode(message)
        #expect(frame.count > 20_000)
        try pair.first.send(frame)
        var decoder = WireFrameDecoder()
        var receives = 0
        var got: WireMessage?
        while got == nil {
            decoder.append(try pair.second.receive(maxBytes: 4096).bytes)
            receives += 1
            got = try decoder.next()
        }
        #expect(got == message)
        #expect(receives >= frame.count / 4096)
    }
}

@Suite("SluiceSocket: the listener's path")
struct ListenerTests {
    @Test("the socket file is a socket of mode 0600, the private staging directory is gone, and close removes the file")
    func modeAndCleanup() throws {
        let scratch = ScratchDirectory()
        let path = scratch.path.appending("sluice.sock")
        let listener = try UnixListener(binding: path)
        #expect(mode(path).map { $0 & S_IFMT } == S_IFSOCK)
        #expect(mode(path).map { $0 & 0o7777 } == 0o600)
        #expect(scratch.entries() == ["sluice.sock"])
        _ = try UnixSocket.connect(to: path)
        listener.close()
        #expect(mode(path) == nil)
        #expect(throws: SocketError.system(operation: "connect", path: path, errno: .noSuchFileOrDirectory)) {
            _ = try UnixSocket.connect(to: path)
        }
    }

    @Test("a stale socket is replaced; a live one is refused; a regular file is left alone")
    func existingPaths() throws {
        let scratch = ScratchDirectory()
        let path = scratch.path.appending("sluice.sock")
        leaveStaleSocket(at: path)
        #expect(throws: SocketError.system(operation: "connect", path: path, errno: .connectionRefused)) {
            _ = try UnixSocket.connect(to: path)
        }
        let listener = try UnixListener(binding: path)
        _ = try UnixSocket.connect(to: path)
        #expect(mode(path).map { $0 & 0o7777 } == 0o600)

        #expect(throws: SocketError.serverRunning(path: path)) { _ = try UnixListener(binding: path) }
        #expect(SocketError.serverRunning(path: path).message == "a server is already running at \(path)")
        // The refused attempt left the live server's socket and nothing else.
        #expect(scratch.entries() == ["sluice.sock"])
        _ = try UnixSocket.connect(to: path)
        _ = listener

        let file = scratch.path.appending("file")
        let fd = try FileDescriptor.open(file, .writeOnly, options: [.create], permissions: .ownerReadWrite)
        _ = try fd.writeAll([1, 2, 3])
        try fd.close()
        #expect(throws: SocketError.notASocket(path: file)) { _ = try UnixListener(binding: file) }
        #expect(mode(file).map { $0 & S_IFMT } == S_IFREG)
        #expect(scratch.entries() == ["file", "sluice.sock"])
    }

    @Test("closing a listener whose path was taken over by another leaves the other's socket")
    func closeLeavesReplacement() throws {
        let scratch = ScratchDirectory()
        let path = scratch.path.appending("sluice.sock")
        let first = try UnixListener(binding: path)
        _ = unlink(path.string)
        let second = try UnixListener(binding: path)
        first.close()
        _ = try UnixSocket.connect(to: path)
        _ = second
    }

    @Test("a path longer than sockaddr_un holds is refused by name")
    func longPath() {
        let path = FilePath("/tmp/" + String(repeating: "x", count: 120))
        #expect(throws: SocketError.pathTooLong(path: path, bytes: 125, maximum: 107)) { _ = try UnixListener(binding: path) }
        #expect(throws: SocketError.pathTooLong(path: path, bytes: 125, maximum: 107)) { _ = try UnixSocket.connect(to: path) }
    }

    @Test("the default path: $XDG_RUNTIME_DIR/sluice.sock when it is absolute, else /tmp/sluice-UID.sock")
    func defaultPath() {
        #expect(ServerSocketPath.defaultPath(environment: ["XDG_RUNTIME_DIR": "/run/user/1000"], uid: 1000) == "/run/user/1000/sluice.sock")
        #expect(ServerSocketPath.defaultPath(environment: ["XDG_RUNTIME_DIR": "/run/user/1000/"], uid: 1000) == "/run/user/1000/sluice.sock")
        #expect(ServerSocketPath.defaultPath(environment: [:], uid: 1000) == "/tmp/sluice-1000.sock")
        #expect(ServerSocketPath.defaultPath(environment: ["XDG_RUNTIME_DIR": ""], uid: 0) == "/tmp/sluice-0.sock")
        #expect(ServerSocketPath.defaultPath(environment: ["XDG_RUNTIME_DIR": "run/user"], uid: 42) == "/tmp/sluice-42.sock")
        #expect(ServerSocketPath.defaultPath(environment: ["HOME": "/root"], uid: 4_294_967_294) == "/tmp/sluice-4294967294.sock")
    }
}
