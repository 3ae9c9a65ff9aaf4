#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceIngest
import SluiceSystem
import Synchronization
import SystemPackage

/// Files someone else opened, handed to a session by descriptor with the
/// names to report them under: what `sluice serve` runs for a client, which
/// opened every file itself so that the server reads exactly what the
/// client could read and never opens a path it names. The object owns the
/// descriptors: the run takes each when it reaches the file, and those it
/// never reached are closed when the object goes.
public final class PassedFiles: Sendable {
    /// The names the files are reported under, in order (never opened).
    public let paths: [RawPath]
    private let descriptors: Mutex<[FileDescriptor?]>

    /// Takes over `descriptors`, file i reported as `paths[i]`; the counts must agree.
    public init(paths: [RawPath], descriptors: [FileDescriptor]) throws(PipelineError) {
        guard paths.count == descriptors.count else {
            for fd in descriptors { try? fd.close() }
            throw .invalidRequest(
                chunk: nil, slot: nil, reason: "\(paths.count) names for \(descriptors.count) passed descriptors")
        }
        self.paths = paths
        self.descriptors = Mutex(descriptors.map { Optional($0) })
    }

    /// File `index`'s descriptor, as it was passed, for passing it on (a
    /// session connected to a server); the caller owns it. Each file can be taken once.
    func take(_ index: Int) throws(PipelineError) -> FileDescriptor {
        let taken = descriptors.withLock { d -> FileDescriptor? in
            defer { d[index] = nil }
            return d[index]
        }
        guard let fd = taken else {
            throw .invalidRequest(chunk: nil, slot: nil, reason: "\(paths[index]): its descriptor was taken already")
        }
        return fd
    }

    /// File `index`, taken over for reading and stamped (a file whose size
    /// lies is read into a copy, as a local one is); anything but a regular
    /// file is refused, naming it. Each file can be taken once.
    func open(_ index: Int) throws(PipelineError) -> (fd: FileDescriptor, stamp: FileStamp) {
        let path = paths[index]
        let taken = descriptors.withLock { d -> FileDescriptor? in
            defer { d[index] = nil }
            return d[index]
        }
        guard let fd = taken else {
            throw .invalidRequest(chunk: nil, slot: nil, reason: "\(path): its descriptor was taken already")
        }
        let st: Stat
        do { st = try fd.stat() } catch {
            try? fd.close()
            throw .io(IOFailure(operation: "fstat", path: path.description, errno: error.rawValue))
        }
        guard st.type == .regular else {
            try? fd.close()
            throw .io(IOFailure(
                operation: "read", path: path.description, errno: EINVAL,
                reason: "the descriptor passed for it is not a regular file (the client copies a stream to a file first)"))
        }
        return try InputSource.adopt(fd, path: path)
    }

    deinit {
        for fd in descriptors.withLock({ $0 }) { try? fd?.close() }
    }
}
