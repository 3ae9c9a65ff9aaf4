#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceSystem

/// One POSIX thread running one closure: the only place Sluice starts a thread.
///
/// Written by hand over pthreads, not Foundation's `Thread` or Dispatch:
/// Foundation would grow the statically linked binary, and the threads Sluice
/// starts are long-lived loops (CPU workers polling the ring, io_uring
/// reapers, read pools) that must not occupy a shared pool other work needs.
/// A joinable thread's owner calls `join()` before letting go; deinit joins
/// as a last resort, so a thread never outlives the state it works on.
package final class PosixThread {
    #if canImport(Glibc)
    private var handle: pthread_t
    #else
    // Musl and Darwin spell pthread_t as a pointer, passed to pthread_create as an optional.
    private var handle: pthread_t?
    #endif
    private var joined = false

    /// Starts `body` on a new joinable thread; `name` identifies it in errors
    /// (the thread itself stays unnamed: Glibc's Swift module has no
    /// pthread_setname_np, a _GNU_SOURCE extension).
    package init(name: String, body: @escaping @Sendable () -> Void) throws(ThreadStartFailure) {
        handle = try PosixThread.create(name: name, body: body)
    }

    /// Starts `body` on a new detached thread, which nobody joins: for work
    /// that may outlive its starter (a warm-up the process need not wait for).
    package static func detach(name: String, body: @escaping @Sendable () -> Void) throws(ThreadStartFailure) {
        let thread = try create(name: name, body: body)
        #if canImport(Glibc)
        pthread_detach(thread)
        #else
        if let thread { pthread_detach(thread) }
        #endif
    }

    /// Waits for the thread to return. Calling it again does nothing.
    package func join() {
        guard !joined else { return }
        joined = true
        #if canImport(Glibc)
        pthread_join(handle, nil)
        #else
        if let handle { pthread_join(handle, nil) }
        #endif
    }

    deinit { join() }

    #if canImport(Glibc)
    private typealias Handle = pthread_t
    #else
    private typealias Handle = pthread_t?
    #endif

    private static func create(name: String, body: @escaping @Sendable () -> Void) throws(ThreadStartFailure) -> Handle {
        let start = Unmanaged.passRetained(Start(body: body)).toOpaque()
        #if canImport(Glibc)
        var handle = pthread_t()
        #else
        var handle: pthread_t?
        #endif
        let code = pthread_create(&handle, nil, { context in
            Unmanaged<Start>.fromOpaque(context!).takeRetainedValue().body()
            return nil
        }, start)
        guard code == 0 else {
            Unmanaged<Start>.fromOpaque(start).release()
            throw ThreadStartFailure(name: name, code: code)
        }
        return handle
    }

    /// What the new thread needs, passed through pthread_create's context pointer.
    private final class Start {
        let body: @Sendable () -> Void
        init(body: @escaping @Sendable () -> Void) {
            self.body = body
        }
    }
}

/// `pthread_create` could not start the thread `name`: `code` is its error number.
package struct ThreadStartFailure: Error, Sendable {
    package let name: String
    package let code: Int32

    /// "could not start thread NAME: STRERROR".
    package var message: String {
        "could not start thread \(name): \(SystemErrors.text(code))"
    }
}

/// Cores online, for sizing thread pools.
public enum ProcessorCount {
    /// Processors online now (sysconf), at least 1.
    public static var online: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
}

/// Sleeps for `nanoseconds` (idle back-off of polling loops), the whole time
/// even when a signal interrupts it.
package func sleepNanoseconds(_ nanoseconds: Int) {
    var request = timespec(tv_sec: nanoseconds / 1_000_000_000, tv_nsec: nanoseconds % 1_000_000_000)
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0, errno == EINTR {
        request = remaining
    }
}
