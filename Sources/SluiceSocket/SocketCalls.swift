#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SystemPackage

/// Every system call the socket layer makes, each wrapped once: retried on
/// EINTR, and a failure thrown as `SocketError.system` naming the call and
/// the path. (swift-nio's NIOPosix/System.swift is the model.)
enum SocketCalls {
    /// Runs `body` until it does not fail with EINTR; -1 becomes `SocketError.system`.
    @inline(__always)
    static func retrying<T: FixedWidthInteger>(
        _ operation: String, path: FilePath? = nil, _ body: () -> T
    ) throws(SocketError) -> T {
        while true {
            let result = body()
            if result != -1 { return result }
            let code = Glibc.errno
            if code == EINTR { continue }
            throw .system(operation: operation, path: path, errno: Errno(rawValue: code))
        }
    }

    static func socket() throws(SocketError) -> FileDescriptor {
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        return FileDescriptor(rawValue: try retrying("socket") { Glibc.socket(AF_UNIX, type, 0) })
    }

    static func socketPair() throws(SocketError) -> (FileDescriptor, FileDescriptor) {
        var fds: [Int32] = [-1, -1]
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        _ = try retrying("socketpair") { Glibc.socketpair(AF_UNIX, type, 0, &fds) }
        return (FileDescriptor(rawValue: fds[0]), FileDescriptor(rawValue: fds[1]))
    }

    static func bind(_ fd: FileDescriptor, _ address: UnixAddress) throws(SocketError) {
        _ = try retrying("bind", path: address.path) {
            address.withSockaddr { Glibc.bind(fd.rawValue, $0, $1) }
        }
    }

    static func listen(_ fd: FileDescriptor, backlog: Int32, path: FilePath?) throws(SocketError) {
        _ = try retrying("listen", path: path) { Glibc.listen(fd.rawValue, backlog) }
    }

    /// accept(2), then FD_CLOEXEC: Glibc's Swift module has no accept4.
    /// Between the two a concurrent fork+exec could inherit the descriptor;
    /// the server starts no processes, so the window is harmless there.
    static func accept(_ fd: FileDescriptor, path: FilePath?) throws(SocketError) -> FileDescriptor {
        let accepted = FileDescriptor(rawValue: try retrying("accept", path: path) { Glibc.accept(fd.rawValue, nil, nil) })
        do {
            try setCloseOnExec(accepted, path: path)
        } catch {
            close(accepted)
            throw error
        }
        return accepted
    }

    static func connect(_ fd: FileDescriptor, _ address: UnixAddress) throws(SocketError) {
        _ = try retrying("connect", path: address.path) {
            address.withSockaddr { Glibc.connect(fd.rawValue, $0, $1) }
        }
    }

    static func sendmsg(_ fd: FileDescriptor, _ message: UnsafePointer<msghdr>) throws(SocketError) -> Int {
        try retrying("sendmsg") { Glibc.sendmsg(fd.rawValue, message, Int32(MSG_NOSIGNAL)) }
    }

    static func recvmsg(_ fd: FileDescriptor, _ message: UnsafeMutablePointer<msghdr>) throws(SocketError) -> Int {
        try retrying("recvmsg") { Glibc.recvmsg(fd.rawValue, message, Int32(MSG_CMSG_CLOEXEC)) }
    }

    static func getsockopt(
        _ fd: FileDescriptor, level: Int32, option: Int32, into buffer: UnsafeMutableRawBufferPointer
    ) throws(SocketError) -> Int {
        var length = socklen_t(buffer.count)
        _ = try retrying("getsockopt") { Glibc.getsockopt(fd.rawValue, level, option, buffer.baseAddress, &length) }
        return Int(length)
    }

    /// lstat(2): the file's type bits, device and inode; nil when nothing is at the path.
    static func lstat(_ path: FilePath) throws(SocketError) -> FileIdentity? {
        let st: Stat
        do { st = try path.stat(followTargetSymlink: false) } catch {
            if error == .noSuchFileOrDirectory { return nil }
            throw .system(operation: "lstat", path: path, errno: error)
        }
        return FileIdentity(mode: st.mode.rawValue, device: UInt64(st.deviceID.rawValue), inode: UInt64(st.inode.rawValue))
    }

    static func chmod(_ path: FilePath, _ mode: mode_t) throws(SocketError) {
        _ = try retrying("chmod", path: path) { path.withPlatformString { Glibc.chmod($0, mode) } }
    }

    static func link(_ from: FilePath, _ to: FilePath) throws(SocketError) {
        _ = try retrying("link", path: to) {
            from.withPlatformString { f in to.withPlatformString { Glibc.link(f, $0) } }
        }
    }

    static func unlink(_ path: FilePath) throws(SocketError) {
        _ = try retrying("unlink", path: path) { path.withPlatformString { Glibc.unlink($0) } }
    }

    static func rmdir(_ path: FilePath) throws(SocketError) {
        _ = try retrying("rmdir", path: path) { path.withPlatformString { Glibc.rmdir($0) } }
    }

    /// mkdtemp(3): a new directory of mode 0700 named from `template` (ending in XXXXXX).
    static func makeTemporaryDirectory(_ template: FilePath) throws(SocketError) -> FilePath {
        var bytes = template.withPlatformString { p in Array(UnsafeBufferPointer(start: p, count: strlen(p) + 1)) }
        let made = bytes.withUnsafeMutableBufferPointer { Glibc.mkdtemp($0.baseAddress!) != nil }
        guard made else { throw .system(operation: "mkdtemp", path: template, errno: Errno(rawValue: Glibc.errno)) }
        return bytes.withUnsafeBufferPointer { FilePath(platformString: $0.baseAddress!) }
    }

    /// close(2), once: on Linux the descriptor is gone even when close reports
    /// an error (retrying could close a descriptor another thread just got),
    /// and nothing can be done about one on a socket or a received file.
    static func close(_ fd: FileDescriptor) {
        _ = Glibc.close(fd.rawValue)
    }
}

/// What lstat(2) says about the file at a path.
struct FileIdentity: Hashable {
    var mode: mode_t
    var device: UInt64
    var inode: UInt64

    var isSocket: Bool { mode & S_IFMT == S_IFSOCK }
}
