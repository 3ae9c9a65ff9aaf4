#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

extension ChunkReadProgress.Step {
    /// Performs this step with pread(2) into `chunk` (the whole chunk buffer)
    /// and returns the result in kernel form: bytes read, or `-errno`. One
    /// call, no retries: EINTR and short reads are `ChunkReadProgress`'s to handle.
    func pread(fd: Int32, into chunk: UnsafeMutableRawBufferPointer) -> Int {
        let target = chunk.baseAddress! + bufferOffset
        #if canImport(Darwin)
        let result = Darwin.pread(fd, target, length, off_t(fileOffset))
        #elseif canImport(Musl)
        let result = Musl.pread(fd, target, length, off_t(fileOffset))
        #else
        let result = Glibc.pread(fd, target, length, off_t(fileOffset))
        #endif
        return result >= 0 ? result : -Int(errno)
    }
}
