#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceSystem
import SystemPackage

/// Opens `path` read-only (close-on-exec) for ingest, optionally with O_DIRECT.
///
/// Direct I/O bypasses the page cache, so a scan of a large file neither
/// evicts everything else nor pays for a copy. It needs 512/4096-aligned
/// offsets, lengths and buffers, which the streams provide when offsets are
/// chunk-aligned. Filesystems without direct I/O refuse the open with EINVAL;
/// that becomes an error naming the file and suggesting a buffered read.
/// The caller owns the returned descriptor and closes it. A name with a
/// `SpooledInput` copy (a named stream) opens as that copy, buffered.
public func openForIngest(path: RawPath, direct: Bool) throws(PipelineError) -> FileDescriptor {
    if let copy = try SpooledInput.reopen(path) { return copy }
    var flags = O_RDONLY | O_CLOEXEC
    if direct {
        #if os(Linux)
        flags |= openDirectFlag
        #else
        throw .invalidConfiguration("direct I/O (O_DIRECT) is only available on Linux; read \(path.description) buffered")
        #endif
    }
    while true {
        let fd = path.withCString { open($0, flags) }
        if fd >= 0 { return FileDescriptor(rawValue: fd) }
        let code = errno
        if code == EINTR { continue }
        throw openFailure(path: path, direct: direct, errno: code)
    }
}

/// The error for a failed open; "direct" in the operation selects the
/// O_DIRECT hint of `PipelineError`.
func openFailure(path: RawPath, direct: Bool, errno code: Int32) -> PipelineError {
    var reason = SystemErrors.text(code)
    if direct && code == EINVAL {
        reason = "the filesystem refused O_DIRECT (\(reason)); open it with direct: false for a buffered read"
    }
    return .io(IOFailure(operation: direct ? "open (direct I/O)" : "open", path: path.description, errno: code, reason: reason))
}

/// Whether `fd` was opened with O_DIRECT.
public func isOpenForDirectIO(_ fd: FileDescriptor) -> Bool { isDirectIO(fd.rawValue) }
