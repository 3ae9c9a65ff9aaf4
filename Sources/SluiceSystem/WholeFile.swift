#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SystemPackage

// The one reader of small files: pattern and checksum lists, a child's
// output, /proc and /sys files, the cost model and the cache's files.

/// Reads a file (a pattern list, a checksum list, a child's output) whole,
/// or standard input for "-", or throws naming it; `what` names the file in errors.
public func readWholeFile(_ path: String, what: String) throws(PipelineError) -> [UInt8] {
    try readWholeFile(rawPath: Array(path.utf8), what: what)
}

/// `readWholeFile` for a path given as raw bytes (a command-line word,
/// which need not be UTF-8); `-` is standard input.
public func readWholeFile(rawPath: [UInt8], what: String) throws(PipelineError) -> [UInt8] {
    let path = String(decoding: rawPath, as: UTF8.self)
    let fd = rawPath == [UInt8(ascii: "-")] ? 0 : try openForReading(rawPath, what: what)
    defer { if fd != 0 { close(fd) } }
    return try readToEnd(fd: fd, path: path, what: what, size: regularFileSize(fd))
}

/// The first `limit` bytes of a file (all of it when shorter), or throws
/// naming it; `what` names the file in errors.
public func readFilePrefix(_ path: String, limit: Int, what: String) throws(PipelineError) -> [UInt8] {
    let fd = try openForReading(Array(path.utf8), what: what)
    defer { close(fd) }
    return try readToEnd(fd: fd, path: path, what: what, limit: limit, size: regularFileSize(fd))
}

/// A whole file of at most `limit` bytes, or throws naming it: EFBIG where
/// it is larger (told by its size before anything is read, or by reading
/// past the limit where the size is not known).
package func readWholeFile(_ path: String, atMost limit: Int, what: String) throws(PipelineError) -> [UInt8] {
    let fd = try openForReading(Array(path.utf8), what: what)
    defer { close(fd) }
    let size = regularFileSize(fd)
    if let size, size > limit {
        throw .io(IOFailure(operation: "read \(what)", path: path, length: size, errno: EFBIG))
    }
    let bytes = try readToEnd(fd: fd, path: path, what: what, limit: limit + 1, size: size)
    guard bytes.count <= limit else {
        throw .io(IOFailure(operation: "read \(what)", path: path, length: bytes.count, errno: EFBIG))
    }
    return bytes
}

/// `open(path, O_RDONLY)`, or the error naming the file as `what`.
private func openForReading(_ rawPath: [UInt8], what: String) throws(PipelineError) -> Int32 {
    let fd = RawPath(bytes: rawPath).withCString { open($0, O_RDONLY | O_CLOEXEC) }
    guard fd >= 0 else {
        let e = errno
        throw .io(IOFailure(operation: "open \(what)", path: String(decoding: rawPath, as: UTF8.self), errno: e))
    }
    return fd
}

/// The size fstat(2) gives a regular file, nil for anything else (a pipe,
/// a terminal, procfs and sysfs files whose size says 0 or 4096 whatever they hold).
private func regularFileSize(_ fd: Int32) -> Int? {
    guard let info = try? FileDescriptor(rawValue: fd).stat(), info.type == .regular, info.size > 0 else { return nil }
    return Int(info.size)
}

/// Every byte left in `fd`, or the first `limit`; `path` and `what` name it
/// in errors. A regular file's bytes go into one allocation: `size` is its
/// size (`regularFileSize`), nil for a stream or a procfs file.
private func readToEnd(fd: Int32, path: String, what: String, limit: Int = .max, size: Int?) throws(PipelineError) -> [UInt8] {
    var out: [UInt8] = []
    if let size { out.reserveCapacity(min(size, limit)) }
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

/// A small text file (procfs, sysfs, a configuration) whole, at most
/// `limit` bytes of it, or nil where it cannot be opened or read.
package func readSmallTextFile(_ path: String, limit: Int = 4 << 20) -> String? {
    (try? readFilePrefix(path, limit: limit, what: "file")).map { String(decoding: $0, as: UTF8.self) }
}

/// The first line of a small file (a sysfs or procfs value) without its
/// newline, or nil where the file cannot be read or is empty.
package func readFirstLine(_ path: String, limit: Int = 4096) -> String? {
    guard let bytes = try? readFilePrefix(path, limit: limit, what: "file"), !bytes.isEmpty else { return nil }
    return String(decoding: bytes.prefix { $0 != 0x0A }, as: UTF8.self)
}
