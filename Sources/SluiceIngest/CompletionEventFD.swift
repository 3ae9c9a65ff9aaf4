#if os(Linux) && compiler(>=6.2)
// eventfd(2) is declared by swift-system's C shim module (which its IORing is
// built on); Glibc's Swift module leaves <sys/eventfd.h> out.
import CSystem
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SluiceCore
import SluiceSystem
import SystemPackage

/// An eventfd the io_uring instance signals for every completion it posts.
///
/// Waiting happens in poll(2) on this descriptor, with a timeout, instead of in
/// `IORing`'s blocking consume calls, which lose the context of failed
/// requests and end the process on an unexpected errno (see
/// shared/swift-system-ioring.md). Completions are then taken with
/// `tryConsumeCompletion()` only.
///
/// Any thread may also `signal()` it, to wake the thread that waits on it
/// for another reason (a `ParallelUringStream` posting work to a ring
/// thread); the waiter then finds no completion and looks elsewhere.
final class CompletionEventFD: Sendable {
    let descriptor: FileDescriptor

    init() throws(PipelineError) {
        // Non-blocking, so resetting a counter another wake-up already reset
        // returns EAGAIN instead of sleeping.
        let fd = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        guard fd >= 0 else {
            let code = errno
            throw .io(IOFailure(operation: "eventfd", path: "", errno: code, reason: SystemErrors.text(code)))
        }
        descriptor = FileDescriptor(rawValue: fd)
    }

    deinit { _ = close(descriptor.rawValue) }

    /// Adds one to the counter, waking a `wait` now or the next one.
    func signal() {
        var one: UInt64 = 1
        while write(descriptor.rawValue, &one, MemoryLayout<UInt64>.size) < 0, errno == EINTR {}
        // EAGAIN means the counter is near 2^64 - 1: a waiter wakes anyway.
    }

    /// Sleeps until the ring has posted a completion since the last wake-up,
    /// or until `deadline`. Returns false when the deadline passed first.
    ///
    /// A completion posted between the caller's last drain and this call is
    /// not missed: the counter is already non-zero, so poll returns at once.
    func wait(until deadline: ContinuousClock.Instant) throws(PipelineError) -> Bool {
        while true {
            var entry = pollfd(fd: descriptor.rawValue, events: Int16(POLLIN), revents: 0)
            let ready = poll(&entry, 1, CompletionEventFD.milliseconds(until: deadline))
            if ready > 0 {
                var counter: UInt64 = 0
                _ = read(descriptor.rawValue, &counter, MemoryLayout<UInt64>.size)
                return true
            }
            if ready == 0 {
                // poll's millisecond granularity can return just short of the deadline.
                if ContinuousClock.now >= deadline { return false }
                continue
            }
            let code = errno
            if code == EINTR { continue }
            throw .io(IOFailure(
                operation: "poll on the io_uring eventfd", path: "", errno: code, reason: SystemErrors.text(code)))
        }
    }

    /// Milliseconds left until `deadline`, rounded up and clamped to poll's range.
    static func milliseconds(until deadline: ContinuousClock.Instant) -> Int32 {
        let remaining = ContinuousClock.now.duration(to: deadline)
        if remaining <= .zero { return 0 }
        let (seconds, attoseconds) = remaining.components
        let millis = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: millis)
    }
}
#endif
