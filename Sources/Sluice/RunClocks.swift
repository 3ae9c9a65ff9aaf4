/// How long something the host waits on (the workers, the reads) has shown
/// no progress, less the host's own time in callbacks meanwhile: a busy
/// host is not a hung worker or a dead disk.
struct StallClock {
    private var since = ContinuousClock.now
    private var hostTime = Duration.zero

    /// Progress was seen: the wait starts again now.
    mutating func progressed() {
        since = .now
        hostTime = .zero
    }

    /// The host was busy elsewhere for `duration` (it could not have seen progress).
    mutating func hostWasBusy(for duration: Duration) {
        hostTime += duration
    }

    /// The time without progress that counts.
    var stalled: Duration { ContinuousClock.now - since - hostTime }
}

/// The two watchdog clocks of a run. A reclaimed slot, an epoch change or
/// new work for idle workers is the workers' progress; the host's time in
/// the jobs' callbacks (writing output, rescanning a chunk) is counted
/// against neither.
final class RunClocks {
    var workers = StallClock()
    var reads = StallClock()

    /// Runs a job's callback, its time left out of both watchdogs' counts.
    func callback(_ body: () -> Void) {
        let began = ContinuousClock.now
        body()
        let spent = ContinuousClock.now - began
        workers.hostWasBusy(for: spent)
        reads.hostWasBusy(for: spent)
    }
}
