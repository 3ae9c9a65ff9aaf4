#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore

/// One joinable POSIX thread running one closure.
///
/// Ingest uses raw pthreads rather than Dispatch or Foundation's `Thread` to
/// keep the statically linked binary small. The owner must call `join()`
/// before letting go; deinit joins as a last resort, so a thread never
/// outlives the state it works on.
final class PosixThread {
    #if canImport(Glibc)
    private var handle: pthread_t
    #else
    // Musl and Darwin spell pthread_t as a pointer, passed to pthread_create as an optional.
    private var handle: pthread_t?
    #endif
    private var joined = false

    /// Starts `body` on a new thread; `name` identifies it in errors (the
    /// thread itself stays unnamed: Glibc's Swift module has no
    /// pthread_setname_np, a _GNU_SOURCE extension).
    init(name: String, body: @escaping @Sendable () -> Void) throws(PipelineError) {
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
            throw .io(IOFailure(
                operation: "pthread_create", path: "", errno: code,
                reason: "could not start thread \(name): \(SystemErrors.text(code))"))
        }
        self.handle = handle
    }

    /// Waits for the thread to return. Calling it again does nothing.
    func join() {
        guard !joined else { return }
        joined = true
        #if canImport(Glibc)
        pthread_join(handle, nil)
        #else
        if let handle { pthread_join(handle, nil) }
        #endif
    }

    deinit { join() }

    /// What the new thread needs, passed through pthread_create's context pointer.
    private final class Start {
        let body: @Sendable () -> Void
        init(body: @escaping @Sendable () -> Void) {
            self.body = body
        }
    }
}
