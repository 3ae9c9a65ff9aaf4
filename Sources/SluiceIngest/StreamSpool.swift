#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import CSluiceSys
import SluiceCore
import SluiceSystem
import SystemPackage

/// Copies an input whose length is only known by reading it to its end
/// (standard input, a FIFO, a character device, a procfs or sysfs file)
/// into an unlinked temporary regular file, through a buffer of
/// `bufferBytes`: memory stays bounded whatever the input's length.
///
/// Why a file and not memory: every ingest path (io_uring, pread, the
/// small-file loader, cuFile) reads a regular file by offset, chunk after
/// chunk, often out of order and more than once (chunk overlap, recovery);
/// a copy on disk lets a stream go through that one path unchanged.
public enum StreamSpool {
    /// Bytes copied per read(2): what a copy holds in memory at most.
    public static let bufferBytes = 1 << 20

    /// Reads `fd` from where it stands to its end into a new temporary file
    /// and returns that file (read it by offset). `name` is the input as the
    /// user knows it, for errors. With `keepEmpty` false, an input that ends
    /// at once gives nil and no file is made. `shouldStop` is polled between
    /// reads (Ctrl-C while a long stream is copied).
    public static func copy(
        from fd: Int32, name: String, keepEmpty: Bool, shouldStop: () -> Bool = { false }
    ) throws(PipelineError) -> FileDescriptor? {
        // Aligned, so that a descriptor opened with O_DIRECT reads into it too.
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, ChunkLayout.alignment, bufferBytes) == 0, let buffer = raw else {
            throw .io(IOFailure(operation: "allocate a copy buffer", path: name, errno: ENOMEM, reason: SystemErrors.text(ENOMEM)))
        }
        defer { free(buffer) }
        var spool: FileDescriptor?
        do throws(PipelineError) {
            while true {
                try waitUntilReadable(fd, name: name, shouldStop: shouldStop)
                let n = read(fd, buffer, bufferBytes)
                if n < 0 {
                    let code = errno
                    if code == EINTR { continue }
                    throw .io(IOFailure(operation: "read", path: name, errno: code, reason: SystemErrors.text(code)))
                }
                if n == 0 { break }
                let out: FileDescriptor
                if let spool { out = spool } else {
                    out = try temporaryFile(for: name)
                    spool = out
                }
                try writeAll(UnsafeRawBufferPointer(start: buffer, count: n), to: out.rawValue, name: name)
            }
            if spool == nil, keepEmpty { spool = try temporaryFile(for: name) }
        } catch {
            try? spool?.close()
            throw error
        }
        return spool
    }

    /// The directory copies go to: `$TMPDIR`, else /tmp.
    public static var directory: String {
        if let dir = getenv("TMPDIR"), dir.pointee != 0 { return String(cString: dir) }
        return "/tmp"
    }

    /// A new read-write file in `directory` that no name points to, so that
    /// nothing is left behind however the process ends: O_TMPFILE, or where
    /// the filesystem lacks it, mkstemp(3) and unlink(2) at once.
    package static func temporaryFile(for name: String) throws(PipelineError) -> FileDescriptor {
        let dir = directory
        let fd = sluice_open_tmpfile(dir)
        if fd >= 0 { return FileDescriptor(rawValue: fd) }
        let code = errno
        // EISDIR/EOPNOTSUPP/EINVAL: no O_TMPFILE here; others are real failures.
        guard code == EISDIR || code == EOPNOTSUPP || code == EINVAL else {
            throw .io(IOFailure(
                operation: "create a temporary copy in \(dir)", path: name, errno: code, reason: SystemErrors.text(code)))
        }
        var template = Array(((dir.hasSuffix("/") ? dir : dir + "/") + "sluice-stream-XXXXXX").utf8CString)
        let named = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard named >= 0 else {
            let code = errno
            throw .io(IOFailure(
                operation: "create a temporary copy in \(dir)", path: name, errno: code, reason: SystemErrors.text(code)))
        }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        _ = fcntl(named, F_SETFD, FD_CLOEXEC)
        return FileDescriptor(rawValue: named)
    }

    /// Waits until `fd` has bytes (or its end) to read, looking at
    /// `shouldStop` every 100 ms: an idle pipe never blocks a Ctrl-C or
    /// SIGTERM, whose handler lets a blocked read restart.
    private static func waitUntilReadable(_ fd: Int32, name: String, shouldStop: () -> Bool) throws(PipelineError) {
        while true {
            if shouldStop() { throw .interrupted(finishedChunks: 0, pendingChunks: 1) }
            var request = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&request, 1, 100)
            if ready > 0 { return }
            if ready < 0 {
                let code = errno
                if code == EINTR { continue }
                throw .io(IOFailure(operation: "poll", path: name, errno: code, reason: SystemErrors.text(code)))
            }
        }
    }

    private static func writeAll(_ bytes: UnsafeRawBufferPointer, to fd: Int32, name: String) throws(PipelineError) {
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                let code = errno
                if code == EINTR { continue }
                throw .io(IOFailure(
                    operation: "write its copy in \(directory)", path: name, errno: code, reason: SystemErrors.text(code)))
            }
            if n == 0 {
                throw .io(IOFailure(
                    operation: "write its copy in \(directory)", path: name, errno: EIO, reason: "the file system took no bytes"))
            }
            offset += n
        }
    }
}
