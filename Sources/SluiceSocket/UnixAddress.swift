#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SystemPackage

/// A `sockaddr_un` for a path, checked to fit.
struct UnixAddress {
    let path: FilePath
    private var storage = sockaddr_un()

    /// `sun_path` holds 108 bytes, the terminating NUL included.
    static let maxPathBytes = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    init(_ path: FilePath) throws(SocketError) {
        self.path = path
        let bytes = path.withPlatformString { p in Array(UnsafeBufferPointer(start: p, count: strlen(p))) }
        guard bytes.count <= Self.maxPathBytes else {
            throw .pathTooLong(path: path, bytes: bytes.count, maximum: Self.maxPathBytes)
        }
        storage.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &storage.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = UInt8(bitPattern: b) }
            raw[bytes.count] = 0
        }
    }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafePointer(to: storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}
