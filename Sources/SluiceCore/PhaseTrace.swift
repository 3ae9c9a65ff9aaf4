import Synchronization

/// Wall-clock marks of the phases of one process (driver load, context,
/// pinned memory, kernel load, start, shutdown), for finding where a
/// command's fixed cost goes. Off unless the tool turns it on (the
/// `SLUICE_TRACE_PHASES` environment variable); when off, `mark` costs one
/// relaxed atomic load.
public enum PhaseTrace {
    private static let enabledFlag = Atomic<Bool>(false)
    private static let marks = Mutex<[(name: String, at: ContinuousClock.Instant)]>([])
    private static let origin = Mutex<ContinuousClock.Instant?>(nil)

    /// Turns tracing on; the first mark's time is the origin of the report.
    public static func enable() {
        origin.withLock { $0 = $0 ?? .now }
        enabledFlag.store(true, ordering: .relaxed)
    }

    /// Whether `enable()` was called, so that marks are recorded.
    public static var isEnabled: Bool { enabledFlag.load(ordering: .relaxed) }

    /// Records that `name` ended now.
    public static func mark(_ name: @autoclosure () -> String) {
        guard isEnabled else { return }
        let now = ContinuousClock.now
        let label = name()
        marks.withLock { $0.append((label, now)) }
    }

    /// One line per mark: milliseconds since the origin and since the previous mark.
    public static func report() -> [String] {
        guard let start = origin.withLock({ $0 }) else { return [] }
        var previous = start
        return marks.withLock { list in
            list.map { entry in
                defer { previous = entry.at }
                return "phase \(milliseconds(entry.at - start)) ms (+\(milliseconds(entry.at - previous)) ms) \(entry.name)"
            }
        }
    }

    private static func milliseconds(_ d: Duration) -> String {
        let ms = Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15
        return String((ms * 10).rounded() / 10)
    }
}
