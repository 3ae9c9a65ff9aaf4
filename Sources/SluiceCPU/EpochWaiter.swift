#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceThreads

/// Waits for the epoch to move without keeping a core busy: a short spin for
/// latency, then sleeps that double from 1 us up to 256 us.
public enum EpochWaiter {
    /// Blocks until `ring`'s epoch differs from `epoch` or `timeout` elapses; returns the epoch it saw last.
    public static func wait(ring: RingView, after epoch: UInt64, timeout: Duration) throws(PipelineError) -> UInt64 {
        let deadline = monotonicNanoseconds() + nanoseconds(timeout)
        var round = 0
        while true {
            let now = ring.epoch
            if now != epoch { return now }
            if monotonicNanoseconds() >= deadline { return now }
            round += 1
            if round > 64 { sleepNanoseconds(1000 << min(round - 65, 8)) }
        }
    }

    static func nanoseconds(_ d: Duration) -> UInt64 {
        let (s, a) = d.components
        if s < 0 { return 0 }
        return UInt64(s) * 1_000_000_000 + UInt64(a / 1_000_000_000)
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
