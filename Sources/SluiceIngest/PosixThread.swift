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
    private var handle: pthread_t
    private var joined = false

    /// Starts `body` on a new thread; `name` identifies it in errors.
    // (Glibc's Swift module has no pthread_setname_np: it is a _GNU_SOURCE extension.)
    init(name: String, body: @escaping @Sendable () -> Void) throws(PipelineError) {
        let start = Unmanaged.passRetained(Start(body: body)).toOpaque()
        var handle = pthread_t()
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
        pthread_join(handle, nil)
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
