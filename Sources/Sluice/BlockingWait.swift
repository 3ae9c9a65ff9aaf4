import SluiceIngest
import Synchronization

/// Runs `body` on the concurrency pool and blocks the calling thread, which
/// must not be one of the pool's, until it returns: for code on a thread of
/// its own (the `sluice serve` command, the self-test) that calls the async API.
package func waitBlocking<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
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
