import Sluice
import SluiceIngest
import Synchronization

extension Server {
    /// `init` for a caller on a thread of its own, outside the concurrency
    /// pool (the `sluice serve` command): waits until the session started.
    public static func startWaiting(_ configuration: Configuration) throws(ServerError) -> Server {
        try waitBlocking { () async -> Result<Server, ServerError> in
            do throws(ServerError) {
                return .success(try await Server(configuration))
            } catch {
                return .failure(error)
            }
        }.get()
    }

    /// `close()` for such a caller.
    public func closeWaiting() {
        waitBlocking { [self] in await close() }
    }
}
