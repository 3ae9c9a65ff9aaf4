#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Ctrl-C as a request, not a kill: the first SIGINT (or SIGTERM) sets a flag
/// that running scanners poll, so they stop submitting, let in-flight reads
/// and claimed slots finish, release their memory and report what finished.
/// A second signal ends the process at once.
public enum Interrupt {
    private static let flag = Atomic<Bool>(false)

    /// Whether an interrupt was requested.
    public static var isRequested: Bool { flag.load(ordering: .acquiring) }

    /// Installs the handlers. Idempotent.
    public static func install() {
        _ = isRequested  // initialize the flag before a handler can touch it
        let handler: @convention(c) (Int32) -> Void = { signal in
            Interrupt.flag.store(true, ordering: .releasing)
            // The next one takes the default action (ends the process).
            _ = Glibc.signal(signal, SIG_DFL)
        }
        _ = signal(SIGINT, handler)
        _ = signal(SIGTERM, handler)
    }

    /// For tests and for a library user that wants to stop a run.
    public static func request() { flag.store(true, ordering: .releasing) }
    public static func reset() { flag.store(false, ordering: .releasing) }
}
