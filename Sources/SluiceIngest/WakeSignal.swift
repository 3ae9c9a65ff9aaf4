#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A condition to sleep on until something changed, with a timeout, for state
/// that lives elsewhere (behind a `Synchronization.Mutex`, which has no
/// condition variable of its own).
///
/// It counts notifications. A waiter reads `sequence` *before* looking at the
/// state it waits on, then sleeps only while no notification came after that
/// reading, so a change made between the look and the sleep is never missed:
///
/// ```
/// let seen = signal.sequence
/// if let item = state.withLock({ $0.take() }) { ... } else { signal.wait(after: seen, until: deadline) }
/// ```
package final class WakeSignal: @unchecked Sendable {
    // @unchecked: the pthread objects live at fixed heap addresses (they must
    // never move) and `count` is only touched with `mutex` held.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private var count: UInt64 = 0

    package init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        #if os(Linux)
        // Time out on the monotonic clock, immune to wall-clock changes.
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        #endif
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Notifications so far.
    package var sequence: UInt64 {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return count
    }

    /// Wakes every waiter.
    package func notifyAll() {
        pthread_mutex_lock(mutex)
        count &+= 1
        pthread_mutex_unlock(mutex)
        pthread_cond_broadcast(condition)
    }

    /// Wakes one waiter (for a queue, where one new item needs one taker:
    /// waking every thread per item made a 16-thread pool several times
    /// slower than one thread on the H100 machine's VM).
    package func notifyOne() {
        pthread_mutex_lock(mutex)
        count &+= 1
        pthread_mutex_unlock(mutex)
        pthread_cond_signal(condition)
    }

    /// Sleeps until a notification after `seen`, or until `deadline` (nil:
    /// no limit). Returns false when the deadline passed first.
    @discardableResult
    package func wait(after seen: UInt64, until deadline: ContinuousClock.Instant?) -> Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        guard let deadline else {
            while count == seen { pthread_cond_wait(condition, mutex) }
            return true
        }
        let limit = WakeSignal.absoluteTime(of: deadline)
        while count == seen {
            var time = limit
            if pthread_cond_timedwait(condition, mutex, &time) == ETIMEDOUT {
                return count != seen
            }
        }
        return true
    }

    /// `deadline` on the clock the condition times out on.
    private static func absoluteTime(of deadline: ContinuousClock.Instant) -> timespec {
        let remaining = max(ContinuousClock.now.duration(to: deadline), .zero)
        var now = timespec()
        #if os(Linux)
        clock_gettime(CLOCK_MONOTONIC, &now)
        #else
        clock_gettime(CLOCK_REALTIME, &now)
        #endif
        let (seconds, attoseconds) = remaining.components
        var nanoseconds = Int(now.tv_nsec) + Int(attoseconds / 1_000_000_000)
        var wholeSeconds = Int(now.tv_sec) + Int(clamping: seconds)
        if nanoseconds >= 1_000_000_000 {
            nanoseconds -= 1_000_000_000
            wholeSeconds += 1
        }
        return timespec(tv_sec: wholeSeconds, tv_nsec: nanoseconds)
    }
}
