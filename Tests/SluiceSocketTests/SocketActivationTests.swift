#if canImport(Glibc)
import Glibc
#endif
import SluiceSocket
import SystemPackage
import Testing

/// systemd socket activation: the environment parser against the
/// `sd_listen_fds` rules, and the check of the passed descriptor against
/// sockets of each kind made here.
@Suite struct SocketActivationTests {
    typealias Decision = SocketActivation.Decision

    func decide(_ environment: [String: String], pid: Int32 = 4242) -> Result<Decision, SocketActivationError> {
        Result { () throws(SocketActivationError) -> Decision in try SocketActivation.decide(environment: environment, pid: pid) }
    }

    @Test func oneDescriptorForThisProcessIsActivated() {
        #expect(decide(["LISTEN_PID": "4242", "LISTEN_FDS": "1"]) == .success(.activated(descriptor: 3, name: nil)))
        #expect(
            decide(["LISTEN_PID": "4242", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "sluice.socket"])
                == .success(.activated(descriptor: 3, name: "sluice.socket")))
        // An empty name is no name.
        #expect(decide(["LISTEN_PID": "4242", "LISTEN_FDS": "1", "LISTEN_FDNAMES": ""]) == .success(.activated(descriptor: 3, name: nil)))
        #expect(decide(["LISTEN_PID": "2147483647", "LISTEN_FDS": "1"], pid: Int32.max) == .success(.activated(descriptor: 3, name: nil)))
    }

    /// As `sd_listen_fds` reports 0: no LISTEN_PID, or another process's.
    @Test func anotherProcessOrNoPIDIsNotActivated() throws {
        guard case .success(.notActivated(let none)) = decide([:]) else { Issue.record("activated without variables"); return }
        #expect(none.contains("LISTEN_PID is not set"))
        guard case .success(.notActivated(let stray)) = decide(["LISTEN_FDS": "1"]) else { Issue.record("activated without LISTEN_PID"); return }
        #expect(stray.contains("LISTEN_FDS without it is ignored"))
        // A child that inherited its parent's variables must not take the parent's socket.
        guard case .success(.notActivated(let other)) = decide(["LISTEN_PID": "4241", "LISTEN_FDS": "1"]) else {
            Issue.record("activated for another pid"); return
        }
        #expect(other.contains("LISTEN_PID=4241") && other.contains("4242"))
        // Garbage in LISTEN_FDS does not matter when the variables are not ours.
        #expect(decide(["LISTEN_PID": "1", "LISTEN_FDS": "x"]).isNotActivated)
    }

    @Test func aBadPIDIsAnError() {
        for text in ["", "abc", "-5", "0", "+4242", " 4242", "4242 ", "42.0", "99999999999", "0x10"] {
            #expect(decide(["LISTEN_PID": text, "LISTEN_FDS": "1"]) == .failure(.badPID(text)), "\(text)")
        }
    }

    @Test func notExactlyOneDescriptorIsAnError() {
        let pid = ["LISTEN_PID": "4242"]
        #expect(decide(pid) == .failure(.noDescriptors))
        #expect(decide(pid.merging(["LISTEN_FDS": "0"]) { $1 }) == .failure(.noDescriptors))
        #expect(decide(pid.merging(["LISTEN_FDS": "2"]) { $1 }) == .failure(.tooManyDescriptors(2)))
        #expect(decide(pid.merging(["LISTEN_FDS": "1000000"]) { $1 }) == .failure(.tooManyDescriptors(1_000_000)))
        for garbage in ["", "one", "-1", "1x", " 1", "0x1", "99999999999999999999"] {
            #expect(decide(pid.merging(["LISTEN_FDS": garbage]) { $1 }) == .failure(.badCount(garbage)), "\(garbage)")
        }
        #expect(SocketActivationError.tooManyDescriptors(2).message.contains("exactly one"))
    }

    @Test func namesMustMatchTheCount() {
        let base = ["LISTEN_PID": "4242", "LISTEN_FDS": "1"]
        #expect(decide(base.merging(["LISTEN_FDNAMES": "a:b"]) { $1 }) == .failure(.namesMismatch(names: "a:b", descriptors: 1)))
        #expect(decide(base.merging(["LISTEN_FDNAMES": ":"]) { $1 }) == .failure(.namesMismatch(names: ":", descriptors: 1)))
    }

    /// What the check says about each kind of descriptor: only a listening
    /// AF_UNIX stream socket passes, with the path it is bound to.
    @Test func theDescriptorIsChecked() throws {
        let dir = "/tmp/sluice-activation-\(getpid())"
        mkdir(dir, 0o700)
        defer {
            unlink(dir + "/l.sock")
            unlink(dir + "/n.sock")
            unlink(dir + "/d.sock")
            unlink(dir + "/f")
            rmdir(dir)
        }
        let listening = try unixSocket(SOCK_STREAM, bindTo: dir + "/l.sock", listen: true)
        defer { close(listening) }
        let good = try ActivatedSocket.inspect(FileDescriptor(rawValue: listening), name: "x.socket")
        #expect(good.path == FilePath(dir + "/l.sock") && good.name == "x.socket")
        #expect(fcntl(listening, F_GETFD) & FD_CLOEXEC != 0)
        #expect(good.isBound(to: FilePath(dir + "/l.sock")) && good.isBound(to: FilePath(dir + "/./l.sock")))
        #expect(!good.isBound(to: FilePath(dir + "/other.sock")))

        let bound = try unixSocket(SOCK_STREAM, bindTo: dir + "/n.sock", listen: false)
        defer { close(bound) }
        #expect(inspect(bound) == .notListening(descriptor: bound, path: FilePath(dir + "/n.sock")))

        let datagram = try unixSocket(SOCK_DGRAM, bindTo: dir + "/d.sock", listen: false)
        defer { close(datagram) }
        #expect(inspect(datagram) == .wrongType(descriptor: datagram, type: Int32(SOCK_DGRAM.rawValue)))

        let inet = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(inet) }
        #expect(inspect(inet) == .wrongFamily(descriptor: inet, family: AF_INET))

        let file = open(dir + "/f", O_RDWR | O_CREAT, 0o600)
        defer { close(file) }
        try #require(file >= 0)
        #expect(inspect(file) == .notASocket(descriptor: file, found: "a regular file"))

        var pipeEnds: [Int32] = [-1, -1]
        try #require(pipe(&pipeEnds) == 0)
        defer { pipeEnds.forEach { close($0) } }
        #expect(inspect(pipeEnds[0]) == .notASocket(descriptor: pipeEnds[0], found: "a pipe or FIFO"))

        // A descriptor number nothing is open on.
        #expect(inspect(987) == .notASocket(descriptor: 987, found: "no open descriptor"))

        // An abstract socket has no path.
        let abstract = try unixSocket(SOCK_STREAM, bindTo: "\0sluice-activation-\(getpid())", listen: true)
        defer { close(abstract) }
        #expect(try ActivatedSocket.inspect(FileDescriptor(rawValue: abstract), name: nil).path == nil)
    }

    func inspect(_ fd: Int32) -> SocketActivationError? {
        do {
            _ = try ActivatedSocket.inspect(FileDescriptor(rawValue: fd), name: nil)
            return nil
        } catch {
            return error
        }
    }

    /// An AF_UNIX socket of `type` bound to `path` (a leading NUL: the abstract namespace).
    func unixSocket(_ type: __socket_type, bindTo path: String, listen shouldListen: Bool) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(type.rawValue), 0)
        try #require(fd >= 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (bytes.first == 0 ? 0 : 1))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        try #require(bound == 0, "bind \(path): errno \(errno)")
        if shouldListen { try #require(listen(fd, 4) == 0) }
        return fd
    }
}

extension Result<SocketActivation.Decision, SocketActivationError> {
    var isNotActivated: Bool {
        if case .success(.notActivated) = self { return true }
        return false
    }
}
