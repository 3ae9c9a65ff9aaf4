#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore

/// Reads a file (a pattern list, a checksum list, a child's output) whole,
/// or standard input for "-", or throws naming it; `what` names the file in errors.
public func readWholeFile(_ path: String, what: String) throws(PipelineError) -> [UInt8] {
    let fd = path == "-" ? 0 : open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
        let e = errno
        throw .io(IOFailure(operation: "open \(what)", path: path, errno: e, reason: String(cString: strerror(e))))
    }
    defer { if fd != 0 { close(fd) } }
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            let e = errno
            throw .io(IOFailure(operation: "read \(what)", path: path, errno: e, reason: String(cString: strerror(e))))
        }
        if n == 0 { return out }
        out += buffer[0..<n]
    }
}
