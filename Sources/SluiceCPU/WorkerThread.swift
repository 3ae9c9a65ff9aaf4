#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One joinable POSIX thread running a closure. Wrapped by hand because the
/// megakernel's workers are long-lived polling loops, which must not occupy
/// threads of a shared pool (Dispatch, Swift concurrency) that other work needs.
package final class WorkerThread {
    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    private var thread: pthread_t
    private var joined = false

    package init(_ body: @escaping () -> Void) throws(POSIXThreadError) {
        let box = Unmanaged.passRetained(Box(body))
        var t = pthread_t()
        let rc = pthread_create(&t, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, box.toOpaque())
        guard rc == 0 else {
            box.release()
            throw POSIXThreadError(code: rc)
        }
        thread = t
    }

    /// Waits for the thread to return. Idempotent.
    package func join() {
        guard !joined else { return }
        joined = true
        pthread_join(thread, nil)
    }

    deinit { join() }
}

/// `pthread_create` failed with this error number.
package struct POSIXThreadError: Error {
    package let code: Int32
}

/// Sleeps for `nanoseconds` (used for idle backoff).
@inline(__always)
package func sleepNanoseconds(_ nanoseconds: Int) {
    var ts = timespec(tv_sec: nanoseconds / 1_000_000_000, tv_nsec: nanoseconds % 1_000_000_000)
    _ = nanosleep(&ts, nil)
}
