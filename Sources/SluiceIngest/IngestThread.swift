import SluiceCore
import SluiceThreads

extension PosixThread {
    /// Starts a joinable ingest thread; a failure is reported the way every
    /// other ingest syscall failure is: `pthread_create` with its errno.
    static func start(name: String, body: @escaping @Sendable () -> Void) throws(PipelineError) -> PosixThread {
        do {
            return try PosixThread(name: name, body: body)
        } catch {
            throw .io(IOFailure(operation: "pthread_create", path: "", errno: error.code, reason: error.message))
        }
    }
}
