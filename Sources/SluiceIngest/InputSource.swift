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
import Synchronization
import SystemPackage

/// How an input is opened for ingest, where its reported size is not its
/// length. Two kinds of input are copied whole (`StreamSpool`) before they
/// are read by offset:
///
/// - Named streams (standard input, a FIFO or a character device named on
///   the command line): they can be read once only and opening one may
///   block, so `FileWalker` copies each as it meets it and registers the
///   copy under the input's name (`SpooledInput`); `openForIngest` then
///   opens that name as the copy, for every reader alike.
/// - Regular files whose size is not their length: 0 bytes on procfs, a
///   page on sysfs. Only opening one tells (the walk does not stat most
///   files), so `open(path:direct:)`, the open of the scanner and of the
///   small-file loader, reads such a file to its end into a copy.
public enum InputSource {
    /// The name standard input goes by in output and errors.
    public static let standardInputName: RawPath = "<stdin>"

    /// Opens `path` for ingest and stats it. A regular file whose size is
    /// not its length (`lengthUnknown`) is read to its end into a temporary
    /// copy, which is returned in its place (the caller owns either and
    /// closes it); a file that turns out empty is returned as it is.
    public static func open(path: RawPath, direct: Bool) throws(PipelineError) -> (fd: FileDescriptor, stamp: FileStamp) {
        try adopt(try openForIngest(path: path, direct: direct), path: path)
    }

    /// `open` for a descriptor opened already (by `open`, or by a client of
    /// `sluice serve` that passed it): takes it over, stamps it, and reads a
    /// file whose size lies into a copy. `fd` is closed on any error.
    public static func adopt(_ fd: FileDescriptor, path: RawPath) throws(PipelineError) -> (fd: FileDescriptor, stamp: FileStamp) {
        let stamp: FileStamp
        let copy: FileDescriptor?
        do throws(PipelineError) {
            stamp = try FileStamp(fd: fd, path: path.description)
            guard lengthUnknown(fd: fd.rawValue, size: stamp.size) else { return (fd, stamp) }
            // A sysfs file that reads empty still needs a copy: its own size says a page.
            copy = try StreamSpool.copy(from: fd.rawValue, name: path.description, keepEmpty: stamp.size != 0)
        } catch {
            try? fd.close()
            throw error
        }
        guard let copy else { return (fd, stamp) }
        try? fd.close()
        do throws(PipelineError) {
            return (copy, try FileStamp(fd: copy, path: path.description))
        } catch {
            try? copy.close()
            throw error
        }
    }

    /// Whether `fd`, whose fstat(2) says `size` bytes, is a regular file
    /// whose length only reading it to its end tells: any of 0 bytes (procfs
    /// files say 0; for an empty file the read costs one call), or of one
    /// page on a kernel filesystem that says a page whatever it holds
    /// (sysfs, configfs). Other sizes cost no system call here.
    public static func lengthUnknown(fd: Int32, size: UInt64) -> Bool {
        guard size == 0 || size == pageSize else { return false }
        guard (try? FileDescriptor(rawValue: fd).stat().type) == .regular else { return false }
        if size == 0 { return true }
        let type = sluice_fstatfs_type(fd)
        return type != -1 && pageSizedFilesystems.contains(Int64(type))
    }

    /// statfs(2) `f_type`s of kernel filesystems whose files report a page:
    /// sysfs, configfs, and for safety procfs, debugfs, tracefs, securityfs,
    /// cgroup and cgroup2 (which mostly report 0).
    static let pageSizedFilesystems: Set<Int64> = [
        0x6265_6572, 0x6265_6570, 0x9FA0, 0x6462_6720, 0x7472_6163, 0x7363_6673, 0x0027_E0EB, 0x6367_7270,
    ]

    static let pageSize = UInt64(max(4096, sysconf(Int32(_SC_PAGESIZE))))
}

/// The temporary copy of a named stream (standard input, a FIFO, a
/// character device), registered under the name the user gave it: while it
/// is open, `openForIngest` opens that name as a new descriptor of the copy.
/// This object is the copy's one owner: `close()` (or its end) closes the
/// copy and forgets the name; descriptors handed out stay valid until their
/// readers close them.
public final class SpooledInput: Sendable {
    /// The name it goes by (the path given, or `InputSource.standardInputName`).
    public let name: RawPath
    /// Bytes copied.
    public let size: UInt64
    private let copy: Mutex<FileDescriptor?>

    /// Copies the stream at `path` (nil: standard input, which is left open)
    /// to its end and registers the copy as `name`. Ctrl-C (`shouldStop`)
    /// stops the copy with `.interrupted`; a failed open or read names the
    /// input and the errno.
    public init(path: RawPath?, name: RawPath, shouldStop: () -> Bool = { false }) throws(PipelineError) {
        var source: Int32 = 0
        if let path {
            while true {
                // Blocks until a FIFO has a writer, as cat(1) does.
                source = openReadOnly(path)
                if source >= 0 { break }
                let code = errno
                if code == EINTR, !shouldStop() { continue }
                throw openFailure(path: name, direct: false, errno: code)
            }
        }
        defer { if path != nil { closeDescriptor(source) } }
        guard let fd = try StreamSpool.copy(from: source, name: name.description, keepEmpty: true, shouldStop: shouldStop) else {
            throw .invalidConfiguration("a stream copy kept empty came back without a file")
        }
        size = (try? UInt64(fd.stat().size)) ?? 0
        self.name = name
        copy = Mutex(fd)
        SpooledInput.register(name, fd: fd.rawValue, owner: ObjectIdentifier(self))
    }

    /// Closes the copy and forgets its name. Idempotent.
    public func close() {
        guard let fd = copy.withLock({ fd in defer { fd = nil }; return fd }) else { return }
        SpooledInput.unregister(name, owner: ObjectIdentifier(self))
        try? fd.close()
    }

    deinit { close() }

    private struct Entry {
        var fd: Int32
        var owner: ObjectIdentifier
    }

    /// Names with a copy, and how many (so an open with none registered costs no lock).
    private static let table = Mutex<[RawPath: Entry]>([:])
    private static let registered = Atomic<Int>(0)

    private static func register(_ name: RawPath, fd: Int32, owner: ObjectIdentifier) {
        table.withLock { t in
            // A later copy of the same name takes its place (its owner's close leaves the later one be).
            if t.updateValue(Entry(fd: fd, owner: owner), forKey: name) == nil {
                registered.add(1, ordering: .releasing)
            }
        }
    }

    private static func unregister(_ name: RawPath, owner: ObjectIdentifier) {
        table.withLock { t in
            guard t[name]?.owner == owner else { return }
            t[name] = nil
            registered.subtract(1, ordering: .releasing)
        }
    }

    /// A new descriptor of the copy registered as `path` (close-on-exec; the
    /// caller owns it), or nil when there is none.
    static func reopen(_ path: RawPath) throws(PipelineError) -> FileDescriptor? {
        guard registered.load(ordering: .acquiring) > 0 else { return nil }
        // Under the lock, so the copy cannot be closed between lookup and dup.
        let result: Result<FileDescriptor?, PipelineError> = table.withLock { t in
            guard let entry = t[path] else { return .success(nil) }
            // Every reader reads by offset, so sharing the file position is harmless.
            let fd = fcntl(entry.fd, F_DUPFD_CLOEXEC, 0)
            guard fd >= 0 else {
                let code = errno
                return .failure(.io(IOFailure(operation: "dup", path: path.description, errno: code, reason: SystemErrors.text(code))))
            }
            return .success(FileDescriptor(rawValue: fd))
        }
        return try result.get()
    }
}

// Outside the class, whose `close()` would shadow the C function.
private func openReadOnly(_ path: RawPath) -> Int32 { path.withCString { open($0, O_RDONLY | O_CLOEXEC) } }
private func closeDescriptor(_ fd: Int32) { _ = close(fd) }
