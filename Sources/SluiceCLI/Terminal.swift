#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceCore

/// Writes one line to standard error.
func printError(_ line: String) {
    var s = line
    if !s.hasSuffix("\n") { s += "\n" }
    writeStandardError(s)
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

/// Writes straight to fd 2: the C `stderr` global is not concurrency-safe in Swift 6.
func writeStandardError(_ s: String) {
    let bytes = Array(s.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return
        }
        offset += n
    }
}

/// Buffered standard output: results can be millions of lines.
struct StandardOutput {
    private var buffer: [UInt8] = []

    init() { buffer.reserveCapacity(1 << 16) }

    mutating func line(_ s: String) {
        line(bytes: s.utf8)
    }

    /// A line of raw bytes (paths and literals need not be UTF-8).
    mutating func line(bytes: some Sequence<UInt8>) {
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

    mutating func flush() {
        var offset = 0
        while offset < buffer.count {
            let n = buffer[offset...].withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                break  // stdout closed (e.g. piped into head): nothing more to say
            }
            offset += n
        }
        buffer.removeAll(keepingCapacity: true)
    }
}

/// A one-line progress display on stderr, shown only when stderr is a
/// terminal and the run has lasted over a second.
final class ProgressLine {
    private let enabled: Bool
    private let start = ContinuousClock.now
    private var lastDraw = ContinuousClock.now
    private var drawn = false

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
        writeStandardError(text + "\u{1B}[K")
        drawn = true
    }

    func finish() {
        if drawn { writeStandardError("\r\u{1B}[K") }
        drawn = false
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
