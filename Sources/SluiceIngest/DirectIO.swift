#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The open(2) flag for direct I/O. Glibc's Swift module leaves `O_DIRECT`
/// out (it is a `_GNU_SOURCE` macro), and its value differs by architecture.
#if os(Linux)
#if arch(arm64) || arch(arm)
let openDirectFlag: Int32 = 0o200000
#elseif arch(powerpc64) || arch(powerpc64le)
let openDirectFlag: Int32 = 0o400000
#else
let openDirectFlag: Int32 = 0o40000  // x86_64, i386, riscv64, s390x
#endif
#endif

/// Whether `fd` was opened with O_DIRECT. Asked only on rare paths (a short
/// read, an EINVAL), where one fcntl(2) costs nothing that matters.
func isDirectIO(_ fd: Int32) -> Bool {
    #if os(Linux)
    let flags = fcntl(fd, F_GETFL)
    return flags >= 0 && flags & openDirectFlag != 0
    #else
    return false
    #endif
}
