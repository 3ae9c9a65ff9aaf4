import Glibc
import SluiceCore
import SluiceIngest
import SystemPackage

/// A scratch directory on a disk filesystem (not /tmp, which may be tmpfs and
/// refuse O_DIRECT), removed with everything in it on deinit.
final class ScratchDirectory {
    let path: String

    init() throws {
        // /var/tmp is disk-backed on the usual layouts; mkdtemp keeps parallel tests apart.
        var template = Array("/var/tmp/sluice-ingest-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw TestFailure("mkdtemp failed: errno \(errno)")
        }
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit {
        if let directory = opendir(path) {
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if name != "." && name != ".." { unlink(path + "/" + name) }
            }
            closedir(directory)
        }
        rmdir(path)
    }

    /// Writes `bytes` to a new file `name` and returns its path.
    func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let file = path + "/" + name
        let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TestFailure("creating \(file): errno \(errno)") }
        defer { close(fd) }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, bytes.count - written) }
            guard n > 0 else { throw TestFailure("writing \(file): errno \(errno)") }
            written += n
        }
        return file
    }
}

/// An open read-only descriptor, closed on deinit.
final class OpenFile {
    let path: String
    let fd: FileDescriptor

    init(_ path: String, direct: Bool = false) throws {
        self.path = path
        fd = try openForIngest(path: RawPath(path), direct: direct)
    }

    deinit { close(fd.rawValue) }
}

/// Bytes from a seeded SplitMix64: the independent oracle for file contents.
func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed
    var bytes = [UInt8]()
    bytes.reserveCapacity(count + 8)
    while bytes.count < count {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        withUnsafeBytes(of: z.littleEndian) { bytes.append(contentsOf: $0) }
    }
    return Array(bytes.prefix(count))
}

/// A page-aligned region for `chunkCount` chunks, filled with 0xEE so bytes a
/// read did not write stand out; freed after `body` (streams made in `body`
/// must not escape it).
func withRegion<R>(
    chunkCount: Int, chunkBytes: Int, _ body: (UnsafeMutableRawBufferPointer) throws -> R
) rethrows -> R {
    let region = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkCount * chunkBytes, alignment: 4096)
    region.initializeMemory(as: UInt8.self, repeating: 0xEE)
    defer { region.deallocate() }
    return try body(region)
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
