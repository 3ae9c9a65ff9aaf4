#if canImport(Glibc)
import Glibc
#endif
import Sluice
import SluiceSystem

/// A scratch directory for the soak's, the self-test's and calibration's
/// files; `remove()` removes it once its files are gone.
struct ScratchFiles {
    let path: String

    init(under base: String) throws(PipelineError) {
        var template = Array("\(base)/sluice-scratch-XXXXXX".utf8CString)
        let made: String? = template.withUnsafeMutableBufferPointer { buffer in
            mkdtemp(buffer.baseAddress!).map { String(cString: $0) }
        }
        guard let made else {
            let e = errno
            throw .io(IOFailure(operation: "mkdtemp", path: base, errno: e))
        }
        path = made
    }

    func write(_ name: String, _ bytes: [UInt8]) throws(PipelineError) -> String {
        let p = path + "/" + name
        let fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            let e = errno
            throw .io(IOFailure(operation: "create", path: p, errno: e))
        }
        defer { close(fd) }
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else {
                let e = errno
                throw .io(IOFailure(operation: "write", path: p, errno: e))
            }
            off += n
        }
        return p
    }

    func remove() { rmdir(path) }
}
