#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SystemPackage

/// systemd socket activation: the listening socket a `.socket` unit made and
/// passed to the service it started (the `sd_listen_fds` protocol).
///
/// Written here rather than taken from libsystemd: no maintained Swift
/// package wraps it, linking libsystemd would add a system library to a
/// build that needs none, and the protocol is three environment variables.
/// LISTEN_PID names the process the descriptors are for (a child that
/// inherited the environment must not take them), LISTEN_FDS how many there
/// are, from descriptor 3 on, and LISTEN_FDNAMES (optional) their names,
/// separated by colons.
///
/// What Sluice asks of it: exactly one descriptor, a listening `AF_UNIX`
/// `SOCK_STREAM` socket. LISTEN_PID unset, or naming another process, means
/// not activated (the server binds its own socket, as `sd_listen_fds` would
/// report 0); LISTEN_PID naming this process with no descriptor, several, a
/// count that is not a number or names that do not match the count is an
/// error, since the unit and the server disagree about what was meant.
public enum SocketActivation {
    /// The first descriptor passed (`SD_LISTEN_FDS_START`).
    public static let firstDescriptor: Int32 = 3

    /// The environment variables of the protocol, unset once read.
    public static let variables = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"]

    /// What the environment says, before the descriptor is looked at.
    public enum Decision: Hashable, Sendable {
        /// Not started by socket activation, and why not (for a log line).
        case notActivated(reason: String)
        /// The listening socket is `descriptor`, named `name` where LISTEN_FDNAMES gave one.
        case activated(descriptor: Int32, name: String?)
    }

    /// Reads the protocol's variables from `environment` for the process
    /// `pid`; pure. Throws for an environment meant for this process that
    /// does not pass exactly one descriptor.
    public static func decide(environment: [String: String], pid: Int32) throws(SocketActivationError) -> Decision {
        guard let pidText = environment["LISTEN_PID"] else {
            let stray = environment["LISTEN_FDS"] != nil ? " (LISTEN_FDS without it is ignored)" : ""
            return .notActivated(reason: "LISTEN_PID is not set\(stray)")
        }
        guard let listenPID = decimal(pidText), listenPID > 0, listenPID <= Int(Int32.max) else { throw .badPID(pidText) }
        guard listenPID == Int(pid) else {
            return .notActivated(reason: "LISTEN_PID=\(pidText) is another process (this one is \(pid))")
        }
        guard let countText = environment["LISTEN_FDS"] else { throw .noDescriptors }
        guard let count = decimal(countText) else { throw .badCount(countText) }
        guard count > 0 else { throw .noDescriptors }
        guard count == 1 else { throw .tooManyDescriptors(count) }
        var name: String?
        if let names = environment["LISTEN_FDNAMES"] {
            let parts = names.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == count else { throw .namesMismatch(names: names, descriptors: count) }
            name = parts[0].isEmpty ? nil : String(parts[0])
        }
        return .activated(descriptor: firstDescriptor, name: name)
    }

    /// The listening socket this process was started with, or nil when it
    /// was not socket-activated. Reads the variables from the process's
    /// environment and unsets them (whatever they said, as
    /// `sd_listen_fds(1)` does, so that no child takes them for its own),
    /// checks the descriptor (`ActivatedSocket.inspect`) and marks it
    /// close-on-exec. Call it before any other thread starts (it changes
    /// the environment).
    public static func inheritedListener() throws(SocketActivationError) -> ActivatedSocket? {
        var environment: [String: String] = [:]
        for name in variables {
            if let value = getenv(name) { environment[name] = String(cString: value) }
        }
        for name in variables where environment[name] != nil { unsetenv(name) }
        switch try decide(environment: environment, pid: SocketCalls.processID) {
        case .notActivated:
            return nil
        case .activated(let descriptor, let name):
            return try ActivatedSocket.inspect(FileDescriptor(rawValue: descriptor), name: name)
        }
    }

    /// A non-negative decimal number with nothing else around it (as systemd parses them), or nil.
    static func decimal(_ text: String) -> Int? {
        guard !text.isEmpty, text.utf8.count <= 18, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(text)
    }
}

/// A listening socket passed by socket activation, checked to be one the
/// server can serve on: its descriptor, the path it is bound to and its name.
public struct ActivatedSocket: Hashable, Sendable {
    /// The listening socket (close-on-exec).
    public var descriptor: FileDescriptor
    /// The path it is bound to (getsockname: the name it was bound with,
    /// which is its path for a socket systemd made); nil for an abstract or
    /// unnamed socket.
    public var path: FilePath?
    /// Its name from LISTEN_FDNAMES (`FileDescriptorName=`, by default the socket unit's name).
    public var name: String?

    /// A socket with each field given (for tests; the server gets its one
    /// from `SocketActivation.inheritedListener`).
    public init(descriptor: FileDescriptor, path: FilePath?, name: String?) {
        self.descriptor = descriptor
        self.path = path
        self.name = name
    }

    /// Checks that `descriptor` is a listening `AF_UNIX` `SOCK_STREAM`
    /// socket (fstat, `SO_TYPE`, getsockname, `SO_ACCEPTCONN`), naming what
    /// it is otherwise, and marks it close-on-exec.
    public static func inspect(_ descriptor: FileDescriptor, name: String?) throws(SocketActivationError) -> ActivatedSocket {
        let fd = descriptor.rawValue
        let kind: FileKind?
        do {
            kind = try SocketCalls.fileKind(descriptor)
        } catch {
            throw .system(descriptor: fd, error)
        }
        guard let kind else { throw .notASocket(descriptor: fd, found: "no open descriptor") }
        guard kind == .socket else { throw .notASocket(descriptor: fd, found: kind.description) }
        let address: LocalAddress
        let type: Int32
        let listening: Int32
        do throws(SocketError) {
            try SocketCalls.setCloseOnExec(descriptor)
            address = try SocketCalls.localAddress(descriptor)
            type = try SocketCalls.integerOption(descriptor, level: SOL_SOCKET, option: SO_TYPE)
            listening = try SocketCalls.integerOption(descriptor, level: SOL_SOCKET, option: SO_ACCEPTCONN)
        } catch {
            throw .system(descriptor: fd, error)
        }
        guard address.family == AF_UNIX else { throw .wrongFamily(descriptor: fd, family: address.family) }
        guard type == Int32(SOCK_STREAM.rawValue) else { throw .wrongType(descriptor: fd, type: type) }
        guard listening != 0 else { throw .notListening(descriptor: fd, path: address.path) }
        return ActivatedSocket(descriptor: descriptor, path: address.path, name: name)
    }

    /// Whether `other` names this socket's file: the same path, or a path
    /// to the same file (a relative or symlinked spelling of it).
    public func isBound(to other: FilePath) -> Bool {
        guard let path else { return false }
        if path.lexicallyNormalized() == other.lexicallyNormalized() { return true }
        guard let mine = try? SocketCalls.followingStat(path), let theirs = try? SocketCalls.followingStat(other) else { return false }
        return mine == theirs
    }

    /// How log lines name it: its path (or "an unnamed socket"), the descriptor and the name.
    public var description: String {
        let place = path.map { "\($0)" } ?? "an unnamed or abstract socket"
        return "\(place) (socket activation: descriptor \(descriptor.rawValue)\(name.map { ", \($0)" } ?? ""))"
    }
}

/// Why the socket passed by socket activation cannot be served: a case to
/// switch on, naming the variable's value or the descriptor.
public enum SocketActivationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// LISTEN_PID is not a process id.
    case badPID(String)
    /// LISTEN_FDS is not a number.
    case badCount(String)
    /// LISTEN_PID names this process but no descriptor was passed (LISTEN_FDS unset or 0).
    case noDescriptors
    /// More than the one descriptor the server takes were passed.
    case tooManyDescriptors(Int)
    /// LISTEN_FDNAMES does not name as many descriptors as LISTEN_FDS counts.
    case namesMismatch(names: String, descriptors: Int)
    /// The descriptor is not a socket; `found` says what it is.
    case notASocket(descriptor: Int32, found: String)
    /// A socket of another address family than `AF_UNIX`.
    case wrongFamily(descriptor: Int32, family: Int32)
    /// A socket of another type than `SOCK_STREAM`.
    case wrongType(descriptor: Int32, type: Int32)
    /// A socket that does not listen (`SO_ACCEPTCONN` is 0).
    case notListening(descriptor: Int32, path: FilePath?)
    /// A system call on the descriptor failed.
    case system(descriptor: Int32, SocketError)

    /// The error in one line.
    public var message: String {
        switch self {
        case .badPID(let text):
            return "LISTEN_PID=\(text) is not a process id"
        case .badCount(let text):
            return "LISTEN_FDS=\(text) is not a number of descriptors"
        case .noDescriptors:
            return "LISTEN_PID names this process but LISTEN_FDS passes no descriptor"
        case .tooManyDescriptors(let n):
            return "LISTEN_FDS=\(n): sluice serve takes exactly one listening socket (one ListenStream= in the socket unit)"
        case .namesMismatch(let names, let n):
            return "LISTEN_FDNAMES=\(names) does not name the \(n) descriptor(s) LISTEN_FDS passes"
        case .notASocket(let fd, let found):
            return "descriptor \(fd) passed by socket activation is not a socket: \(found)"
        case .wrongFamily(let fd, let family):
            let name = family == AF_INET ? "AF_INET" : family == AF_INET6 ? "AF_INET6" : "address family \(family)"
            return "descriptor \(fd) passed by socket activation is an \(name) socket, not a Unix one (AF_UNIX; ListenStream= must be a path)"
        case .wrongType(let fd, let type):
            let name = type == Int32(SOCK_DGRAM.rawValue) ? "SOCK_DGRAM" : type == Int32(SOCK_SEQPACKET.rawValue) ? "SOCK_SEQPACKET" : "type \(type)"
            return "descriptor \(fd) passed by socket activation is a \(name) socket, not a stream (SOCK_STREAM; use ListenStream=)"
        case .notListening(let fd, let path):
            return "descriptor \(fd) passed by socket activation\(path.map { " (\($0))" } ?? "") is not listening (a connected socket? the socket unit must not set Accept=yes)"
        case .system(let fd, let error):
            return "descriptor \(fd) passed by socket activation: \(error.message)"
        }
    }

    /// The same text as `message`.
    public var description: String { message }
}

/// What kind of file a descriptor is open on (fstat's type bits).
enum FileKind: Hashable {
    case socket, regular, directory, pipe, characterDevice, blockDevice, symlink, other

    init(mode: mode_t) {
        switch mode & S_IFMT {
        case S_IFSOCK: self = .socket
        case S_IFREG: self = .regular
        case S_IFDIR: self = .directory
        case S_IFIFO: self = .pipe
        case S_IFCHR: self = .characterDevice
        case S_IFBLK: self = .blockDevice
        case S_IFLNK: self = .symlink
        default: self = .other
        }
    }

    var description: String {
        switch self {
        case .socket: return "a socket"
        case .regular: return "a regular file"
        case .directory: return "a directory"
        case .pipe: return "a pipe or FIFO"
        case .characterDevice: return "a character device"
        case .blockDevice: return "a block device"
        case .symlink: return "a symbolic link"
        case .other: return "a file of an unknown type"
        }
    }
}

/// A socket's own address (getsockname): its family and, for a Unix socket
/// bound to a path, the path.
struct LocalAddress {
    var family: Int32
    var path: FilePath?
}

extension SocketCalls {
    /// fstat(2)'s file type; nil when `fd` is not open (EBADF).
    static func fileKind(_ fd: FileDescriptor) throws(SocketError) -> FileKind? {
        var st = Glibc.stat()
        do {
            _ = try retrying("fstat") { Glibc.fstat(fd.rawValue, &st) }
        } catch {
            if error.errno == .badFileDescriptor { return nil }
            throw error
        }
        return FileKind(mode: st.st_mode)
    }

    /// fcntl(F_SETFD, FD_CLOEXEC): no child process inherits `fd`.
    static func setCloseOnExec(_ fd: FileDescriptor, path: FilePath? = nil) throws(SocketError) {
        _ = try retrying("fcntl(F_SETFD)", path: path) { Glibc.fcntl(fd.rawValue, F_SETFD, FD_CLOEXEC) }
    }

    /// An integer socket option (`SO_TYPE`, `SO_ACCEPTCONN`).
    static func integerOption(_ fd: FileDescriptor, level: Int32, option: Int32) throws(SocketError) -> Int32 {
        var value: Int32 = 0
        _ = try withUnsafeMutableBytes(of: &value) { (raw) throws(SocketError) -> Int in
            try getsockopt(fd, level: level, option: option, into: raw)
        }
        return value
    }

    /// getsockname(2): the family, and the path of a Unix socket bound to
    /// one (nil for an unnamed socket or one in the abstract namespace,
    /// whose name starts with a NUL).
    static func localAddress(_ fd: FileDescriptor) throws(SocketError) -> LocalAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try retrying("getsockname") {
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.getsockname(fd.rawValue, $0, &length) }
            }
        }
        let family = Int32(storage.ss_family)
        guard family == AF_UNIX else { return LocalAddress(family: family, path: nil) }
        let pathOffset = MemoryLayout<sa_family_t>.size
        let bytes = withUnsafeBytes(of: &storage) { raw in
            Array(raw[pathOffset..<min(Int(length), raw.count)].prefix { $0 != 0 })
        }
        let abstract = Int(length) > pathOffset && withUnsafeBytes(of: &storage) { $0[pathOffset] == 0 }
        guard !bytes.isEmpty, !abstract else { return LocalAddress(family: family, path: nil) }
        let text = bytes.map { CChar(bitPattern: $0) } + [0]
        return LocalAddress(family: family, path: text.withUnsafeBufferPointer { FilePath(platformString: $0.baseAddress!) })
    }

    /// stat(2) of a path, following links: the file's identity, nil when nothing is there.
    static func followingStat(_ path: FilePath) throws(SocketError) -> FileIdentity? {
        var st = Glibc.stat()
        do {
            _ = try retrying("stat", path: path) { path.withPlatformString { Glibc.fstatat(AT_FDCWD, $0, &st, 0) } }
        } catch {
            if error.errno == .noSuchFileOrDirectory { return nil }
            throw error
        }
        return FileIdentity(mode: st.st_mode, device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    /// This process's id.
    static var processID: Int32 { getpid() }
}
