#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore

/// Page-aligned anonymous memory that the CPU backend shares between the
/// host side and its worker threads. Owns the mapping; unmaps it in deinit.
public final class HostMemory: @unchecked Sendable {
    /// The mapped bytes, exactly as many as asked (the mapping is rounded up to pages).
    public let bytes: UnsafeMutableRawBufferPointer

    /// Maps `byteCount` bytes (rounded up to whole pages), zero-filled.
    public init(byteCount: Int, purpose: String) throws(PipelineError) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let size = max(page, (byteCount + page - 1) / page * page)
        let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let p, p != MAP_FAILED else {
            let e = errno
            throw .io(IOFailure(
                operation: "mmap \(size) bytes for the \(purpose)", path: "", length: size, errno: e,
                reason: String(cString: strerror(e)), allocatesMemory: true))
        }
        bytes = UnsafeMutableRawBufferPointer(start: p, count: size)
        MemoryLedger.cpuRegionChanged(by: size)
    }

    deinit {
        munmap(bytes.baseAddress, bytes.count)
        MemoryLedger.cpuRegionChanged(by: -bytes.count)
    }
}

