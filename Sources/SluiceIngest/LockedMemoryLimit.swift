#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// RLIMIT_MEMLOCK of this process: what registering buffers with io_uring
/// (and pinning without CAP_IPC_LOCK) may lock.
public enum LockedMemoryLimit: Sendable, Equatable {
    /// RLIM_INFINITY: no limit.
    case unlimited
    /// The soft limit, in bytes.
    case bytes(Int)
    /// getrlimit failed.
    case unknown

    /// The soft limit now.
    public static func current() -> LockedMemoryLimit {
        var limit = rlimit()
        #if canImport(Glibc)
        // Glibc's RLIMIT_MEMLOCK is a macro over this enum case.
        let resource = __rlimit_resource_t(__RLIMIT_MEMLOCK.rawValue)
        #else
        let resource = RLIMIT_MEMLOCK
        #endif
        guard getrlimit(resource, &limit) == 0 else { return .unknown }
        // RLIM_INFINITY is all ones; its C spelling (-1) does not import.
        return limit.rlim_cur == .max ? .unlimited : .bytes(Int(clamping: limit.rlim_cur))
    }
}
