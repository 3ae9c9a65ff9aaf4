#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore
import SluiceSystem
import SluiceThreads

/// Which read path ingest uses.
public enum IngestChoice: String, Sendable, CaseIterable, CustomStringConvertible {
    /// io_uring where it works here, else the pread thread pool; cuFile
    /// into GPU memory instead when the CUDA backend runs and GPUDirect
    /// Storage is truly direct here (never its compatibility mode).
    case auto
    /// io_uring or an error: no fallback.
    case uring
    /// The pread thread pool, without trying io_uring.
    case pread
    /// cuFile (GPUDirect Storage) straight into GPU memory, even where it can
    /// only run in its compatibility mode; needs the CUDA backend. The engine
    /// builds this stream (SluiceCUDA owns the GPU memory), not `makeStream`.
    case gds

    /// The choice as `--ingest` spells it.
    public var description: String { rawValue }
}

/// The chunk read stream chosen for this machine, and one line on why.
///
/// ```
/// let selection = try IngestSelection.makeStream(.auto, region: data, chunkBytes: 4 << 20, chunkCount: 128)
/// print(selection.reason)  // "io_uring (READ_FIXED, 16 rings on 16 threads, 128 registered buffers of 4 MiB)"
/// ```
public struct IngestSelection {
    /// The stream to read through.
    public let stream: any ChunkReadStream
    /// Which path runs and why, e.g. "io_uring (READ_FIXED, 8 rings on 8
    /// threads, 128 registered buffers of 4 MiB)", "io_uring (READ_FIXED, 1
    /// registered buffer of 256 KiB)" (one ring, on the caller's thread) or
    /// "pread thread pool (2 threads): io_uring_setup returned EPERM (blocked
    /// by seccomp or a container policy?)".
    public let reason: String

    /// Where the kernel says whether io_uring may be used (0: yes).
    static let disabledSysctl = "/proc/sys/kernel/io_uring_disabled"

    /// The value of `kernel.io_uring_disabled` (0: io_uring allowed; 2: off
    /// for everyone), or nil where the kernel has no such switch.
    public static func ioUringDisabledSetting() -> Int? { readSysctl(disabledSysctl) }

    /// Most io_uring rings (each with its thread) one stream may start.
    public static let maxUringRings = 64

    /// The io_uring rings `.auto` and `.uring` start for `chunkCount` chunks:
    /// one per core, at most 16, and at most one per two chunks (so each ring
    /// keeps a read queued while the owner consumes another), at least 1.
    /// One ring is a plain `UringStream`, driven by the caller's thread.
    ///
    /// Cached pages are copied on the thread that submits the read, so rings
    /// on several threads are what lets a warm file read faster than one
    /// thread copies.
    public static func defaultUringRings(chunkCount: Int, cores: Int = ProcessorCount.online) -> Int {
        max(1, min(cores, 16, chunkCount / 2))
    }

    /// Builds the stream for `choice` over `chunkCount` chunks of `chunkBytes` in `region`.
    ///
    /// `.auto` takes io_uring unless `kernel.io_uring_disabled` is non-zero,
    /// or setting up the ring, registering the buffers or the eventfd fails
    /// (seccomp and container policies answer EPERM/EACCES/ENOSYS; a low
    /// RLIMIT_MEMLOCK makes buffer registration fail with ENOMEM); then the
    /// pread pool, with the failure in the reason. `.uring` throws that
    /// failure instead. `.pread` never touches io_uring.
    ///
    /// - Parameters:
    ///   - choice: which ingest path to try (`--ingest`).
    ///   - region: the memory the chunk buffers are carved from; not owned.
    ///   - chunkBytes: bytes per chunk buffer, a multiple of 4096.
    ///   - chunkCount: chunk buffers to carve; nil: as many as fit in `region`.
    ///   - preadThreads: threads for the pread pool, when it runs.
    ///   - uringRings: io_uring rings (one thread each) when io_uring runs;
    ///     nil picks `defaultUringRings(chunkCount:)`. 1 is a plain
    ///     `UringStream`; more a `ParallelUringStream`. At most
    ///     `min(maxUringRings, chunkCount)`.
    public static func makeStream(
        _ choice: IngestChoice = .auto, region: UnsafeMutableRawBufferPointer, chunkBytes: Int, chunkCount: Int? = nil,
        preadThreads: Int = 2, uringRings: Int? = nil
    ) throws(PipelineError) -> IngestSelection {
        if let uringRings {
            // A ring count that cannot work is a bad configuration, not a reason to fall back.
            let layout = try ChunkLayout(region: region, chunkBytes: chunkBytes, chunkCount: chunkCount)
            let most = min(maxUringRings, layout.chunkCount)
            guard uringRings >= 1, uringRings <= most else {
                throw .invalidConfiguration(
                    "io_uring rings \(uringRings) must be between 1 and \(most) (at most \(maxUringRings), "
                        + "and no more than the \(layout.chunkCount) chunks)")
            }
        }
        return try makeStream(
            choice, region: region, chunkBytes: chunkBytes, chunkCount: chunkCount, preadThreads: preadThreads,
            disabledSysctl: disabledSysctl
        ) { region, chunkBytes, count throws(PipelineError) in
            try makeUringStream(region: region, chunkBytes: chunkBytes, chunkCount: count, rings: uringRings)
        }
    }

    /// `makeStream`, with the sysctl file and the io_uring constructor replaceable for tests.
    static func makeStream(
        _ choice: IngestChoice, region: UnsafeMutableRawBufferPointer, chunkBytes: Int, chunkCount: Int?,
        preadThreads: Int, disabledSysctl: String,
        makeUring: (UnsafeMutableRawBufferPointer, Int, Int?) throws(PipelineError) -> any ChunkReadStream
    ) throws(PipelineError) -> IngestSelection {
        // Check the layout first, so a bad configuration is reported as such
        // rather than as a reason to fall back.
        let layout = try ChunkLayout(region: region, chunkBytes: chunkBytes, chunkCount: chunkCount)
        /// The pool, with "forced" or the reason io_uring is not used.
        func pread(forced: Bool = false, because why: String? = nil) throws(PipelineError) -> IngestSelection {
            let stream = try PreadStream(
                region: region, chunkBytes: chunkBytes, chunkCount: layout.chunkCount, threads: preadThreads)
            var reason = "pread thread pool (\(counted(preadThreads, "thread"))\(forced ? ", forced" : ""))"
            if let why { reason += ": " + why }
            return IngestSelection(stream: stream, reason: reason)
        }
        switch choice {
        case .gds:
            throw .invalidConfiguration(
                "ingest gds reads through cuFile into GPU memory, which only the engine (with the CUDA backend) can set up")
        case .pread:
            return try pread(forced: true)
        case .uring:
            let stream = try makeUring(region, chunkBytes, layout.chunkCount)
            return IngestSelection(stream: stream, reason: uringSummary(stream, layout: layout))
        case .auto:
            if let value = readSysctl(disabledSysctl), value != 0 {
                return try pread(because: "io_uring is disabled by the kernel (kernel.io_uring_disabled = \(value))")
            }
            do {
                let stream = try makeUring(region, chunkBytes, layout.chunkCount)
                return IngestSelection(stream: stream, reason: uringSummary(stream, layout: layout))
            } catch {
                return try pread(because: fallbackReason(error, layout: layout))
            }
        }
    }

    /// `rings` io_uring rings (nil: `defaultUringRings`) over the layout's chunks:
    /// a `UringStream` for one, a `ParallelUringStream` for more.
    static func makeUringStream(
        region: UnsafeMutableRawBufferPointer, chunkBytes: Int, chunkCount: Int?, rings: Int?
    ) throws(PipelineError) -> any ChunkReadStream {
        #if os(Linux) && compiler(>=6.2)
        let count = try ChunkLayout(region: region, chunkBytes: chunkBytes, chunkCount: chunkCount).chunkCount
        let rings = rings ?? defaultUringRings(chunkCount: count)
        if rings <= 1 {
            return try UringStream(region: region, chunkBytes: chunkBytes, chunkCount: count)
        }
        return try ParallelUringStream(region: region, chunkBytes: chunkBytes, chunkCount: count, rings: rings)
        #else
        throw .backendUnavailable(
            backend: "io_uring", reason: "io_uring support was not compiled in (it needs Linux and Swift 6.2)")
        #endif
    }

    /// "io_uring (READ_FIXED, 16 registered buffers of 4 MiB)" for one ring;
    /// "io_uring (READ_FIXED, 8 rings on 8 threads, 128 registered buffers of 4 MiB)" for more.
    static func uringSummary(_ stream: any ChunkReadStream, layout: ChunkLayout) -> String {
        var rings = 1
        #if os(Linux) && compiler(>=6.2)
        if let parallel = stream as? ParallelUringStream { rings = parallel.ringCount }
        #endif
        let spread = rings > 1 ? "\(counted(rings, "ring")) on \(counted(rings, "thread")), " : ""
        return "io_uring (READ_FIXED, \(spread)\(counted(layout.chunkCount, "registered buffer")) of "
            + "\(byteCountText(layout.chunkBytes)))"
    }

    /// Why io_uring could not be used, as the tail of the reason line.
    static func fallbackReason(_ error: PipelineError, layout: ChunkLayout) -> String {
        guard case .io(let failure) = error else {
            if case .backendUnavailable(_, let reason) = error { return reason }
            return error.message
        }
        let said = "\(failure.operation) returned \(SystemErrors.name(failure.errno))"
        switch failure.errno {
        case EPERM, EACCES:
            return said + " (blocked by seccomp or a container policy?)"
        case ENOSYS:
            return said + " (the kernel has no io_uring)"
        case EOPNOTSUPP:
            return said + " (built without io_uring headers, or the kernel is too old?)"
        case EINVAL where failure.operation == "io_uring_setup":
            return said + " (the kernel lacks io_uring features swift-system needs; 5.5 or later)"
        case ENOMEM where failure.allocatesMemory:
            let bytes = layout.chunkCount * layout.chunkBytes
            return said + " (pinning \(byteCountText(bytes)) exceeds RLIMIT_MEMLOCK \(memlockLimitText()); raise ulimit -l)"
        default:
            return said + " (\(failure.reason))"
        }
    }

    /// The integer in a /proc/sys file, or nil when it cannot be read (no
    /// such sysctl means an old kernel without the switch: not disabled).
    static func readSysctl(_ path: String) -> Int? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { _ = close(fd) }
        var bytes = [UInt8](repeating: 0, count: 32)
        let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        let text = String(decoding: bytes[..<count], as: UTF8.self)
        return Int(text.filter { !$0.isWhitespace })
    }

    private static func memlockLimitText() -> String {
        switch LockedMemoryLimit.current() {
        case .unlimited: return "(unlimited)"
        case .bytes(let n): return byteCountText(n)
        case .unknown: return "(unknown)"
        }
    }
}

/// "1 thread", "2 threads".
private func counted(_ count: Int, _ noun: String) -> String {
    "\(count) \(noun)\(count == 1 ? "" : "s")"
}

/// "64 KiB", "4 MiB", "1.5 GiB": sizes for one-line reasons.
package func byteCountText(_ bytes: Int) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024, unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    if unit == 0 { return "\(bytes) bytes" }
    let tenths = (value * 10).rounded()
    return tenths.truncatingRemainder(dividingBy: 10) == 0 ? "\(Int(tenths / 10)) \(units[unit])" : "\(tenths / 10) \(units[unit])"
}
