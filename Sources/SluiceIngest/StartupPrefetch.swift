#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceSystem
import SluiceThreads
import Synchronization
import SystemPackage

/// Asks the kernel to start reading the first files of a run into the page
/// cache (`posix_fadvise(WILLNEED)`) while a GPU backend starts, so that on
/// cold storage the disk works during the start (driver, context, pinned
/// buffers: about 0.4 s on the H100 machine) instead of idling until the
/// first read; the engine's buffered reads then find those pages cached.
///
/// Only for buffered reads (O_DIRECT reads go to the disk whatever the
/// cache holds), and bounded by `budgetBytes` so it never evicts much.
/// Advice is given in segments, in file order, on one thread; `finish()`
/// stops it between segments (the engine's own reads then take over) and
/// joins the thread. Failures are ignored: this is only a head start.
public final class StartupPrefetch {
    private let stop = StopFlag()
    private var thread: PosixThread?

    /// Bytes of advice per call: small enough that `finish` stops it soon.
    static let segmentBytes = 32 << 20

    /// Starts advising `paths`' first `budgetBytes` bytes, in order.
    public init(paths: [RawPath], budgetBytes: Int) {
        guard budgetBytes > 0, !paths.isEmpty else { return }
        let box = stop
        thread = try? PosixThread.start(name: "prefetch") {
            var left = budgetBytes
            for path in paths where left > 0 {
                if box.stopped { return }
                // The scan opens it the same way; its errors are the scan's to report.
                guard let fd = try? openForIngest(path: path, direct: false) else { continue }
                defer { try? fd.close() }
                guard let st = try? fd.stat(), st.type == .regular else { continue }
                var offset = 0
                let size = Int(st.size)
                while offset < size, left > 0, !box.stopped {
                    let n = min(StartupPrefetch.segmentBytes, size - offset, left)
                    _ = posix_fadvise(fd.rawValue, off_t(offset), off_t(n), POSIX_FADV_WILLNEED)
                    offset += n
                    left -= n
                }
            }
        }
    }

    /// The budget for this machine: a quarter of the memory available now,
    /// at most `limit` (0 where /proc/meminfo cannot be read).
    public static func budget(limit: Int = 1 << 30) -> Int {
        guard let meminfo = readSmallTextFile("/proc/meminfo") else { return 0 }
        for line in meminfo.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            let kib = line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
            return budget(availableBytes: kib * 1024, limit: limit)
        }
        return 0
    }

    /// The budget for a machine with `availableBytes` available (nil:
    /// unknown, so 0): a quarter of it, at most `limit`.
    public static func budget(availableBytes: Int?, limit: Int = 1 << 30) -> Int {
        min(limit, max(0, availableBytes ?? 0) / 4)
    }

    /// Stops advising (between segments) and joins the thread. Idempotent.
    public func finish() {
        stop.flag.store(true, ordering: .relaxed)
        thread?.join()
        thread = nil
    }

    deinit { finish() }

    /// The stop request, shared with the thread.
    private final class StopFlag: Sendable {
        let flag = Atomic<Bool>(false)
        var stopped: Bool { flag.load(ordering: .relaxed) }
    }
}
