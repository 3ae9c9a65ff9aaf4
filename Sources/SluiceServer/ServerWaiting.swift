import Sluice
import SluiceIngest
import Synchronization

extension Server {
    /// `init` for a caller on a thread of its own, outside the concurrency
    /// pool (the `sluice serve` command): waits until the session started.
    public static func startWaiting(_ configuration: Configuration) throws(ServerError) -> Server {
        try waitFor { () async -> Result<Server, ServerError> in
            do throws(ServerError) {
                return .success(try await Server(configuration))
            } catch {
                return .failure(error)
            }
        }.get()
    }

    /// `close()` for such a caller.
    public func closeWaiting() {
        waitFor { [self] in await close() }
    }
}

/// Runs `body` on the concurrency pool and blocks this thread, which must
/// not be one of the pool's, until it returns.
private func waitFor<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
    let result = Mutex<T?>(nil)
    let done = WakeSignal()
    Task {
        let value = await body()
        result.withLock { $0 = value }
        done.notifyAll()
    }
    while true {
        let seen = done.sequence
        if let value = result.withLock({ $0 }) { return value }
        _ = done.wait(after: seen, until: nil)
    }
}
