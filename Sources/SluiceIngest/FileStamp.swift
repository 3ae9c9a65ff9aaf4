#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceSystem
import SystemPackage

/// Size and modification time of an open file: taken before and after a
/// file is read, so a file that changed meanwhile is reported, not trusted.
public struct FileStamp: Equatable, Sendable {
    /// The file's size in bytes.
    public var size: UInt64
    /// Modification time: whole seconds since the epoch.
    public var modifiedSeconds: Int
    /// Modification time: the nanoseconds part.
    public var modifiedNanoseconds: Int

    /// A stamp with each field given.
    public init(size: UInt64, modifiedSeconds: Int, modifiedNanoseconds: Int) {
        self.size = size
        self.modifiedSeconds = modifiedSeconds
        self.modifiedNanoseconds = modifiedNanoseconds
    }

    /// The stamp of the open file `fd` (fstat); `path` names it in the error when fstat fails.
    public init(fd: FileDescriptor, path: String) throws(PipelineError) {
        let st: Stat
        do { st = try fd.stat() } catch { throw .io(IOFailure(operation: "fstat", path: path, errno: error.rawValue)) }
        size = UInt64(st.size)
        modifiedSeconds = Int(st.st_mtim.tv_sec)
        modifiedNanoseconds = Int(st.st_mtim.tv_nsec)
    }

    /// What changed since `earlier`, in words; nil when nothing did.
    public func difference(from earlier: FileStamp) -> String? {
        if size != earlier.size { return "size went from \(earlier.size) to \(size) bytes" }
        if self != earlier { return "modification time changed" }
        return nil
    }
}
