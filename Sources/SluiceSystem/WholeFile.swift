#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore

/// Reads a file (a pattern list, a checksum list, a child's output) whole,
/// or standard input for "-", or throws naming it; `what` names the file in errors.
public func readWholeFile(_ path: String, what: String) throws(PipelineError) -> [UInt8] {
    let fd = path == "-" ? 0 : try openForReading(path, what: what)
    defer { if fd != 0 { close(fd) } }
    return try readToEnd(fd: fd, path: path, what: what)
}

/// `readWholeFile` for a path given as raw bytes (a command-line word,
/// which need not be UTF-8); `-` is standard input.
public func readWholeFile(rawPath: [UInt8], what: String) throws(PipelineError) -> [UInt8] {
    let path = String(decoding: rawPath, as: UTF8.self)
    guard rawPath != [UInt8(ascii: "-")] else { return try readWholeFile("-", what: what) }
    let fd = (rawPath.map { CChar(bitPattern: $0) } + [0]).withUnsafeBufferPointer { open($0.baseAddress!, O_RDONLY | O_CLOEXEC) }
    guard fd >= 0 else {
        let e = errno
        throw .io(IOFailure(operation: "open \(what)", path: path, errno: e))
    }
    defer { close(fd) }
    return try readToEnd(fd: fd, path: path, what: what)
}

/// The first `limit` bytes of a file (all of it when shorter), or throws
/// naming it; `what` names the file in errors.
public func readFilePrefix(_ path: String, limit: Int, what: String) throws(PipelineError) -> [UInt8] {
    let fd = try openForReading(path, what: what)
    defer { close(fd) }
    return try readToEnd(fd: fd, path: path, what: what, limit: limit)
}

/// `open(path, O_RDONLY)`, or the error naming the file as `what`.
private func openForReading(_ path: String, what: String) throws(PipelineError) -> Int32 {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
        let e = errno
        throw .io(IOFailure(operation: "open \(what)", path: path, errno: e))
    }
    return fd
}

/// Every byte left in `fd`, or the first `limit`; `path` and `what` name it in errors.
private func readToEnd(fd: Int32, path: String, what: String, limit: Int = .max) throws(PipelineError) -> [UInt8] {
    var out: [UInt8] = []
    // A prefix of a known small size is read into one allocation; a large limit is only a bound.
    if limit <= 1 << 20 { out.reserveCapacity(limit) }
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while out.count < limit {
        let want = min(buffer.count, limit - out.count)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, want) }
        if n < 0 {
            if errno == EINTR { continue }
            let e = errno
            throw .io(IOFailure(operation: "read \(what)", path: path, errno: e))
        }
        if n == 0 { return out }
        out += buffer[0..<n]
    }
    return out
}
