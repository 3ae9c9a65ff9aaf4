#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Sluice
import Synchronization

/// Writes one line to standard error, clearing the progress line first.
func printError(_ line: String) {
    var s = line
    if !s.hasSuffix("\n") { s += "\n" }
    ProgressLine.display.withLock { drawn in
        if drawn { writeStandardError(ProgressLine.clearSequence) }
        drawn = false
        writeStandardError(s)
    }
}

/// One file's errors: the first few, then how many more (a file whose every
/// chunk failed the same way would otherwise print one line per chunk);
/// `all` (--verbose) prints every one.
func printFileErrors(_ errors: [PipelineError], path: String, all: Bool) {
    let shown = all ? errors.count : min(errors.count, 3)
    for e in errors.prefix(shown) { printError("sluice: \(e.message)") }
    if errors.count > shown {
        printError("sluice: \(path): \(errors.count - shown) more errors like these (--verbose prints them all)")
    }
}

/// Writes straight to fd 2: the C `stderr` global is not concurrency-safe in
/// Swift 6. A failed write to stderr has nowhere to be reported, so it is dropped.
func writeStandardError(_ s: String) {
    _ = writeAll(fd: 2, Array(s.utf8)[...])
}

/// Writes every byte of `bytes` to `fd`, retrying on EINTR and after short
/// writes; returns 0, or the errno of the write that failed (EIO for a
/// write that took nothing, so that a stuck descriptor cannot spin forever).
func writeAll(fd: Int32, _ bytes: ArraySlice<UInt8>) -> Int32 {
    var offset = bytes.startIndex
    while offset < bytes.endIndex {
        let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return errno
        }
        if n == 0 { return EIO }
        offset += n
    }
    return 0
}

/// Buffered standard output: results can be millions of lines.
///
/// Every write is checked. The first one that fails records its errno
/// (`StandardOutput.failure`) and asks the run to stop (`Interrupt.request`,
/// which the scanners poll), so a scan does not go on for minutes after its
/// output was lost; later output is dropped. `main` then reports the failure
/// and exits 2, or quietly with 141 for a closed pipe (EPIPE), as a process
/// killed by SIGPIPE would.
struct StandardOutput {
    private var buffer: [UInt8] = []

    /// The errno of the first write to standard output that failed, if any.
    static var failure: Int32? {
        let e = failedErrno.load(ordering: .acquiring)
        return e == 0 ? nil : e
    }

    /// Whether output was lost: producers of many lines may stop early.
    static var hasFailed: Bool { failure != nil }

    private static let failedErrno = Atomic<Int32>(0)

    /// Records a failed write (the first one wins) and stops the run.
    static func recordFailure(errno e: Int32) {
        _ = failedErrno.compareExchange(expected: 0, desired: e, ordering: .acquiringAndReleasing)
        Interrupt.request()
    }

    init() { buffer.reserveCapacity(1 << 16) }

    /// Whether nothing waits to be written.
    var isEmpty: Bool { buffer.isEmpty }

    mutating func line(_ s: String) {
        line(bytes: s.utf8)
    }

    /// A line of raw bytes (paths and literals need not be UTF-8).
    mutating func line(bytes: some Sequence<UInt8>) {
        // Nothing more can be written: do not buffer what would be dropped.
        guard StandardOutput.failedErrno.load(ordering: .relaxed) == 0 else { return }
        buffer.append(contentsOf: bytes)
        buffer.append(0x0A)
        if buffer.count >= 1 << 16 { flush() }
    }

    /// A number in decimal, with no newline after it.
    mutating func decimal(_ value: UInt64) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var v = value
        var n = 0
        withUnsafeMutableBytes(of: &digits) { d in
            repeat {
                d[19 - n] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
                n += 1
            } while v > 0
            buffer.append(contentsOf: d[(20 - n)...])
        }
    }

    /// Ends a line; flushes when the buffer is full.
    mutating func newline() {
        buffer.append(0x0A)
        if buffer.count >= 1 << 16 { flush() }
    }

    /// Raw bytes with no newline after them.
    mutating func bytes(_ bytes: some Sequence<UInt8>) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= 1 << 16 { flush() }
    }

    /// Writes what is buffered; after a failure it only drops it.
    mutating func flush() {
        defer { buffer.removeAll(keepingCapacity: true) }
        guard !buffer.isEmpty, !StandardOutput.hasFailed else { return }
        let e = writeAll(fd: 1, buffer[...])
        if e != 0 { StandardOutput.recordFailure(errno: e) }
    }

    /// The message for a failed write to standard output, or nil for a
    /// closed pipe, which ends the process quietly.
    static func failureMessage(errno e: Int32) -> String? {
        e == EPIPE ? nil : "sluice: standard output: write failed: \(SystemErrors.text(e)) (errno \(e))"
    }

    /// Ends the process when a write to standard output failed: quietly
    /// with 141 for a closed pipe (as SIGPIPE's default action would have),
    /// else with the failure on stderr and exit status 2.
    static func exitIfFailed() {
        guard let e = failure else { return }
        if let message = failureMessage(errno: e) {
            printError(message)
            exit(2)
        }
        exit(128 + SIGPIPE)
    }
}

/// A one-line progress display on stderr, shown only when stderr is a
/// terminal and the run has lasted over a second. `printError` clears it
/// before any message; the next update draws it again.
final class ProgressLine {
    /// Whether a progress line is drawn on stderr now; also serializes
    /// writes to stderr, so a message and a redraw never interleave.
    static let display = Mutex<Bool>(false)
    /// Back to the start of the line, then erase to its end.
    static let clearSequence = "\r\u{1B}[K"

    private let enabled: Bool
    private let start = ContinuousClock.now
    private var lastDraw = ContinuousClock.now

    init(enabled: Bool = true) {
        self.enabled = enabled && isatty(2) == 1
    }

    func update(bytesDone: UInt64, bytesTotal: UInt64, filesDone: Int) {
        guard enabled else { return }
        let now = ContinuousClock.now
        guard now - start > .seconds(1), now - lastDraw > .milliseconds(200) else { return }
        lastDraw = now
        let elapsed = (now - start).inSeconds
        let rate = elapsed > 0 ? Double(bytesDone) / elapsed : 0
        var text = "\r\(formatBytes(bytesDone)) / \(formatBytes(bytesTotal)), \(filesDone) files, \(formatBytes(UInt64(rate)))/s"
        if rate > 0, bytesTotal > bytesDone {
            text += ", ETA \(Int(Double(bytesTotal - bytesDone) / rate)) s"
        }
        ProgressLine.display.withLock { drawn in
            writeStandardError(text + "\u{1B}[K")
            drawn = true
        }
    }

    func finish() {
        ProgressLine.display.withLock { drawn in
            if drawn { writeStandardError(ProgressLine.clearSequence) }
            drawn = false
        }
    }
}

func formatBytes(_ n: UInt64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"]
    var v = Double(n)
    var i = 0
    while v >= 1000, i < units.count - 1 {
        v /= 1000
        i += 1
    }
    if i == 0 { return "\(n) B" }
    let tenths = Int((v * 10).rounded())
    return "\(tenths / 10).\(tenths % 10) \(units[i])"
}
