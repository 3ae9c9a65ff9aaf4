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
    /// The first signal that asked to stop; 0 when none did.
    private static let firstSignal = Atomic<Int32>(0)

    /// Whether an interrupt was requested.
    public static var isRequested: Bool { flag.load(ordering: .acquiring) }

    /// The signal (SIGINT or SIGTERM) that asked the run to stop first, nil
    /// when none did (no stop, or `request()`): the CLI exits with 128 plus it.
    public static var signal: Int32? {
        let s = firstSignal.load(ordering: .acquiring)
        return s == 0 ? nil : s
    }

    /// Installs the handlers. Idempotent.
    public static func install() {
        _ = isRequested  // initialize the atomics before a handler can touch them
        _ = signal
        let handler: @convention(c) (Int32) -> Void = { number in
            // Atomics only: they are lock-free, so safe in a signal handler.
            _ = Interrupt.firstSignal.compareExchange(expected: 0, desired: number, ordering: .acquiringAndReleasing)
            Interrupt.flag.store(true, ordering: .releasing)
            // The next one takes the default action (ends the process).
            _ = Glibc.signal(number, SIG_DFL)
        }
        _ = Glibc.signal(SIGINT, handler)
        _ = Glibc.signal(SIGTERM, handler)
    }

    /// For tests and for a library user that wants to stop a run.
    public static func request() { flag.store(true, ordering: .releasing) }

    /// Clears the request and the recorded signal (tests).
    public static func reset() {
        flag.store(false, ordering: .releasing)
        firstSignal.store(0, ordering: .releasing)
    }
}
